import Synchronization

/// Bounds an operation in time. The operation is cancelled when the deadline passes and the caller
/// receives `ResiliencyError(.timeout)`.
public struct TimeoutPolicy: Policy {
    public var name: String
    public var timeout: Duration

    public init(name: String, timeout: Duration) {
        self.name = name
        self.timeout = timeout
    }

    public func execute<Output: Sendable>(_ operation: @Sendable () async throws -> Output) async throws -> Output {
        try await self.execute(disarm: nil, operation)
    }

    /// `disarm`: once the operation calls `answered()` on it, the deadline no longer applies (the
    /// answer has begun; its body may take as long as it takes — daprd's timeout ends there too).
    public func execute<Output: Sendable>(disarm: TimeoutDisarm?, _ operation: @Sendable () async throws -> Output) async throws -> Output {
        try await withoutActuallyEscaping(operation) { operation in
            try await withThrowingTaskGroup(of: Output?.self) { group in
                group.addTask { try await operation() }
                group.addTask {
                    try await Task.sleep(for: self.timeout)
                    // Answered in time: wait for the operation, which cancels this when it ends.
                    while disarm?.isAnswered == true { try await Task.sleep(for: .seconds(3600)) }
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let output = first else {
                    throw ResiliencyError(.timeout, policyName: self.name)
                }
                return output
            }
        }
    }
}

/// Ends a `TimeoutPolicy`'s deadline early, from inside the operation.
public final class TimeoutDisarm: Sendable {
    private let answeredFlag = Atomic<Bool>(false)

    public init() {}

    /// The answer has begun: the deadline no longer applies.
    public func answered() { self.answeredFlag.store(true, ordering: .relaxed) }

    public var isAnswered: Bool { self.answeredFlag.load(ordering: .relaxed) }
}
