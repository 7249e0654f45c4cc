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
        try await withoutActuallyEscaping(operation) { operation in
            try await withThrowingTaskGroup(of: Output?.self) { group in
                group.addTask { try await operation() }
                group.addTask {
                    try await Task.sleep(for: self.timeout)
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
