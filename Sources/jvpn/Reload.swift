import ArgumentParser
import Glibc
import JVPNDaemon
import JVPNSystem

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Re-read the config of a running interface and apply the difference.",
        discussion: """
            The daemon re-reads the file it was started with (as SIGHUP or `systemctl reload \
            jvpn@NAME` do) and applies peers added or removed, changed AllowedIPs, [Policy] \
            changes and appended Uplinks or Endpoint addresses. Unchanged peers' sessions do not \
            notice; a removed peer's session ends with OPERATOR_REQUEST. Each change is an \
            AUDIT_EVENT (check config_reload). A config with errors, or one that changes what \
            needs a restart (Address, ListenPort, the key, ...), is refused with FILE:LINE: \
            (exit 2) and the running config stays.

            Examples:
              sudo jvpn check /etc/jvpn/jvpn0.conf && sudo jvpn reload jvpn0
              sudo systemctl reload jvpn@jvpn0
            """)
    @Argument(help: "Interface name") var name: String

    func run() throws {
        let path = Daemon.controlPath(name)
        guard let reply = UnixControlClient.request(path: path, line: "reload", timeoutMs: 10_000), !reply.isEmpty else {
            throw fail("\(name) is not running (no daemon on \(path)); start it with `sudo jvpn up /etc/jvpn/\(name).conf`")
        }
        var lines = reply.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        let head = lines.first ?? ""
        let details = lines.dropFirst()
        if head.hasPrefix("ok") {
            print("jvpn: \(name) reloaded: \(String(head.dropFirst(2)).trimmingWhitespace)")
            return
        }
        for line in details { FileIO.writeStderr(line + "\n") }
        if head == "refused" {
            FileIO.writeStderr("jvpn: \(name) keeps its running config\n")
            throw Exit.badInput
        }
        throw fail("\(name): reload failed; the running config stays")
    }
}
