public import MechaCore
import NIOCore
import Synchronization

/// A TrafficPolicy on a component (`spec.component`): its routes, matched by operation (`get`,
/// `set`, `publish`, …), inject faults and apply local rate limits before the call leaves.
public final class ComponentTrafficGate: Sendable {
    public let component: String
    let routes: [TrafficRoute]
    private let limiters: Mutex<[Int: TokenBucket]>

    public init(component: String, routes: [TrafficRoute]) {
        self.component = component
        self.routes = routes
        var limiters: [Int: TokenBucket] = [:]
        for (index, route) in routes.enumerated() {
            if let limit = route.rateLimit { limiters[index] = TokenBucket(limit) }
        }
        self.limiters = Mutex(limiters)
    }

    /// Refused by the gate: over the rate limit, or an injected abort. Never retried.
    public struct Refusal: PermanentFailure, CustomStringConvertible {
        public var description: String
    }

    /// Lets a call through (after an injected delay), or throws `Refusal`.
    public func pass(_ operation: OperationName) async throws {
        var random = FastRandomGenerator()
        let decision = TrafficRouter.route(self.routes, path: "/", verb: "POST", operation: operation.name, random: &random) { _ in nil }
        guard let index = decision.routeIndex else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        let admitted = self.limiters.withLock { limiters -> Bool in
            guard var bucket = limiters[index] else { return true }
            defer { limiters[index] = bucket }
            return bucket.tryTake(now: now)
        }
        guard admitted else { throw Refusal(description: "rate limit exceeded for component \(self.component)") }
        if let delay = decision.delay { try await Task.sleep(for: delay) }
        if let status = decision.abortStatus { throw Refusal(description: "fault injected: abort with status \(status)") }
    }
}
