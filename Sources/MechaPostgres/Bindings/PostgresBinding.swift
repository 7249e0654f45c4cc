public import Logging
public import MechaCore
import NIOCore
import PostgresNIO

/// `bindings.postgresql` (alias `bindings.postgres`): Dapr's PostgreSQL output binding.
///
/// - `exec`: runs `metadata.sql` with `metadata.params` (a JSON array for `$1`, `$2`, …); response
///   metadata `rows-affected`.
/// - `query`: the rows as a JSON array of arrays (column values in order, no names), as Dapr answers.
/// - `close`: closes the connections (later calls reconnect).
///
/// Every answer carries Dapr's response metadata: `operation`, `sql`, `start-time`, `end-time`
/// (RFC 3339 with nanoseconds, UTC) and `duration` (a Go duration). Parameters are sent untyped,
/// as text, so the server infers each one's type from the statement, as pgx does.
public final class PostgresBinding: OutputBinding {
    let pool: PostgresConnectionPool
    let timeout: Duration
    let logger: Logger

    public var operations: [String] { ["exec", "query", "close"] }

    init(pool: PostgresConnectionPool, timeout: Duration, logger: Logger) {
        self.pool = pool
        self.timeout = timeout
        self.logger = logger
    }

    public func invoke(_ request: BindingInvokeRequest) async throws -> BindingInvokeResponse {
        let operation = request.operation
        guard ["exec", "query", "close"].contains(operation) else {
            throw BindingError("invalid operation type: \(operation). Expected exec, query, or close")
        }
        if operation == "close" {
            await self.pool.closeIdle()
            return .noResponse
        }
        guard !request.metadata.isEmpty else { throw BindingError("metadata required") }
        guard let sql = request.metadata["sql"], !sql.isEmpty else { throw BindingError("required metadata not set: sql") }
        let query = PostgresQuery(unsafeSQL: sql, binds: try Self.binds(request.metadata["params"]))
        let started = WallClock.now()
        let clock = ContinuousClock.now
        let logger = self.logger
        let result: PostgresQueryResult
        do {
            result = try await self.pool.withConnection(timeout: self.timeout) { connection in
                try await connection.query(query, logger: logger).get()
            }
        } catch {
            throw BindingError("error executing query: \(PostgresErrorText.describe(error))")
        }
        let elapsed = ContinuousClock.now - clock
        var metadata = [
            "operation": operation,
            "sql": sql,
            "start-time": started.rfc3339Nano,
            "end-time": started.adding(elapsed).rfc3339Nano,
            "duration": GoDuration.format(elapsed),
        ]
        if operation == "exec" {
            metadata["rows-affected"] = String(result.metadata.rows ?? 0)
            return BindingInvokeResponse(metadata: metadata)
        }
        let rows = JSONValue.array(result.rows.map { row in .array(row.map(Self.json)) })
        return BindingInvokeResponse(data: rows.serialized, metadata: metadata, contentType: "application/json")
    }

    /// `params`: a JSON array; each element bound as untyped text (null as NULL, arrays and objects as
    /// their JSON text).
    static func binds(_ params: String?) throws(BindingError) -> PostgresBindings {
        var binds = PostgresBindings()
        guard let params, !params.isEmpty else { return binds }
        guard case .array(let values)? = try? JSONValue(parsing: Array(params.utf8)) else {
            throw BindingError("invalid metadata property params: failed to unserialize into an array: \(params.prefix(100))")
        }
        for value in values {
            switch value {
            case .null: binds.appendNull()
            case .string(let text): binds.append(UntypedText(text))
            case .number(let digits): binds.append(UntypedText(digits))
            case .bool(let flag): binds.append(UntypedText(flag ? "true" : "false"))
            default: binds.append(UntypedText(String(decoding: value.serialized, as: UTF8.self)))
            }
        }
        return binds
    }

