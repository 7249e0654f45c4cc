public import MechaEmbedded
public import MechaPostgres
public import MechaRuntime

/// Every component family compiled into this binary, registered in one place. `main` builds the
/// registry from this list; tests may build registries with fewer factories.
public enum BuiltInComponents {
    public static var registry: ComponentRegistry {
        ComponentRegistry([
            // state
            InMemoryStateStoreFactory(),
            SQLiteStateStoreFactory(),
            PostgresStateStoreFactory(),
            // pub/sub
            InMemoryPubSubFactory(),
            SQLitePubSubFactory(),
            // bindings
            CronBindingFactory(),
            LocalStorageBindingFactory(),
            HTTPOutputBindingFactory(),
            // secret stores
            LocalFileSecretStoreFactory(),
            EnvSecretStoreFactory(),
            // name resolution
            SQLiteNameResolverFactory(),
        ])
    }
}
