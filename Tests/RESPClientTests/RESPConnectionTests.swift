import MechaTesting
import NIOCore
import RESPClient
import RESPWire
import Testing

/// Against a real redis-server started on a free port for each test.
struct RESPConnectionTests {
    @Test func setGetDel() async throws {
        try await RedisServerHarness.withServer { redis in
            let connection = try await RESPConnection.connect(configuration: redis.configuration)
            #expect(connection.protocolVersion == .resp3)
            #expect(try await connection.send(["SET", "greeting", "hello"]) == .simpleString("OK"))
            #expect(try await connection.send(["GET", "greeting"]) == "hello")
            #expect(try await connection.send(["DEL", "greeting"]) == 1)
            #expect(try await connection.send(["GET", "greeting"]) == .null)
            let binary = ByteBuffer(bytes: [0, 13, 10, 255, 1])
            _ = try await connection.send(["SET", "bin", binary])
            #expect(try await connection.send(["GET", "bin"]).bytes == binary)
            await connection.close()
            #expect(!connection.isActive)
        }
    }

    @Test(arguments: [RESPProtocolVersion.resp2, .resp3])
    func repliesOfEachProtocolReadAlike(version: RESPProtocolVersion) async throws {
        try await RedisServerHarness.withServer { redis in
            var configuration = redis.configuration
            configuration.preferredProtocol = version
            let connection = try await RESPConnection.connect(configuration: configuration)
            defer { Task { await connection.close() } }
            #expect(connection.protocolVersion == version)
            _ = try await connection.send(["HSET", "h", "data", "v", "version", "3"])
            let hash = try await connection.send(["HGETALL", "h"])
            #expect(hash.dictionary?["data"]?.string == "v")
            #expect(hash.dictionary?["version"]?.int == 3)
            _ = try await connection.send(["ZADD", "z", "1.5", "m"])
            #expect(try await connection.send(["ZSCORE", "z", "m"]).double == 1.5)
        }
    }

