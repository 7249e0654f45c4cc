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

    /// A call admitted by `admit()`; report how it ended with `finish(_:success:)`.
    public struct Ticket: Sendable {
        let generation: UInt64
    }

    /// Synchronous admission, for callers that run the call themselves (the event-loop fast path).
    public func admit() throws(ResiliencyError) -> Ticket {
        let (decision, generation, halfOpen) = self.machine.withLock { machine in
            let decision = machine.requestStarting(at: self.now())
            let halfOpen = if case .halfOpen = machine.state { true } else { false }
            return (decision, machine.generation, halfOpen)
        }
        guard decision == .allow else {
            throw ResiliencyError(halfOpen ? .tooManyRequests : .circuitOpen, policyName: self.name)
        }
        return Ticket(generation: generation)
    }

    public func finish(_ ticket: Ticket, success: Bool) {
        self.machine.withLock { $0.requestFinished(success: success, at: self.now(), generation: ticket.generation) }
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
