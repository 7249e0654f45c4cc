/// A sidecar that hosts actors: where other sidecars send calls for the actors it owns.
public struct ActorHost: Sendable, Hashable {
    /// The sidecar process's unique id.
    public var instanceID: String
    public var appID: String
    public var namespace: String
    /// Address and port of its sidecar-to-sidecar listener.
    public var host: String
    public var internalPort: Int
    /// Whether that listener speaks mTLS.
    public var mtls: Bool
    /// The actor types its app hosts (from the app's `/dapr/config` `entities`).
    public var types: [String]

    public init(instanceID: String, appID: String, namespace: String, host: String, internalPort: Int, mtls: Bool, types: [String]) {
        self.instanceID = instanceID
        self.appID = appID
        self.namespace = namespace
        self.host = host
        self.internalPort = internalPort
        self.mtls = mtls
        self.types = types
    }

    /// As name resolution describes a sidecar (for the mesh's transport).
    public var instance: AppInstance {
        AppInstance(
            appID: self.appID, namespace: self.namespace, host: self.host, internalPort: self.internalPort, httpPort: 0, instanceID: self.instanceID,
            processID: 0, hostname: "", mtls: self.mtls)
    }
}

/// One member of the placement: a host, which table version it has applied (its actors that
/// belong elsewhere under that version are deactivated), and until when its lease runs.
public struct ActorMember: Sendable, Hashable {
    public var host: ActorHost
    public var appliedVersion: String
    /// Unix milliseconds.
    public var leaseUntil: Int64

    public init(host: ActorHost, appliedVersion: String, leaseUntil: Int64) {
        self.host = host
        self.appliedVersion = appliedVersion
        self.leaseUntil = leaseUntil
    }
}

/// Where placement membership lives: the embedded database on one host, a shared store or the
/// control plane across hosts. Each member renews a lease; the live members make the table.
public protocol ActorMembershipStore: Sendable {
    /// Writes `host`'s membership (lease until `leaseUntil`, unix ms, and the version it has
    /// applied) and returns every member whose lease has not run out, itself included.
    func renew(_ host: ActorHost, appliedVersion: String, leaseUntil: Int64) async throws -> [ActorMember]
    /// The members whose lease runs, for a sidecar that hosts no actors but calls them.
    func members() async throws -> [ActorMember]
    /// Removes `instanceID` (a sidecar leaving after deactivating its actors).
    func leave(instanceID: String) async throws
}

/// The placement table: for each actor type, a consistent-hash ring over the hosts of that type,
/// so that each actor id has exactly one host and a membership change moves few actors.
public struct PlacementTable: Sendable {
    /// Identifies the membership (the same members give the same version on every sidecar).
    public let version: String
    public let hosts: [ActorHost]
    private let rings: [String: [(point: UInt64, host: Int)]]

    /// Points per host on each ring.
    public static let virtualNodes = 100

    public static let empty = PlacementTable(hosts: [])

    public init(hosts: [ActorHost]) {
        let sorted = hosts.sorted { $0.instanceID < $1.instanceID }
        self.hosts = sorted
        var rings: [String: [(point: UInt64, host: Int)]] = [:]
        var signature = ""
        for (index, host) in sorted.enumerated() {
            signature += host.instanceID + "@" + host.host + ":" + String(host.internalPort) + "=" + host.types.sorted().joined(separator: ",") + ";"
            var points: [UInt64] = []
            points.reserveCapacity(Self.virtualNodes)
            for node in 0..<Self.virtualNodes {
                points.append(Self.hash(host.instanceID + "#" + String(node)))
            }
            for type in Set(host.types) {
                rings[type, default: []].append(contentsOf: points.map { ($0, index) })
            }
        }
        for type in rings.keys {
            rings[type]!.sort { $0.point < $1.point || ($0.point == $1.point && $0.host < $1.host) }
        }
        self.rings = rings
        self.version = sorted.isEmpty ? "" : String(Self.hash(signature), radix: 16)
    }

    /// Whether any host serves `type`.
    public func hosts(type: String) -> Bool { self.rings[type] != nil }

    /// The actor types with at least one host.
    public var types: [String] { self.rings.keys.sorted() }

    /// The one host of actor `id` of `type`, or nil when no host serves the type.
    public func host(type: String, id: String) -> ActorHost? {
        guard let ring = self.rings[type], !ring.isEmpty else { return nil }
        let point = Self.hash(type + "||" + id)
        var low = 0
        var high = ring.count
        while low < high {
            let middle = (low + high) / 2
            if ring[middle].point < point { low = middle + 1 } else { high = middle }
        }
        return self.hosts[ring[low == ring.count ? 0 : low].host]
    }

    /// FNV-1a 64 with a final avalanche (splitmix64), stable across processes and platforms.
    public static func hash(_ text: String) -> UInt64 {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            value ^= UInt64(byte)
            value = value &* 0x0000_0100_0000_01b3
        }
        value ^= value >> 30
        value = value &* 0xbf58_476d_1ce4_e5b9
        value ^= value >> 27
        value = value &* 0x94d0_49bb_1331_11eb
        value ^= value >> 31
        return value
    }
}

/// Told what the actor runtime does (daprd's `dapr_runtime_actor_*` metrics attach here).
public protocol ActorObserver: Sendable {
    func actorActivated(type: String)
    /// `rebalanced`: placement moved the actor away (otherwise idle or shutdown).
    func actorDeactivated(type: String, rebalanced: Bool)
    func reminderFired(type: String, success: Bool)
    func timerFired(type: String, success: Bool)
}
