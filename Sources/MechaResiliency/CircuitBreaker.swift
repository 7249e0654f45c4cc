import Synchronization

/// A `Policy` around `CircuitBreakerStateMachine`: rejects calls with `ResiliencyError(.circuitOpen)`
/// while open. The lock is held only for state transitions, never across the operation.
public final class CircuitBreaker: Policy {
    public let name: String
    private let machine: Mutex<CircuitBreakerStateMachine>
    private let now: @Sendable () -> ContinuousClock.Instant

    public init(name: String, machine: CircuitBreakerStateMachine, now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.name = name
        self.machine = Mutex(machine)
        self.now = now
    }

    public var state: CircuitBreakerStateMachine.State { self.machine.withLock { $0.state } }

    public func execute<Output: Sendable>(_ operation: @Sendable () async throws -> Output) async throws -> Output {
        let (decision, generation) = self.machine.withLock { machine in
            (machine.requestStarting(at: self.now()), machine.generation)
        }
        guard decision == .allow else { throw ResiliencyError(.circuitOpen, policyName: self.name) }
        do {
            let output = try await operation()
            self.machine.withLock { $0.requestFinished(success: true, at: self.now(), generation: generation) }
            return output
        } catch {
            self.machine.withLock { $0.requestFinished(success: false, at: self.now(), generation: generation) }
            throw error
        }
    }
}
