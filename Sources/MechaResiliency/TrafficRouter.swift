public import MechaCore

/// What `TrafficRouter.route` decided for one call.
public struct RouteDecision: Sendable, Hashable {
    /// The index in the routes of the first route that matched; nil when none did (then nothing
    /// below applies).
    public var routeIndex: Int?
    /// The split target chosen by weight; nil when the route has no split (the policy's own target).
    public var target: String?
    /// The app to send a fire-and-forget copy to; nil when not mirroring this call (or aborting it).
    public var mirror: String?
    /// How long to hold the call before sending it, when a delay fault fires.
    public var delay: Duration?
    /// The HTTP status to answer instead of calling, when an abort fault fires.
    public var abortStatus: Int?

    public init(routeIndex: Int? = nil, target: String? = nil, mirror: String? = nil, delay: Duration? = nil, abortStatus: Int? = nil) {
        self.routeIndex = routeIndex
        self.target = target
        self.mirror = mirror
        self.delay = delay
        self.abortStatus = abortStatus
    }

    /// No route matched.
    public static let unmatched = RouteDecision()
}

/// The uniform draws in `0..<1` a routing decision consumes, one per independent choice.
public struct RouteDraws: Sendable, Hashable {
    public var split: Double
    public var mirror: Double
    public var delay: Double
    public var abort: Double

    public init(split: Double, mirror: Double, delay: Double, abort: Double) {
        self.split = split
        self.mirror = mirror
        self.delay = delay
        self.abort = abort
    }

    /// Four fresh draws from `random`.
    public init(using random: inout some RandomNumberGenerator) {
        self.split = Double.random(in: 0..<1, using: &random)
        self.mirror = Double.random(in: 0..<1, using: &random)
        self.delay = Double.random(in: 0..<1, using: &random)
        self.abort = Double.random(in: 0..<1, using: &random)
    }
}

/// Pure routing over a `TrafficPolicySpec`'s routes: match, split, mirror, fault.
///
/// The first route whose `RouteMatch` fits wins (an empty match fits every call). Within it:
/// - split: the target whose cumulative weight band contains `draws.split × total weight`
///   (weights need not sum to 100; non-positive weights never win; all zero → no target);
/// - mirror: when `draws.mirror × 100 < percent`;
/// - delay / abort: each when its own draw × 100 < its percent (100 always, 0 never).
/// An aborted call never leaves the sidecar, so it is not mirrored; a delay still applies before
/// the abort answer (as in Envoy).
public enum TrafficRouter {
    /// Routes one call.
    ///
    /// - Parameters:
    ///   - path: the invoked method with a leading `/` (what follows `/method`).
    ///   - verb: the HTTP verb (`POST` for gRPC invocation); compared case-insensitively.
    ///   - operation: for component targets, the operation (`get`, `publish`, …); compared
    ///     case-insensitively.
    ///   - header: looks a request header up by lowercased name.
    public static func route(
        _ routes: [TrafficRoute],
        path: String,
        verb: String,
        operation: String? = nil,
        draws: RouteDraws,
        header: (String) -> String?
    ) -> RouteDecision {
        guard let index = self.firstMatch(routes, path: path, verb: verb, operation: operation, header: header) else {
            return .unmatched
        }
        let route = routes[index]
        var decision = RouteDecision(routeIndex: index)
        decision.target = self.splitTarget(route.split, draw: draws.split)
        if let delay = route.fault?.delay, self.fires(delay.percent, draws.delay) {
            decision.delay = delay.fixed
        }
        if let abort = route.fault?.abort, self.fires(abort.percent, draws.abort) {
            decision.abortStatus = abort.httpStatus
        }
        if decision.abortStatus == nil, let mirror = route.mirror, self.fires(mirror.percent, draws.mirror) {
            decision.mirror = mirror.appID
        }
        return decision
    }

    /// Routes one call, drawing from `random`.
    public static func route(
        _ routes: [TrafficRoute],
        path: String,
        verb: String,
        operation: String? = nil,
        random: inout some RandomNumberGenerator,
        header: (String) -> String?
    ) -> RouteDecision {
        guard !routes.isEmpty else { return .unmatched }
        return self.route(routes, path: path, verb: verb, operation: operation, draws: RouteDraws(using: &random), header: header)
    }

    /// The index of the first route whose match fits, nil when none does.
    public static func firstMatch(_ routes: [TrafficRoute], path: String, verb: String, operation: String?, header: (String) -> String?) -> Int? {
        routes.firstIndex { self.matches($0.match, path: path, verb: verb, operation: operation, header: header) }
    }

    /// Whether every field `match` gives fits the call.
    public static func matches(_ match: RouteMatch, path: String, verb: String, operation: String?, header: (String) -> String?) -> Bool {
        if let exact = match.path, path != exact { return false }
        if let prefix = match.pathPrefix, !path.hasPrefix(prefix) { return false }
        if let method = match.method, !self.asciiCaseInsensitiveEqual(method, verb) { return false }
        if let wanted = match.operation {
            guard let operation, self.asciiCaseInsensitiveEqual(wanted, operation) else { return false }
        }
        for (name, value) in match.headers where header(name) != value {
            return false
        }
        return true
    }

    /// The split target for `draw` in `0..<1`; nil when `split` is empty or has no positive weight.
    public static func splitTarget(_ split: [WeightedTarget], draw: Double) -> String? {
        var total = 0
        for target in split where target.weight > 0 { total += target.weight }
        guard total > 0 else { return nil }
        let point = min(max(draw, 0), 1) * Double(total)
        var upper = 0
        var last: String?
        for target in split where target.weight > 0 {
            upper += target.weight
            last = target.appID
            if point < Double(upper) { return target.appID }
        }
        return last
    }

    static func fires(_ percent: Double, _ draw: Double) -> Bool {
        draw * 100 < percent
    }

    static func asciiCaseInsensitiveEqual(_ lhs: String, _ rhs: String) -> Bool {
        var left = lhs.utf8.makeIterator()
        var right = rhs.utf8.makeIterator()
        while true {
            switch (left.next(), right.next()) {
            case (nil, nil):
                return true
            case (let l?, let r?):
                if l == r { continue }
                let lower = l | 0x20
                guard lower == r | 0x20, lower >= UInt8(ascii: "a"), lower <= UInt8(ascii: "z") else { return false }
            default:
                return false
            }
        }
    }
}
