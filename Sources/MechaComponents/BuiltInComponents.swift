public import MechaEmbedded
public import MechaPostgres
public import MechaRedis
public import MechaRuntime

/// Every component family compiled into this binary, registered in one place. `main` builds the
/// registry from this list; tests may build registries with fewer factories.
public enum BuiltInComponents {
    public static var registry: ComponentRegistry {
        var registry = Self.factories
        registry.actorMembership = { path in try await SQLiteActorMembership(path: path) }
        return registry
    }

    static var factories: ComponentRegistry {
        ComponentRegistry([
            // state
            InMemoryStateStoreFactory(),
            SQLiteStateStoreFactory(),
            PostgresStateStoreFactory(),
            RedisStateStoreFactory(),
            // pub/sub
            InMemoryPubSubFactory(),
            SQLitePubSubFactory(),
            RedisStreamsPubSubFactory(),
            // bindings
            CronBindingFactory(),
            LocalStorageBindingFactory(),
            HTTPOutputBindingFactory(),
            RedisBindingFactory(),
            PostgresBindingFactory(),
            PostgresBindingFactory(name: "postgres"),
            // secret stores
            LocalFileSecretStoreFactory(),
            EnvSecretStoreFactory(),
            // configuration
            RedisConfigurationStoreFactory(),
            PostgresConfigurationStoreFactory(),
            PostgresConfigurationStoreFactory(name: "postgres"),
            // locks
            InMemoryLockStoreFactory(),
            SQLiteLockStoreFactory(),
            RedisLockStoreFactory(),
            // conversation
            EchoConversationFactory(),
            OpenAIConversationFactory(),
            OllamaConversationFactory(),
            // cryptography
            LocalStorageCryptoFactory(),
            JWKSCryptoFactory(),
            // name resolution
            SQLiteNameResolverFactory(),
            MDNSNameResolverFactory(),
            // middleware
            HTTPRateLimitFactory(),
        ])
    }
}
