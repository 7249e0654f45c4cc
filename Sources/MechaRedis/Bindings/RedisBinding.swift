public import MechaCore
import NIOCore
public import RESPClient
import RESPWire

/// `bindings.redis`: Dapr's Redis output binding. Request metadata `key` names the Redis key.
///
/// - `create`: `SET key data`, then `EXPIRE` when `ttlInSeconds` (or `ttl`: seconds or a Go
///   duration) is given; no response.
/// - `get`: the value (`GETDEL` when metadata `delete` is `true`); an empty answer when missing.
/// - `delete`: `DEL`; no response.
/// - `increment`: `INCR` (plus the optional expiry); no response.
public final class RedisBinding: OutputBinding, RedisPooledComponent {
    public let pool: RESPConnectionPool

    public var operations: [String] { ["create", "get", "delete", "increment"] }

    init(pool: RESPConnectionPool) {
        self.pool = pool
    }

    /// The expiry from `ttlInSeconds` / `ttl`, as Dapr reads it.
    static func ttl(_ metadata: [String: String]) throws(BindingError) -> Int64? {
        guard let raw = metadata["ttlInSeconds"] ?? metadata["ttl"], !raw.isEmpty else { return nil }
        let seconds: Int64
        if let whole = Int64(raw) {
            seconds = whole
        } else if let duration = GoDuration.parse(raw) {
            seconds = duration.components.seconds
        } else {
            throw BindingError("ttl value must be a valid integer: \(raw)")
        }
        guard seconds > 0 else { throw BindingError("ttl value must be higher than zero: actual is \(raw)") }
        return seconds
    }

    public func invoke(_ request: BindingInvokeRequest) async throws -> BindingInvokeResponse {
        guard let key = request.metadata["key"], !key.isEmpty else {
            throw BindingError("redis binding: missing key in request metadata")
        }
        switch request.operation {
        case "create":
            let ttl = try Self.ttl(request.metadata)
            var set = RESPCommand()
            set.append("SET")
            set.append(key)
            set.append(request.data)
            var commands = [set]
            if let ttl { commands.append(["EXPIRE", key, String(ttl)]) }
            try await self.check(self.pool.transaction(commands))
            return .noResponse
        case "get":
            let command: RESPCommand = request.metadata["delete"]?.lowercased() == "true" ? ["GETDEL", key] : ["GET", key]
            let reply = try await self.pool.send(command)
            guard let bytes = reply.bytes else { return BindingInvokeResponse() }
            return BindingInvokeResponse(data: Array(bytes.readableBytesView))
        case "delete":
            _ = try await self.pool.send(["DEL", key])
            return .noResponse
        case "increment":
            let ttl = try Self.ttl(request.metadata)
            var commands: [RESPCommand] = [["INCR", key]]
            if let ttl { commands.append(["EXPIRE", key, String(ttl)]) }
            try await self.check(self.pool.transaction(commands))
            return .noResponse
        default:
            throw BindingError("invalid operation type: \(request.operation)")
        }
    }

    /// A command inside MULTI/EXEC that failed (e.g. INCR on a non-integer) is an error.
    private func check(_ replies: [RESPValue]?) throws {
        for reply in replies ?? [] {
            if case .error(let message) = reply { throw BindingError("redis binding: \(message)") }
        }
    }

}

/// Factory for `bindings.redis`. See `RedisClientSettings` for the metadata.
public struct RedisBindingFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.bindings, "redis") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let settings = try RedisClientSettings(spec.metadata)
        let pool = try await settings.connectedPool(logger: context.logger) { BindingError("redis binding: \($0)") }
        return RedisBinding(pool: pool)
    }
}
