#if canImport(Glibc)
import Glibc
#endif
public import Logging
public import MechaCore
import Synchronization

/// `pubsub.sqlite`: durable, at-least-once pub/sub in an SQLite database that every sidecar on the
/// machine shares.
///
/// Each subscribing consumer group (the app id by default) gets its own copy of every message; the
/// instances of one app compete for those copies. A message is leased while the app handles it and
/// removed only after the app's SUCCESS or DROP; a RETRY, an error or a crash puts it back
/// (crashed holders on this host are detected by process id, others when their lease expires).
/// Messages published before a group first subscribes are kept for `messageRetention` and
/// delivered to it when it arrives, like a Redis stream read from its start.
public final class SQLitePubSub: PubSub, BulkPublisher {
    struct Configuration: Sendable {
        var concurrency = 10
        var pollInterval: Duration = .milliseconds(100)
        var processingTimeout: Duration = .seconds(60)
        var retention: Duration = .seconds(24 * 3600)
        var backoff = RedeliveryBackoff(initial: .seconds(1), maximum: .seconds(60))
    }

    let database: SQLiteDatabase
    let configuration: Configuration
    let owner: String
    let hostname: String
    let logger: Logger
    /// Local subscriptions by topic, rung on local publishes and on cross-process changes.
    private let doorbells = Mutex<[String: [ObjectIdentifier: Doorbell]]>([:])

    public var features: PubSubFeatures { [.messageTTL, .bulkPublish, .durable, .competingConsumers] }

    init(database: SQLiteDatabase, configuration: Configuration, instanceID: String, logger: Logger) {
        self.database = database
        self.configuration = configuration
        self.hostname = SQLitePubSub.currentHostname()
        self.owner = "\(self.hostname)/\(getpid())/\(instanceID)"
        self.logger = logger
    }

