import ArgumentParser
import Glibc
import JVPNCore
import JVPNDaemon
import JVPNSystem

/// Exit codes per the contract: 0 ok, 1 runtime failure, 2 bad input.
enum Exit {
    static let runtime = ExitCode(1)
    static let badInput = ExitCode(2)
}

func fail(_ message: String, _ code: ExitCode = Exit.runtime) -> ExitCode {
    FileIO.writeStderr("jvpn: " + message + "\n")
    return code
}

struct JVPNCommand: ParsableCommand {
    static let version = "0.1.0"
    static let configuration = CommandConfiguration(
        commandName: "jvpn",
        abstract: "A userspace VPN whose session survives its transports.",
        discussion: """
            Examples:
              jvpn genkey -o /etc/jvpn/jvpn0.key && jvpn pubkey < /etc/jvpn/jvpn0.key
              jvpn check /etc/jvpn/jvpn0.conf
              sudo jvpn up /etc/jvpn/jvpn0.conf
              jvpn status jvpn0
              jvpn events jvpn0 --follow
            `jvpn COMMAND --help` shows each command's options and examples.
            """,
        version: version,
        subcommands: [GenKey.self, PubKey.self, Check.self, Up.self, Down.self, Status.self, Events.self, Timeline.self, Reload.self])
}

struct GenKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "genkey", abstract: "Print a new base64 X25519 private key.",
        discussion: """
            Examples:
              jvpn genkey -o /etc/jvpn/jvpn0.key           (written with mode 0600)
              jvpn genkey > client.key && chmod 600 client.key
            """)
    @Option(name: .shortAndLong, help: "Write the key to FILE (mode 0600) instead of stdout.")
    var output: String?

    func run() throws {
        do { try Sodium.initialize() } catch { throw fail("libsodium failed to initialise") }
        let key = PrivateKey.generate()
        if let output {
            let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw fail("cannot write \(output): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            fchmod(fd, 0o600)
            let bytes = Array((key.base64 + "\n").utf8)
            guard write(fd, bytes, bytes.count) == bytes.count else { throw fail("cannot write \(output)") }
        } else {
            print(key.base64)
        }
    }
}

struct PubKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pubkey", abstract: "Read a private key on stdin, print its public key.",
        discussion: """
            Example:
              jvpn pubkey < /etc/jvpn/jvpn0.key            (give the output to the other side's [Peer])
            """)

    func run() throws {
        do { try Sodium.initialize() } catch { throw fail("libsodium failed to initialise") }
        let bytes = (try? FileIO.readAll(fd: 0, maxBytes: 4096)) ?? []
        guard let text = String(validating: bytes, as: UTF8.self),
              let key = try? PrivateKey(base64: text.trimmingWhitespace) else {
            throw fail("stdin does not hold a base64 X25519 private key (44 characters)", Exit.badInput)
        }
        print(key.publicKey.base64)
    }
}

/// Reads and validates a config; on any problem prints `FILE:LINE: message` lines and exits 2.
func loadConfig(_ path: String) throws -> JVPNConfig {
    let file: (bytes: [UInt8], status: FileIO.Status)
    do { file = try FileIO.readWithStatus(path) } catch {
        throw fail("\(path):0: cannot read the file: \(String(cString: strerror(error.errno)))", Exit.badInput)
    }
    guard let text = String(validating: file.bytes, as: UTF8.self) else {
        throw fail("\(path):0: the file is not UTF-8 text", Exit.badInput)
    }
    switch JVPNConfig.parse(text: text, file: path) {
    case .success(let config):
        var problems: [String] = []
        do { try KeyLoading.checkInlineKey(in: config, file: path, permissions: file.status.permissions) } catch {
            problems.append(error.description)
        }
        if case .file(let keyFile) = config.interface.privateKey {
            do { _ = try KeyLoading.readPrivateKeyFile(keyFile) } catch {
                problems.append("\(path):\(config.interface.privateKeyLine): \(error)")
            }
        }
        if !problems.isEmpty {
            for p in problems { FileIO.writeStderr(p + "\n") }
            throw Exit.badInput
        }
        return config
    case .failure(let errors):
        for d in errors.diagnostics { FileIO.writeStderr(d.description + "\n") }
        throw Exit.badInput
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Validate a config; print every problem as FILE:LINE: message.",
        discussion: """
            Exit 0 when the config is valid, 2 with every problem as FILE:LINE: message.

            Example:
              jvpn check /etc/jvpn/jvpn0.conf
            """)
    @Argument(help: "Config file") var config: String

    func run() throws {
        let c = try loadConfig(config)
        print("\(config): ok (\(c.role == .client ? "client" : "server") \(c.interface.name), \(c.peers.count) peer\(c.peers.count == 1 ? "" : "s"))")
    }
}

struct Down: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down", abstract: "Terminate sessions and remove the interface, routes and rules.",
        discussion: """
            Sessions end with OPERATOR_REQUEST. Under systemd, `systemctl stop jvpn@NAME` does the same.

            Example:
              sudo jvpn down jvpn0
            """)
    @Argument(help: "Interface name") var name: String
    @Option(help: "Seconds to wait for the daemon to finish") var wait: Int = 10

    func run() throws {
        let path = Daemon.controlPath(name)
        guard UnixControlClient.request(path: path, line: "down") != nil else {
            throw fail("\(name) is not running (no daemon on \(path))")
        }
        // Bounded wait until the daemon has removed everything and closed its socket.
        for _ in 0..<(wait * 20) {
            if UnixControlClient.request(path: path, line: "ping", timeoutMs: 200) == nil && !interfaceExists(name) { return }
            usleep(50_000)
        }
        throw fail("\(name) did not stop within \(wait) s")
    }
}

func interfaceExists(_ name: String) -> Bool {
    access("/sys/class/net/\(name)", F_OK) == 0
}
