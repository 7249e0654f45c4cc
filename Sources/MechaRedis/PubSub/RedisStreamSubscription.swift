import Logging
import MechaCore
import NIOCore
import RESPClient
import RESPWire
import Synchronization

/// One `subscribe` call: a consumer of `group` on the stream `topic`, named uniquely for this
/// subscription so that what it holds is visible in `XPENDING` and can be taken over.
///
/// One loop reads (`XREADGROUP … BLOCK` on a dedicated connection) only as many entries as it has
/// free handler slots, so unread entries stay available to the group's other consumers; every
/// `redeliverInterval` it first claims entries of the group idle for `processingTimeout`. Handlers
/// run concurrently up to `concurrency`; each entry is settled by its disposition: `XACK`, or, for
/// `.redeliver`, left pending and marked idle so the next check hands it out again.
///
/// On `stop` the blocking read is cut (its connection closed), nothing more is handed out, running
/// handlers finish and are settled, and the consumer is removed from the group if it holds nothing.
/// Entries read but not handed out are marked idle for the next check. Cancellation stops at once;
/// whatever was in flight stays pending and is reclaimed after `processingTimeout`.
struct RedisStreamSubscription: Sendable {
    let pubsub: RedisStreamsPubSub
    let topic: String
    let group: String
    let consumer: String
    let concurrency: Int

    var configuration: RedisStreamsConfiguration { self.pubsub.configuration }
    var pool: RESPConnectionPool { self.pubsub.pool }
    var logger: Logger { self.pubsub.logger }

    /// An entry read or claimed, with how often it was handed out before.
    struct Entry: Sendable {
        var message: ReceivedMessage
        /// Deliveries so far, this one included (the group's delivery counter).
        var deliveries: Int
    }

    /// Longest `BLOCK`; the loop also wakes for the next redelivery check.
    static let maximumBlock: Duration = .seconds(5)

    func run(until stop: StopSignal, handler: @escaping @Sendable (ReceivedMessage) async -> MessageDisposition) async {
        let reader = ReaderSlot()
        let inFlight = InFlightCount()
        let wakeUp = Doorbell()
        await withDiscardingTaskGroup { group in
            group.addTask {
                await stop.wait()
                wakeUp.ring()
                await reader.shut()
            }
            let redelivery = self.configuration.redeliveryEnabled
            var nextCheck = ContinuousClock.now
            var failures = 0
            while !stop.isStopped && !Task.isCancelled {
                let free = self.concurrency - inFlight.value
                guard free > 0 else {
                    await wakeUp.wait(timeout: .seconds(1))
                    continue
                }
                let batchSize = min(free, self.configuration.queueDepth)
                var batch: [Entry] = []
                do {
                    if redelivery && ContinuousClock.now >= nextCheck {
                        batch = try await self.claimIdle(max: batchSize)
                        // A full batch may mean more are waiting: check again at once.
                        nextCheck = batch.count == batchSize ? .now : .now + self.configuration.redeliverInterval
                    }
                    if batch.isEmpty {
                        var block = Self.maximumBlock
                        if redelivery { block = min(block, max(.milliseconds(1), nextCheck - .now)) }
                        batch = try await self.read(max: batchSize, block: block, reader: reader)
                    }
                    failures = 0
                } catch {
                    if stop.isStopped || Task.isCancelled { break }
                    failures += 1
                    await self.recover(from: error, reader: reader)
                    // Back off while the server is unreachable, without delaying a stop.
                    if await stop.sleep(for: .milliseconds(min(2_000, 100 * (1 << min(failures, 5))))) { break }
                    continue
                }
                guard !stop.isStopped && !Task.isCancelled else {
                    await self.giveBack(batch)
                    break
                }
                for entry in batch {
                    inFlight.add(1)
                    group.addTask {
                        let disposition = await handler(entry.message)
                        // A hard stop settles nothing: the entry stays pending, as if the process died.
                        if !Task.isCancelled { await self.settle(entry, disposition) }
                        inFlight.add(-1)
                        wakeUp.ring()
                    }
                }
            }
            // Leaving the group waits for the running handlers, which settle their entries.
        }
        await reader.shut()
        if !Task.isCancelled { await self.leaveGroupIfIdle() }
    }

