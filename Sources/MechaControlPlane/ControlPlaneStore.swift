public import Crypto
public import Foundation
public import Logging
import MechaEmbedded
public import MechaIdentity
import MechaPostgres
public import X509
import Synchronization

/// The control plane's state in an existing store — the embedded SQLite database by default, or
/// PostgreSQL, where several control planes share it (each serves every request; one of them, the
/// holder of a PostgreSQL advisory lock, leads the background work): the trust domain's CA (root
/// and key), the join tokens sidecars present to get their SVIDs (kept as SHA-256 hashes, never in
/// clear), the registry's instances and the distributed resources.
public final class ControlPlaneStore: Sendable {
    let backend: any ControlPlaneBackend
    /// The SQLite file or PostgreSQL `host:port`, for messages.
    public var path: String { self.backend.location }
    /// `sqlite` or `postgresql`.
    public var kind: String { self.backend.kind }
    let postgres: MechaPostgresDatabase?
    private let migrated = Atomic<Bool>(false)
    /// Trust versions by the trusted roots' PEM (the fingerprints need the certificates parsed).
    private let trustVersions = Mutex<[String: String]>([:])

    /// Whether `location` names a PostgreSQL database (a `postgres://` URL or libpq keywords).
    public static func isPostgres(_ location: String) -> Bool {
        location.hasPrefix("postgres://") || location.hasPrefix("postgresql://") || location.contains("host=") || location.contains("dbname=")
    }

    /// The store at `location`: a PostgreSQL connection string, or the path of a SQLite file.
    public convenience init(location: String, logger: Logger = Logger(label: "mecha.control-plane.store")) throws {
        if Self.isPostgres(location) {
            let database = try MechaPostgresDatabase(connectionString: location, logger: logger)
            self.init(backend: PostgresControlPlaneBackend(database: database, logger: logger), postgres: database)
        } else {
            try self.init(path: location)
        }
    }

    /// The SQLite store in the file at `path`.
    public convenience init(path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        // The database holds the CA key: owner-only from the start.
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        self.init(backend: SQLiteControlPlaneBackend(database: try SQLiteDatabase(path: path), location: path), postgres: nil)
    }

    init(backend: any ControlPlaneBackend, postgres: MechaPostgresDatabase?) {
        self.backend = backend
        self.postgres = postgres
    }

    public func close() async {
        await self.postgres?.close()
    }

    /// The tables, created if missing (once per process; both databases accept the statements).
    func migrate() async throws {
        guard !self.migrated.load(ordering: .acquiring) else { return }
        let statements = [
            """
            CREATE TABLE IF NOT EXISTS control_plane_resources (
                kind TEXT NOT NULL, name TEXT NOT NULL, document TEXT NOT NULL, source TEXT NOT NULL, updated BIGINT NOT NULL,
                PRIMARY KEY (kind, name))
            """,
            """
            CREATE TABLE IF NOT EXISTS control_plane_instances (
                instance_id TEXT PRIMARY KEY, app_id TEXT NOT NULL, namespace TEXT NOT NULL, document TEXT NOT NULL,
                last_heartbeat BIGINT NOT NULL)
            """,
            "CREATE TABLE IF NOT EXISTS control_plane_ca (trust_domain TEXT PRIMARY KEY, certificate TEXT NOT NULL, private_key TEXT NOT NULL)",
            // A root rollover's other roots: `next` (trusted, not signing yet), `previous` (still
            // trusted, no longer signing).
            """
            CREATE TABLE IF NOT EXISTS control_plane_roots (
                trust_domain TEXT NOT NULL, role TEXT NOT NULL, certificate TEXT NOT NULL, private_key TEXT NOT NULL,
                PRIMARY KEY (trust_domain, role))
            """,
            """
            CREATE TABLE IF NOT EXISTS control_plane_tokens (
                hash TEXT PRIMARY KEY, app_id TEXT NOT NULL, namespace TEXT NOT NULL, created BIGINT NOT NULL)
            """,
        ]
        for statement in statements {
            do {
                _ = try await self.backend.execute(statement, [])
            } catch where self.postgres != nil && ["23505", "42P07"].contains(where: "\(error)".contains) {
                // Two control planes creating a table at once on PostgreSQL: one wins, both go on.
            }
        }
        self.migrated.store(true, ordering: .releasing)
    }

