import RESPClient
import RESPWire
import Synchronization

/// A Lua script run by its SHA1 (`EVALSHA`), loaded once and sent in full (`EVAL`) again only when
/// the server has forgotten it (restart, `SCRIPT FLUSH`).
final class RedisScript: Sendable {
    let source: String
    /// The SHA1 `SCRIPT LOAD` answered; nil until loaded.
    private let sha = Mutex<String?>(nil)

    init(_ source: String) {
        self.source = source
    }

    /// Loads the script (also proving the server answers and accepts our credentials).
    func load(on pool: RESPConnectionPool) async throws {
        let reply = try await pool.send(["SCRIPT", "LOAD", self.source])
        self.sha.withLock { $0 = reply.string }
    }

    /// Runs the script with `keys`; `arguments` appends the ARGV values to the command.
    func run(keys: [String], on pool: RESPConnectionPool, arguments: (inout RESPCommand) -> Void) async throws -> RESPValue {
        if let sha = self.sha.withLock({ $0 }) {
            do {
                return try await pool.send(Self.command("EVALSHA", sha, keys, arguments))
            } catch let error as RESPError where error.serverErrorPrefix == "NOSCRIPT" {
                self.sha.withLock { $0 = nil }
            }
        }
        let result = try await pool.send(Self.command("EVAL", self.source, keys, arguments))
        // Cache it again for the next call (EVAL has loaded it on the server).
        if let reply = try? await pool.send(["SCRIPT", "LOAD", self.source]) {
            self.sha.withLock { $0 = reply.string }
        }
        return result
    }

    private static func command(_ name: String, _ script: String, _ keys: [String], _ arguments: (inout RESPCommand) -> Void) -> RESPCommand {
        var command = RESPCommand()
        command.append(name)
        command.append(script)
        command.append(keys.count)
        for key in keys { command.append(key) }
        arguments(&command)
        return command
    }
}
