import Synchronization

/// A `Policy` around `CircuitBreakerStateMachine`: rejects calls with `ResiliencyError(.circuitOpen)`
/// while open. The lock is held only for state transitions, never across the operation.
public final class CircuitBreaker: Policy {
    public let name: String
    private let machine: Mutex<CircuitBreakerStateMachine>
    private let now: @Sendable () -> ContinuousClock.Instant
    /// Told the new state (`closed`, `open`, `half-open`) whenever the breaker changes state.
    private let onStateChange: (@Sendable (String) -> Void)?

    public init(
        name: String,
        machine: CircuitBreakerStateMachine,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { .now },
        onStateChange: (@Sendable (String) -> Void)? = nil
    ) {
        self.name = name
        self.machine = Mutex(machine)
        self.now = now
        self.onStateChange = onStateChange
    }

    public var state: CircuitBreakerStateMachine.State { self.machine.withLock { $0.state } }

    /// The state as daprd names it: `closed`, `open`, `half-open`.
    public var stateLabel: String { self.machine.withLock { $0.state.label } }

    /// A call admitted by `admit()`; report how it ended with `finish(_:success:)`.
    public struct Ticket: Sendable {
        let generation: UInt64
    }

    /// Synchronous admission, for callers that run the call themselves (the event-loop fast path).
    public func admit() throws(ResiliencyError) -> Ticket {
        let (decision, generation, halfOpen, changed) = self.machine.withLock { machine in
            let before = machine.state.label
            let decision = machine.requestStarting(at: self.now())
            let halfOpen = if case .halfOpen = machine.state { true } else { false }
            let after = machine.state.label
            return (decision, machine.generation, halfOpen, before == after ? nil : after)
        }
        if let changed { self.onStateChange?(changed) }
        guard decision == .allow else {
            throw ResiliencyError(halfOpen ? .tooManyRequests : .circuitOpen, policyName: self.name)
        }
        return Ticket(generation: generation)
    }

    public func finish(_ ticket: Ticket, success: Bool) {
        let changed: String? = self.machine.withLock { machine in
            let before = machine.state.label
            machine.requestFinished(success: success, at: self.now(), generation: ticket.generation)
            let after = machine.state.label
            return before == after ? nil : after
        }
        if let changed { self.onStateChange?(changed) }
    }

    public func execute<Output: Sendable>(_ operation: @Sendable () async throws -> Output) async throws -> Output {
        let ticket = try self.admit()
        do {
            let output = try await operation()
            self.finish(ticket, success: true)
            return output
        } catch {
            self.finish(ticket, success: false)
            throw error
        }
    }
}
