public import MechaCore
import MechaResiliency
public import MechaRuntime
import Synchronization

/// The secrets building block with Configuration secret scopes.
public struct SecretsAPI: Sendable {
    let components: ComponentStore
    /// The Configuration's `spec.secrets.scopes` by store (replaced by hot reload).
    var scopes: [String: SecretScope] { self.scopeBox.current.withLock { $0 } }
    let scopeBox: ScopeBox

    public final class ScopeBox: Sendable {
        let current: Mutex<[String: SecretScope]>
        init(_ initial: [String: SecretScope]) { self.current = Mutex(initial) }
    }

    /// Installs new secret scopes for the requests that come next.
    public func replaceScopes(_ scopes: [SecretScope]) {
        self.scopeBox.current.withLock { $0 = Self.byStore(scopes) }
    }

    static func byStore(_ scopes: [SecretScope]) -> [String: SecretScope] {
        Dictionary(scopes.map { ($0.storeName, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Mecha AccessPolicies: which secrets this app may get.
    let access: BlockAccess?

    public init(components: ComponentStore, scopes: [SecretScope], access: BlockAccess? = nil) {
        self.access = access
        self.components = components
        self.scopeBox = ScopeBox(Self.byStore(scopes))
    }

    func store(_ name: String) throws(APIError) -> any SecretStore {
        guard self.components.count(in: .secretstores) > 0 else { throw .secretStoresNotConfigured }
        guard let store = self.components.secretStore(named: name) else { throw .secretStoreNotFound(name) }
        return store
    }

    /// daprd's `IsSecretAllowed`: no scope for the store allows everything; a non-empty
    /// `allowedSecrets` alone decides (`deniedSecrets` and `defaultAccess` are then ignored);
    /// otherwise a key in `deniedSecrets` is refused and `defaultAccess` decides the rest.
    func isAllowed(_ key: String, store: String) -> Bool {
        if let access = self.access, access.denial(.secrets, component: store, resource: key, verb: "get") != nil { return false }
        guard let scope = self.scopes[store] else { return true }
        if !scope.allowedSecrets.isEmpty { return scope.allowedSecrets.contains(key) }
        if scope.deniedSecrets.contains(key) { return false }
        return scope.defaultAccess == .allow
    }

    public func get(storeName: String, key: String, metadata: [String: String] = [:]) async throws(APIError) -> [String: String] {
        let store = try self.store(storeName)
        // The env store reads the key with getenv, where a NUL would end the name early.
        guard !NULText.contains(key) else { throw .containsNUL("secret key", key) }
        guard self.isAllowed(key, store: storeName) else { throw .secretPermissionDenied(key: key, store: storeName) }
        do {
            return try await self.components.call(storeName, .secretstores, "get") { try await store.secret(named: key, metadata: metadata) }
        } catch {
            throw .secretGet(key: key, store: storeName, "\(error)")
        }
    }

    /// Every secret the scopes allow; denied ones are left out silently, as daprd does.
    public func bulk(storeName: String, metadata: [String: String] = [:]) async throws(APIError) -> [String: [String: String]] {
        let store = try self.store(storeName)
        do {
            return try await self.components.call(storeName, .secretstores, "bulkGet") { try await store.bulkSecrets(metadata: metadata) }.filter { self.isAllowed($0.key, store: storeName) }
        } catch {
            throw .bulkSecretGet(store: storeName, "\(error)")
        }
    }
}
