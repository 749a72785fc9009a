import Glibc

/// Everything in JVPNOps that can go wrong at set-up time. Runtime failures (a full syslog queue,
/// a scraper that hangs up) are counted, never thrown: telemetry must not break the tunnel.
public enum OpsError: Error, Equatable, CustomStringConvertible {
    /// A syslog target that is neither `udp://IP:PORT` nor `unix:/PATH`.
    case badSyslogTarget(target: String, why: String)
    /// A `MetricsListen` value that is not `IPv4:PORT` or `[IPv6]:PORT`.
    case badListenAddress(address: String, why: String)
    /// A system call failed while setting up a socket.
    case socket(operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .badSyslogTarget(let t, let why):
            return "EventSyslog = \(t): \(why) (expected udp://IP:PORT or unix:/PATH)"
        case .badListenAddress(let a, let why):
            return "MetricsListen = \(a): \(why) (expected IPv4:PORT or [IPv6]:PORT)"
        case .socket(let op, let e):
            return "\(op): \(String(cString: strerror(e)))"
        }
    }
}

/// Why an address did not parse, for the typed errors above.
struct AddressParseFailure: Error {
    let why: String
    init(_ why: String) { self.why = why }
}

/// A socket address held by value, so that it can be parsed once and used for every send.
struct OpsSocketAddress {
    var storage = sockaddr_storage()
    var length: socklen_t = 0

    var family: Int32 { Int32(storage.ss_family) }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    /// `IPv4:PORT` or `[IPv6]:PORT`, literals only: the daemon never resolves names, so that a
    /// slow or hostile resolver cannot stall it. Returns the reason on failure.
    static func parseIP(_ text: String, allowPortZero: Bool) -> Result<OpsSocketAddress, AddressParseFailure> {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(AddressParseFailure("missing ']' after the IPv6 address")) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return .failure(AddressParseFailure("missing ':PORT' after ']'")) }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return .failure(AddressParseFailure("missing ':PORT'")) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return .failure(AddressParseFailure("an IPv6 address must be written in brackets, e.g. [::1]:9586")) }
        }
        guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), portText.count <= 5,
              let port = Int(portText), port <= 65535, port > 0 || allowPortZero
        else { return .failure(AddressParseFailure("'\(portText)' is not a port number (1-65535)")) }
        guard !host.isEmpty else { return .failure(AddressParseFailure("missing IP address")) }

        var out = OpsSocketAddress()
        let hostString = String(host)
        var a4 = in_addr()
        var a6 = in6_addr()
        if inet_pton(AF_INET, hostString, &a4) == 1 {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = UInt16(port).bigEndian
            sin.sin_addr = a4
            withUnsafeMutablePointer(to: &out.storage) { p in
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee = sin }
            }
            out.length = socklen_t(MemoryLayout<sockaddr_in>.size)
        } else if inet_pton(AF_INET6, hostString, &a6) == 1 {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = UInt16(port).bigEndian
            sin6.sin6_addr = a6
            withUnsafeMutablePointer(to: &out.storage) { p in
                p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee = sin6 }
            }
            out.length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            return .failure(AddressParseFailure("'\(hostString)' is not an IP address literal (host names are not resolved)"))
        }
        return .success(out)
    }

    /// A unix socket path, or an abstract name written `@name` (the systemd convention).
    static func parseUnix(_ path: String) -> Result<OpsSocketAddress, AddressParseFailure> {
        let abstract = path.hasPrefix("@")
        guard abstract || path.hasPrefix("/") else { return .failure(AddressParseFailure("the path must be absolute")) }
        var bytes = Array(path.utf8)
        if abstract { bytes[0] = 0 }
        var out = OpsSocketAddress()
        var sun = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: sun.sun_path)
        // A path needs its terminating NUL inside sun_path; an abstract name does not.
        guard bytes.count > 1, bytes.count < capacity + (abstract ? 1 : 0) else {
            return .failure(AddressParseFailure("the path is empty or longer than \(capacity - 1) bytes"))
        }
        guard !bytes.dropFirst().contains(0) else { return .failure(AddressParseFailure("the path contains a NUL byte")) }
        sun.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sun.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        withUnsafeMutablePointer(to: &out.storage) { p in
            p.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { $0.pointee = sun }
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path) ?? 2
        // Abstract names are length-delimited, not NUL-terminated: the length must be exact.
        out.length = socklen_t(pathOffset + bytes.count + (abstract ? 0 : 1))
        return .success(out)
    }
}
