#if canImport(Glibc)
import Glibc
#endif
import MechaCore
import MechaEmbedded
import MechaTesting
import Synchronization
import Testing

/// Every built-in component, built through its factory from a spec, against the shipped
/// conformance suites (one test case per check, so a failure names the check).
enum ConformanceComponents {
    static func make<Contract>(
        _ factory: some ComponentFactory,
        _ metadata: [String: String] = [:],
        dataDirectory: String = "/tmp/mecha-conformance-unused",
        as contract: Contract.Type
    ) async throws -> Contract {
        let spec = ComponentSpec(name: "conformance", type: factory.type, metadata: ComponentMetadata(metadata))
        let context = ComponentContext(appID: "conf", dataDirectory: dataDirectory, instanceID: RandomID.uuid())
        let component = try await factory.make(spec: spec, context: context)
        return try #require(component as? Contract, "\(factory.type) does not build a \(Contract.self)")
    }
}

/// A clock the test moves by hand, for stores that take `now` (TTL checks without sleeping).
final class ManualClock: Sendable {
    private let current = Mutex(WallClock.now())
    func now() -> Timestamp { self.current.withLock { $0 } }
    func advance(by duration: Duration) { self.current.withLock { $0 = $0.adding(duration) } }
}

struct StateStoreConformanceTests {
    typealias Check = StateStoreConformance.Check
    static let features: StateFeatures = [.etag, .transactional, .ttl]

    @Test("state.in-memory", arguments: Check.allCases)
    func inMemory(_ check: Check) async throws {
        try await StateStoreConformance(configuration: .init(expectedFeatures: Self.features)) {
            try await ConformanceComponents.make(InMemoryStateStoreFactory(), as: (any StateStore).self)
        }.run(check)
    }

    @Test("state.in-memory on an injected clock", arguments: [Check.ttl, .etags, .transactions])
    func inMemoryManualClock(_ check: Check) async throws {
        let clock = ManualClock()
        let configuration = StateStoreConformance.Configuration(
            expectedFeatures: Self.features,
            advanceTime: { clock.advance(by: $0) },
            now: { clock.now() }
        )
        try await StateStoreConformance(configuration: configuration) { InMemoryStateStore(now: { clock.now() }) }.run(check)
    }

    @Test("state.sqlite on a database file", arguments: Check.allCases)
    func sqliteFile(_ check: Check) async throws {
        try await ScratchFiles.withDirectory("state-conformance") { directory in
            try await StateStoreConformance(configuration: .init(expectedFeatures: Self.features)) {
                try await ConformanceComponents.make(
                    SQLiteStateStoreFactory(),
                    ["connectionString": directory + "/state.db"],
                    dataDirectory: directory,
                    as: (any StateStore).self
                )
            }.run(check)
        }
    }

    @Test("state.sqlite on :memory:", arguments: Check.allCases)
    func sqliteInMemory(_ check: Check) async throws {
        try await StateStoreConformance(configuration: .init(expectedFeatures: Self.features)) {
            try await ConformanceComponents.make(SQLiteStateStoreFactory(), ["connectionString": ":memory:"], as: (any StateStore).self)
        }.run(check)
    }
}

struct PubSubConformanceTests {
    typealias Check = PubSubConformance.Check

    @Test("pubsub.in-memory", .timeLimit(.minutes(2)), arguments: Check.allCases)
    func inMemory(_ check: Check) async throws {
        let configuration = PubSubConformance.Configuration(expectedFeatures: [.messageTTL, .competingConsumers])
        try await PubSubConformance(configuration: configuration) {
            try await ConformanceComponents.make(InMemoryPubSubFactory(), as: (any PubSub).self)
        }.run(check)
    }

