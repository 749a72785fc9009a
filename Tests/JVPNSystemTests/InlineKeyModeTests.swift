import JVPNCore
import JVPNDaemon
import XCTest

/// An inline `PrivateKey =` in a config that group or others can read is refused.
final class InlineKeyModeTests: XCTestCase {
    private func config(_ keyLine: String) throws -> JVPNConfig {
        let text = """
        [Interface]
        Address = 10.77.0.2/32
        \(keyLine)

        [Peer]
        PublicKey = SMa/Qqv8CKBD6FCyh/zzWLE0qK+m9lrjqvgGWI6FdFw=
        Endpoint = 10.0.0.1:51820
        AllowedIPs = 10.77.0.0/24
        """
        switch JVPNConfig.parse(text: text, file: "/etc/jvpn/jvpn0.conf") {
        case .success(let c): return c
        case .failure(let e): throw XCTSkip("fixture does not parse: \(e.diagnostics)")
        }
    }

    func testReadableByOthersIsRefusedWithFileLineAndMode() throws {
        let c = try config("PrivateKey = +NonYI+vw3r4POLJk2HTRf+UkAVIjzVZxIrf3zcnQnQ=")
        for mode: UInt32 in [0o644, 0o640, 0o604, 0o444] {
            XCTAssertThrowsError(try KeyLoading.checkInlineKey(in: c, file: "/etc/jvpn/jvpn0.conf", permissions: mode)) { e in
                XCTAssertEqual((e as? InlineKeyExposure)?.line, 3)
            }
        }
        do {
            try KeyLoading.checkInlineKey(in: c, file: "/etc/jvpn/jvpn0.conf", permissions: 0o644)
            XCTFail("0644 accepted")
        } catch {
            XCTAssertEqual(error.description, "/etc/jvpn/jvpn0.conf:3: PrivateKey is inline but /etc/jvpn/jvpn0.conf is readable by others (mode 0644); chmod 600 /etc/jvpn/jvpn0.conf or use PrivateKeyFile")
        }
    }

    func testOwnerOnlyModesAndKeyFilesPass() throws {
        let inline = try config("PrivateKey = +NonYI+vw3r4POLJk2HTRf+UkAVIjzVZxIrf3zcnQnQ=")
        for mode: UInt32 in [0o600, 0o400, 0o700, 0o620] {
            XCTAssertNoThrow(try KeyLoading.checkInlineKey(in: inline, file: "f", permissions: mode), String(mode, radix: 8))
        }
        // The config holds no secret when the key is in its own file (checked separately).
        let file = try config("PrivateKeyFile = /etc/jvpn/jvpn0.key")
        XCTAssertNoThrow(try KeyLoading.checkInlineKey(in: file, file: "f", permissions: 0o644))
    }
}
