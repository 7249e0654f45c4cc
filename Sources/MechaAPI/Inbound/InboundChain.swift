public import MechaCore
public import MechaRuntime

/// The one inbound middleware chain of the sidecar, shared by both surfaces (the HTTP responder
/// and its invocation fast path, the gRPC interceptor and proxy router). Built once from the
/// configuration; its rate-limit state lives as long as it does, so build one per sidecar.
///
/// Each surface runs the stages in daprd's order for it, and the first refusal wins:
/// - HTTP: API token → rate limits (`spec.httpPipeline`, in order) → allow/deny. daprd checks the
///   token, then runs its HTTP pipeline, then routes, and denied APIs are missing from its router.
/// - gRPC: allow/deny → API token. daprd installs its allow-list interceptor before its token one
///   (`pkg/api/grpc/server.go`, `getMiddlewareOptions`). Rate limits are HTTP-only.
public struct InboundChain: Sendable {
    let http: [any InboundMiddleware]
    let grpc: [any InboundMiddleware]
    /// The allow/deny lists, also asked directly by the HTTP fallback route.
    public let access: APIAccessMiddleware
    /// `DAPR_API_TOKEN`, when set: surfaces strip `dapr-api-token` from requests they let through.
    public let apiToken: String?
    /// Some stage reads `InboundOperation.client` and `path`.
    public let readsClient: Bool
    /// Told about every finished exchange (metrics, API logs); empty: nothing observes.
    public let observers: [any InboundObserver]
    /// Some observer reads the exchange's user agent and trace context.
    public let observersWantDetails: Bool
    /// Some observer reads the exchange's error code (`recordErrorCodes`).
    public let observersWantErrorCodes: Bool

    /// - Parameters:
    ///   - apiToken: `DAPR_API_TOKEN`; nil or empty when unset.
    ///   - apiAllowed, apiDenied: the Configuration's `spec.api.allowed` / `spec.api.denied`.
    ///   - rateLimits: the rate-limit stages of `spec.httpPipeline`, in order.
    public init(
        apiToken: String? = nil,
        apiAllowed: [APIAccessRule]? = nil,
        apiDenied: [APIAccessRule] = [],
        rateLimits: [RateLimitMiddleware] = [],
        observers: [any InboundObserver] = []
    ) {
        self.observers = observers
        self.observersWantDetails = observers.contains { $0.wantsDetails }
        self.observersWantErrorCodes = observers.contains { $0.wantsErrorCodes }
        let token = apiToken.flatMap { $0.isEmpty ? nil : APITokenMiddleware(token: $0) }
        let access = APIAccessMiddleware(allowed: apiAllowed, denied: apiDenied)
        var http: [any InboundMiddleware] = []
        var grpc: [any InboundMiddleware] = []
        if let token { http.append(token) }
        http.append(contentsOf: rateLimits as [any InboundMiddleware])
        if access.hasRules(for: .http) { http.append(access) }
        if access.hasRules(for: .grpc) { grpc.append(access) }
        if let token { grpc.append(token) }
        self.http = http
        self.grpc = grpc
        self.access = access
        self.apiToken = token?.token
        self.readsClient = http.contains { $0.readsClient } || grpc.contains { $0.readsClient }
    }

    /// Builds the chain from a Configuration and the loaded components: each `spec.httpPipeline`
    /// handler naming a loaded `middleware.http.ratelimit` component of that type becomes a rate
    /// limit. A handler whose component is not loaded is skipped, as daprd does.
    public init(apiToken: String?, configuration: ConfigurationSpec?, components: ComponentStore, observers: [any InboundObserver] = []) {
        self.init(
            apiToken: apiToken,
            apiAllowed: configuration?.apiAllowed,
            apiDenied: configuration?.apiDenied ?? [],
            rateLimits: Self.rateLimits(configuration?.httpPipeline ?? [], components: components),
            observers: observers
        )
    }

    /// The rate-limit stages for `handlers`, from the components loaded in `components`.
    public static func rateLimits(_ handlers: [PipelineHandler], components: ComponentStore) -> [RateLimitMiddleware] {
        handlers.compactMap { handler in
            guard let entry = components.entry(named: handler.name), ComponentType(parsing: handler.type) == entry.spec.type,
                let rateLimit = entry.component as? HTTPRateLimitComponent
            else { return nil }
            return RateLimitMiddleware(configuration: rateLimit.configuration)
        }
    }

    /// A chain that lets everything through.
    public static let open = InboundChain()

    /// No stage runs on `surface`.
    public func isEmpty(for surface: InboundOperation.Surface) -> Bool {
        switch surface {
        case .http: self.http.isEmpty
        case .grpc: self.grpc.isEmpty
        }
    }

    /// Runs the surface's stages in order: nil when the request may go on, else the first refusal.
    /// Synchronous; safe on an event loop.
    public func check(_ operation: InboundOperation) -> InboundRejection? {
        let stages = operation.surface == .http ? self.http : self.grpc
        for stage in stages {
            if let rejection = stage.check(operation) { return rejection }
        }
        return nil
    }

    /// Tells every observer how an exchange ended.
    public func completed(_ exchange: InboundExchange) {
        for observer in self.observers { observer.completed(exchange) }
    }
}