    // MARK: Reading

    /// `XREADGROUP GROUP <group> <consumer> COUNT n BLOCK ms STREAMS <topic> >`
    func read(max count: Int, block: Duration, reader: ReaderSlot) async throws -> [Entry] {
        guard let connection = try await reader.connection(opening: { try await self.pool.makeDedicatedConnection() }) else { return [] }
        let milliseconds = max(1, block.milliseconds)
        let reply = try await connection.send(
            ["XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count, "BLOCK", milliseconds, "STREAMS", self.topic, ">"],
            timeout: block + (self.configuration.client.configuration.readTimeout ?? .seconds(3)) + .seconds(1)
        )
        return Self.streamEntries(reply).compactMap { id, fields in
            fields.map { self.entry(id: id, fields: $0, deliveries: 1) }
        }
    }

    /// The entries of an `XREADGROUP`/`XREAD` reply (RESP2 array of `[stream, entries]` or RESP3
    /// map), or of an `XCLAIM` reply (an array of entries): `(id, fields)`, fields nil for an entry
    /// deleted while pending.
    static func streamEntries(_ reply: RESPValue) -> [(String, [RESPValue.MapEntry]?)] {
        var lists: [RESPValue] = []
        switch reply {
        case .map(let streams): lists = streams.map(\.value)
        case .array(let streams): lists = streams.compactMap { $0.array?.count == 2 ? $0.array?[1] : nil }
        default: return []
        }
        return lists.flatMap { Self.entries($0) }
    }

    static func entries(_ list: RESPValue) -> [(String, [RESPValue.MapEntry]?)] {
        (list.array ?? []).compactMap { entry in
            guard let parts = entry.array, parts.count == 2, let id = parts[0].string else { return nil }
            return (id, parts[1].isNull ? nil : parts[1].mapEntries ?? [])
        }
    }

    func entry(id: String, fields: [RESPValue.MapEntry], deliveries: Int) -> Entry {
        var data: [UInt8] = []
        var metadata: [String: String] = [:]
        for field in fields {
            switch field.key.string {
            case "data": data = field.value.bytes.map { Array($0.readableBytesView) } ?? []
            case "metadata":
                if let text = field.value.string, let parsed = (try? JSONValue(parsing: text))?.stringDictionary {
                    metadata = parsed
                } else {
                    self.logger.warning("redis streams: could not read the metadata of message \(id) in \(self.topic)")
                }
            default: break
            }
        }
        let message = ReceivedMessage(topic: self.topic, data: data, metadata: metadata, messageID: id, redeliveryCount: deliveries - 1)
        return Entry(message: message, deliveries: deliveries)
    }

    // MARK: Redelivery

    /// Claims up to `count` entries of the group idle for at least `processingTimeout`.
    func claimIdle(max count: Int) async throws -> [Entry] {
        let idle = Self.milliseconds(self.configuration.processingTimeout)
        let pending = try await self.pool.send(["XPENDING", self.topic, self.group, "IDLE", idle, "-", "+", count])
        var deliveries: [String: Int] = [:]
        var ids: [any RESPArgumentConvertible] = []
        for item in pending.array ?? [] {
            guard let fields = item.array, fields.count >= 4, let id = fields[0].string else { continue }
            deliveries[id] = fields[3].int ?? 1
            ids.append(id)
        }
        guard !ids.isEmpty else { return [] }
        var command: RESPCommand = ["XCLAIM", self.topic, self.group, self.consumer, idle]
        command.append(contentsOf: ids)
        let claimed = try await self.pool.send(command)
        var entries: [Entry] = []
        for (id, fields) in Self.entries(claimed) {
            guard let fields else {
                // Trimmed or deleted while pending: nothing left to deliver.
                _ = try? await self.pool.send(["XACK", self.topic, self.group, id])
                continue
            }
            entries.append(self.entry(id: id, fields: fields, deliveries: (deliveries[id] ?? 1) + 1))
        }
        if !entries.isEmpty {
            self.logger.debug("redis streams: claimed \(entries.count) pending messages of \(self.topic) for group \(self.group)")
        }
        return entries
    }

    func settle(_ entry: Entry, _ disposition: MessageDisposition) async {
        let id = entry.message.messageID
        do {
            switch disposition {
            case .acknowledge:
                _ = try await self.pool.send(["XACK", self.topic, self.group, id])
            case .redeliver:
                try await self.markIdle([id], deliveries: entry.deliveries)
            }
        } catch {
            self.logger.warning("redis streams: settling message \(id) of \(self.topic) failed (it stays pending): \(error)")
        }
    }

    /// Entries read while stopping, never handed out: back to the group, their delivery not counted.
    func giveBack(_ batch: [Entry]) async {
        for entry in batch {
            try? await self.markIdle([entry.message.messageID], deliveries: entry.deliveries - 1)
        }
    }

    /// Keeps entries pending but idle for `processingTimeout`, so the group's next check claims
    /// them, with `deliveries` as their delivery count.
    func markIdle(_ ids: [String], deliveries: Int) async throws {
        var command: RESPCommand = ["XCLAIM", self.topic, self.group, self.consumer, 0]
        command.append(contentsOf: ids)
        command.append(contentsOf: ["IDLE", Self.milliseconds(self.configuration.processingTimeout), "RETRYCOUNT", max(0, deliveries), "JUSTID"])
        _ = try await self.pool.send(command)
    }

    // MARK: Failures and clean-up

    func recover(from error: any Error, reader: ReaderSlot) async {
        if let error = error as? RESPError, error.serverErrorPrefix == "NOGROUP" {
            self.logger.warning("redis streams: consumer group \(self.group) of stream \(self.topic) is gone (data loss or deletion); recreating it")
            try? await self.pubsub.createGroup(topic: self.topic, group: self.group)
            return
        }
        self.logger.warning("redis streams: error reading from stream \(self.topic): \(error)")
        if let error = error as? RESPError, error.isConnectionError {
            await reader.reset()
        }
    }

    /// Removes this subscription's consumer from the group when it holds no pending entries
    /// (deleting a consumer would drop the entries it holds).
    func leaveGroupIfIdle() async {
        guard let held = try? await self.pool.send(["XPENDING", self.topic, self.group, "-", "+", 1, self.consumer]),
            held.array?.isEmpty == true
        else { return }
        _ = try? await self.pool.send(["XGROUP", "DELCONSUMER", self.topic, self.group, self.consumer])
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.milliseconds
    }
}

/// The subscription's dedicated reading connection: opened on demand, closed by `shut()` (which
/// also cuts a blocking read short) and never reopened after it.
final class ReaderSlot: Sendable {
    private struct State {
        var connection: RESPConnection?
        var shut = false
    }

