public import MechaCore

/// `middleware.http.ratelimit` (v1): Dapr's rate-limiting HTTP middleware. Loading it only parses
/// and checks its metadata (`HTTPRateLimitConfiguration`); a Configuration's `spec.httpPipeline`
/// that names it puts it in the sidecar's inbound chain.
public struct HTTPRateLimitFactory: ComponentFactory {
    public init() {}

    public var type: ComponentType { HTTPRateLimitConfiguration.componentType }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        HTTPRateLimitComponent(configuration: try HTTPRateLimitConfiguration(metadata: spec.metadata))
    }
}