    static func currentHostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        return String(cString: buffer)
    }

    static let schema = """
        CREATE TABLE IF NOT EXISTS pubsub_messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            topic TEXT NOT NULL,
            data BLOB NOT NULL,
            content_type TEXT,
            metadata TEXT,
            published_at INTEGER NOT NULL,
            expires_at INTEGER
        );
        CREATE INDEX IF NOT EXISTS pubsub_messages_topic ON pubsub_messages (topic, seq);
        CREATE TABLE IF NOT EXISTS pubsub_subscriptions (
            topic TEXT NOT NULL,
            consumer_group TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            last_seen INTEGER NOT NULL,
            PRIMARY KEY (topic, consumer_group)
        );
        CREATE TABLE IF NOT EXISTS pubsub_deliveries (
            consumer_group TEXT NOT NULL,
            seq INTEGER NOT NULL,
            topic TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            available_at INTEGER NOT NULL,
            lease_owner TEXT,
            lease_until INTEGER,
            PRIMARY KEY (consumer_group, seq)
        );
        CREATE INDEX IF NOT EXISTS pubsub_deliveries_ready ON pubsub_deliveries (consumer_group, topic, seq);
        CREATE INDEX IF NOT EXISTS pubsub_deliveries_seq ON pubsub_deliveries (seq);
        """

    func migrate() async throws {
        try await self.database.transaction { try $0.execute(Self.schema) }
    }

    static func nowMilliseconds() -> Int64 { WallClock.now().unixMilliseconds }

    // MARK: Publishing

    public func publish(_ request: PublishRequest) async throws {
        _ = try await self.insert([request])
        self.ring(request.topic)
    }

    public func bulkPublish(_ entries: [BulkPublishEntry]) async throws -> [(entryID: String, error: String)] {
        do {
            _ = try await self.insert(entries.map(\.request))
        } catch {
            return entries.map { ($0.entryID, "\(error)") }
        }
        for topic in Set(entries.map(\.request.topic)) { self.ring(topic) }
        return []
    }

    /// Stores messages and fans each out to every consumer group of its topic, in one transaction.
    private func insert(_ requests: [PublishRequest]) async throws -> [Int64] {
        let now = Self.nowMilliseconds()
        return try await self.database.transaction { connection in
            var sequences: [Int64] = []
            for request in requests {
                let metadata = JSONValue.stringMap(request.metadata).jsonString
                let expires: SQLiteValue = request.ttl.map { .integer(now.addingSaturated($0.milliseconds)) } ?? .null
                try connection.run(
                    "INSERT INTO pubsub_messages (topic, data, content_type, metadata, published_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [.text(request.topic), .blob(request.data), request.contentType.map { .text($0) } ?? .null, .text(metadata), .integer(now), expires]
                )
                let seq = connection.lastInsertRowID
                sequences.append(seq)
                try connection.run(
                    """
                    INSERT INTO pubsub_deliveries (consumer_group, seq, topic, attempts, available_at)
                    SELECT consumer_group, ?, topic, 0, ? FROM pubsub_subscriptions WHERE topic = ?
                    """,
                    [.integer(seq), .integer(now), .text(request.topic)]
                )
            }
            return sequences
        }
    }

    private func ring(_ topic: String) {
        let bells = self.doorbells.withLock { Array(($0[topic] ?? [:]).values) }
        for bell in bells { bell.ring() }
    }

    // MARK: Subscribing

    public func subscribe(
        _ request: SubscribeRequest,
        until stop: StopSignal,
        handler: @escaping @Sendable (ReceivedMessage) async -> MessageDisposition
    ) async throws {
        try await self.register(topic: request.topic, group: request.consumerGroup)
        try await self.releaseLeasesOfDeadProcesses()
        let doorbell = Doorbell()
        let key = ObjectIdentifier(doorbell)
        self.doorbells.withLock { $0[request.topic, default: [:]][key] = doorbell }
        defer { self.doorbells.withLock { _ = $0[request.topic]?.removeValue(forKey: key) } }
        let queue = Queue(pubsub: self, topic: request.topic, group: request.consumerGroup)
        let concurrency = min(self.configuration.concurrency, max(1, request.maxConcurrency))
        await DeliveryLoop.run(
            queue: queue,
            doorbell: doorbell,
            concurrency: concurrency,
            pollInterval: self.configuration.pollInterval,
            backoff: self.configuration.backoff,
            logger: self.logger,
            until: stop,
            handler: handler
        )
    }

    /// Records the group; the first time, it receives every retained message of the topic.
    private func register(topic: String, group: String) async throws {
        let now = Self.nowMilliseconds()
        try await self.database.transaction { connection in
            let created = try connection.run(
                "INSERT OR IGNORE INTO pubsub_subscriptions (topic, consumer_group, created_at, last_seen) VALUES (?, ?, ?, ?)",
                [.text(topic), .text(group), .integer(now), .integer(now)]
            )
            if created == 1 {
                try connection.run(
                    """
                    INSERT OR IGNORE INTO pubsub_deliveries (consumer_group, seq, topic, attempts, available_at)
                    SELECT ?, seq, topic, 0, ? FROM pubsub_messages WHERE topic = ? AND (expires_at IS NULL OR expires_at > ?)
                    """,
                    [.text(group), .integer(now), .text(topic), .integer(now)]
                )
            } else {
                try connection.run(
                    "UPDATE pubsub_subscriptions SET last_seen = ? WHERE topic = ? AND consumer_group = ?",
                    [.integer(now), .text(topic), .text(group)]
                )
            }
        }
    }

    /// Leases held by processes of this host that no longer exist go back to the queue at once.
    func releaseLeasesOfDeadProcesses() async throws {
        let prefix = self.hostname + "/"
        let owners = try await self.database.query(
            "SELECT DISTINCT lease_owner FROM pubsub_deliveries WHERE lease_owner IS NOT NULL AND substr(lease_owner, 1, ?) = ?",
            [.integer(Int64(prefix.utf8.count)), .text(prefix)]
        ).compactMap { $0.first?.string }
        for owner in owners where owner != self.owner {
            let parts = owner.split(separator: "/")
            guard parts.count >= 2, let pid = Int32(parts[parts.count - 2]) else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                let released = try await self.database.execute(
                    "UPDATE pubsub_deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
                    [.text(owner)]
                )
                if released > 0 { self.logger.info("pubsub.sqlite: returned \(released) messages held by exited process \(pid) to the queue") }
            }
        }
    }

    /// One (topic, group) view of the tables.
    struct Queue: MessageQueue {
        let pubsub: SQLitePubSub
        let topic: String
        let group: String

        func claim(max: Int) async throws -> [ClaimedMessage] {
            let now = SQLitePubSub.nowMilliseconds()
            let leaseUntil = now.addingSaturated(self.pubsub.configuration.processingTimeout.milliseconds)
            let owner = self.pubsub.owner
            let topic = self.topic
            let group = self.group
            return try await self.pubsub.database.transaction { connection in
                let rows = try connection.query(
                    """
                    SELECT d.seq, d.attempts, m.data, m.content_type, m.metadata, m.expires_at
                    FROM pubsub_deliveries d JOIN pubsub_messages m ON m.seq = d.seq
                    WHERE d.consumer_group = ? AND d.topic = ? AND d.available_at <= ?
                      AND (d.lease_until IS NULL OR d.lease_until < ?)
                    ORDER BY d.seq LIMIT ?
                    """,
                    [.text(group), .text(topic), .integer(now), .integer(now), .integer(Int64(max))]
                )
                var claimed: [ClaimedMessage] = []
                for row in rows {
                    guard let seq = row[0].int else { continue }
                    if let expires = row[5].int, expires <= now {
                        // Expired before delivery: never handed out.
                        try connection.run("DELETE FROM pubsub_deliveries WHERE consumer_group = ? AND seq = ?", [.text(group), .integer(seq)])
                        continue
                    }
                    let attempts = Int(row[1].int ?? 0) + 1
                    try connection.run(
                        "UPDATE pubsub_deliveries SET lease_owner = ?, lease_until = ?, attempts = ? WHERE consumer_group = ? AND seq = ?",
                        [.text(owner), .integer(leaseUntil), .integer(Int64(attempts)), .text(group), .integer(seq)]
                    )
                    let metadata = (row[4].string.flatMap { try? JSONValue(parsing: $0) })?.stringDictionary ?? [:]
                    claimed.append(
                        ClaimedMessage(
                            message: ReceivedMessage(
                                topic: topic,
                                data: row[2].bytes ?? [],
                                contentType: row[3].string,
                                metadata: metadata,
                                messageID: String(seq),
                                redeliveryCount: attempts - 1
                            ),
                            token: seq,
                            attempts: attempts
                        )
                    )
                }
                return claimed
            }
        }

        func acknowledge(_ claimed: ClaimedMessage) async throws {
            let retentionStart = SQLitePubSub.nowMilliseconds().subtractingSaturated(self.pubsub.configuration.retention.milliseconds)
            let group = self.group
            try await self.pubsub.database.transaction { connection in
                try connection.run(
                    "DELETE FROM pubsub_deliveries WHERE consumer_group = ? AND seq = ? AND lease_owner = ?",
                    [.text(group), .integer(claimed.token), .text(self.pubsub.owner)]
                )
                // The message itself goes once every group has it and it is past retention.
                try connection.run(
                    "DELETE FROM pubsub_messages WHERE seq = ? AND published_at < ? AND NOT EXISTS (SELECT 1 FROM pubsub_deliveries WHERE seq = ?)",
                    [.integer(claimed.token), .integer(retentionStart), .integer(claimed.token)]
                )
            }
        }

        func release(_ claimed: ClaimedMessage, after delay: Duration) async throws {
            let availableAt = SQLitePubSub.nowMilliseconds() + delay.milliseconds
            _ = try await self.pubsub.database.execute(
                "UPDATE pubsub_deliveries SET lease_owner = NULL, lease_until = NULL, available_at = ? WHERE consumer_group = ? AND seq = ? AND lease_owner = ?",
                [.integer(availableAt), .text(self.group), .integer(claimed.token), .text(self.pubsub.owner)]
            )
        }
    }

    // MARK: Background work

    /// Wakes local subscriptions when another process commits (`PRAGMA data_version`), returns
    /// leases of crashed processes, and deletes messages past retention that every group has.
    public func run(until stop: StopSignal) async throws {
        var lastVersion: Int64 = -1
        var lastMaintenance = Self.nowMilliseconds()
        while !(await stop.sleep(for: self.configuration.pollInterval)) {
            if let version = try? await self.database.query("PRAGMA data_version").first?.first?.int, version != lastVersion {
                lastVersion = version
                let bells = self.doorbells.withLock { $0.values.flatMap(\.values) }
                for bell in bells { bell.ring() }
            }
            let now = Self.nowMilliseconds()
            if now - lastMaintenance >= 5_000 {
                lastMaintenance = now
                try? await self.releaseLeasesOfDeadProcesses()
                let retentionStart = now.subtractingSaturated(self.configuration.retention.milliseconds)
                _ = try? await self.database.execute(
                    """
                    DELETE FROM pubsub_messages WHERE (published_at < ? OR (expires_at IS NOT NULL AND expires_at <= ?))
                      AND NOT EXISTS (SELECT 1 FROM pubsub_deliveries d WHERE d.seq = pubsub_messages.seq AND (pubsub_messages.expires_at IS NULL OR pubsub_messages.expires_at > ?))
                    """,
                    [.integer(retentionStart), .integer(now), .integer(now)]
                )
            }
        }
    }
}

