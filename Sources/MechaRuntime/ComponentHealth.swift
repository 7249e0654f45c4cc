public import MechaCore
public import MechaResiliency
import Synchronization

/// The health of each component as its calls show it, for `GET /v1.0/healthz?detail`: an
/// observer on the outbound seam, so every building block's calls count without any of them
/// knowing. A component is unhealthy after `threshold` consecutive failed calls (the backend's
/// fault: a missing secret, an ETag mismatch or a held lock are answers, not failures) and
/// healthy again at its next success. A component that failed to initialise is `failed` from
/// startup. One unhealthy component never changes the readiness of the sidecar or of other blocks.
public final class ComponentHealth: OutboundObserver {
    public struct Record: Sendable, Hashable {
        public var consecutiveFailures = 0
        public var lastError: String?
        public var lastFailure: Timestamp?
        public var lastSuccess: Timestamp?
        /// When the current unhealthy spell began (nil while healthy).
        public var unhealthySince: Timestamp?
    }

    private let records = Mutex<[String: Record]>([:])
    public let threshold: Int
    private let now: @Sendable () -> Timestamp

    public init(threshold: Int = 3, now: @escaping @Sendable () -> Timestamp = { WallClock.now() }) {
        self.threshold = max(1, threshold)
        self.now = now
    }

    public func completed(_ target: PolicyTarget, _ operation: OperationName, elapsed: Duration, error: (any Error)?) {
        guard case .component(let name, _, .outbound) = target else { return }
        if let error, !Self.isBackendFailure(error) { return }
        let now = self.now()
        self.records.withLock { records in
            var record = records[name] ?? Record()
            if let error {
                record.consecutiveFailures += 1
                record.lastError = "\(error)"
                record.lastFailure = now
                if record.consecutiveFailures >= self.threshold && record.unhealthySince == nil { record.unhealthySince = now }
            } else {
                record.consecutiveFailures = 0
                record.lastSuccess = now
                record.unhealthySince = nil
            }
            records[name] = record
        }
    }

    /// The last hot reload of resource files (nil: none yet): when, what it applied, and what it
    /// refused (the previous version keeps serving those).
    public struct Reload: Sendable, Hashable {
        public var at: Timestamp
        public var applied: [String]
        public var failed: [String]
    }

    private let reload = Mutex<Reload?>(nil)

    public func reloaded(applied: [String], failed: [String]) {
        let now = self.now()
        self.reload.withLock { $0 = Reload(at: now, applied: applied, failed: failed) }
    }

    public var lastReload: Reload? { self.reload.withLock { $0 } }

    /// Conditions under which the sidecar serves on last-known state (e.g. the control plane is
    /// unreachable): each returns a reason while it holds, nil otherwise.
    private let lastKnownStateConditions = Mutex<[@Sendable () -> String?]>([])

    /// Further members of the health detail (`name` → a value read at each request).
    private let details = Mutex<[(name: String, value: @Sendable () -> JSONValue)]>([])

    public func addDetail(_ name: String, _ value: @escaping @Sendable () -> JSONValue) {
        self.details.withLock { $0.append((name, value)) }
    }

    public var extraDetails: [(String, JSONValue)] { self.details.withLock { $0 }.map { ($0.name, $0.value()) } }

    public func addLastKnownStateCondition(_ condition: @escaping @Sendable () -> String?) {
        self.lastKnownStateConditions.withLock { $0.append(condition) }
    }

    /// Why the sidecar is running on last-known state right now (empty: it is not).
    public var lastKnownStateReasons: [String] {
        self.lastKnownStateConditions.withLock { $0 }.compactMap { $0() }
    }

    /// What the calls have shown of `name` so far.
    public func record(of name: String) -> Record {
        self.records.withLock { $0[name] } ?? Record()
    }

    /// Errors that are answers about the request rather than signs of a sick backend.
    static func isBackendFailure(_ error: any Error) -> Bool {
        switch error {
        case let error as StateStoreError: return error.code == .backend
        case let error as SecretStoreError: return error.code != .notFound
        case is LockStoreError: return false
        case let error as APIError: return error.httpStatus >= 500
        default: return true
        }
    }
}
