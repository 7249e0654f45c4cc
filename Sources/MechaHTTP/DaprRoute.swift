import MechaCore

/// The Dapr HTTP API routes, matched by hand (a fixed, small table: faster and clearer than a
/// generic router). Path parameters are unescaped like daprd does (`QueryUnescape`).
enum DaprRoute: Equatable {
    case healthz
    case healthzOutbound
    /// Layotto's actuator: `/actuator/health/readiness`, `/actuator/health/liveness`, `/actuator/health`.
    case actuatorHealth(probe: String)
    case metadata
    case setMetadata(key: String)
    case shutdown
    case getState(store: String, key: String)
    case saveState(store: String)
    case deleteState(store: String, key: String)
    case bulkState(store: String)
    case stateTransaction(store: String)
    case publish(pubsub: String, topic: String)
    case bulkPublish(pubsub: String, topic: String)
    case invokeBinding(name: String)
    case bulkSecrets(store: String)
    case getSecret(store: String, key: String)
    case tryLock(store: String)
    case getConfiguration(store: String, alpha: Bool)
    case subscribeConfiguration(store: String, alpha: Bool)
    case unsubscribeConfiguration(store: String, id: String, alpha: Bool)
    case unlock(store: String)
    case converse(name: String, alpha2: Bool)
    case crypto(name: String, operation: String)
    /// `/v1.0/actors/{type}/{id}/…`: method calls, state, reminders, timers.
    case actor(ActorRoute)
    /// `/v1.0/invoke/{id}/method/{method}`: target and raw method path.
    case invoke(appID: String, method: String)
    /// Nothing matched: the invoke fallback (header or basic-auth form) decides.
    case fallback

    var isActuator: Bool {
        if case .actuatorHealth = self { return true }
        return false
    }

    /// The API group and version daprd uses for allow/deny lists (`state`, `v1.0`).
    var accessGroup: (name: String, version: String, route: String)? {
        switch self {
        case .healthz, .healthzOutbound, .actuatorHealth, .fallback: nil
        case .metadata, .setMetadata: ("metadata", "v1.0", "metadata")
        case .shutdown: ("shutdown", "v1.0", "shutdown")
        case .getState, .saveState, .deleteState, .bulkState, .stateTransaction: ("state", "v1.0", "state")
        case .publish: ("publish", "v1.0", "publish")
        case .bulkPublish: ("publish", "v1.0-alpha1", "publish/bulk")
        case .invokeBinding: ("bindings", "v1.0", "bindings")
        case .bulkSecrets, .getSecret: ("secrets", "v1.0", "secrets")
        case .getConfiguration(_, let alpha), .subscribeConfiguration(_, let alpha), .unsubscribeConfiguration(_, _, let alpha):
            ("configuration", alpha ? "v1.0-alpha1" : "v1.0", "configuration")
        case .tryLock: ("lock", "v1.0-alpha1", "lock")
        case .unlock: ("lock", "v1.0-alpha1", "unlock")
        case .converse(_, let alpha2): ("conversation", alpha2 ? "v1.0-alpha2" : "v1.0-alpha1", "conversation")
        case .crypto(_, let operation): CryptoRoutes.accessGroup(operation)
        case .invoke: ("invoke", "v1.0", "invoke")
        case .actor: ("actors", "v1.0", "actors")
        }
    }

    /// Matches a method and a raw path (no query). As daprd's router does, a trailing slash is
    /// dropped when the path does not match with it.
    static func match(method: String, path rawPath: String) -> DaprRoute {
        if let invoke = self.matchPlainInvoke(rawPath) { return invoke }
        let route = self.matchExactly(method: method, path: rawPath)
        if route == .fallback, rawPath.count > 1, rawPath.hasSuffix("/") {
            return self.matchExactly(method: method, path: String(rawPath.dropLast()))
        }
        return route
    }