/// Factory for `pubsub.sqlite`. Metadata: `connectionString` (default: the shared embedded
/// database), `concurrency` (10), `pollInterval` (100ms), `processingTimeout` (60s: how long a
/// message stays leased to a handler), `messageRetention` (24h), `redeliveryDelay` (1s, doubled per
/// attempt), `maxRedeliveryDelay` (60s), `busyTimeout` (5s), `consumerID` (default: the app id).
public struct SQLitePubSubFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.pubsub, "sqlite") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let metadata = spec.metadata
        var configuration = SQLitePubSub.Configuration()
        configuration.concurrency = try metadata.int("concurrency", default: 10, range: 1...1000)
        // A poll loop needs a pause (zero would spin a core) and should still notice its stop signal.
        configuration.pollInterval = try metadata.duration(
            "pollInterval", default: .milliseconds(100), integerUnit: .milliseconds(1), range: .milliseconds(1) ... .seconds(3600))
        configuration.processingTimeout = try metadata.duration("processingTimeout", default: .seconds(60), range: .seconds(1) ... .maximumInterval)
        configuration.retention = try metadata.duration("messageRetention", default: .seconds(24 * 3600))
        configuration.backoff = RedeliveryBackoff(
            initial: try metadata.duration("redeliveryDelay", default: .seconds(1)),
            maximum: try metadata.duration("maxRedeliveryDelay", default: .seconds(60))
        )
        let database = try SQLiteDatabase(
            path: try EmbeddedDatabase.path(metadata, context: context),
            busyTimeout: try EmbeddedDatabase.busyTimeout(metadata)
        )
        let pubsub = SQLitePubSub(database: database, configuration: configuration, instanceID: context.instanceID, logger: context.logger)
        try await pubsub.migrate()
        return pubsub
    }
}
