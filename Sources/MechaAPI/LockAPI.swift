public import MechaCore
import MechaResiliency
public import MechaRuntime

/// The distributed lock building block (`/v1.0-alpha1/lock`, `TryLockAlpha1`, …), daprd's checks in
/// daprd's order. Resource ids are rewritten into store keys by the component's `keyPrefix`
/// strategy, as daprd does, so locks taken by Mecha and by daprd on one Redis exclude each other:
/// `appid` (default) `lock||<app id>||<resource>`, `name` `lock||<store>||<resource>`, `none`
/// `lock||<resource>`, anything else `lock||<value>||<resource>`.
public struct LockAPI: Sendable {
    let components: ComponentStore
    let identity: SidecarIdentity

    public init(components: ComponentStore, identity: SidecarIdentity) {
        self.components = components
        self.identity = identity
    }

    public func tryLock(storeName: String, resourceID: String, owner: String, expiryInSeconds: Int32) async throws(APIError) -> Bool {
        guard expiryInSeconds > 0 else { throw .malformedRequest(message: "ExpiryInSeconds is not positive in lock store \(storeName)") }
        let (store, key) = try self.resolve(storeName: storeName, resourceID: resourceID, owner: owner, error: APIError.tryLock)
        do {
            return try await self.components.call(storeName, .lock, "tryLock") { try await store.tryLock(resourceID: key, owner: owner, expiry: .seconds(Int64(expiryInSeconds))) }
        } catch {
            throw .tryLock("\(error)")
        }
    }

    public func unlock(storeName: String, resourceID: String, owner: String) async throws(APIError) -> UnlockStatus {
        let (store, key) = try self.resolve(storeName: storeName, resourceID: resourceID, owner: owner, error: APIError.unlock)
        do {
            return try await self.components.call(storeName, .lock, "unlock") { try await store.unlock(resourceID: key, owner: owner) }
        } catch {
            throw .unlock("\(error)")
        }
    }

    private func resolve(
        storeName: String,
        resourceID: String,
        owner: String,
        error: (String) -> APIError
    ) throws(APIError) -> (any LockStore, String) {
        guard self.components.count(in: .lock) > 0 else { throw .lockStoreNotConfigured }
        guard !resourceID.isEmpty else { throw .malformedRequest(message: "ResourceId is empty in lock store \(storeName)") }
        guard !owner.isEmpty else { throw .malformedRequest(message: "LockOwner is empty in lock store \(storeName)") }
        guard let entry = self.components.entry(named: storeName), let store = entry.component as? any LockStore else {
            throw .lockStoreNotFound(storeName)
        }
        let strategy = (entry.spec.metadata.value(forAnyOf: "keyPrefix") ?? "appid").lowercased()
        for part in [resourceID, strategy] where part.contains("||") {
            throw error("input key/keyPrefix '\(part)' can't contain '||'")
        }
        for part in [resourceID, owner] where NULText.contains(part) {
            throw error("input key/keyPrefix \(NULText.quoted(part)) can't contain a NUL character")
        }
        let prefix: String? = switch strategy {
        case "appid", "": self.identity.appID.isEmpty ? nil : self.identity.appID
        case "name": storeName
        case "none": nil
        default: strategy
        }
        return (store, prefix.map { "lock||\($0)||\(resourceID)" } ?? "lock||\(resourceID)")
    }
}