    private let state = Mutex(State())

    /// The open connection, opening one if needed; nil once shut.
    func connection(opening open: () async throws -> RESPConnection) async throws -> RESPConnection? {
        if let existing = self.state.withLock({ $0.shut ? nil : $0.connection }), existing.isActive { return existing }
        guard !self.state.withLock({ $0.shut }) else { return nil }
        let fresh = try await open()
        let (kept, stale) = self.state.withLock { state -> (Bool, RESPConnection?) in
            guard !state.shut else { return (false, nil) }
            defer { state.connection = fresh }
            return (true, state.connection)
        }
        await stale?.close()
        guard kept else {
            await fresh.close()
            return nil
        }
        return fresh
    }

    /// Drops the current connection (after a connection error); the next read opens another.
    func reset() async {
        let connection = self.state.withLock { state -> RESPConnection? in
            defer { state.connection = nil }
            return state.connection
        }
        await connection?.close()
    }

    func shut() async {
        let connection = self.state.withLock { state -> RESPConnection? in
            state.shut = true
            defer { state.connection = nil }
            return state.connection
        }
        await connection?.close()
    }
}

/// Handlers running right now.
final class InFlightCount: Sendable {
    private let storage = Mutex(0)
    var value: Int { self.storage.withLock { $0 } }
    func add(_ delta: Int) { self.storage.withLock { $0 += delta } }
}
