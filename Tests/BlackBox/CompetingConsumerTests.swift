import MechaCore
import MechaTesting
import Testing

/// Several instances of one app id share a subscription: each message reaches exactly one of them,
/// while another app id gets its own copy of every message.
@Suite(.serialized)
struct CompetingConsumerTests {
    @Test func oneDeliveryPerAppIDAcrossInstances() async throws {
        let home = TestEnvironment.temporaryDirectory("mecha-compete")
        defer { TestEnvironment.remove(home) }
        let subscriptions = #"[{"pubsubname":"pubsub","topic":"jobs","route":"/jobs"}]"#
        let worker1 = try await TestAppHarness(directory: home, name: "worker1", subscriptions: subscriptions)
        let worker2 = try await TestAppHarness(directory: home, name: "worker2", subscriptions: subscriptions)
        let auditor = try await TestAppHarness(directory: home, name: "auditor", subscriptions: subscriptions)
        let sidecar1 = try await SidecarHarness(appID: "workers", appPort: worker1.port, home: home, waitForHealthz: true, logName: "workers-1")
        let sidecar2 = try await SidecarHarness(appID: "workers", appPort: worker2.port, home: home, waitForHealthz: true, logName: "workers-2")
        let sidecar3 = try await SidecarHarness(appID: "auditor", appPort: auditor.port, home: home, waitForHealthz: true)
        let publisher = try await SidecarHarness(appID: "boss", home: home)

        try await TestHTTP.with { http in
            // Each worker takes 150 ms per job, so neither sidecar can drain all 40 (10 at a time)
            // before the other's next poll, even on a loaded machine.
            for worker in [worker1, worker2] {
                #expect(try await http.post(port: worker.port, "/test/respond?path=/jobs&status=200&delayMs=150", json: "").status == 204)
            }
            for n in 1...40 {
                let response = try await http.post(port: publisher.httpPort, "/v1.0/publish/pubsub/jobs", json: #"{"job":\#(n)}"#)
                #expect(response.status == 204)
            }
            func jobs(_ app: TestAppHarness) async throws -> [Int] {
                let bodies = try JSONValue(parsing: try await http.get(port: app.port, "/test/received?path=/jobs").body).arrayValues ?? []
                return bodies.compactMap { $0.stringValue.flatMap { try? JSONValue(parsing: $0) }?["data"]?["job"]?.intValue }
            }
            let deadline = ContinuousClock.now + .seconds(20)
            var first: [Int] = []
            var second: [Int] = []
            var audited: [Int] = []
            while ContinuousClock.now < deadline {
                first = try await jobs(worker1)
                second = try await jobs(worker2)
                audited = try await jobs(auditor)
                if first.count + second.count >= 40 && audited.count >= 40 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(Set(first + second) == Set(1...40), "every job reached one worker")
            #expect(first.count + second.count == 40, "no job reached both workers")
            #expect(!first.isEmpty && !second.isEmpty, "both workers took work: \(first.count) / \(second.count)")
            #expect(Set(audited) == Set(1...40) && audited.count == 40, "the other app id got its own copy of each")
        }
        for sidecar in [sidecar1, sidecar2, sidecar3, publisher] { await sidecar.stop() }
    }
}
