import MechaTesting
import NIOCore
import RESPClient
import RESPWire
import Testing

struct RESPConnectionPoolTests {
    @Test func manyTasksShareTheConnections() async throws {
        try await RedisServerHarness.withServer { redis in
            var configuration = redis.configuration
            configuration.poolSize = 3
            let pool = try RESPConnectionPool(configuration: configuration)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<100 {
                    group.addTask {
                        _ = try await pool.send(["SET", "key:\(task)", "\(task)"])
                        #expect(try await pool.send(["GET", "key:\(task)"]) == "\(task)")
                    }
                }
                try await group.waitForAll()
            }
            #expect(pool.openConnectionCount == 3)
            #expect(try await pool.send(["DBSIZE"]) == 100)
            await pool.shutdown()
            #expect(pool.openConnectionCount == 0)
        }
    }

    @Test func reconnectsAfterTheServerRestartsOnTheSamePort() async throws {
        try await RedisServerHarness.withServer { redis in
            let pool = try RESPConnectionPool(configuration: redis.configuration)
            _ = try await pool.send(["SET", "k", "v"])
            try await redis.restart()
            // The old connections are dead; the pool reconnects (retrying with backoff if it has to).
            #expect(try await pool.send(["PING"]) == .simpleString("PONG"))
            #expect(try await pool.send(["GET", "k"]) == .null)  // no persistence
            await pool.shutdown()
        }
    }

    @Test func retriesWhileTheServerIsDownThenSucceeds() async throws {
        try await RedisServerHarness.withServer { redis in
            var configuration = redis.configuration
            configuration.maxRetries = 12
            configuration.minRetryBackoff = .milliseconds(50)
            configuration.maxRetryBackoff = .milliseconds(400)
            let pool = try RESPConnectionPool(configuration: configuration)
            _ = try await pool.send(["PING"])
            await redis.kill()
            async let reply = pool.send(["PING"])
            try await Task.sleep(for: .milliseconds(300))
            try await redis.restart()
            #expect(try await reply == .simpleString("PONG"))
            await pool.shutdown()
        }
    }

    @Test func idleConnectionsAreClosedAndDeadOnesDropped() async throws {
        try await RedisServerHarness.withServer { redis in
            var configuration = redis.configuration
            configuration.poolSize = 2
            configuration.idleTimeout = .seconds(60)
            configuration.healthCheckInterval = .seconds(10)
            let pool = try RESPConnectionPool(configuration: configuration)
            _ = try await pool.send(["PING"])
            _ = try await pool.send(["PING"])
            #expect(pool.openConnectionCount == 2)
            await pool.checkConnections(now: .now + .seconds(11))  // idle past the interval: pinged, still open
            #expect(pool.openConnectionCount == 2)
            await pool.checkConnections(now: .now + .seconds(61))  // unused past idleTimeout: closed
            #expect(pool.openConnectionCount == 0)
            #expect(try await pool.send(["PING"]) == .simpleString("PONG"))
            // A connection the server dropped is noticed by the health check.
            _ = try await pool.send(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no"])
            try await Task.sleep(for: .milliseconds(100))
            await pool.checkConnections(now: .now + .seconds(11))
            #expect(pool.openConnectionCount == 0)
            await pool.shutdown()
        }
    }

    @Test func runStopsWhenCancelled() async throws {
        try await RedisServerHarness.withServer { redis in
            var configuration = redis.configuration
            configuration.healthCheckInterval = .milliseconds(20)
            let pool = try RESPConnectionPool(configuration: configuration)
            let service = Task { await pool.run() }
            _ = try await pool.send(["PING"])
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await pool.send(["PING"]) == .simpleString("PONG"))
            service.cancel()
            await service.value
            await pool.shutdown()
        }
    }

    @Test(arguments: [RESPProtocolVersion.resp3, .resp2])
    func pubSubDeliversMessagesInOrder(version: RESPProtocolVersion) async throws {
        try await RedisServerHarness.withServer { redis in
            var configuration = redis.configuration
            configuration.preferredProtocol = version
            let pool = try RESPConnectionPool(configuration: configuration)
            let received = try await pool.withSubscription(channels: ["orders"]) { messages in
                for index in 0..<5 { _ = try await pool.send(["PUBLISH", "orders", "order-\(index)"]) }
                var received: [String] = []
                for try await message in messages {
                    #expect(message.channel == "orders")
                    received.append(message.payloadString)
                    if received.count == 5 { break }
                }
                return received
            }
            #expect(received == (0..<5).map { "order-\($0)" })
            await pool.shutdown()
        }
    }

    @Test func keyspaceNotificationsArriveThroughPatternSubscriptions() async throws {
        try await RedisServerHarness.withServer(extraArguments: ["--notify-keyspace-events", "KEA"]) { redis in
            let pool = try RESPConnectionPool(configuration: redis.configuration)
            let event = try await pool.withSubscription(patterns: ["__keyspace@0__:config:*"]) { messages -> RESPPubSubMessage? in
                _ = try await pool.send(["SET", "config:color", "blue||1"])
                for try await message in messages { return message }
                return nil
            }
            #expect(event?.pattern == "__keyspace@0__:config:*")
            #expect(event?.channel == "__keyspace@0__:config:color")
            #expect(event?.payloadString == "set")
            await pool.shutdown()
        }
    }

    @Test func subscriberSeesTheServerGoAway() async throws {
        try await RedisServerHarness.withServer { redis in
            let pool = try RESPConnectionPool(configuration: redis.configuration)
            let connection = try await pool.makeDedicatedConnection()
            try await connection.subscribe(["a", "b"])
            try await connection.unsubscribe(["b"])
            await redis.kill()
            let error = await #expect(throws: RESPError.self) {
                for try await _ in connection.messages {}
            }
            #expect(error?.code == .connectionClosed)
            await connection.close()
            await pool.shutdown()
        }
    }

    @Test func blockingStreamReadOnADedicatedConnection() async throws {
        try await RedisServerHarness.withServer { redis in
            let pool = try RESPConnectionPool(configuration: redis.configuration)
            _ = try await pool.send(["XGROUP", "CREATE", "events", "mecha", "$", "MKSTREAM"])
            let busyGroup = await #expect(throws: RESPError.self) {
                try await pool.send(["XGROUP", "CREATE", "events", "mecha", "$", "MKSTREAM"])
            }
            #expect(busyGroup?.serverErrorPrefix == "BUSYGROUP")
            async let read = pool.withDedicatedConnection { connection in
                try await connection.send(
                    ["XREADGROUP", "GROUP", "mecha", "consumer-1", "COUNT", 10, "BLOCK", 5000, "STREAMS", "events", ">"],
                    timeout: .seconds(10)
                )
            }
            try await Task.sleep(for: .milliseconds(200))
            // The pool is not blocked by the dedicated connection's read.
            let id = try #require(try await pool.send(["XADD", "events", "*", "data", "{\"id\":1}"]).string)
            let reply = try await read
            let stream = try #require(reply.array?.first?.array ?? reply.mapEntries.map { [$0[0].key, $0[0].value] })
            #expect(stream[0] == "events")
            let entry = try #require(stream[1].array?.first?.array)
            #expect(entry[0].string == id)
            #expect(entry[1].dictionary?["data"]?.string == "{\"id\":1}")
            #expect(try await pool.send(["XACK", "events", "mecha", id]) == 1)
            await pool.shutdown()
        }
    }
}
