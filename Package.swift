// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "jvpn",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "jvpn", targets: ["jvpn"]),
        // For deploy/fuzz, a separate package that depends on this one by path.
        .library(name: "JVPNCore", targets: ["JVPNCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .systemLibrary(name: "CSodium", path: "Sources/CSodium", pkgConfig: "libsodium",
                       providers: [.apt(["libsodium-dev"])]),
        .target(name: "CTun", path: "CTun"),
        .target(name: "CMnl", path: "CMnl", linkerSettings: [.linkedLibrary("mnl")]),
        .target(name: "CUDP"),
        // The vector instruction sets the CPU and the kernel allow (CPUID, XGETBV), looked at once.
        .target(name: "CCpuFeatures"),
        // Transport frames' AEAD from OpenSSL 3's ChaCha20 and Poly1305 (the static libcrypto.a of
        // libssl-dev: only those two and the CPU dispatch end up in the binary), and an 8-block
        // AVX-512 ChaCha20 for the rest of a frame behind OpenSSL's 16-block strides.
        .target(name: "CAead", dependencies: ["CCpuFeatures"], linkerSettings: [.linkedLibrary(":libcrypto.a")]),
        // The Internet checksum, with AVX2 where the CPU has it.
        .target(name: "CChecksum", dependencies: ["CCpuFeatures"]),
        .target(name: "JVPNCore", dependencies: ["CSodium", "CAead", "CChecksum"]),
        .target(name: "JVPNSystem", dependencies: ["CTun", "CMnl", "CUDP", "JVPNCore"]),
        // Session ownership in etcd (gateway [Cluster]); nothing of it starts without that section.
        .target(name: "JVPNCluster", dependencies: [
            "JVPNCore", "JVPNSystem",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .target(name: "JVPNDaemon", dependencies: ["JVPNCore", "JVPNSystem", "JVPNOps", "JVPNCluster",
                                                  .product(name: "Logging", package: "swift-log")]),
        .executableTarget(name: "jvpn", dependencies: [
            "JVPNDaemon", "JVPNCore", "JVPNSystem",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "JVPNOps", dependencies: [
            "JVPNCore", "JVPNSystem",
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        .executableTarget(name: "jvpn-microbench", dependencies: ["JVPNCore", "CAead", "CSodium"]),
        .executableTarget(name: "jvpn-loadgen", dependencies: ["JVPNCore", "JVPNSystem"]),
        .testTarget(name: "JVPNCoreTests", dependencies: ["JVPNCore", "CAead", "CChecksum", "CCpuFeatures"]),
        .testTarget(name: "JVPNSystemTests", dependencies: ["JVPNSystem", "JVPNCore", "JVPNDaemon"]),
        .testTarget(name: "JVPNOpsTests", dependencies: ["JVPNOps", "JVPNCore"]),
        .testTarget(name: "JVPNClusterTests", dependencies: ["JVPNCluster", "JVPNCore", "JVPNSystem"]),
    ],
    swiftLanguageModes: [.v5]
)
