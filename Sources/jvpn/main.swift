import ArgumentParser
import Glibc
import JVPNSystem

// Usage errors exit 2 like every other bad input (the contract's code), not ArgumentParser's 64.
do {
    var command = try JVPNCommand.parseAsRoot()
    try command.run()
} catch {
    let code = JVPNCommand.exitCode(for: error)
    if code == .validationFailure {
        FileIO.writeStderr(JVPNCommand.fullMessage(for: error) + "\n")
        exit(2)
    }
    JVPNCommand.exit(withError: error)
}