    /// The CA of `trustDomain`, created on first use. Two control planes starting together agree:
    /// the first insert wins and both read it back.
    public func certificateAuthority(trustDomain: String) async throws -> WorkloadCA {
        try await self.migrate()
        if let existing = try await self.loadCA(trustDomain) { return existing }
        let fresh = try WorkloadCA.create(trustDomain: trustDomain)
        _ = try await self.backend.execute(
            "INSERT INTO control_plane_ca (trust_domain, certificate, private_key) VALUES (?, ?, ?) ON CONFLICT (trust_domain) DO NOTHING",
            [.text(trustDomain), .text(fresh.rootPEM), .text(try fresh.keyPEM())])
        guard let stored = try await self.loadCA(trustDomain) else { throw IdentityError.invalidMaterial("the CA of \(trustDomain) could not be stored") }
        return stored
    }

    /// The roots sidecars must trust, as PEM: the signing one, then a prepared `next` and a
    /// `previous` one still trusted during a rollover.
    public func trustedRoots(trustDomain: String) async throws -> [String] {
        try await self.migrate()
        let stored = try await self.backend.query("SELECT certificate FROM control_plane_ca WHERE trust_domain = ?", [.text(trustDomain)])
        let active: String
        if let text = stored.first?[0].string {
            active = text
        } else {
            active = try await self.certificateAuthority(trustDomain: trustDomain).rootPEM
        }
        let others = try await self.backend.query(
            "SELECT role, certificate FROM control_plane_roots WHERE trust_domain = ? ORDER BY role", [.text(trustDomain)])
        return [active] + others.compactMap { $0[1].string }
    }

    /// Changes whenever the signing root or the set of trusted roots changes: the fingerprint of
    /// the signing root, then that of every trusted root. Sidecars renew their certificate when
    /// it changes, so a rollover's steps reach them within seconds.
    public func trustVersion(trustDomain: String) async throws -> String {
        let roots = try await self.trustedRoots(trustDomain: trustDomain)
        let key = roots.joined(separator: "\n")
        if let known = self.trustVersions.withLock({ $0[key] }) { return known }
        let signing = try TrustBundle(trustDomain: trustDomain, pem: roots[0]).fingerprint
        let version = signing + ":" + (try TrustBundle(trustDomain: trustDomain, pem: key).fingerprint)
        self.trustVersions.withLock { versions in
            if versions.count > 16 { versions.removeAll() }
            versions[key] = version
        }
        return version
    }

    /// Changes whenever a resource is applied or deleted, or the trusted roots change: cheap
    /// enough for every long poll to ask twice a second (no document is parsed).
    public func changeToken(trustDomain: String) async throws -> String {
        try await self.migrate()
        let rows = try await self.backend.query(
            "SELECT count(*), coalesce(max(updated), 0), coalesce(sum(length(document)), 0) FROM control_plane_resources", [])
        let resources = rows.first.map { $0.map { $0.int.map(String.init) ?? "?" }.joined(separator: ",") } ?? ""
        return resources + "|" + (try await self.trustedRoots(trustDomain: trustDomain)).joined()
    }

    public enum RootRotationError: Error, CustomStringConvertible {
        case alreadyPrepared, nothingPrepared, previousStillTrusted, nothingToRetire

        public var description: String {
            switch self {
            case .alreadyPrepared: "a new root is already prepared: activate it (root activate) first"
            case .nothingPrepared: "no new root is prepared: run root prepare first"
            case .previousStillTrusted: "the previous root is still trusted: retire it (root retire) before activating another"
            case .nothingToRetire: "there is no previous root to retire"
            }
        }
    }

