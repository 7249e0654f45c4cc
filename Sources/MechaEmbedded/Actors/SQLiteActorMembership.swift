#if canImport(Glibc)
import Glibc
#endif
public import MechaCore

/// Actor placement membership in the embedded database: every sidecar of the machine that hosts
/// actors keeps a leased row; the rows whose lease runs make the placement table. A row whose
/// process on this machine has exited counts as gone at once (a killed sidecar's actors move
/// without waiting out its lease).
public final class SQLiteActorMembership: ActorMembershipStore {
    let database: SQLiteDatabase
    let hostname: String
    let processID: Int32

    /// Opens (and creates) the membership table in the database at `path`.
    public init(path: String) async throws {
        try EmbeddedDatabase.makeParentDirectory(of: path)
        self.database = try SQLiteDatabase(path: path)
        self.hostname = SQLitePubSub.currentHostname()
        self.processID = getpid()
        try await self.database.transaction { connection in
            try connection.execute(
                """
                CREATE TABLE IF NOT EXISTS actor_members (
                    instance_id TEXT NOT NULL PRIMARY KEY,
                    app_id TEXT NOT NULL,
                    namespace TEXT NOT NULL,
                    host TEXT NOT NULL,
                    internal_port INTEGER NOT NULL,
                    mtls INTEGER NOT NULL,
                    types TEXT NOT NULL,
                    applied_version TEXT NOT NULL,
                    lease_until INTEGER NOT NULL,
                    hostname TEXT NOT NULL,
                    pid INTEGER NOT NULL
                )
                """
            )
        }
    }

    public func members() async throws -> [ActorMember] {
        let rows = try await self.database.query(Self.select, [.integer(WallClock.now().unixMilliseconds)])
        return await self.live(rows, except: "")
    }

    static let select = """
        SELECT instance_id, app_id, namespace, host, internal_port, mtls, types, applied_version, lease_until, hostname, pid
        FROM actor_members WHERE lease_until >= ? ORDER BY instance_id
        """

    public func renew(_ host: ActorHost, appliedVersion: String, leaseUntil: Int64) async throws -> [ActorMember] {
        let now = WallClock.now().unixMilliseconds
        let hostname = self.hostname
        let pid = self.processID
        let rows = try await self.database.transaction { connection -> [[SQLiteValue]] in
            _ = try connection.run(
                """
                REPLACE INTO actor_members (instance_id, app_id, namespace, host, internal_port, mtls, types, applied_version, lease_until, hostname, pid)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(host.instanceID), .text(host.appID), .text(host.namespace), .text(host.host), .integer(Int64(host.internalPort)),
                    .integer(host.mtls ? 1 : 0), .text(host.types.joined(separator: "\n")), .text(appliedVersion), .integer(leaseUntil),
                    .text(hostname), .integer(Int64(pid)),
                ])
            // Rows long past their lease are nobody's: clear them.
            _ = try connection.run("DELETE FROM actor_members WHERE lease_until < ?", [.integer(now - 60_000)])
            return try connection.query(Self.select, [.integer(now)])
        }
        return await self.live(rows, except: host.instanceID)
    }

    /// The rows as members, without those whose process on this machine has exited.
    func live(_ rows: [[SQLiteValue]], except own: String) async -> [ActorMember] {
        let hostname = self.hostname
        let pid = self.processID
        var members: [ActorMember] = []
        for row in rows {
            let memberHostname = row[9].string ?? ""
            let memberPID = Int32(row[10].int ?? 0)
            let instanceID = row[0].string ?? ""
            if instanceID != own, memberHostname == hostname, memberPID > 0, memberPID != pid, Self.hasExited(memberPID) {
                _ = try? await self.database.execute("DELETE FROM actor_members WHERE instance_id = ?", [.text(instanceID)])
                continue
            }
            let types = (row[6].string ?? "").split(separator: "\n").map(String.init)
            members.append(
                ActorMember(
                    host: ActorHost(
                        instanceID: instanceID, appID: row[1].string ?? "", namespace: row[2].string ?? "default", host: row[3].string ?? "127.0.0.1",
                        internalPort: Int(row[4].int ?? 0), mtls: (row[5].int ?? 0) != 0, types: types),
                    appliedVersion: row[7].string ?? "",
                    leaseUntil: row[8].int ?? 0))
        }
        return members
    }

    /// Whether process `pid` of this machine is gone (or a zombie nobody reaped yet).
    static func hasExited(_ pid: Int32) -> Bool {
        if kill(pid, 0) != 0 { return errno == ESRCH }
        // /proc/<pid>/stat: "pid (name) S …"; the state follows the last ')'.
        guard let file = fopen("/proc/\(pid)/stat", "r") else { return false }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 512)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return false }
        let line = String(cString: buffer)
        guard let close = line.lastIndex(of: ")") else { return false }
        let rest = line[line.index(after: close)...].drop { $0 == " " }
        return rest.first == "Z" || rest.first == "X"
    }

    public func leave(instanceID: String) async throws {
        _ = try await self.database.execute("DELETE FROM actor_members WHERE instance_id = ?", [.text(instanceID)])
    }
}
