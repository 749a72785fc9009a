import Glibc

/// Small file and process helpers over libc, in place of Foundation's FileManager/FileHandle/
/// ProcessInfo (the daemon links no Foundation).
public enum FileIO {
    public struct Failure: Error, CustomStringConvertible {
        public let path: String
        public let errno: Int32
        public var description: String { "\(path): \(String(cString: strerror(errno)))" }
    }

    /// The whole file, refusing files larger than `maxBytes` (configs and keys are small).
    public static func read(_ path: String, maxBytes: Int = 1 << 20) throws(Failure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(path: path, errno: errno) }
        defer { close(fd) }
        return try readAll(fd: fd, path: path, maxBytes: maxBytes)
    }

    /// The whole file and what fstat says about it, from one open (so both describe the same file).
    public static func readWithStatus(_ path: String, maxBytes: Int = 1 << 20) throws(Failure) -> (bytes: [UInt8], status: Status) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(path: path, errno: errno) }
        defer { close(fd) }
        let status = try status(fd: fd, path: path)
        return (try readAll(fd: fd, path: path, maxBytes: maxBytes), status)
    }

    /// What fstat(2) says about an open file, as far as permission checks need it.
    public struct Status: Equatable, Sendable {
        public enum Kind: Equatable, Sendable {
            case regular, directory, symbolicLink, fifo, socket, characterDevice, blockDevice
        }
        public let kind: Kind
        public let owner: uid_t
        /// Permission bits only (0o7777).
        public let permissions: UInt32

        public init(kind: Kind, owner: uid_t, permissions: UInt32) {
            self.kind = kind
            self.owner = owner
            self.permissions = permissions
        }
    }

    /// Opens `path` read-only without following a symbolic link in its last component (ELOOP
    /// then), and without blocking on a FIFO or becoming the controlling terminal, so that the
    /// caller can fstat what it opened before trusting it. Close the result.
    public static func openNoFollow(_ path: String) throws(Failure) -> Int32 {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { throw Failure(path: path, errno: errno) }
        return fd
    }

    /// fstat(2) of an open descriptor: the file that was opened, not whatever the path names now.
    public static func status(fd: Int32, path: String) throws(Failure) -> Status {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw Failure(path: path, errno: errno) }
        let kind: Status.Kind
        switch UInt32(st.st_mode) & UInt32(S_IFMT) {
        case UInt32(S_IFREG): kind = .regular
        case UInt32(S_IFDIR): kind = .directory
        case UInt32(S_IFLNK): kind = .symbolicLink
        case UInt32(S_IFIFO): kind = .fifo
        case UInt32(S_IFSOCK): kind = .socket
        case UInt32(S_IFCHR): kind = .characterDevice
        default: kind = .blockDevice
        }
        return Status(kind: kind, owner: st.st_uid, permissions: UInt32(st.st_mode) & 0o7777)
    }

    /// The effective user id of this process.
    public static var effectiveUserID: uid_t { geteuid() }

    /// Reads `fd` to its end (bounded by `maxBytes`; more is EFBIG).
    public static func readAll(fd: Int32, path: String = "<stdin>", maxBytes: Int = 1 << 20) throws(Failure) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(path: path, errno: errno)
            }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
            if out.count > maxBytes { throw Failure(path: path, errno: EFBIG) }
        }
    }

    /// Text of a file when it is valid UTF-8; nil when it is not.
    public static func readUTF8(_ path: String, maxBytes: Int = 1 << 20) throws(Failure) -> String? {
        String(validating: try read(path, maxBytes: maxBytes), as: UTF8.self)
    }

    /// Writes all of `text` to `fd` (short writes and EINTR retried); false on error.
    @discardableResult
    public static func write(_ text: String, to fd: Int32) -> Bool {
        let bytes = Array(text.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 { if errno == EINTR { continue }; return false }
            off += n
        }
        return true
    }

    public static func writeStderr(_ text: String) { write(text, to: 2) }

    /// Writes `text` to an existing file (a sysctl under /proc/sys), truncating it.
    public static func writeText(_ path: String, _ text: String) throws(Failure) {
        let fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(path: path, errno: errno) }
        defer { close(fd) }
        guard write(text, to: fd) else { throw Failure(path: path, errno: errno) }
    }

    /// mkdir -p: creates missing parents with `mode`; an existing directory is fine.
    public static func createDirectories(_ path: String, mode: mode_t = 0o755) throws(Failure) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            if mkdir(prefix, mode) != 0 && errno != EEXIST { throw Failure(path: prefix, errno: errno) }
            prefix += "/"
        }
    }

    /// The directory part of a path ("" for a bare name).
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    public static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func currentDirectory() -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buf, buf.count) != nil else { return nil }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Names in a directory, without "." and "..".
    public static func list(_ path: String) -> [String] {
        guard let d = opendir(path) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// An environment variable.
    public static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}

extension String {
    /// Without leading and trailing spaces, tabs, CR and LF.
    public var trimmingWhitespace: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" || f == "\r" || f == "\r\n" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" || l == "\r" || l == "\r\n" { s.removeLast() }
        return String(s)
    }
}
