import Foundation
import Logging
@testable import MechaControlPlane
import MechaIdentity
import MechaTesting
import Testing

/// One suite for both stores of the control plane: the embedded SQLite file and a real
/// PostgreSQL server (started by the harness).
struct ControlPlaneStoreTests {
    enum Backend: String, CaseIterable, CustomTestStringConvertible {
        case sqlite, postgresql
        var testDescription: String { self.rawValue }
    }

    /// A fresh store's location: a new SQLite file, or a new database on the shared server.
    static func location(_ backend: Backend) async throws -> String {
        switch backend {
        case .sqlite:
            return TestEnvironment.temporaryDirectory("mecha-cp-store") + "/control-plane.db"
        case .postgresql:
            let server = try await PostgresServerHarness.shared()
            return server.url(database: try await server.createDatabase("cp"))
        }
    }

    static func withStores<T>(_ backend: Backend, count: Int = 1, _ body: ([ControlPlaneStore]) async throws -> T) async throws -> T {
        let location = try await Self.location(backend)
        let stores = try (0..<count).map { _ in try ControlPlaneStore(location: location) }
        do {
            let result = try await body(stores)
            for store in stores { await store.close() }
            return result
        } catch {
            for store in stores { await store.close() }
            throw error
        }
    }

    @Test("two control planes starting together on one store agree on one CA", .timeLimit(.minutes(2)), arguments: Backend.allCases)
    func oneCA(_ backend: Backend) async throws {
        try await Self.withStores(backend, count: 2) { stores in
            #expect(stores[0].kind == backend.rawValue)
            async let first = stores[0].certificateAuthority(trustDomain: "example.org")
            async let second = stores[1].certificateAuthority(trustDomain: "example.org")
            let (a, b) = try await (first, second)
            #expect(a.rootPEM == b.rootPEM)
            #expect(try await stores[0].certificateAuthority(trustDomain: "other").rootPEM != a.rootPEM)
        }
    }

