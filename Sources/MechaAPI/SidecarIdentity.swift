/// Who this sidecar is. Fixed for the process lifetime.
public struct SidecarIdentity: Sendable, Hashable {
    public var appID: String
    public var namespace: String
    /// Unique id of this sidecar process.
    public var instanceID: String
    /// Mecha's version string, reported as the runtime version.
    public var runtimeVersion: String

    public init(appID: String, namespace: String = "default", instanceID: String, runtimeVersion: String) {
        self.appID = appID
        self.namespace = namespace
        self.instanceID = instanceID
        self.runtimeVersion = runtimeVersion
    }
}
