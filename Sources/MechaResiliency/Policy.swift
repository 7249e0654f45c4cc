/// One resiliency policy wrapped around an operation. A generic *method* keeps `any Policy` usable for
/// every output type, so heterogeneous policies compose in a plain array.
public protocol Policy: Sendable {
    func execute<Output: Sendable>(_ operation: @Sendable () async throws -> Output) async throws -> Output
}

/// Ordered policies, outermost first: `[retry, circuitBreaker, timeout]` times out each attempt,
/// counts it in the breaker, and retries around both.
public struct PolicyPipeline: Policy {
    public var policies: [any Policy]

    public init(_ policies: [any Policy] = []) {
        self.policies = policies
    }

    public var isEmpty: Bool { self.policies.isEmpty }

    public func execute<Output: Sendable>(_ operation: @Sendable () async throws -> Output) async throws -> Output {
        try await Self.run(self.policies[...], operation)
    }

    private static func run<Output: Sendable>(
        _ policies: ArraySlice<any Policy>,
        _ operation: @Sendable () async throws -> Output
    ) async throws -> Output {
        guard let outer = policies.first else { return try await operation() }
        let inner = policies.dropFirst()
        return try await outer.execute { try await run(inner, operation) }
    }
}

/// Errors raised by the policies themselves (not by the wrapped operation).
public struct ResiliencyError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public static let timeout = Code("timeout")
        public static let circuitOpen = Code("circuitOpen")
        /// A half-open breaker already has its `maxRequests` probes in flight.
        public static let tooManyRequests = Code("tooManyRequests")
        public var description: String { self.name }
    }

    public var code: Code
    public var policyName: String

    public init(_ code: Code, policyName: String) {
        self.code = code
        self.policyName = policyName
    }

    /// daprd's texts (Go's context and gobreaker errors), which end up inside API error messages.
    public var description: String {
        switch self.code {
        case .timeout: "context deadline exceeded"
        case .circuitOpen: "circuit breaker is open"
        case .tooManyRequests: "too many requests"
        default: "\(self.code) (policy \(self.policyName))"
        }
    }
}