    /// One column value as JSON, the way Go's `rows.Values()` marshals it.
    static func json(_ cell: PostgresCell) -> JSONValue {
        guard let bytes = cell.bytes else { return .null }
        switch cell.dataType {
        case .bool: return (try? cell.decode(Bool.self)).map(JSONValue.bool) ?? .null
        case .int2, .int4, .int8: return (try? cell.decode(Int64.self)).map { .number(String($0)) } ?? .null
        case .float4, .float8:
            guard let value = try? cell.decode(Double.self), value.isFinite else { return .null }
            return .number(value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value))
        case .numeric:
            guard cell.format == .binary else { return .number(String(buffer: bytes)) }
            guard let text = Self.numericText(bytes) else { return .null }
            return text == "NaN" ? .string(text) : .number(text)
        case .json: return (try? JSONValue(parsing: Array(bytes.readableBytesView))) ?? .string(String(buffer: bytes))
        case .jsonb:
            let raw = Array(bytes.readableBytesView)
            let text = cell.format == .binary && raw.first == 1 ? Array(raw.dropFirst()) : raw
            return (try? JSONValue(parsing: text)) ?? .string(String(decoding: text, as: UTF8.self))
        case .bytea: return .string(Base64.encode(bytes.readableBytesView))
        case .uuid:
            let raw = Array(bytes.readableBytesView)
            guard cell.format == .binary, raw.count == 16 else { return .string(String(buffer: bytes)) }
            let hex = raw.map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }
            return .string([hex[0..<4], hex[4..<6], hex[6..<8], hex[8..<10], hex[10..<16]].map { $0.joined() }.joined(separator: "-"))
        case .timestamp, .timestamptz:
            // Microseconds since 2000-01-01 UTC.
            var buffer = bytes
            guard cell.format == .binary, let micros = buffer.readInteger(as: Int64.self) else { return .string(String(buffer: bytes)) }
            return .string(Timestamp(unixMilliseconds: 946_684_800_000).adding(.microseconds(micros)).rfc3339Nano)
        case .date:
            var buffer = bytes
            guard cell.format == .binary, let days = buffer.readInteger(as: Int32.self) else { return .string(String(buffer: bytes)) }
            return .string(Timestamp(unixMilliseconds: 946_684_800_000 + Int64(days) * 86_400_000).rfc3339)
        default:
            if let text = String(validating: bytes.readableBytesView, as: UTF8.self) { return .string(text) }
            return .string(Base64.encode(bytes.readableBytesView))
        }
    }

    /// PostgreSQL's binary `numeric` (base-10000 digits, weight, sign, display scale) as the server's
    /// text output writes it (`7.00` keeps its scale).
    static func numericText(_ bytes: ByteBuffer) -> String? {
        var buffer = bytes
        guard let count = buffer.readInteger(as: Int16.self), let weight = buffer.readInteger(as: Int16.self),
            let sign = buffer.readInteger(as: UInt16.self), let scale = buffer.readInteger(as: Int16.self)
        else { return nil }
        if sign == 0xC000 { return "NaN" }
        var digits: [Int] = []
        for _ in 0..<max(0, Int(count)) {
            guard let digit = buffer.readInteger(as: Int16.self) else { return nil }
            digits.append(Int(digit))
        }
        func group(_ index: Int) -> Int { index >= 0 && index < digits.count ? digits[index] : 0 }
        // Integer part: groups 0...weight.
        var integer = ""
        if weight < 0 {
            integer = "0"
        } else {
            for index in 0...Int(weight) {
                let text = String(group(index))
                integer += index == 0 ? text : String(repeating: "0", count: 4 - text.count) + text
            }
        }
        var fraction = ""
        var index = Int(weight) + 1
        while fraction.count < Int(scale) {
            let text = String(group(index))
            fraction += String(repeating: "0", count: 4 - text.count) + text
            index += 1
        }
        fraction = String(fraction.prefix(Int(max(0, scale))))
        let negative = sign == 0x4000 && (digits.contains { $0 != 0 })
        return (negative ? "-" : "") + integer + (fraction.isEmpty ? "" : "." + fraction)
    }

    public func close() async throws {
        await self.pool.close()
    }
}

/// A parameter sent as text with no declared type: the server infers it from the statement.
struct UntypedText: PostgresDynamicTypeEncodable {
    let text: String
    init(_ text: String) { self.text = text }
    var psqlType: PostgresDataType { PostgresDataType(0) }
    var psqlFormat: PostgresFormat { .text }
    func encode<JSONEncoder: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        byteBuffer.writeString(self.text)
    }
}

/// Factory for `bindings.postgresql` and `bindings.postgres`. Metadata: `connectionString` (or
/// `url`; required, as `state.postgresql`), `timeout` (`20s`, per statement), `maxConns` (`5`).
public struct PostgresBindingFactory: ComponentFactory {
    let name: String
    public init(name: String = "postgresql") { self.name = name }
    public var type: ComponentType { ComponentType(.bindings, self.name) }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let metadata = spec.metadata
        let timeout = try metadata.duration("timeout", default: .seconds(20))
        let maxConnections = try metadata.int("maxConns", default: 5, range: 1...1000)
        let pool = try PostgresConnectionPool.make(metadata: metadata, timeout: timeout, maxConnections: maxConnections, logger: context.logger)
        // Dapr's binding pings the database at init.
        do {
            try await pool.withConnection(timeout: timeout) { connection in
                _ = try await connection.query("SELECT 1", logger: context.logger).collect()
            }
        } catch {
            await pool.close()
            throw BindingError("error opening DB connection: \(PostgresErrorText.describe(error))")
        }
        return PostgresBinding(pool: pool, timeout: timeout, logger: context.logger)
    }
}
