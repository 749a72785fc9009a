import ArgumentParser
import Glibc
import JVPNCore
import JVPNDaemon
import JVPNSystem

struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Create the interface, start the daemon; return once it is up (and, for a client, ATTACHED).",
        discussion: """
            The interface is named after the file (jvpn0.conf -> jvpn0) unless Name = is set. \
            Exit 2 on a bad config (every problem as FILE:LINE:), 1 on a runtime failure.

            Examples:
              sudo jvpn up /etc/jvpn/jvpn0.conf
              sudo jvpn up /etc/jvpn/jvpn0.conf --wait 30
              jvpn up /etc/jvpn/%i.conf --foreground    (the systemd unit's ExecStart)
            """)
    @Argument(help: "Config file") var config: String
    @Flag(help: "Stay in the foreground (systemd); SIGTERM/SIGINT = clean down.") var foreground = false
    @Option(help: "Seconds to wait for the interface (and, for a client, ATTACHED) before returning.") var wait: Int = 15

    func validate() throws {
        guard wait >= 0 && wait <= 3600 else { throw ValidationError("--wait must be between 0 and 3600 seconds") }
    }

    func run() throws {
        // The config may hold the key inline: no core dump from the moment it is read.
        do { try CoreDumps.disable() } catch { throw fail("\(error)") }
        let cfg = try loadConfig(config)
        guard geteuid() == 0 else { throw fail("jvpn up needs root (CAP_NET_ADMIN) to create \(cfg.interface.name)") }
        let name = cfg.interface.name
        if UnixControlClient.request(path: Daemon.controlPath(name), line: "ping", timeoutMs: 500) != nil || interfaceExists(name) {
            throw fail("\(name) is already up; run `jvpn down \(name)` first")
        }
        if foreground {
            Log.bootstrap()
            let daemon = Daemon(config: cfg)
            daemon.onReady = {
                print("jvpn: \(name) is up (\(cfg.role == .client ? "client" : "server"))")
                fflush(stdout)
            }
            do { try daemon.run() } catch {
                throw fail("\(name): \(error)")
            }
            print("jvpn: \(name) is down")
            return
        }
        try startInBackground(cfg)
    }

    private func startInBackground(_ cfg: JVPNConfig) throws {
        let name = cfg.interface.name
        mkdir(Daemon.runDirectory, 0o755)
        let logPath = "\(Daemon.runDirectory)/\(name).log"
        guard let cwd = config.hasPrefix("/") ? "" : FileIO.currentDirectory() else {
            throw fail("cannot resolve \(config): the current directory is unreadable")
        }
        let absConfig = config.hasPrefix("/") ? config : cwd + "/" + config
        let pid = try spawnDetached(["up", absConfig, "--foreground"], logPath: logPath)
        let deadline = Clock.monotonicMilliseconds() + UInt64(wait) * 1000
        var lastState = "starting"
        while Clock.monotonicMilliseconds() < deadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                let log = (try? FileIO.read(logPath)).map { String(decoding: $0, as: UTF8.self) } ?? ""
                FileIO.writeStderr(log)
                throw fail("\(name): the daemon exited during start-up (log: \(logPath))")
            }
            if let reply = UnixControlClient.request(path: Daemon.controlPath(name), line: "status", timeoutMs: 500),
               let obj = try? JSONValue.parse(reply) {
                if cfg.role != .client {
                    let tcp = (obj["tcp"]?["listen_ports"]?.arrayValue ?? []).compactMap { $0.intValue.map(String.init) }
                    let onTCP = tcp.isEmpty ? "" : " and TCP \(tcp.joined(separator: ", "))"
                    print("jvpn: \(name) is up (server, listening on UDP \(obj["listen_port"]?.intValue.map(String.init) ?? "?")\(onTCP))")
                    return
                }
                let first = obj["sessions"]?.arrayValue?.first
                lastState = first?["state"]?.stringValue ?? "BIRTH"
                if lastState == SessionState.attached.rawValue {
                    print("jvpn: \(name) is up, session \(first?["session"]?.stringValue ?? "") ATTACHED via \(first?["active_path"]?.stringValue ?? "")")
                    return
                }
            }
            usleep(50_000)
        }
        FileIO.writeStderr("jvpn: \(name) is up but the session is still \(lastState) after \(wait) s; the daemon keeps trying (jvpn status \(name))\n")
    }

    /// Starts `/proc/self/exe args...` in its own session with output to `logPath`.
    private func spawnDetached(_ args: [String], logPath: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, 0x80) // POSIX_SPAWN_SETSID: glibc hides it without _GNU_SOURCE
        // The real path (not /proc/self/exe) so the daemon's process name is "jvpn".
        let exe = FileIO.readLink("/proc/self/exe") ?? "/proc/self/exe"
        let argv: [UnsafeMutablePointer<CChar>?] = (["jvpn"] + args).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, &attr, argv, environ)
        guard rc == 0 else { throw fail("cannot start the daemon: \(String(cString: strerror(rc)))") }
        return pid
    }
}
