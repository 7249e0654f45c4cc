import RESPClient
import RESPWire

/// The one Lua script every `state.redis` write goes through: a list of set/delete operations
/// applied all-or-nothing. Every ETag and first-write condition is checked first, against the state
/// the earlier operations of the same list leave behind; only if all hold is anything written.
/// Redis runs a script atomically, so a single `set` is a list of one.
///
/// Layout (Dapr's): each key is a hash with `data` (the value's bytes) and `version` (a decimal
/// counter, the ETag), incremented by every write and restarting at 1 after a delete. A key of
/// another type (an old plain-string value) is replaced on write.
///
/// `KEYS`: one per operation. `ARGV`: five per operation — `set`/`del`, the expected ETag (empty for
/// none), `1` for first-write without an ETag, the TTL in milliseconds (`0` removes any expiry), the
/// value. Returns 0 when applied, or the 1-based index of the operation whose condition failed.
final class RedisStateScript: Sendable {
    static let source = """
        local versions, types, written = {}, {}, {}
        for i, key in ipairs(KEYS) do
          if types[key] == nil then
            local kind = redis.call("TYPE", key)["ok"]
            types[key] = kind
            versions[key] = kind == "hash" and redis.call("HGET", key, "version") or false
          end
          local base = (i - 1) * 5
          local op, etag, current = ARGV[base + 1], ARGV[base + 2], versions[key]
          if etag ~= "" then
            if current ~= etag then return i end
          elseif op == "set" and ARGV[base + 3] == "1" and current then
            return i
          end
          if op == "set" then
            versions[key] = tostring((tonumber(current) or 0) + 1)
            written[i] = versions[key]
          else
            versions[key] = false
          end
        end
        for i, key in ipairs(KEYS) do
          local base = (i - 1) * 5
          if ARGV[base + 1] == "set" then
            if types[key] ~= "hash" and types[key] ~= "none" then
              redis.call("DEL", key)
              types[key] = "none"
            end
            redis.call("HSET", key, "data", ARGV[base + 5], "version", written[i])
            local ttl = tonumber(ARGV[base + 4])
            if ttl > 0 then redis.call("PEXPIRE", key, ttl) else redis.call("PERSIST", key) end
          else
            redis.call("DEL", key)
            types[key] = "none"
          end
        end
        return 0
        """

    /// One operation, ready to pass to the script.
    struct Operation: Sendable {
        var key: String
        var isSet: Bool
        var etag: String?
        var firstWrite: Bool
        var ttlMilliseconds: Int64
        var value: [UInt8]
    }

    private let script = RedisScript(RedisStateScript.source)

    /// Loads the script (also proving the server answers and accepts our credentials).
    func load(on pool: RESPConnectionPool) async throws {
        try await self.script.load(on: pool)
    }

    /// Runs the operations; 0 when applied, else the 1-based index of the failed condition.
    func run(_ operations: [Operation], on pool: RESPConnectionPool) async throws -> Int {
        try await self.script.run(keys: operations.map(\.key), on: pool) { command in
            for operation in operations {
                command.append(operation.isSet ? "set" : "del")
                command.append(operation.etag ?? "")
                command.append(operation.firstWrite ? "1" : "0")
                command.append(operation.ttlMilliseconds)
                command.append(operation.value)
            }
        }.int ?? -1
    }
}
