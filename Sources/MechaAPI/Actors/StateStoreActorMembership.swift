public import MechaCore
import MechaResiliency
public import MechaRuntime

/// Placement membership in the actor state store itself (Redis, PostgreSQL, … — wherever the
/// actor state is shared across hosts): one document per namespace, `placement||<namespace>`,
/// changed with ETag concurrency. Leases are wall-clock instants, so the hosts' clocks must agree
/// to well within the safety margin (1 s), as NTP keeps them.
public final class StateStoreActorMembership: ActorMembershipStore {
    let components: ComponentStore
    let storeName: String
    let key: String

    public init(components: ComponentStore, storeName: String, namespace: String) {
        self.components = components
        self.storeName = storeName
        self.key = "placement||\(namespace)"
    }

    func store() throws -> any StateStore {
        guard let store = self.components.stateStore(named: self.storeName) else { throw ReminderStoreMissing(name: self.storeName) }
        return store
    }

    func read() async throws -> ([ActorMember], String?) {
        let store = try self.store()
        let key = self.key
        let item = try await self.components.call(self.storeName, .state, "get") { try await store.get(StateGetRequest(key: key, consistency: .strong)) }
        guard let item, !item.value.isEmpty else { return ([], item?.etag) }
        let json = try JSONValue(parsing: item.value)
        return ((json.arrayValues ?? []).compactMap(Self.member), item.etag)
    }

    public func members() async throws -> [ActorMember] {
        let now = WallClock.now().unixMilliseconds
        return try await self.read().0.filter { $0.leaseUntil >= now }
    }

    public func renew(_ host: ActorHost, appliedVersion: String, leaseUntil: Int64) async throws -> [ActorMember] {
        try await self.update { members in
            members.removeAll { $0.host.instanceID == host.instanceID }
            members.append(ActorMember(host: host, appliedVersion: appliedVersion, leaseUntil: leaseUntil))
        }
    }

    public func leave(instanceID: String) async throws {
        _ = try await self.update { members in members.removeAll { $0.host.instanceID == instanceID } }
    }

    /// Applies `change`, drops leases over for a minute, writes with the read ETag (retrying on
    /// a concurrent change) and returns the live members.
    func update(_ mutate: (inout [ActorMember]) -> Void) async throws -> [ActorMember] {
        let store = try self.store()
        let key = self.key
        for attempt in 0..<40 {
            var (members, readETag) = try await self.read()
            let etag = readETag
            mutate(&members)
            let now = WallClock.now().unixMilliseconds
            members.removeAll { $0.leaseUntil < now - 60_000 }
            members.sort { $0.host.instanceID < $1.host.instanceID }
            let value = JSONValue.array(members.map(Self.json)).serialized
            do {
                try await self.components.call(self.storeName, .state, "set") {
                    try await store.set(StateSetRequest(key: key, value: value, etag: etag, concurrency: .firstWrite, consistency: .strong))
                }
                return members.filter { $0.leaseUntil >= now }
            } catch let error as StateStoreError where error.code == .etagMismatch {
                try await Task.sleep(for: .milliseconds(Int64(1 + attempt % 7 * 3)))
            }
        }
        throw ReminderStoreBusy(type: "placement")
    }

    static func json(_ member: ActorMember) -> JSONValue {
        .object([
            ("instanceID", .string(member.host.instanceID)), ("appID", .string(member.host.appID)), ("namespace", .string(member.host.namespace)),
            ("host", .string(member.host.host)), ("port", .int(member.host.internalPort)), ("mtls", .bool(member.host.mtls)),
            ("types", .array(member.host.types.map { .string($0) })), ("applied", .string(member.appliedVersion)),
            ("leaseUntil", .int(member.leaseUntil)),
        ])
    }

    static func member(_ json: JSONValue) -> ActorMember? {
        guard let id = json["instanceID"]?.stringValue, let host = json["host"]?.stringValue, let port = json["port"]?.intValue,
            let lease = json["leaseUntil"]?.intValue
        else { return nil }
        return ActorMember(
            host: ActorHost(
                instanceID: id, appID: json["appID"]?.stringValue ?? "", namespace: json["namespace"]?.stringValue ?? "default", host: host,
                internalPort: port, mtls: json["mtls"]?.boolValue ?? false, types: json["types"]?.arrayValues?.compactMap(\.stringValue) ?? []),
            appliedVersion: json["applied"]?.stringValue ?? "", leaseUntil: Int64(lease))
    }
}
