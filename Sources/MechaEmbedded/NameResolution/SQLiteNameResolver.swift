#if canImport(Glibc)
import Glibc
#endif
public import MechaCore
import Synchronization

/// `nameresolution.sqlite`: sidecars on one machine find each other through the shared embedded
/// database. Each sidecar registers its instance and heartbeats; resolution returns instances with
/// a fresh heartbeat, skipping (and removing) those whose process on this host has exited.
/// Results are cached briefly so invocation does not query the database on every call.
public final class SQLiteNameResolver: NameResolver {
    let database: SQLiteDatabase
    let heartbeatInterval: Duration
    let staleAfter: Duration
    let cacheTTL: Duration
    let hostname: String
    private let registered = Mutex<[String: AppInstance]>([:])
    private let cache = Mutex<[String: (instances: [AppInstance], at: ContinuousClock.Instant)]>([:])

    init(database: SQLiteDatabase, heartbeatInterval: Duration, staleAfter: Duration, cacheTTL: Duration) {
        self.database = database
        self.heartbeatInterval = heartbeatInterval
        self.staleAfter = staleAfter
        self.cacheTTL = cacheTTL
        self.hostname = SQLitePubSub.currentHostname()
    }

    func migrate() async throws {
        try await self.database.transaction { connection in
            try connection.execute(
                """
                CREATE TABLE IF NOT EXISTS nameresolution_instances (
                    instance_id TEXT NOT NULL PRIMARY KEY,
                    app_id TEXT NOT NULL,
                    namespace TEXT NOT NULL,
                    host TEXT NOT NULL,
                    internal_port INTEGER NOT NULL,
                    http_port INTEGER NOT NULL,
                    hostname TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    last_heartbeat INTEGER NOT NULL
                );
                CREATE INDEX IF NOT EXISTS nameresolution_instances_app ON nameresolution_instances (app_id, namespace);
                """
            )
            // Added after the first release: the internal gRPC (proxy) port.
            let columns = try connection.query("PRAGMA table_info(nameresolution_instances)").compactMap { $0.count > 1 ? $0[1].string : nil }
            if !columns.contains("grpc_internal_port") {
                try connection.execute("ALTER TABLE nameresolution_instances ADD COLUMN grpc_internal_port INTEGER NOT NULL DEFAULT 0")
            }
            // And the metrics port (for `mecha dashboard`).
            if !columns.contains("metrics_port") {
                try connection.execute("ALTER TABLE nameresolution_instances ADD COLUMN metrics_port INTEGER NOT NULL DEFAULT 0")
            }
            // And whether its internal listeners speak mTLS.
            if !columns.contains("mtls") {
                try connection.execute("ALTER TABLE nameresolution_instances ADD COLUMN mtls INTEGER NOT NULL DEFAULT 0")
            }
        }
    }

