/// Retries an operation with a backoff. `shouldRetry` decides which errors are worth another attempt
/// (Dapr's `matching`); cancellation is never retried.
public struct RetryPolicy: Policy {
    public var name: String
    public var backoff: Backoff
    public var shouldRetry: @Sendable (any Error) -> Bool
    let sleep: @Sendable (Duration) async throws -> Void
    let jitter: @Sendable () -> Double

    public init(
        name: String,
        backoff: Backoff,
        shouldRetry: @escaping @Sendable (any Error) -> Bool = { _ in true },
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        jitter: @escaping @Sendable () -> Double = { Double.random(in: 0...1) }
    ) {
        self.name = name
        self.backoff = backoff
        self.shouldRetry = shouldRetry
        self.sleep = sleep
        self.jitter = jitter
    }

    public func execute<Output: Sendable>(_ operation: @Sendable () async throws -> Output) async throws -> Output {
        var retry = 0
        while true {
            do {
                return try await operation()
            } catch {
                if error is CancellationError || Task.isCancelled { throw error }
                guard self.shouldRetry(error) else { throw error }
                retry += 1
                guard let delay = self.backoff.delay(beforeRetry: retry, jitter: self.jitter()) else { throw error }
                try await self.sleep(delay)
            }
        }
    }
}
