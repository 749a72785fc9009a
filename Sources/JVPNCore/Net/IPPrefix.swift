/// An address with a prefix length, as in `10.77.0.2/24` or `2001:db8::/32`.
///
/// The address keeps its host bits (an interface `Address` needs them); `network` gives the
/// masked form used for routing.
public struct IPPrefix: Hashable, Sendable {
    public let address: IPAddress
    public let length: UInt8

    /// nil when `length` exceeds the family's bit width.
    public init?(address: IPAddress, length: Int) {
        guard length >= 0, length <= address.family.bitWidth else { return nil }
        self.address = address
        self.length = UInt8(length)
    }

    /// Host prefix (/32 or /128) for `address`.
    public init(host address: IPAddress) {
        self.address = address
        self.length = UInt8(address.family.bitWidth)
    }

    /// Parses `ADDRESS/LENGTH`; a bare address means a host prefix (/32 or /128), as in wg(8).
    public init?(_ string: String) {
        self.init(Substring(string))
    }

    public init?(_ string: Substring) {
        if let slash = string.firstIndex(of: "/") {
            guard let addr = IPAddress(string[..<slash]) else { return nil }
            let lenText = string[string.index(after: slash)...]
            guard !lenText.isEmpty, lenText.count <= 3,
                lenText.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                let len = Int(lenText)
            else { return nil }
            self.init(address: addr, length: len)
        } else {
            guard let addr = IPAddress(string) else { return nil }
            self.init(host: addr)
        }
    }

    public var family: IPFamily { address.family }

    /// The prefix with host bits cleared.
    public var network: IPPrefix {
        IPPrefix(unchecked: address.masked(to: Int(length)), length: length)
    }

    /// True when no host bits are set.
    public var isNetwork: Bool { address.masked(to: Int(length)) == address }

    /// True when `length` covers the whole address (/32, /128).
    public var isHost: Bool { Int(length) == family.bitWidth }

    /// True for `0.0.0.0/0` and `::/0` (after masking, so `1.2.3.4/0` counts too).
    public var isDefaultRoute: Bool { length == 0 }

    /// True when `other` lies within this prefix (same family only).
    @inlinable
    public func contains(_ other: IPAddress) -> Bool {
        switch (address, other) {
        case (.v4(let a), .v4(let b)):
            let m = IPAddress.v4Mask(Int(length))
            return a & m == b & m
        case (.v6(let ah, let al), .v6(let bh, let bl)):
            let m = IPAddress.v6Mask(Int(length))
            return ah & m.hi == bh & m.hi && al & m.lo == bl & m.lo
        default:
            return false
        }
    }

    /// True when every address of `other` lies within this prefix.
    public func contains(_ other: IPPrefix) -> Bool {
        other.length >= length && contains(other.address)
    }

    init(unchecked address: IPAddress, length: UInt8) {
        self.address = address
        self.length = length
    }
}

extension IPPrefix: CustomStringConvertible {
    public var description: String { "\(address)/\(length)" }
}

/// A UDP endpoint given as an IP literal and a port: `1.2.3.4:51820` or `[2001:db8::1]:51820`.
public struct Endpoint: Hashable, Sendable {
    public let address: IPAddress
    public let port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// Why a string is not an endpoint; `description` is a message fit for `FILE:LINE:` output.
    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case empty
        case missingPort(String)
        case badPort(String)
        case hostname(String)
        case badAddress(String)
        case unbracketedIPv6(String)

        public var description: String {
            switch self {
            case .empty: return "empty endpoint"
            case .missingPort(let s): return "endpoint '\(s)' has no port (expected ADDRESS:PORT)"
            case .badPort(let s): return "endpoint '\(s)' has an invalid port (expected 1..65535)"
            case .hostname(let s):
                return "endpoint '\(s)': host names are not supported, use an IP address literal"
            case .badAddress(let s): return "endpoint '\(s)' has an invalid IP address"
            case .unbracketedIPv6(let s):
                return "endpoint '\(s)': write an IPv6 endpoint as [ADDRESS]:PORT"
            }
        }
    }

    public static func parse(_ string: String) -> Result<Endpoint, ParseError> {
        let s = Substring(string)
        guard !s.isEmpty else { return .failure(.empty) }
        let hostPart: Substring
        let portPart: Substring
        if s.first == "[" {
            guard let close = s.firstIndex(of: "]") else { return .failure(.badAddress(string)) }
            hostPart = s[s.index(after: s.startIndex)..<close]
            let rest = s[s.index(after: close)...]
            guard rest.first == ":" else { return .failure(.missingPort(string)) }
            portPart = rest.dropFirst()
            guard let a = IPAddress(hostPart), a.family == .v6 else {
                return .failure(.badAddress(string))
            }
        } else {
            guard let colon = s.lastIndex(of: ":") else {
                return .failure(looksLikeHostname(s) ? .hostname(string) : .missingPort(string))
            }
            hostPart = s[..<colon]
            portPart = s[s.index(after: colon)...]
            if hostPart.contains(":") {
                return .failure(.unbracketedIPv6(string))
            }
        }
        guard let address = IPAddress(hostPart) else {
            return .failure(looksLikeHostname(hostPart) ? .hostname(string) : .badAddress(string))
        }
        guard !portPart.isEmpty else { return .failure(.missingPort(string)) }
        guard portPart.count <= 5,
            portPart.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let p = Int(portPart), p >= 1, p <= 65535
        else { return .failure(.badPort(string)) }
        return .success(Endpoint(address: address, port: UInt16(p)))
    }

    /// Something with a letter that is not a valid address reads as a host name.
    private static func looksLikeHostname(_ s: Substring) -> Bool {
        !s.isEmpty
            && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "." }
            && s.unicodeScalars.contains { $0.properties.isAlphabetic }
    }
}

extension Endpoint: CustomStringConvertible {
    public var description: String {
        switch address {
        case .v4: return "\(address):\(port)"
        case .v6: return "[\(address)]:\(port)"
        }
    }
}
