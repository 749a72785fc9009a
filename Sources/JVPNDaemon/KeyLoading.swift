import JVPNSystem
import Glibc
import JVPNCore

public enum KeyFileError: Error, Equatable, CustomStringConvertible {
    case unreadable(String, Int32)
    case symbolicLink(String)
    case notRegularFile(String, FileIO.Status.Kind)
    case wrongOwner(String, owner: uid_t, expected: uid_t)
    case tooOpen(String, UInt32)
    case invalid(String)

    public var description: String {
        switch self {
        case .unreadable(let p, let e): return "cannot read key file \(p): \(String(cString: strerror(e)))"
        case .symbolicLink(let p):
            return "key file \(p) is a symbolic link; set PrivateKeyFile to the file itself"
        case .notRegularFile(let p, let kind): return "key file \(p) is a \(kind.noun), not a regular file"
        case .wrongOwner(let p, let owner, let expected):
            return "key file \(p) is owned by uid \(owner); it must be owned by uid \(expected) (chown \(expected) \(p))"
        case .tooOpen(let p, let m): return "key file \(p) has mode \(String(m, radix: 8)); it must be 0600 (chmod 600 \(p))"
        case .invalid(let p): return "key file \(p) does not hold a base64 X25519 private key"
        }
    }
}

/// A config whose inline `PrivateKey =` other users can read (the key is as exposed as the file).
public struct InlineKeyExposure: Error, Equatable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let permissions: UInt32

    public var description: String {
        let mode = String(permissions & 0o777, radix: 8)
        return "\(file):\(line): PrivateKey is inline but \(file) is readable by others (mode \(String(repeating: "0", count: max(0, 4 - mode.count)) + mode)); chmod 600 \(file) or use PrivateKeyFile"
    }
}

extension FileIO.Status.Kind {
    var noun: String {
        switch self {
        case .regular: return "regular file"
        case .directory: return "directory"
        case .symbolicLink: return "symbolic link"
        case .fifo: return "FIFO"
        case .socket: return "socket"
        case .characterDevice: return "character device"
        case .blockDevice: return "block device"
        }
    }
}

public enum KeyLoading {
    /// The only owner a key file may have: root for a root daemon, else the daemon's own user
    /// (anyone else could rewrite the key under it).
    static var expectedOwner: uid_t { FileIO.effectiveUserID }

    /// Why a key file with this status must not be trusted; nil when it may be read.
    public static func refusal(_ path: String, _ status: FileIO.Status, expectedOwner: uid_t) -> KeyFileError? {
        guard status.kind == .regular else { return .notRegularFile(path, status.kind) }
        guard status.owner == expectedOwner else { return .wrongOwner(path, owner: status.owner, expected: expectedOwner) }
        guard status.permissions & 0o077 == 0 else { return .tooOpen(path, status.permissions & 0o777) }
        return nil
    }

    /// Reads a private key file. It is opened without following a symlink and checked on the
    /// open descriptor (type, owner, mode), so that the file checked is the file read.
    public static func readPrivateKeyFile(_ path: String) throws(KeyFileError) -> PrivateKey {
        let fd: Int32
        do { fd = try FileIO.openNoFollow(path) } catch {
            throw error.errno == ELOOP ? .symbolicLink(path) : .unreadable(path, error.errno)
        }
        defer { close(fd) }
        let status: FileIO.Status
        do { status = try FileIO.status(fd: fd, path: path) } catch { throw .unreadable(path, error.errno) }
        if let refusal = refusal(path, status, expectedOwner: expectedOwner) { throw refusal }
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(fd: fd, path: path, maxBytes: 4096) } catch { throw .unreadable(path, error.errno) }
        guard let text = String(validating: bytes, as: UTF8.self), let key = try? PrivateKey(base64: text.trimmingWhitespace) else {
            throw .invalid(path)
        }
        return key
    }

    /// Refuses an inline key in a config file that group or others can read.
    public static func checkInlineKey(in config: JVPNConfig, file: String, permissions: UInt32) throws(InlineKeyExposure) {
        guard case .inline = config.interface.privateKey, permissions & 0o044 != 0 else { return }
        throw InlineKeyExposure(file: file, line: config.interface.privateKeyLine, permissions: permissions)
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
