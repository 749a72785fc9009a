// swift-tools-version:6.0
// libFuzzer targets for jvpn's parsers. A package of its own so that the root package's `swift build`
// and CI never build it; run.sh builds one target with the fuzzer and address sanitizers.
import PackageDescription

let package = Package(
    name: "jvpn-fuzz",
    dependencies: [
        .package(name: "jvpn", path: "../.."),
    ],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "JVPNCore", package: "jvpn")]),
        .executableTarget(name: "fuzz-frame", dependencies: ["FuzzSupport", .product(name: "JVPNCore", package: "jvpn")]),
        .executableTarget(name: "fuzz-control", dependencies: ["FuzzSupport", .product(name: "JVPNCore", package: "jvpn")]),
        .executableTarget(name: "fuzz-handshake", dependencies: ["FuzzSupport", .product(name: "JVPNCore", package: "jvpn")]),
        .executableTarget(name: "fuzz-gateway", dependencies: ["FuzzSupport", .product(name: "JVPNCore", package: "jvpn")]),
        .executableTarget(name: "fuzz-pathfit", dependencies: ["FuzzSupport", .product(name: "JVPNCore", package: "jvpn")]),
        .executableTarget(name: "fuzz-stream", dependencies: ["FuzzSupport", .product(name: "JVPNCore", package: "jvpn")]),
    ],
    swiftLanguageModes: [.v5]
)
