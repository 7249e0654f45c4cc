public import MechaCore
import Synchronization

/// Dapr's `middleware.http.ratelimit` on the HTTP API (components-contrib
/// `middleware/http/ratelimit`, which is tollbooth v7's `NewLimiter(max, nil)`):
///
/// - one token bucket per caller and URL path, rate `max` a second, burst `max(1, Int(max))`,
///   kept for the sidecar's lifetime (at most `maxTrackedCallers` at once; see `KeyedTokenBuckets`);
/// - the caller is the last `X-Forwarded-For` entry, else `X-Real-IP`, else the peer's address;
///   an IPv6 address counts by its /64 prefix; no address at all counts as `0.0.0.0`;
/// - a limited request gets 429, `Content-Type: text/plain; charset=utf-8`, body
///   `You have reached maximum request limit.`, and tollbooth's headers (`X-Rate-Limit-Limit`
///   `%.2f`, `X-Rate-Limit-Duration: 1`, the request's forwarded-for and remote address,
///   `RateLimit-Limit`, `RateLimit-Reset: 1`, `RateLimit-Remaining: 0`).
///
/// Not done: tollbooth also puts those headers on answers it lets through.
/// gRPC requests pass untouched: daprd's HTTP pipeline does not see them.
public final class RateLimitMiddleware: InboundMiddleware {
    public let maxRequestsPerSecond: Double
    private let buckets: Mutex<KeyedTokenBuckets>
    private let now: @Sendable () -> ContinuousClock.Instant
    private let limitHeaders: [(name: String, value: String)]

    /// - Parameters:
    ///   - maxTrackedCallers: the most caller/path keys remembered at once.
    ///   - now: the clock (injected by tests).
    public init(
        configuration: HTTPRateLimitConfiguration,
        maxTrackedCallers: Int = 10_000,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        let max = configuration.maxRequestsPerSecond
        self.maxRequestsPerSecond = max
        // Go's int(math.Max(1, max)) truncates.
        let burst = Swift.max(1, Int(Swift.min(max, Double(Int32.max))))
        self.buckets = Mutex(KeyedTokenBuckets(rate: max, burst: burst, capacity: Swift.max(1, maxTrackedCallers)))
        self.now = now
        self.limitHeaders = [
            ("X-Rate-Limit-Limit", Self.twoDecimals(max)),
            ("X-Rate-Limit-Duration", "1"),
        ]
    }

    public var readsClient: Bool { true }

    public func check(_ operation: InboundOperation) -> InboundRejection? {
        guard operation.surface == .http else { return nil }
        let ip = Self.canonicalIP(Self.clientIP(operation.client))
        let path = operation.path.contains("%") ? (PercentDecoding.pathUnescape(operation.path) ?? operation.path) : operation.path
        let key = (ip.isEmpty ? "0.0.0.0" : ip) + "|" + path
        let instant = self.now()
        if self.buckets.withLock({ $0.take(key, at: instant) }) { return nil }
        var headers = self.limitHeaders
        if let forwarded = operation.client?.forwardedFor, !forwarded.trimmingSpaces().isEmpty {
            headers.append(("X-Rate-Limit-Request-Forwarded-For", forwarded))
        }
        headers.append(("X-Rate-Limit-Request-Remote-Addr", operation.client?.remoteAddress ?? ""))
        headers.append(("RateLimit-Limit", String(Int(Swift.min(self.maxRequestsPerSecond, Double(Int32.max)).rounded()))))
        headers.append(("RateLimit-Reset", "1"))
        headers.append(("RateLimit-Remaining", "0"))
        headers.append(("Content-Type", "text/plain; charset=utf-8"))
        return .text(status: 429, body: "You have reached maximum request limit.", headers: headers)
    }

    /// Keys currently tracked (for tests).
    var trackedKeys: Int { self.buckets.withLock { $0.buckets.count } }

    // MARK: The caller's address, as tollbooth finds it

