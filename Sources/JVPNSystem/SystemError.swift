import Glibc

/// A failed syscall: which operation and the errno it returned.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    /// From a C shim's `-errno` return convention.
    public init(_ operation: String, negativeErrno rc: Int32) {
        self.init(operation, errno: -rc)
    }

    public var description: String {
        "\(operation): \(String(cString: strerror(errno)))"
    }
}
