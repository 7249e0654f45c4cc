public import Crypto
public import Foundation
public import MechaEmbedded
public import MechaIdentity

/// The control plane's state in an existing store — the embedded SQLite database: the trust
/// domain's CA (root and key) and the join tokens sidecars present to get their SVIDs (kept as
/// SHA-256 hashes, never in clear).
public final class ControlPlaneStore: Sendable {
    let database: SQLiteDatabase
    public let path: String

    public init(path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        // The database holds the CA key: owner-only from the start.
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        self.database = try SQLiteDatabase(path: path)
        self.path = path
    }

    func migrate() async throws {
        _ = try await self.database.execute(
            """
            CREATE TABLE IF NOT EXISTS control_plane_resources (
                kind TEXT NOT NULL, name TEXT NOT NULL, document TEXT NOT NULL, source TEXT NOT NULL, updated INTEGER NOT NULL,
                PRIMARY KEY (kind, name))
            """)
        _ = try await self.database.execute(
            """
            CREATE TABLE IF NOT EXISTS control_plane_instances (
                instance_id TEXT PRIMARY KEY, app_id TEXT NOT NULL, namespace TEXT NOT NULL, document TEXT NOT NULL,
                last_heartbeat INTEGER NOT NULL)
            """)
        _ = try await self.database.execute(
            "CREATE TABLE IF NOT EXISTS control_plane_ca (trust_domain TEXT PRIMARY KEY, certificate TEXT NOT NULL, private_key TEXT NOT NULL)")
        _ = try await self.database.execute(
            """
            CREATE TABLE IF NOT EXISTS control_plane_tokens (
                hash TEXT PRIMARY KEY, app_id TEXT NOT NULL, namespace TEXT NOT NULL, created INTEGER NOT NULL)
            """)
    }

    /// The CA of `trustDomain`, created on first use. Two control planes starting together agree:
    /// the first insert wins and both read it back.
    public func certificateAuthority(trustDomain: String) async throws -> WorkloadCA {
        try await self.migrate()
        if let existing = try await self.loadCA(trustDomain) { return existing }
        let fresh = try WorkloadCA.create(trustDomain: trustDomain)
        _ = try await self.database.execute(
            "INSERT OR IGNORE INTO control_plane_ca (trust_domain, certificate, private_key) VALUES (?, ?, ?)",
            [.text(trustDomain), .text(fresh.rootPEM), .text(try fresh.keyPEM())])
        guard let stored = try await self.loadCA(trustDomain) else { throw IdentityError.invalidMaterial("the CA of \(trustDomain) could not be stored") }
        return stored
    }

    private func loadCA(_ trustDomain: String) async throws -> WorkloadCA? {
        let rows = try await self.database.query("SELECT certificate, private_key FROM control_plane_ca WHERE trust_domain = ?", [.text(trustDomain)])
        guard let row = rows.first, let certificate = row[0].string, let key = row[1].string else { return nil }
        return try WorkloadCA(certificatePEM: certificate, keyPEM: key, origin: "\(self.path) (CA of \(trustDomain))")
    }

    /// A new join token for `appID` in `namespace`; only its hash is kept.
    public func createToken(appID: String, namespace: String) async throws -> String {
        try await self.migrate()
        let token = Self.randomToken()
        _ = try await self.database.execute(
            "INSERT INTO control_plane_tokens (hash, app_id, namespace, created) VALUES (?, ?, ?, ?)",
            [.text(Self.hash(token)), .text(appID), .text(namespace), .integer(Int64(Date().timeIntervalSince1970))])
        return token
    }

    /// The app id and namespace a token was made for, or nil.
    public func identity(forToken token: String) async throws -> (appID: String, namespace: String)? {
        let rows = try await self.database.query("SELECT app_id, namespace FROM control_plane_tokens WHERE hash = ?", [.text(Self.hash(token))])
        guard let row = rows.first, let appID = row[0].string, let namespace = row[1].string else { return nil }
        return (appID, namespace)
    }

    /// Registers (or refreshes) an instance, as a JSON document.
    public func register(instanceID: String, appID: String, namespace: String, document: String) async throws {
        _ = try await self.database.execute(
            "REPLACE INTO control_plane_instances (instance_id, app_id, namespace, document, last_heartbeat) VALUES (?, ?, ?, ?, ?)",
            [.text(instanceID), .text(appID), .text(namespace), .text(document), .integer(Self.nowMilliseconds())])
    }

    /// Removes an instance of `appID` (nothing when the id is another app's).
    public func deregister(instanceID: String, appID: String) async throws {
        _ = try await self.database.execute("DELETE FROM control_plane_instances WHERE instance_id = ? AND app_id = ?", [.text(instanceID), .text(appID)])
    }

    /// The documents of the instances of `appID` in `namespace` heard from within `freshness`.
    public func instances(appID: String, namespace: String, freshness: Duration) async throws -> [String] {
        let since = Self.nowMilliseconds() - Int64(freshness.components.seconds * 1000)
        let rows = try await self.database.query(
            "SELECT document FROM control_plane_instances WHERE app_id = ? AND namespace = ? AND last_heartbeat >= ? ORDER BY instance_id",
            [.text(appID), .text(namespace), .integer(since)])
        return rows.compactMap { $0[0].string }
    }

    /// Stores (or replaces) resource documents in one transaction.
    public func apply(_ documents: [(kind: String, name: String, text: String, source: String)]) async throws {
        try await self.migrate()
        let now = Self.nowMilliseconds()
        try await self.database.transaction { connection in
            for document in documents {
                _ = try connection.run(
                    "REPLACE INTO control_plane_resources (kind, name, document, source, updated) VALUES (?, ?, ?, ?, ?)",
                    [.text(document.kind), .text(document.name), .text(document.text), .text(document.source), .integer(now)])
            }
        }
    }

    /// Removes a resource; false when there was none.
    public func delete(kind: String, name: String) async throws -> Bool {
        try await self.migrate()
        return try await self.database.execute("DELETE FROM control_plane_resources WHERE kind = ? AND name = ?", [.text(kind), .text(name)]) > 0
    }

    /// Every stored resource document, in kind and name order.
    public func resources() async throws -> [(kind: String, name: String, text: String, source: String)] {
        try await self.migrate()
        return try await self.database.query("SELECT kind, name, document, source FROM control_plane_resources ORDER BY kind, name").compactMap { row in
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