    /// Step 1 of a root rollover: a new root, trusted by every sidecar from its next certificate
    /// on, but not signing yet.
    public func prepareRoot(trustDomain: String) async throws -> WorkloadCA {
        _ = try await self.certificateAuthority(trustDomain: trustDomain)
        let fresh = try WorkloadCA.create(trustDomain: trustDomain)
        let inserted = try await self.backend.execute(
            "INSERT INTO control_plane_roots (trust_domain, role, certificate, private_key) VALUES (?, 'next', ?, ?) ON CONFLICT (trust_domain, role) DO NOTHING",
            [.text(trustDomain), .text(fresh.rootPEM), .text(try fresh.keyPEM())])
        guard inserted > 0 else { throw RootRotationError.alreadyPrepared }
        return fresh
    }

    /// Step 2: the prepared root signs from now on; the one it replaces stays trusted (`previous`).
    public func activateRoot(trustDomain: String) async throws {
        let roles = try await self.backend.query(
            "SELECT role, certificate, private_key FROM control_plane_roots WHERE trust_domain = ?", [.text(trustDomain)])
        guard let next = roles.first(where: { $0[0].string == "next" }), let certificate = next[1].string, let key = next[2].string else {
            throw RootRotationError.nothingPrepared
        }
        guard !roles.contains(where: { $0[0].string == "previous" }) else { throw RootRotationError.previousStillTrusted }
        let current = try await self.certificateAuthority(trustDomain: trustDomain)
        try await self.backend.transaction([
            (
                "INSERT INTO control_plane_roots (trust_domain, role, certificate, private_key) VALUES (?, 'previous', ?, ?)",
                [.text(trustDomain), .text(current.rootPEM), .text(try current.keyPEM())]
            ),
            ("UPDATE control_plane_ca SET certificate = ?, private_key = ? WHERE trust_domain = ?", [.text(certificate), .text(key), .text(trustDomain)]),
            ("DELETE FROM control_plane_roots WHERE trust_domain = ? AND role = 'next'", [.text(trustDomain)]),
        ])
    }

    /// Step 3: the previous root is no longer trusted (once every sidecar has a certificate of
    /// the new one).
    public func retireRoot(trustDomain: String) async throws {
        let removed = try await self.backend.execute(
            "DELETE FROM control_plane_roots WHERE trust_domain = ? AND role = 'previous'", [.text(trustDomain)])
        guard removed > 0 else { throw RootRotationError.nothingToRetire }
    }

    private func loadCA(_ trustDomain: String) async throws -> WorkloadCA? {
        let rows = try await self.backend.query("SELECT certificate, private_key FROM control_plane_ca WHERE trust_domain = ?", [.text(trustDomain)])
        guard let row = rows.first, let certificate = row[0].string, let key = row[1].string else { return nil }
        return try WorkloadCA(certificatePEM: certificate, keyPEM: key, origin: "\(self.path) (CA of \(trustDomain))")
    }

    /// A new join token for `appID` in `namespace`; only its hash is kept.
    public func createToken(appID: String, namespace: String) async throws -> String {
        try await self.migrate()
        let token = Self.randomToken()
        _ = try await self.backend.execute(
            "INSERT INTO control_plane_tokens (hash, app_id, namespace, created) VALUES (?, ?, ?, ?)",
            [.text(Self.hash(token)), .text(appID), .text(namespace), .integer(Int64(Date().timeIntervalSince1970))])
        return token
    }

    /// The app id and namespace a token was made for, or nil.
    public func identity(forToken token: String) async throws -> (appID: String, namespace: String)? {
        try await self.migrate()
        let rows = try await self.backend.query("SELECT app_id, namespace FROM control_plane_tokens WHERE hash = ?", [.text(Self.hash(token))])
        guard let row = rows.first, let appID = row[0].string, let namespace = row[1].string else { return nil }
        return (appID, namespace)
    }

    /// Registers (or refreshes) an instance, as a JSON document.
    public func register(instanceID: String, appID: String, namespace: String, document: String) async throws {
        try await self.migrate()
        _ = try await self.backend.execute(
            """
            INSERT INTO control_plane_instances (instance_id, app_id, namespace, document, last_heartbeat) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (instance_id) DO UPDATE SET app_id = excluded.app_id, namespace = excluded.namespace,
                document = excluded.document, last_heartbeat = excluded.last_heartbeat
            """,
            [.text(instanceID), .text(appID), .text(namespace), .text(document), .integer(Self.nowMilliseconds())])
    }