    @Test("tokens, registry and resources read back through another process's store", .timeLimit(.minutes(2)), arguments: Backend.allCases)
    func sharedState(_ backend: Backend) async throws {
        try await Self.withStores(backend, count: 2) { stores in
            let token = try await stores[0].createToken(appID: "orders", namespace: "prod")
            #expect(try await stores[1].identity(forToken: token)?.appID == "orders")
            #expect(try await stores[1].identity(forToken: token + "x") == nil)
            let admin = try await stores[1].createToken(appID: ControlPlaneStore.administrator, namespace: ControlPlaneStore.administrator)
            #expect(try await stores[0].isAdministrator(token: admin))
            #expect(try await !stores[0].isAdministrator(token: token))

            try await stores[0].register(instanceID: "i1", appID: "orders", namespace: "prod", document: #"{"n":1}"#)
            try await stores[1].register(instanceID: "i1", appID: "orders", namespace: "prod", document: #"{"n":2}"#)
            try await stores[1].register(instanceID: "i2", appID: "orders", namespace: "prod", document: #"{"n":3}"#)
            #expect(try await stores[0].instances(appID: "orders", namespace: "prod", freshness: .seconds(10)) == [#"{"n":2}"#, #"{"n":3}"#])
            #expect(try await stores[0].instances(appID: "orders", namespace: "other", freshness: .seconds(10)).isEmpty)
            try await stores[0].deregister(instanceID: "i2", appID: "shipping")
            #expect(try await stores[1].instances(appID: "orders", namespace: "prod", freshness: .seconds(10)).count == 2)
            try await stores[0].deregister(instanceID: "i2", appID: "orders")
            #expect(try await stores[1].instances(appID: "orders", namespace: "prod", freshness: .seconds(10)).count == 1)
            #expect(try await stores[1].pruneInstances(olderThan: .seconds(60)) == 0)
            try await Task.sleep(for: .milliseconds(1100))
            #expect(try await stores[1].pruneInstances(olderThan: .seconds(1)) == 1)

            try await stores[0].apply([
                (kind: "Component", name: "a", text: "one", source: "a.yaml"), (kind: "Component", name: "b", text: "two", source: "b.yaml"),
            ])
            try await stores[1].apply([(kind: "Component", name: "a", text: "one again", source: "a2.yaml")])
            let all = try await stores[0].resources()
            #expect(all.map(\.text) == ["one again", "two"])
            #expect(all.map(\.source) == ["a2.yaml", "b.yaml"])
            #expect(try await stores[1].delete(kind: "Component", name: "b"))
            #expect(try await !stores[1].delete(kind: "Component", name: "b"))
            #expect(try await stores[0].resources().count == 1)
        }
    }

    @Test("a root rollover: prepare, activate, retire, in that order only", .timeLimit(.minutes(2)), arguments: Backend.allCases)
    func rootRollover(_ backend: Backend) async throws {
        try await Self.withStores(backend, count: 2) { stores in
            let old = try await stores[0].certificateAuthority(trustDomain: "public").rootPEM
            let initial = try await stores[1].trustVersion(trustDomain: "public")
            await #expect(throws: ControlPlaneStore.RootRotationError.self) { try await stores[0].activateRoot(trustDomain: "public") }
            await #expect(throws: ControlPlaneStore.RootRotationError.self) { try await stores[0].retireRoot(trustDomain: "public") }

            let next = try await stores[0].prepareRoot(trustDomain: "public")
            await #expect(throws: ControlPlaneStore.RootRotationError.self) { _ = try await stores[1].prepareRoot(trustDomain: "public") }
            #expect(try await stores[1].trustedRoots(trustDomain: "public") == [old, next.rootPEM])
            #expect(try await stores[1].certificateAuthority(trustDomain: "public").rootPEM == old)
            let prepared = try await stores[1].trustVersion(trustDomain: "public")
            #expect(prepared != initial)

            try await stores[1].activateRoot(trustDomain: "public")
            #expect(try await stores[0].certificateAuthority(trustDomain: "public").rootPEM == next.rootPEM)
            #expect(Set(try await stores[0].trustedRoots(trustDomain: "public")) == [old, next.rootPEM])
            // Same roots trusted, another one signing: the version changes, so sidecars renew.
            #expect(try await stores[0].trustVersion(trustDomain: "public") != prepared)
            _ = try await stores[0].prepareRoot(trustDomain: "public")
            await #expect(throws: ControlPlaneStore.RootRotationError.self) { try await stores[0].activateRoot(trustDomain: "public") }

            try await stores[0].retireRoot(trustDomain: "public")
            #expect(!(try await stores[1].trustedRoots(trustDomain: "public")).contains(old))
        }
    }

    @Test("placeholders are numbered for PostgreSQL")
    func numbering() {
        #expect(PostgresControlPlaneBackend.numbered("SELECT a FROM t WHERE b = ? AND c = ?") == "SELECT a FROM t WHERE b = $1 AND c = $2")
    }

    @Test("a malformed PostgreSQL location is refused with the reason")
    func malformed() {
        #expect(throws: (any Error).self) { try ControlPlaneStore(location: "postgres://u@h:notaport/db") }
    }
}

/// Leadership among control planes sharing a PostgreSQL store: one leads; when its session ends
/// another takes over; on SQLite the sole control plane leads.
struct ControlPlaneLeadershipTests {
    @Test("exactly one of three leads; the lead moves when the leader stops", .timeLimit(.minutes(2)))
    func election() async throws {
        try await ControlPlaneStoreTests.withStores(.postgresql, count: 3) { stores in
            let logger = Logger(label: "test")
            let candidates = stores.map { ControlPlaneLeadership(store: $0, trustDomain: "public", logger: logger, interval: .milliseconds(100)) }
            var tasks = candidates.map { candidate in Task { await candidate.run() } }
            func leaders() -> [Int] { candidates.indices.filter { candidates[$0].isLeader } }
            try await Self.eventually { leaders().count == 1 }
            // Stays one for a while (nobody else takes a held lock).
            for _ in 0..<5 {
                try await Task.sleep(for: .milliseconds(100))
                #expect(leaders().count == 1)
            }
            let first = leaders()[0]
            tasks[first].cancel()
            await tasks[first].value
            #expect(!candidates[first].isLeader)
            try await Self.eventually { leaders().count == 1 && leaders()[0] != first }
            // Another trust domain has a leader of its own on the same database.
            let other = ControlPlaneLeadership(store: stores[first], trustDomain: "other", logger: logger, interval: .milliseconds(100))
            tasks.append(Task { await other.run() })
            try await Self.eventually { other.isLeader }
            for task in tasks { task.cancel() }
            for task in tasks { await task.value }
        }
    }

    @Test("the sole control plane on SQLite leads")
    func sqlite() async throws {
        try await ControlPlaneStoreTests.withStores(.sqlite) { stores in
            let leadership = ControlPlaneLeadership(store: stores[0], trustDomain: "public", logger: Logger(label: "test"))
            let task = Task { await leadership.run() }
            try await Self.eventually { leadership.isLeader }
            task.cancel()
            await task.value
        }
    }

    static func eventually(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("condition not met within 20s")
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// The resource watch: an answer as soon as something changed, or after the long poll.
struct ResourceWatchTests {
    @Test("a watch returns at once when stale, on a change, or after the long poll", .timeLimit(.minutes(1)))
    func watch() async throws {
        try await ControlPlaneStoreTests.withStores(.sqlite) { stores in
            let store = stores[0]
            var api = ControlPlaneAPI(ca: try await store.certificateAuthority(trustDomain: "public"), store: store)
            // Long enough that "at once" and "after the long poll" stay apart on a loaded machine.
            api.longPoll = .seconds(4)
            let peer = try SPIFFEID(trustDomain: "public", namespace: "default", appID: "orders")
            func get(_ query: String = "") async throws -> (watch: String, seconds: Double) {
                let started = ContinuousClock.now
                let answer = await api.handle(method: "GET", path: "/v1/resources", query: query, authorization: nil, peer: peer, body: [])
                #expect(answer.status == 200)
                let object = try #require(try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any])
                let elapsed = ContinuousClock.now - started
                return (try #require(object["watch"] as? String), Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            }
            let first = try await get()
            #expect(first.seconds < 3)
            // Nothing changes: the whole long poll.
            let idle = try await get("wait=\(first.watch)")
            #expect(idle.watch == first.watch && idle.seconds >= 3.9)
            // A stale token: at once.
            #expect(try await get("wait=stale").seconds < 3)
            // A change while waiting: the answer comes before the long poll ends.
            async let changed = get("wait=\(first.watch)")
            try await Task.sleep(for: .milliseconds(100))
            try await store.apply([(kind: "Component", name: "a", text: "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: a\nspec:\n  type: state.in-memory\n  version: v1\n", source: "a.yaml")])
            let answer = try await changed
            #expect(answer.watch != first.watch)
            #expect(answer.seconds < 3.9)
        }
    }
}
