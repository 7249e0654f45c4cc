/// A Dapr `Component` resource as written in YAML (`apiVersion: dapr.io/v1alpha1`, `kind: Component`),
/// before secret references are resolved.
public struct ComponentResource: Sendable, Hashable {
    /// `metadata.name`: the name apps use in API calls (`/v1.0/state/{name}`).
    public var name: String
    /// `metadata.namespace`, empty when absent.
    public var namespace: String
    /// `spec.type`.
    public var type: ComponentType
    /// `spec.version` exactly as written (`v1`); empty when absent.
    public var version: String
    /// `spec.metadata`, in file order.
    public var metadata: [MetadataItem]
    /// `spec.initTimeout`, default 5 s as in Dapr.
    public var initTimeout: Duration
    /// `spec.ignoreErrors`: a component that fails to initialise is reported unhealthy instead of
    /// stopping startup.
    public var ignoreErrors: Bool
    /// Top-level `scopes`: app ids allowed to load the component. Empty means every app.
    public var scopes: [String]
    /// `auth.secretStore`: the secret store that resolves `secretKeyRef` values.
    public var secretStore: String?
    public var source: ResourceSource

    public init(
        name: String,
        namespace: String = "",
        type: ComponentType,
        version: String = "v1",
        metadata: [MetadataItem] = [],
        initTimeout: Duration = .seconds(5),
        ignoreErrors: Bool = false,
        scopes: [String] = [],
        secretStore: String? = nil,
        source: ResourceSource? = nil
    ) {
        self.name = name
        self.namespace = namespace
        self.type = type
        self.version = version
        self.metadata = metadata
        self.initTimeout = initTimeout
        self.ignoreErrors = ignoreErrors
        self.scopes = scopes
        self.secretStore = secretStore
        self.source = source ?? .builtIn("Component/\(name)")
    }

    /// Whether the component applies to `appID` (no scopes means every app).
    public func isInScope(appID: String) -> Bool {
        self.scopes.isEmpty || self.scopes.contains(appID)
    }
}

/// One `spec.metadata` entry.
public struct MetadataItem: Sendable, Hashable {
    public enum Value: Sendable, Hashable {
        /// `value:` (scalars are kept as their string form; maps and lists as JSON text).
        case literal(String)
        /// `secretKeyRef: {name, key}`; `key` defaults to `name` when absent, as in Dapr.
        case secretKeyRef(name: String, key: String)
        /// `envRef: VAR`: read from the sidecar's environment.
        case envRef(String)
    }

    public var name: String
    public var value: Value
    /// Path of the entry in its resource, e.g. `spec.metadata[3]`, for error messages.
    public var field: String

    public init(name: String, value: Value, field: String = "spec.metadata") {
        self.name = name
        self.value = value
        self.field = field
    }

    public static func literal(_ name: String, _ value: String) -> MetadataItem {
        MetadataItem(name: name, value: .literal(value))
    }
}