    /// Removes an instance of `appID` (nothing when the id is another app's).
    public func deregister(instanceID: String, appID: String) async throws {
        _ = try await self.backend.execute("DELETE FROM control_plane_instances WHERE instance_id = ? AND app_id = ?", [.text(instanceID), .text(appID)])
    }

    /// The documents of the instances of `appID` in `namespace` heard from within `freshness`.
    public func instances(appID: String, namespace: String, freshness: Duration) async throws -> [String] {
        try await self.migrate()
        let since = Self.nowMilliseconds() - Int64(freshness.components.seconds * 1000)
        let rows = try await self.backend.query(
            "SELECT document FROM control_plane_instances WHERE app_id = ? AND namespace = ? AND last_heartbeat >= ? ORDER BY instance_id",
            [.text(appID), .text(namespace), .integer(since)])
        return rows.compactMap { $0[0].string }
    }

    /// Removes the instances unheard of for `age` (the leader's housekeeping); how many.
    public func pruneInstances(olderThan age: Duration) async throws -> Int {
        try await self.migrate()
        let before = Self.nowMilliseconds() - Int64(age.components.seconds * 1000)
        return try await self.backend.execute("DELETE FROM control_plane_instances WHERE last_heartbeat < ?", [.integer(before)])
    }

    /// Stores (or replaces) resource documents in one transaction.
    public func apply(_ documents: [(kind: String, name: String, text: String, source: String)]) async throws {
        try await self.migrate()
        let now = Self.nowMilliseconds()
        try await self.backend.transaction(
            documents.map { document in
                (
                    """
                    INSERT INTO control_plane_resources (kind, name, document, source, updated) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (kind, name) DO UPDATE SET document = excluded.document, source = excluded.source, updated = excluded.updated
                    """,
                    [.text(document.kind), .text(document.name), .text(document.text), .text(document.source), .integer(now)]
                )
            })
    }

    /// Removes a resource; false when there was none.
    public func delete(kind: String, name: String) async throws -> Bool {
        try await self.migrate()
        return try await self.backend.execute("DELETE FROM control_plane_resources WHERE kind = ? AND name = ?", [.text(kind), .text(name)]) > 0
    }

    /// Every stored resource document, in kind and name order.
    public func resources() async throws -> [(kind: String, name: String, text: String, source: String)] {
        try await self.migrate()
        return try await self.backend.query("SELECT kind, name, document, source FROM control_plane_resources ORDER BY kind, name", []).compactMap { row in
            guard let kind = row[0].string, let name = row[1].string, let text = row[2].string, let source = row[3].string else { return nil }
            return (kind, name, text, source)
        }
    }

    /// Whether `token` is an administrator's (made with `token --admin`).
    public func isAdministrator(token: String) async throws -> Bool {
        guard let identity = try await self.identity(forToken: token) else { return false }
        return identity.appID == Self.administrator && identity.namespace == Self.administrator
    }

    /// The app id and namespace recorded for administrator tokens (no app id can be `*`).
    public static let administrator = "*"

    static func nowMilliseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}

/// The control plane's own certificates, from the signing root in its store (after a rollover's
/// activation, the next renewal chains to the new root), with every trusted root as the bundle.
public struct StoreIssuer: SVIDIssuer {
    let store: ControlPlaneStore
    let skew: Duration

    public init(store: ControlPlaneStore, skew: Duration) {
        self.store = store
        self.skew = skew
    }

    public func issue(csr: CertificateSigningRequest, for id: SPIFFEID, ttl: Duration) async throws -> (chain: [Certificate], bundle: TrustBundle) {
        let signing = try await self.store.certificateAuthority(trustDomain: id.trustDomain)
        let roots = try await self.store.trustedRoots(trustDomain: id.trustDomain)
        let leaf = try signing.issue(csr: csr, for: id, ttl: ttl, skew: self.skew)
        return ([leaf], try TrustBundle(trustDomain: id.trustDomain, pem: roots.joined(separator: "\n")))
    }

    /// Changes when the signing root or the trusted roots change (see `ControlPlaneStore.trustVersion`).
    public func trustVersion(trustDomain: String) async throws -> String {
        try await self.store.trustVersion(trustDomain: trustDomain)
    }
}
