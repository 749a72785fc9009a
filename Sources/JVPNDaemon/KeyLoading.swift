import JVPNSystem
import Glibc
import JVPNCore

public enum KeyFileError: Error, CustomStringConvertible {
    case unreadable(String, Int32)
    case tooOpen(String, UInt32)
    case invalid(String)

    public var description: String {
        switch self {
        case .unreadable(let p, let e): return "cannot read key file \(p): \(String(cString: strerror(e)))"
        case .tooOpen(let p, let m): return "key file \(p) has mode \(String(m, radix: 8)); it must be 0600 (chmod 600 \(p))"
        case .invalid(let p): return "key file \(p) does not hold a base64 X25519 private key"
        }
    }
}

public enum KeyLoading {
    /// Reads a private key file; refuses anything group/world-accessible.
    public static func readPrivateKeyFile(_ path: String) throws -> PrivateKey {
        var st = stat()
        guard stat(path, &st) == 0 else { throw KeyFileError.unreadable(path, errno) }
        let mode = UInt32(st.st_mode) & 0o777
        guard mode & 0o077 == 0 else { throw KeyFileError.tooOpen(path, mode) }
        let text: String?
        do { text = try FileIO.readUTF8(path, maxBytes: 4096) } catch { throw KeyFileError.unreadable(path, error.errno) }
        guard let text, let key = try? PrivateKey(base64: text.trimmingWhitespace) else {
            throw KeyFileError.invalid(path)
        }
        return key
    }

    public static func privateKey(for config: JVPNConfig) throws -> PrivateKey {
        switch config.interface.privateKey {
        case .file(let path):
            return try readPrivateKeyFile(path)
        case .inline(let text):
            guard let key = try? PrivateKey(base64: text) else { throw KeyFileError.invalid("PrivateKey") }
            return key
        }
    }
}
