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

    var document: ETaggedList { ETaggedList(components: self.components, storeName: self.storeName, key: self.key) }

    public func members() async throws -> [ActorMember] {
        let now = WallClock.now().unixMilliseconds
        return try await self.document.read().0.compactMap(Self.member).filter { $0.leaseUntil >= now }
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

    /// Applies `mutate`, drops leases over for a minute, and returns the live members.
    func update(_ mutate: (inout [ActorMember]) -> Void) async throws -> [ActorMember] {
        let now = WallClock.now().unixMilliseconds
        let (members, _) = try await self.document.update(decode: Self.member, encode: Self.json, deleteWhenEmpty: false) { members in
            mutate(&members)
            members.removeAll { $0.leaseUntil < now - 60_000 }
            members.sort { $0.host.instanceID < $1.host.instanceID }
        }
        return members.filter { $0.leaseUntil >= now }
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