    /// The hot path: `/v1.0/invoke/<id>/method/<method>` without empty segments, read without
    /// splitting the path (what `matchExactly` answers for it, computed with fewer allocations).
    static func matchPlainInvoke(_ rawPath: String) -> DaprRoute? {
        var path = rawPath
        return path.withUTF8 { bytes -> DaprRoute? in
            let prefix: StaticString = "/v1.0/invoke/"
            let prefixLength = prefix.utf8CodeUnitCount
            guard bytes.count > prefixLength, memcmp(bytes.baseAddress!, prefix.utf8Start, prefixLength) == 0 else { return nil }
            // No query, no empty segment; the first `/method/` after the id ends it.
            var marker: Int?
            var previous = UInt8(ascii: "/")
            for index in prefixLength..<bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "?") || (byte == UInt8(ascii: "/") && previous == UInt8(ascii: "/")) { return nil }
                if marker == nil, byte == UInt8(ascii: "/"), index + 8 <= bytes.count, index > prefixLength,
                    bytes[index + 1] == UInt8(ascii: "m"), bytes[index + 2] == UInt8(ascii: "e"), bytes[index + 3] == UInt8(ascii: "t"),
                    bytes[index + 4] == UInt8(ascii: "h"), bytes[index + 5] == UInt8(ascii: "o"), bytes[index + 6] == UInt8(ascii: "d"),
                    bytes[index + 7] == UInt8(ascii: "/")
                {
                    marker = index
                }
                previous = byte
            }
            guard let marker else { return nil }
            let idBytes = UnsafeBufferPointer(rebasing: bytes[prefixLength..<marker])
            let id = String(decoding: idBytes, as: UTF8.self)
            let needsUnescape = idBytes.contains { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }
            let method = String(decoding: UnsafeBufferPointer(rebasing: bytes[(marker + 8)...]), as: UTF8.self)
            return .invoke(appID: needsUnescape ? (PercentDecoding.queryUnescape(id) ?? id) : id, method: method)
        }
    }

    static func matchExactly(method: String, path rawPath: String) -> DaprRoute {
        var segments = rawPath.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        if rawPath.hasSuffix("/") && rawPath.count > 1 { segments.append("") }
        if let converse = Self.matchConverse(method: method, segments: segments) { return converse }
        if let crypto = Self.matchCrypto(method: method, segments: segments) { return crypto }
        if method == "GET", segments.count >= 2, segments.count <= 3, segments[0] == "actuator", segments[1] == "health" {
            let probe = segments.count == 3 ? segments[2] : ""
            if probe.isEmpty || probe == "readiness" || probe == "liveness" { return .actuatorHealth(probe: probe) }
        }
        guard let version = segments.first, version == "v1.0" || version == "v1.0-alpha1" else { return .fallback }
        let rest = Array(segments.dropFirst())
        let isPostOrPut = method == "POST" || method == "PUT"
        func param(_ index: Int) -> String? {
            guard index < rest.count else { return nil }
            return PercentDecoding.queryUnescape(rest[index])
        }
        guard let area = rest.first else { return .fallback }
        if area == "configuration", method == "GET", rest.count >= 2, let store = param(1) {
            let alpha = version == "v1.0-alpha1"
            if rest.count == 2 { return .getConfiguration(store: store, alpha: alpha) }
            if rest.count == 3, rest[2] == "subscribe" { return .subscribeConfiguration(store: store, alpha: alpha) }
            if rest.count == 4, rest[3] == "unsubscribe", let id = param(2) { return .unsubscribeConfiguration(store: store, id: id, alpha: alpha) }
            return .fallback
        }
        if version == "v1.0-alpha1" {
            if area == "publish", rest.count >= 4, rest[1] == "bulk", isPostOrPut, let pubsub = param(2) {
                return .bulkPublish(pubsub: pubsub, topic: Self.tail(rest, from: 3))
            }
            if area == "lock", rest.count == 2, isPostOrPut, let store = param(1) { return .tryLock(store: store) }
            if area == "unlock", rest.count == 2, isPostOrPut, let store = param(1) { return .unlock(store: store) }
            return .fallback
        }
        switch area {
        case "healthz":
            guard method == "GET" else { return .fallback }
            if rest.count == 1 { return .healthz }
            if rest.count == 2, rest[1] == "outbound" { return .healthzOutbound }
        case "metadata":
            if rest.count == 1, method == "GET" { return .metadata }
            if rest.count == 2, method == "PUT", let key = param(1) { return .setMetadata(key: key) }
        case "shutdown":
            if rest.count == 1, method == "POST" { return .shutdown }
        case "state":
            guard rest.count >= 2, let store = param(1) else { break }
            if rest.count == 2, isPostOrPut { return .saveState(store: store) }
            if rest.count == 3, let key = param(2) {
                if isPostOrPut && rest[2] == "bulk" { return .bulkState(store: store) }
                if isPostOrPut && rest[2] == "transaction" { return .stateTransaction(store: store) }
                if method == "GET" { return .getState(store: store, key: key) }
                if method == "DELETE" { return .deleteState(store: store, key: key) }
            }
        case "publish":
            guard isPostOrPut, rest.count >= 3 else { break }
            if rest[1] == "bulk", rest.count >= 4, let pubsub = param(2) {
                return .bulkPublish(pubsub: pubsub, topic: Self.tail(rest, from: 3))
            }
            if let pubsub = param(1) { return .publish(pubsub: pubsub, topic: Self.tail(rest, from: 2)) }
        case "bindings":
            if rest.count == 2, isPostOrPut, let name = param(1) { return .invokeBinding(name: name) }
        case "secrets":
            guard method == "GET", rest.count == 3, let store = param(1) else { break }
            if rest[2] == "bulk" { return .bulkSecrets(store: store) }
            if let key = param(2) { return .getSecret(store: store, key: key) }
        case "actors":
            if let actor = ActorRoute.match(method: method, segments: rest) { return .actor(actor) }
        case "invoke":
            // /v1.0/invoke/<id>/method/<method...>: the id runs up to the first "/method/".
            let joined = rest.dropFirst().joined(separator: "/")
            guard let marker = joined.firstRange(of: "/method/") ?? (joined.hasSuffix("/method") ? joined.firstRange(of: "/method") : nil) else {
                break
            }
            let rawID = String(joined[joined.startIndex..<marker.lowerBound])
            let method = String(joined[marker.upperBound...])
            guard !rawID.isEmpty else { break }
            return .invoke(appID: PercentDecoding.queryUnescape(rawID) ?? rawID, method: method)
        default:
            break
        }
        return .fallback
    }

    /// Segments from `index` on, joined and unescaped (topics may contain `/`).
    private static func tail(_ segments: [String], from index: Int) -> String {
        let raw = segments[index...].joined(separator: "/")
        return PercentDecoding.queryUnescape(raw) ?? raw
    }
}

#if canImport(Glibc)
import Glibc
#endif
