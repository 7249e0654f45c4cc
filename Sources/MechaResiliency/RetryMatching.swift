/// A failure that carries the status the other side answered with, so a retry policy's `matching`
/// can judge it: an app's HTTP answer, a gRPC status.
public protocol StatusCodedFailure: Error {
    /// The HTTP status, when the failure came from an HTTP answer.
    var httpStatusCode: Int? { get }
    /// The gRPC status code, when the failure came from a gRPC call.
    var grpcStatusCode: Int? { get }
}

/// A failure no policy may retry or count against the target (the caller's own side failed, e.g.
/// it went away while the answer was written to it).
public protocol PermanentFailure: Error {}

/// Which failures a retry policy retries. Cancellation and an open breaker are never retried; a
/// status-coded failure is retried when `matching` lists its code (or when there is no matching for
/// its protocol); any other error is retried.
public struct RetryMatching: Sendable, Hashable {
    public var httpStatusCodes: [ClosedRange<Int>]
    public var grpcStatusCodes: [ClosedRange<Int>]

    public init(httpStatusCodes: [ClosedRange<Int>] = [], grpcStatusCodes: [ClosedRange<Int>] = []) {
        self.httpStatusCodes = httpStatusCodes
        self.grpcStatusCodes = grpcStatusCodes
    }

    public func shouldRetry(_ error: any Error) -> Bool {
        if error is CancellationError || error is any PermanentFailure { return false }
        if let resiliency = error as? ResiliencyError, resiliency.code == .circuitOpen || resiliency.code == .tooManyRequests { return false }
        if let coded = error as? any StatusCodedFailure {
            if let status = coded.httpStatusCode {
                return self.httpStatusCodes.isEmpty || self.httpStatusCodes.contains { $0.contains(status) }
            }
            if let code = coded.grpcStatusCode {
                return self.grpcStatusCodes.isEmpty || self.grpcStatusCodes.contains { $0.contains(code) }
            }
        }
        return true
    }
}