    /// Instances made by one test case share the database file, so the durability check's second
    /// instance is a restart of the first.
    @Test("pubsub.sqlite on a database file", .timeLimit(.minutes(2)), arguments: Check.allCases)
    func sqliteFile(_ check: Check) async throws {
        let configuration = PubSubConformance.Configuration(expectedFeatures: [.messageTTL, .bulkPublish, .durable, .competingConsumers])
        try await ScratchFiles.withDirectory("pubsub-conformance") { directory in
            try await PubSubConformance(configuration: configuration) {
                try await ConformanceComponents.make(
                    SQLitePubSubFactory(),
                    ["connectionString": directory + "/pubsub.db", "redeliveryDelay": "100ms", "maxRedeliveryDelay": "1s"],
                    dataDirectory: directory,
                    as: (any PubSub).self
                )
            }.run(check)
        }
    }
}

struct SecretStoreConformanceTests {
    typealias Check = SecretStoreConformance.Check

    static let fixture = #"{"conftestsecret":"abcd","secondsecret":"efgh","nested":{"a":"b","list":["x","y"]}}"#

    @Test("secretstores.local.file", arguments: Check.allCases)
    func localFile(_ check: Check) async throws {
        try await ScratchFiles.withDirectory("secrets-conformance") { directory in
            ScratchFiles.write(directory + "/secrets.json", Self.fixture)
            let known = [
                "conftestsecret": ["conftestsecret": "abcd"],
                "secondsecret": ["secondsecret": "efgh"],
                "nested:a": ["nested:a": "b"],
                "nested:list:1": ["nested:list:1": "y"],
            ]
            try await SecretStoreConformance(configuration: .init(knownSecrets: known)) {
                try await ConformanceComponents.make(
                    LocalFileSecretStoreFactory(),
                    ["secretsFile": directory + "/secrets.json", "nestedSeparator": ":"],
                    as: (any SecretStore).self
                )
            }.run(check)
        }
    }

    @Test("secretstores.local.file with multiValued", arguments: Check.allCases)
    func localFileMultiValued(_ check: Check) async throws {
        try await ScratchFiles.withDirectory("secrets-conformance") { directory in
            ScratchFiles.write(directory + "/secrets.json", Self.fixture)
            let known = [
                "conftestsecret": ["conftestsecret": "abcd"],
                "nested": ["a": "b", "list:0": "x", "list:1": "y"],
            ]
            try await SecretStoreConformance(configuration: .init(knownSecrets: known)) {
                try await ConformanceComponents.make(
                    LocalFileSecretStoreFactory(),
                    ["secretsFile": directory + "/secrets.json", "multiValued": "true"],
                    as: (any SecretStore).self
                )
            }.run(check)
        }
    }

    /// Reads variables the test process already has: setting new ones while other tests read the
    /// environment is unsafe. Dapr's env store answers an empty value for a missing variable.
    @Test("secretstores.local.env", arguments: Check.allCases)
    func localEnv(_ check: Check) async throws {
        var known: [String: [String: String]] = [:]
        for name in ["PATH", "HOME", "USER", "SHELL", "LANG"] {
            if let value = getenv(name) { known[name] = [name: String(cString: value)] }
        }
        try #require(!known.isEmpty, "the test process has none of PATH, HOME, USER, SHELL, LANG")
        let configuration = SecretStoreConformance.Configuration(knownSecrets: known, missingSecretThrows: false, verifiesBulkAgainstGet: false)
        try await SecretStoreConformance(configuration: configuration) {
            try await ConformanceComponents.make(EnvSecretStoreFactory(), as: (any SecretStore).self)
        }.run(check)
    }
}

struct OutputBindingConformanceTests {
    @Test("bindings.localstorage", arguments: OutputBindingConformance.Check.allCases)
    func localStorage(_ check: OutputBindingConformance.Check) async throws {
        try await ScratchFiles.withDirectory("localstorage-conformance") { directory in
            let configuration = OutputBindingConformance.Configuration(
                expectedOperations: ["create", "get", "list", "delete"],
                requestMetadata: ["fileName": "conformance/\(RandomID.uuid()).json"],
                // `list` takes a directory.
                listMetadata: ["fileName": "conformance"]
            )
            try await OutputBindingConformance(configuration: configuration) {
                try await ConformanceComponents.make(LocalStorageBindingFactory(), ["rootPath": directory], as: (any OutputBinding).self)
            }.run(check)
        }
    }
}
