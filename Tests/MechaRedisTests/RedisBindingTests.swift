import MechaCore
import MechaRedis
import MechaTesting
import RESPClient
import RESPWire
import Testing

struct RedisBindingTests {
    typealias Check = OutputBindingConformance.Check

    @Test("bindings.redis on a real redis-server", .timeLimit(.minutes(1)), arguments: Check.allCases)
    func conformance(_ check: Check) async throws {
        try await RedisServerHarness.withServer { redis in
            try await OutputBindingConformance(
                configuration: .init(expectedOperations: ["create", "get", "delete", "increment"], requestMetadata: ["key": "conformance"])
            ) {
                try await RedisComponents.make(RedisBindingFactory(), RedisComponents.metadata(redis), as: (any OutputBinding).self)
            }.run(check)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func operationsAsDaprs() async throws {
        try await RedisServerHarness.withServer { redis in
            let binding = try await RedisComponents.make(RedisBindingFactory(), RedisComponents.metadata(redis), as: (any OutputBinding).self)
            let created = try await binding.invoke(BindingInvokeRequest(operation: "create", data: Array(#""hello""#.utf8), metadata: ["key": "greeting", "ttlInSeconds": "30"]))
            #expect(!created.hasResponse)
            try await RedisComponents.withClient(redis) { client in
                #expect(try await client.send(["GET", "greeting"]).text == #""hello""#)
                let ttl = try await client.send(["TTL", "greeting"]).int ?? -1
                #expect(ttl > 20 && ttl <= 30, "TTL \(ttl)")
            }
            _ = try await binding.invoke(BindingInvokeRequest(operation: "increment", metadata: ["key": "counter"]))
            _ = try await binding.invoke(BindingInvokeRequest(operation: "increment", metadata: ["key": "counter", "ttl": "1m"]))
            #expect(try await binding.invoke(BindingInvokeRequest(operation: "get", metadata: ["key": "counter"])).data == Array("2".utf8))
            let taken = try await binding.invoke(BindingInvokeRequest(operation: "get", metadata: ["key": "greeting", "delete": "true"]))
            #expect(taken.data == Array(#""hello""#.utf8))
            let missing = try await binding.invoke(BindingInvokeRequest(operation: "get", metadata: ["key": "greeting"]))
            #expect(missing.hasResponse && missing.data.isEmpty)
            for (request, message) in [
                (BindingInvokeRequest(operation: "get"), "redis binding: missing key in request metadata"),
                (BindingInvokeRequest(operation: "create", metadata: ["key": "k", "ttlInSeconds": "0"]), "ttl value must be higher than zero: actual is 0"),
                (BindingInvokeRequest(operation: "create", metadata: ["key": "k", "ttlInSeconds": "soon"]), "ttl value must be a valid integer: soon"),
                (BindingInvokeRequest(operation: "list", metadata: ["key": "k"]), "invalid operation type: list"),
            ] {
                do {
                    _ = try await binding.invoke(request)
                    Issue.record("\(request.operation) \(request.metadata) was accepted")
                } catch {
                    #expect("\(error)" == message)
                }
            }
            try await binding.close()
        }
    }
}
