/// A Dapr Configuration's `spec.accessControl`: which calling apps may invoke which operations of
/// this app (service invocation ACLs), enforced by the callee's sidecar with the caller's mTLS
/// identity.
public struct AccessControlSpec: Sendable, Hashable {
    public enum Action: String, Sendable, Hashable {
        case allow
        case deny
    }

    /// One allowed or denied operation of a policy.
    public struct Operation: Sendable, Hashable {
        /// The invoked method as a path (`/orders/*`, `/admin/**`): `*` matches one segment, `**`
        /// any number of them.
        public var name: String
        /// HTTP verbs this entry covers (`*` for any); not used for gRPC invocations.
        public var httpVerbs: [String]
        public var action: Action

        public init(name: String, httpVerbs: [String] = ["*"], action: Action = .allow) {
            self.name = name
            self.httpVerbs = httpVerbs
            self.action = action
        }
    }

    /// The rules for one calling app.
    public struct AppPolicy: Sendable, Hashable {
        public var appID: String
        public var trustDomain: String
        public var namespace: String
        /// For the app's calls no operation matches; nil: the global default.
        public var defaultAction: Action?
        public var operations: [Operation]

        public init(appID: String, trustDomain: String = AccessControlSpec.defaultTrustDomain, namespace: String = "", defaultAction: Action? = nil, operations: [Operation] = []) {
            self.appID = appID
            self.trustDomain = trustDomain
            self.namespace = namespace
            self.defaultAction = defaultAction
            self.operations = operations
        }
    }

    public static let defaultTrustDomain = "public"

    /// For callers no policy names; nil when the resource did not say.
    public var defaultAction: Action?
    /// This app's trust domain.
    public var trustDomain: String
    public var policies: [AppPolicy]

    public init(defaultAction: Action? = nil, trustDomain: String = Self.defaultTrustDomain, policies: [AppPolicy] = []) {
        self.defaultAction = defaultAction
        self.trustDomain = trustDomain
        self.policies = policies
    }
}

/// Configuration `spec.mtls`: mutual TLS between sidecars with SPIFFE identities.
public struct MTLSSpec: Sendable, Hashable {
    public var enabled: Bool
    /// The lifetime of a workload certificate (daprd's default: 24 h).
    public var workloadCertTTL: Duration
    /// How far peers' clocks may disagree (daprd's default: 15 min).
    public var allowedClockSkew: Duration

    public init(enabled: Bool = true, workloadCertTTL: Duration = .seconds(24 * 3600), allowedClockSkew: Duration = .seconds(15 * 60)) {
        self.enabled = enabled
        self.workloadCertTTL = workloadCertTTL
        self.allowedClockSkew = allowedClockSkew
    }
}