    @Test func concurrentTasksArePipelinedAndEachGetsItsOwnReply() async throws {
        try await RedisServerHarness.withServer { redis in
            let connection = try await RESPConnection.connect(configuration: redis.configuration)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<50 {
                    group.addTask {
                        for round in 1...20 {
                            let value = try await connection.send(["INCR", "counter:\(task)"])
                            #expect(value == .integer(Int64(round)))
                            #expect(try await connection.send(["ECHO", "\(task)-\(round)"]) == "\(task)-\(round)")
                        }
                    }
                }
                try await group.waitForAll()
            }
            await connection.close()
        }
    }

    @Test func pipelineReturnsRepliesInOrderWithErrorsAsValues() async throws {
        try await RedisServerHarness.withServer { redis in
            let connection = try await RESPConnection.connect(configuration: redis.configuration)
            _ = try await connection.send(["SET", "s", "x"])
            let replies = try await connection.pipeline([["INCR", "n"], ["INCR", "s"], ["GET", "n"]])
            #expect(replies.count == 3)
            #expect(replies[0] == 1)
            #expect(replies[1].string?.hasPrefix("ERR value is not an integer") == true)
            #expect(replies[2] == "1")
            await connection.close()
        }
    }

    @Test func multiExecTransaction() async throws {
        try await RedisServerHarness.withServer { redis in
            let pool = try RESPConnectionPool(configuration: redis.configuration)
            let result = try await pool.transaction([["SET", "a", "1"], ["INCR", "a"], ["LPUSH", "a", "x"]])
            #expect(result?.count == 3)
            #expect(result?[1] == 2)
            #expect(result?[2].string?.hasPrefix("WRONGTYPE") == true)
            // A command refused while queueing aborts the whole transaction.
            let error = await #expect(throws: RESPError.self) {
                try await pool.transaction([["SET", "b", "1"], ["NOSUCHCOMMAND"]])
            }
            #expect(error?.serverErrorPrefix == "EXECABORT")
            #expect(try await pool.send(["EXISTS", "b"]) == 0)
            await pool.shutdown()
        }
    }

    @Test func watchedKeyChangeDiscardsTheTransaction() async throws {
        try await RedisServerHarness.withServer { redis in
            let pool = try RESPConnectionPool(configuration: redis.configuration)
            let result = try await pool.withDedicatedConnection { connection in
                _ = try await connection.send(["WATCH", "w"])
                _ = try await pool.send(["SET", "w", "changed"])
                return try await connection.transaction([["SET", "w", "mine"]])
            }
            #expect(result == nil)
            #expect(try await pool.send(["GET", "w"]) == "changed")
            await pool.shutdown()
        }
    }

    @Test func evalAndEvalshaWithNoscript() async throws {
        try await RedisServerHarness.withServer { redis in
            let pool = try RESPConnectionPool(configuration: redis.configuration)
            let script = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
            let sha = try #require(try await pool.send(["SCRIPT", "LOAD", script]).string)
            _ = try await pool.send(["SCRIPT", "FLUSH"])
            let error = await #expect(throws: RESPError.self) { try await pool.send(["EVALSHA", sha, 1, "k", 5]) }
            #expect(error?.code == .server)
            #expect(error?.serverErrorPrefix == "NOSCRIPT")
            #expect(error?.isConnectionError == false)
            #expect(try await pool.send(["EVAL", script, 1, "k", 5]) == 5)
            #expect(try await pool.send(["EVALSHA", sha, 1, "k", 5]) == 10)
            let wrongType = await #expect(throws: RESPError.self) {
                _ = try await pool.send(["LPUSH", "k", "x"])
            }
            #expect(wrongType?.serverErrorPrefix == "WRONGTYPE")
            await pool.shutdown()
        }
    }

    @Test func authenticatesWithRequirepass() async throws {
        try await RedisServerHarness.withServer(password: "s3cret") { redis in
            for version in [RESPProtocolVersion.resp3, .resp2] {
                var configuration = redis.configuration
                configuration.preferredProtocol = version
                let connection = try await RESPConnection.connect(configuration: configuration)
                #expect(try await connection.send(["PING"]) == .simpleString("PONG"))
                await connection.close()

                configuration.password = "wrong"
                let wrong = await #expect(throws: RESPError.self) { try await RESPConnection.connect(configuration: configuration) }
                #expect(wrong?.code == .server)
                #expect(wrong?.serverErrorPrefix == "WRONGPASS")
            }
            var anonymous = redis.configuration
            anonymous.password = nil
            let refused = await #expect(throws: RESPError.self) {
                let connection = try await RESPConnection.connect(configuration: anonymous)
                defer { Task { await connection.close() } }
                _ = try await connection.send(["GET", "k"])
            }
            #expect(refused?.message.contains("NOAUTH") == true)
        }
    }

    @Test func selectedDatabasesAreIsolated() async throws {
        try await RedisServerHarness.withServer { redis in
            var one = redis.configuration
            one.database = 1
            let poolOne = try RESPConnectionPool(configuration: one)
            let poolZero = try RESPConnectionPool(configuration: redis.configuration)
            _ = try await poolOne.send(["SET", "k", "in-one"])
            #expect(try await poolZero.send(["GET", "k"]) == .null)
            #expect(try await poolOne.send(["GET", "k"]) == "in-one")
            var outOfRange = redis.configuration
            outOfRange.database = 999
            let error = await #expect(throws: RESPError.self) { try await RESPConnection.connect(configuration: outOfRange) }
            #expect(error?.message.contains("DB index is out of range") == true)
            await poolOne.shutdown()
            await poolZero.shutdown()
        }
    }

    @Test func readTimeoutClosesTheConnection() async throws {
        try await RedisServerHarness.withServer { redis in
            let connection = try await RESPConnection.connect(configuration: redis.configuration)
            let error = await #expect(throws: RESPError.self) {
                try await connection.send(["BLPOP", "empty", "5"], timeout: .milliseconds(200))
            }
            #expect(error?.code == .timeout)
            #expect(!connection.isActive)
            let after = await #expect(throws: RESPError.self) { try await connection.send(["PING"]) }
            #expect(after?.code == .connectionClosed)
        }
    }

    @Test func serverKilledMidCommandFailsItWithAConnectionError() async throws {
        try await RedisServerHarness.withServer { redis in
            let connection = try await RESPConnection.connect(configuration: redis.configuration)
            let blocked = Task { try await connection.send(["BLPOP", "queue", "30"], timeout: .seconds(60)) }
            try await Task.sleep(for: .milliseconds(200))
            await redis.kill()
            let error = await #expect(throws: RESPError.self) { _ = try await blocked.value }
            #expect(error?.code == .connectionClosed)
            #expect(error?.isConnectionError == true)
        }
    }

    @Test func unreachableServerIsAConnectionFailure() async throws {
        let configuration = RESPConfiguration(port: TestEnvironment.refusingPort(), dialTimeout: .seconds(1), maxRetries: 1, minRetryBackoff: .milliseconds(10))
        let error = await #expect(throws: RESPError.self) { try await RESPConnection.connect(configuration: configuration) }
        #expect(error?.code == .connectionFailed)
        let pool = try RESPConnectionPool(configuration: configuration)
        let poolError = await #expect(throws: RESPError.self) { try await pool.send(["PING"]) }
        #expect(poolError?.code == .connectionFailed)
        await pool.shutdown()
        let afterShutdown = await #expect(throws: RESPError.self) { try await pool.send(["PING"]) }
        #expect(afterShutdown?.code == .shutDown)
    }

    @Test func cancellingAWaitingCommandDoesNotDisturbOthers() async throws {
        try await RedisServerHarness.withServer { redis in
            var configuration = redis.configuration
            configuration.readTimeout = nil
            let connection = try await RESPConnection.connect(configuration: configuration)
            let blocked = Task { try await connection.send(["BLPOP", "q", "1"]) }
            try await Task.sleep(for: .milliseconds(100))
            blocked.cancel()
            await #expect(throws: CancellationError.self) { try await blocked.value }
            // The discarded reply arrives later; the next command still gets its own.
            #expect(try await connection.send(["ECHO", "after"]) == "after")
            await connection.close()
        }
    }
}
