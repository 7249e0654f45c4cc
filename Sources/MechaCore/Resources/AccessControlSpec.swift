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

/// Mecha's `AccessPolicy` (`mecha.dev/v1alpha1`): the language of `spec.accessControl` applied to
/// the building blocks — which apps, identified by SPIFFE id (app id, namespace, trust domain), may
/// read or write state keys, publish or subscribe to topics and read secrets. Operation names are
/// paths: `/state/<store>/<key>`, `/pubsub/<pubsub>/<topic>`, `/secrets/<store>/<secret>`, with
/// the same wildcards; verbs are the block's (`get`, `save`, `delete`; `publish`,
/// `subscribe`; `get`). Each sidecar applies the policies naming its own app.
public struct AccessPolicySpec: Sendable, Hashable {
    public var name: String
    public var source: ResourceSource
    /// The rules; `httpVerbs` of an operation holds its block verbs (`*`: all).
    public var access: AccessControlSpec

    public init(name: String, source: ResourceSource, access: AccessControlSpec) {
        self.name = name
        self.source = source
        self.access = access
    }

    /// The verbs of each block.
    public static let verbs: [String: Set<String>] = [
        "state": ["get", "save", "delete"],
        "pubsub": ["publish", "subscribe"],
        "secrets": ["get"],
    ]
}
