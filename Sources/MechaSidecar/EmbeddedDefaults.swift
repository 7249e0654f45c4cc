public import MechaCore

/// The components a sidecar gets with nothing configured: state, pub/sub and locks in the shared SQLite
/// database under the Mecha home directory, so apps on one machine work with nothing installed.
public enum EmbeddedDefaults {
    public static func components(mechaHome: String) -> [ComponentResource] {
        let database = mechaHome + "/mecha.db"
        return [
            ComponentResource(
                name: "statestore",
                type: ComponentType(.state, "sqlite"),
                version: "v1",
                metadata: [.literal("connectionString", database), .literal("actorStateStore", "true")],
                source: .builtIn("Component/statestore")
            ),
            ComponentResource(
                name: "pubsub",
                type: ComponentType(.pubsub, "sqlite"),
                version: "v1",
                metadata: [.literal("connectionString", database)],
                source: .builtIn("Component/pubsub")
            ),
            ComponentResource(
                name: "lockstore",
                type: ComponentType(.lock, "sqlite"),
                version: "v1",
                metadata: [.literal("connectionString", database)],
                source: .builtIn("Component/lockstore")
            ),
        ]
    }

    /// The name resolver's resource: `nameresolution.<component>` with the Configuration's settings.
    public static func nameResolver(_ configuration: ConfigurationSpec?, mechaHome: String) -> ComponentResource {
        let name = configuration?.nameResolutionComponent.flatMap { $0.isEmpty ? nil : $0 } ?? "sqlite"
        var metadata = (configuration?.nameResolutionConfiguration ?? [:]).sorted { $0.key < $1.key }.map { MetadataItem.literal($0.key, $0.value) }
        if name == "sqlite", !metadata.contains(where: { $0.name.lowercased() == "connectionstring" }) {
            metadata.append(.literal("connectionString", mechaHome + "/mecha.db"))
        }
        return ComponentResource(
            name: "nameresolution",
            type: ComponentType(.nameresolution, name),
            version: "v1",
            metadata: metadata,
            source: configuration?.source ?? .builtIn("Configuration/nameResolution")
        )
    }
}