    public func register(_ instance: AppInstance) async throws {
        self.registered.withLock { $0[instance.instanceID] = instance }
        let now = WallClock.now().unixMilliseconds
        _ = try await self.database.execute(
            """
            REPLACE INTO nameresolution_instances (instance_id, app_id, namespace, host, internal_port, http_port, hostname, pid, last_heartbeat, grpc_internal_port, metrics_port, mtls)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(instance.instanceID), .text(instance.appID), .text(instance.namespace), .text(instance.host),
                .integer(Int64(instance.internalPort)), .integer(Int64(instance.httpPort)), .text(instance.hostname),
                .integer(Int64(instance.processID)), .integer(now), .integer(Int64(instance.grpcInternalPort)), .integer(Int64(instance.metricsPort)),
                .integer(instance.mtls ? 1 : 0),
            ]
        )
    }

    public func deregister(instanceID: String) async throws {
        self.registered.withLock { _ = $0.removeValue(forKey: instanceID) }
        _ = try await self.database.execute("DELETE FROM nameresolution_instances WHERE instance_id = ?", [.text(instanceID)])
    }

    public func cachedInstances(appID: String, namespace: String) -> [AppInstance]? {
        guard let cached = self.cache.withLock({ $0["\(namespace)/\(appID)"] }), ContinuousClock.now - cached.at < self.cacheTTL, !cached.instances.isEmpty
        else { return nil }
        return cached.instances
    }

    public func resolve(appID: String, namespace: String) async throws -> [AppInstance] {
        let key = "\(namespace)/\(appID)"
        let now = ContinuousClock.now
        if let cached = self.cache.withLock({ $0[key] }), now - cached.at < self.cacheTTL, !cached.instances.isEmpty {
            return cached.instances
        }
        let freshSince = WallClock.now().unixMilliseconds - self.staleAfter.milliseconds
        let rows = try await self.database.query(
            """
            SELECT instance_id, host, internal_port, http_port, hostname, pid, grpc_internal_port, metrics_port, mtls FROM nameresolution_instances
            WHERE app_id = ? AND namespace = ? AND last_heartbeat >= ? ORDER BY instance_id
            """,
            [.text(appID), .text(namespace), .integer(freshSince)]
        )
        var instances: [AppInstance] = []
        for row in rows {
            let instance = Self.instance(row, appID: appID, namespace: namespace)
            if instance.hostname == self.hostname && instance.processID > 0 && kill(instance.processID, 0) != 0 && errno == ESRCH {
                _ = try? await self.database.execute("DELETE FROM nameresolution_instances WHERE instance_id = ?", [.text(instance.instanceID)])
                continue
            }
            instances.append(instance)
        }
        self.cache.withLock { $0[key] = (instances, now) }
        return instances
    }

    public func allInstances() async throws -> [AppInstance]? {
        let freshSince = WallClock.now().unixMilliseconds - self.staleAfter.milliseconds
        let rows = try await self.database.query(
            """
            SELECT instance_id, host, internal_port, http_port, hostname, pid, grpc_internal_port, metrics_port, mtls, app_id, namespace
            FROM nameresolution_instances WHERE last_heartbeat >= ? ORDER BY app_id, instance_id
            """,
            [.integer(freshSince)]
        )
        return rows.compactMap { row -> AppInstance? in
            let instance = Self.instance(row, appID: row[9].string ?? "", namespace: row[10].string ?? "default")
            if instance.hostname == self.hostname && instance.processID > 0 && kill(instance.processID, 0) != 0 && errno == ESRCH { return nil }
            return instance
        }
    }

    static func instance(_ row: [SQLiteValue], appID: String, namespace: String) -> AppInstance {
        AppInstance(
            appID: appID,
            namespace: namespace,
            host: row[1].string ?? "127.0.0.1",
            internalPort: Int(row[2].int ?? 0),
            httpPort: Int(row[3].int ?? 0),
            grpcInternalPort: Int(row[6].int ?? 0),
            instanceID: row[0].string ?? "",
            processID: Int32(row[5].int ?? 0),
            hostname: row[4].string ?? "",
            metricsPort: row.count > 7 ? Int(row[7].int ?? 0) : 0,
            mtls: row.count > 8 ? (row[8].int ?? 0) != 0 : false
        )
    }

    /// Heartbeats this process's registrations until stopped, then removes them.
    public func run(until stop: StopSignal) async throws {
        while !(await stop.sleep(for: self.heartbeatInterval)) {
            let ids = self.registered.withLock { Array($0.keys) }
            let now = WallClock.now().unixMilliseconds
            for id in ids {
                let updated = (try? await self.database.execute(
                    "UPDATE nameresolution_instances SET last_heartbeat = ? WHERE instance_id = ?",
                    [.integer(now), .text(id)]
                )) ?? 1
                if updated == 0, let instance = self.registered.withLock({ $0[id] }) {
                    try? await self.register(instance)  // someone removed us (e.g. a stale sweep): come back
                }
            }
        }
        for id in self.registered.withLock({ Array($0.keys) }) {
            try? await self.deregister(instanceID: id)
        }
    }
}

/// Factory for `nameresolution.sqlite`. Metadata: `connectionString` (default: the shared embedded
/// database), `heartbeatInterval` (2s), `staleAfter` (10s), `cacheTTL` (1s).
public struct SQLiteNameResolverFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.nameresolution, "sqlite") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let metadata = spec.metadata
        let database = try SQLiteDatabase(path: try EmbeddedDatabase.path(metadata, context: context))
        let resolver = SQLiteNameResolver(
            database: database,
            heartbeatInterval: try metadata.duration("heartbeatInterval", default: .seconds(2), range: .milliseconds(10) ... .seconds(3600)),
            staleAfter: try metadata.duration("staleAfter", default: .seconds(10)),
            cacheTTL: try metadata.duration("cacheTTL", default: .seconds(1))
        )
        try await resolver.migrate()
        return resolver
    }
}