    /// tollbooth's `libstring.RemoteIP` with lookups X-Forwarded-For (last entry), X-Real-IP,
    /// RemoteAddr (its host; the whole value when it is not `host:port`).
    static func clientIP(_ client: InboundClient?) -> String {
        guard let client else { return "" }
        if let forwarded = client.forwardedFor, !forwarded.isEmpty {
            return forwarded.split(separator: ",", omittingEmptySubsequences: false).last.map { $0.trimmingSpaces() } ?? ""
        }
        if let real = client.realIP, !real.isEmpty { return real }
        return Self.host(ofHostPort: client.remoteAddress) ?? client.remoteAddress
    }

    /// Go's `net.SplitHostPort` host part, or nil when the value is not `host:port`.
    static func host(ofHostPort value: String) -> String? {
        if value.hasPrefix("[") {
            guard let close = value.firstIndex(of: "]"), value[value.index(after: close)...].hasPrefix(":") else { return nil }
            return String(value[value.index(after: value.startIndex)..<close])
        }
        guard let colon = value.lastIndex(of: ":"), value[..<colon].firstIndex(of: ":") == nil else { return nil }
        return String(value[..<colon])
    }

    /// tollbooth's `CanonicalizeIP`: an IPv4 address (or anything that is not an IP) as it is, an
    /// IPv6 address reduced to its /64 prefix.
    static func canonicalIP(_ ip: String) -> String {
        for byte in ip.utf8 {
            if byte == UInt8(ascii: ".") { return ip }
            if byte == UInt8(ascii: ":") { break }
        }
        guard ip.utf8.contains(UInt8(ascii: ":")), let bytes = Self.ipv6Bytes(ip) else { return ip }
        var key = "v6/64:"
        for byte in bytes.prefix(8) {
            key += String(byte >> 4, radix: 16) + String(byte & 0xF, radix: 16)
        }
        return key
    }

    /// The 16 bytes of a textual IPv6 address (with `::` and a trailing dotted IPv4 part), or nil.
    static func ipv6Bytes(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        var groups: [UInt16] = []
        var ellipsis: Int?
        var index = 0
        if chars.starts(with: [UInt8(ascii: ":"), UInt8(ascii: ":")]) {
            ellipsis = 0
            index = 2
        }
        while index < chars.count {
            let start = index
            var value = 0
            while index < chars.count, index - start < 5, let digit = Self.hexValue(chars[index]) {
                value = value * 16 + digit
                index += 1
            }
            if index < chars.count, chars[index] == UInt8(ascii: ".") {
                // A dotted IPv4 tail fills the last two groups.
                guard groups.count <= 6, let v4 = Self.ipv4Bytes(chars[start...]) else { return nil }
                groups.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                groups.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                index = chars.count
                break
            }
            guard index > start, index - start <= 4, groups.count < 8 else { return nil }
            groups.append(UInt16(value))
            if index == chars.count { break }
            guard chars[index] == UInt8(ascii: ":"), index + 1 < chars.count else { return nil }
            index += 1
            if chars[index] == UInt8(ascii: ":") {
                guard ellipsis == nil else { return nil }
                ellipsis = groups.count
                index += 1
            }
        }
        if let ellipsis {
            guard groups.count < 8 else { return nil }
            groups.insert(contentsOf: [UInt16](repeating: 0, count: 8 - groups.count), at: ellipsis)
        }
        guard groups.count == 8 else { return nil }
        return groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    static func ipv4Bytes(_ chars: ArraySlice<UInt8>) -> [UInt8]? {
        let parts = chars.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
            let value = part.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
            guard value <= 255 else { return nil }
            bytes.append(UInt8(value))
        }
        return bytes
    }

    static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A")) + 10
        default: nil
        }
    }

    /// Go's `fmt.Sprintf("%.2f", value)` for the values a rate can take.
    static func twoDecimals(_ value: Double) -> String {
        let hundredths = (value * 100).rounded(.toNearestOrEven)
        guard hundredths < 9e18 else { return "\(value)" }
        let total = Int(hundredths)
        let fraction = total % 100
        return "\(total / 100)." + (fraction < 10 ? "0" : "") + String(fraction)
    }
}
