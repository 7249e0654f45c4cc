import Synchronization

/// What the health endpoints report. Each part flips as the sidecar starts up.
public final class Readiness: Sendable {
    private struct State {
        var outbound = false
        var runtime = false
        var appHealthy = true
        var appHealthChecks = false
        var shuttingDown = false
    }

    private let state = Mutex(State())

    public init() {}

    /// The API can serve outbound calls: servers listening, components initialised.
    public func markOutboundReady() { self.state.withLock { $0.outbound = true } }
    /// Startup is complete: the app (if any) is reachable and subscriptions and bindings started.
    public func markRuntimeReady() { self.state.withLock { $0.runtime = true } }
    public func markShuttingDown() { self.state.withLock { $0.shuttingDown = true } }

    /// Turns on app health checking; the app counts as unhealthy until a probe succeeds.
    public func enableAppHealthChecks() {
        self.state.withLock {
            $0.appHealthChecks = true
            $0.appHealthy = false
        }
    }

    public func setAppHealthy(_ healthy: Bool) { self.state.withLock { $0.appHealthy = healthy } }

    public var isOutboundReady: Bool { self.state.withLock { $0.outbound && !$0.shuttingDown } }
    public var isAppHealthy: Bool { self.state.withLock { $0.appHealthy } }
    /// App health checks are on (`--enable-app-health-check`).
    public var checksAppHealth: Bool { self.state.withLock { $0.appHealthChecks } }

    /// Names of the parts not ready yet (empty when ready), as daprd lists them.
    public var notReadyTargets: [String] {
        self.state.withLock { state in
            var targets: [String] = []
            if !state.outbound { targets.append("http-server") }
            if !state.runtime { targets.append("runtime") }
            if state.appHealthChecks && !state.appHealthy { targets.append("app") }
            if state.shuttingDown { targets.append("shutdown") }
            return targets
        }
    }
}
