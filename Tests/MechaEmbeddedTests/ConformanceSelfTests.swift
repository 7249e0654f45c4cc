import MechaCore
import MechaEmbedded
import MechaTesting
import Synchronization
import Testing

/// The conformance suites must fail components that break their contract, or they prove nothing.
/// Each lying fake below breaks one rule; its test asserts (with `withKnownIssue`, which fails when no
/// issue is recorded) that the check guarding that rule records a failure. The truthful variants of
/// the same fakes pass, so the failures come from the lies.
struct ConformanceSelfTests {
    // MARK: State stores

    /// One broken rule of the state store contract.
    enum StateLie: String, CaseIterable, Sendable, CustomStringConvertible {
        case ignoresETags, ignoresFirstWrite, neverExpires, hidesExpireTime, nonAtomicTransactions, reversesTransactions
        case manglesBinaryValues, reordersBulkGet, failsDeletingMissingKeys, rejectsSpecialKeys, declaresWrongFeatures
        var description: String { self.rawValue }

        /// The check that must catch it.
        var check: StateStoreConformance.Check {
            switch self {
            case .ignoresETags: .etags
            case .ignoresFirstWrite: .firstWrite
            case .neverExpires, .hidesExpireTime: .ttl
            case .nonAtomicTransactions, .reversesTransactions: .transactions
            case .manglesBinaryValues: .values
            case .reordersBulkGet: .bulkGet
            case .failsDeletingMissingKeys: .missingKeys
            case .rejectsSpecialKeys: .specialKeys
            case .declaresWrongFeatures: .features
            }
        }
    }

    /// The in-memory store with one lie layered on top (`nil`: no lie).
    final class LyingStateStore: TransactionalStateStore {
        let inner: InMemoryStateStore
        let lie: StateLie?

        init(_ lie: StateLie?, clock: ManualClock) {
            self.inner = InMemoryStateStore(now: { clock.now() })
            self.lie = lie
        }

        var features: StateFeatures { self.lie == .declaresWrongFeatures ? [.etag, .ttl] : self.inner.features }

        func get(_ request: StateGetRequest) async throws -> StateItem? {
            var item = try await self.inner.get(request)
            if self.lie == .hidesExpireTime { item?.metadata["ttlExpireTime"] = nil }
            return item
        }

        func bulkGet(_ requests: [StateGetRequest]) async throws -> [StateBulkItem] {
            let items = try await self.inner.bulkGet(requests)
            return self.lie == .reordersBulkGet ? items.reversed() : items
        }

        func set(_ request: StateSetRequest) async throws {
            try await self.inner.set(try self.distort(request))
        }

        func delete(_ request: StateDeleteRequest) async throws {
            try await self.inner.delete(try await self.distort(request))
        }

        func transact(_ operations: [StateOperation], metadata: [String: String]) async throws {
            var distorted: [StateOperation] = []
            for operation in operations {
                switch operation {
                case .set(let request): distorted.append(.set(try self.distort(request)))
                case .delete(let request): distorted.append(.delete(try await self.distort(request)))
                }
            }
            let operations = distorted
            switch self.lie {
            case .nonAtomicTransactions:
                for operation in operations {
                    switch operation {
                    case .set(let request): try await self.inner.set(request)
                    case .delete(let request): try await self.inner.delete(request)
                    }
                }
            case .reversesTransactions:
                try await self.inner.transact(operations.reversed(), metadata: metadata)
            default:
                try await self.inner.transact(operations, metadata: metadata)
            }
        }

        private func distort(_ request: StateSetRequest) throws -> StateSetRequest {
            var request = request
            switch self.lie {
            case .ignoresETags:
                request.etag = nil
                request.concurrency = .lastWrite
            case .ignoresFirstWrite where request.etag == nil:
                request.concurrency = .lastWrite
            case .neverExpires:
                request.ttl = nil
            case .manglesBinaryValues:
                request.value = Array(String(decoding: request.value, as: UTF8.self).utf8)
            case .rejectsSpecialKeys where request.key.contains("/") || request.key.unicodeScalars.contains { !$0.isASCII }:
                throw StateStoreError(.invalidRequest, key: request.key, detail: "unsupported character in key")
            default:
                break
            }
            return request
        }

        private func distort(_ request: StateDeleteRequest) async throws -> StateDeleteRequest {
            var request = request
            switch self.lie {
            case .ignoresETags:
                request.etag = nil
            case .failsDeletingMissingKeys:
                if try await self.inner.get(StateGetRequest(key: request.key)) == nil {
                    throw StateStoreError(.invalidRequest, key: request.key, detail: "no such key")
                }
            default:
                break
            }
            return request
        }
    }

    /// A store with no optional features. Truthful, it refuses ETags, first-write and TTLs with
    /// `.unsupported`; lying, it silently ignores them.
    final class PlainStateStore: StateStore {
        private let values = Mutex<[String: [UInt8]]>([:])
        let refusesUndeclared: Bool

        init(refusesUndeclared: Bool) { self.refusesUndeclared = refusesUndeclared }

        var features: StateFeatures { [] }

        func get(_ request: StateGetRequest) async throws -> StateItem? {
            self.values.withLock { $0[request.key] }.map { StateItem(key: request.key, value: $0) }
        }

        func set(_ request: StateSetRequest) async throws {
            if self.refusesUndeclared {
                if request.etag != nil || request.concurrency == .firstWrite || (request.ttl ?? .zero) > .zero {
                    throw StateStoreError(.unsupported, key: request.key, detail: "ETags, first-write and TTLs are not supported")
                }
            }
            self.values.withLock { $0[request.key] = request.value }
        }

        func delete(_ request: StateDeleteRequest) async throws {
            if self.refusesUndeclared, request.etag != nil {
                throw StateStoreError(.unsupported, key: request.key, detail: "ETags are not supported")
            }
            self.values.withLock { $0[request.key] = nil }
        }
    }

    static func stateSuite(_ clock: ManualClock, expected: StateFeatures, _ makeStore: @escaping @Sendable () -> any StateStore) -> StateStoreConformance {
        StateStoreConformance(
            configuration: .init(expectedFeatures: expected, advanceTime: { clock.advance(by: $0) }, now: { clock.now() }),
            makeStore: makeStore
        )
    }

    @Test("state suite fails a lying store", arguments: StateLie.allCases)
    func stateSuiteCatches(_ lie: StateLie) async throws {
        let clock = ManualClock()
        let suite = Self.stateSuite(clock, expected: [.etag, .transactional, .ttl]) { LyingStateStore(lie, clock: clock) }
        await withKnownIssue("a store that \(lie) must fail the \(lie.check) check") {
            try await suite.run(lie.check)
        }
    }

    @Test("state suite fails a store ignoring features it does not declare", arguments: [StateStoreConformance.Check.etags, .firstWrite, .ttl])
    func stateSuiteCatchesSilentlyIgnoredFeatures(_ check: StateStoreConformance.Check) async throws {
        let suite = Self.stateSuite(ManualClock(), expected: []) { PlainStateStore(refusesUndeclared: false) }
        await withKnownIssue("a store without .etag/.ttl must refuse them, not ignore them") {
            try await suite.run(check)
        }
    }

    @Test("state suite passes the truthful fakes")
    func stateSuitePassesTruthfulFakes() async throws {
        let clock = ManualClock()
        try await Self.stateSuite(clock, expected: [.etag, .transactional, .ttl]) { LyingStateStore(nil, clock: clock) }.run()
        try await Self.stateSuite(clock, expected: []) { PlainStateStore(refusesUndeclared: true) }.run()
    }

    // MARK: Pub/sub

    /// One broken rule of the pub/sub contract.
    enum PubSubLie: String, CaseIterable, Sendable, CustomStringConvertible {
        case acknowledgesBeforeHandlerFinishes, dropsRedeliveries, duplicatesDeliveries, losesMessages, ignoresTTL
        case ignoresConsumerGroups, mergesTopics, ignoresStop, stopEndsEverySubscription, cancelsHandlersOnStop, ignoresCancellation
        case claimsDurability, claimsBulkPublish
        var description: String { self.rawValue }

        var check: PubSubConformance.Check {
            switch self {
            case .acknowledgesBeforeHandlerFinishes, .cancelsHandlersOnStop: .drain
            case .dropsRedeliveries: .redelivery
            case .duplicatesDeliveries, .losesMessages: .delivery
            case .ignoresTTL: .messageTTL
            case .ignoresConsumerGroups: .consumerGroups
            case .mergesTopics: .topicIsolation
            case .ignoresStop, .stopEndsEverySubscription: .independentStop
            case .claimsDurability: .durability
            case .claimsBulkPublish: .features
            case .ignoresCancellation: .cancellation
            }
        }
    }

    /// The in-memory pub/sub with one lie layered on top.
    final class LyingPubSub: PubSub {
        let inner = InMemoryPubSub()
        let lie: PubSubLie
        private let published = Mutex(0)
        /// Fired when any subscription's stop fires (for `.stopEndsEverySubscription`).
        private let anyStop = StopSignal()

        init(_ lie: PubSubLie) { self.lie = lie }

        var features: PubSubFeatures {
            switch self.lie {
            case .claimsDurability: self.inner.features.union(.durable)
            case .claimsBulkPublish: self.inner.features.union(.bulkPublish)
            default: self.inner.features
            }
        }

        func run(until stop: StopSignal) async throws {
            try await self.inner.run(until: stop)
        }

        func publish(_ request: PublishRequest) async throws {
            var request = request
            switch self.lie {
            case .losesMessages:
                let count = self.published.withLock { count in
                    count += 1
                    return count
                }
                if count.isMultiple(of: 4) { return }
            case .ignoresTTL:
                request.ttl = nil
            case .mergesTopics:
                request.topic = "merged"
            default:
                break
            }
            try await self.inner.publish(request)
        }

        func subscribe(
            _ request: SubscribeRequest,
            until stop: StopSignal,
            handler: @escaping @Sendable (ReceivedMessage) async -> MessageDisposition
        ) async throws {
            var request = request
            var handler = handler
            switch self.lie {
            case .acknowledgesBeforeHandlerFinishes:
                let original = handler
                handler = { message in
                    Task { _ = await original(message) }
                    return .acknowledge
                }
            case .dropsRedeliveries:
                let original = handler
                handler = { message in
                    _ = await original(message)
                    return .acknowledge
                }
            case .duplicatesDeliveries:
                let original = handler
                handler = { message in
                    _ = await original(message)
                    return await original(message)
                }
            case .ignoresConsumerGroups:
                request.consumerGroup = "shared"
            case .mergesTopics:
                request.topic = "merged"
            case .ignoresStop:
                try await self.inner.subscribe(request, until: StopSignal(), handler: handler)
                return
            case .stopEndsEverySubscription:
                let anyStop = self.anyStop
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask {
                        await stop.wait()
                        anyStop.stop()
                    }
                    try await self.inner.subscribe(request, until: anyStop, handler: handler)
                    group.cancelAll()
                }
                return
            case .ignoresCancellation:
                // A detached task does not inherit cancellation; awaiting its value ignores it.
                let inner = self.inner
                let request = request
                let handler = handler
                try await Task.detached { try await inner.subscribe(request, until: stop, handler: handler) }.value
                return
            case .cancelsHandlersOnStop:
                let inner = self.inner
                let request = request
                let handler = handler
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await inner.subscribe(request, until: StopSignal(), handler: handler) }
                    await stop.wait()
                    group.cancelAll()
                }
                return
            default:
                break
            }
            try await self.inner.subscribe(request, until: stop, handler: handler)
        }
    }

    static func pubSubSuite(_ makePubSub: @escaping @Sendable () -> any PubSub) -> PubSubConformance {
        PubSubConformance(
            configuration: .init(
                expectedFeatures: makePubSub().features,
                messageCount: 6,
                deliveryTimeout: .seconds(5),
                quietPeriod: .milliseconds(500),
                stopTimeout: .seconds(1)
            ),
            makePubSub: makePubSub
        )
    }

    @Test("pubsub suite fails a lying pubsub", .timeLimit(.minutes(2)), arguments: PubSubLie.allCases)
    func pubSubSuiteCatches(_ lie: PubSubLie) async throws {
        // Built from the truthful feature set, except for the lies about features.
        let suite = Self.pubSubSuite { LyingPubSub(lie) }
        await withKnownIssue("a pubsub that \(lie) must fail the \(lie.check) check") {
            try await suite.run(lie.check)
        }
    }

    // MARK: Secret stores

    enum SecretLie: String, CaseIterable, Sendable, CustomStringConvertible {
        case emptyForMissing, wrongErrorCode, wrongValue, extraKey, bulkMissesSecret, bulkDisagreesWithGet
        var description: String { self.rawValue }

        var check: SecretStoreConformance.Check {
            switch self {
            case .emptyForMissing, .wrongErrorCode: .missing
            case .wrongValue, .extraKey: .get
            case .bulkMissesSecret, .bulkDisagreesWithGet: .bulk
            }
        }
    }

    struct LyingSecretStore: SecretStore {
        static let secrets = ["conftestsecret": ["conftestsecret": "abcd"], "secondsecret": ["secondsecret": "efgh"], "other": ["other": "x"]]
        let lie: SecretLie?

        func secret(named name: String, metadata: [String: String]) async throws -> [String: String] {
            guard var secret = Self.secrets[name] else {
                switch self.lie {
                case .emptyForMissing: return [name: ""]
                case .wrongErrorCode: throw SecretStoreError(.backend, "lookup failed")
                default: throw SecretStoreError(.notFound, "secret \(name) not found")
                }
            }
            if self.lie == .wrongValue { secret[name] = (secret[name] ?? "") + " " }
            if self.lie == .extraKey { secret["extra"] = "1" }
            return secret
        }

        func bulkSecrets(metadata: [String: String]) async throws -> [String: [String: String]] {
            var secrets = Self.secrets
            if self.lie == .bulkMissesSecret { secrets["secondsecret"] = nil }
            if self.lie == .bulkDisagreesWithGet { secrets["other"] = ["other": "y"] }
            return secrets
        }
    }

    @Test("secret store suite fails a lying store", arguments: SecretLie.allCases)
    func secretSuiteCatches(_ lie: SecretLie) async throws {
        let suite = SecretStoreConformance(
            configuration: .init(knownSecrets: ["conftestsecret": ["conftestsecret": "abcd"], "secondsecret": ["secondsecret": "efgh"]])
        ) { LyingSecretStore(lie: lie) }
        await withKnownIssue("a secret store that \(lie) must fail the \(lie.check) check") {
            try await suite.run(lie.check)
        }
    }

    @Test("secret store suite holds a store to its missing-secret flavour")
    func secretSuiteChecksMissingFlavour() async throws {
        let known = ["conftestsecret": ["conftestsecret": "abcd"]]
        // Configured like Dapr's env store (empty values), but the store throws.
        let emptyFlavour = SecretStoreConformance(configuration: .init(knownSecrets: known, missingSecretThrows: false)) { LyingSecretStore(lie: nil) }
        await withKnownIssue("a store that throws for a missing secret fails a suite expecting empty values") {
            try await emptyFlavour.run(.missing)
        }
        try await SecretStoreConformance(configuration: .init(knownSecrets: known)) { LyingSecretStore(lie: nil) }.run()
        try await SecretStoreConformance(configuration: .init(knownSecrets: known, missingSecretThrows: false)) { LyingSecretStore(lie: .emptyForMissing) }.run()
    }

    // MARK: Output bindings

    enum BindingLie: String, CaseIterable, Sendable, CustomStringConvertible {
        case acceptsUnknownOperations, handlesUndeclaredOperation, declaresOperationTwice, getReturnsFirstData, deleteDoesNothing
        var description: String { self.rawValue }

        var check: OutputBindingConformance.Check {
            switch self {
            case .acceptsUnknownOperations, .handlesUndeclaredOperation: .unsupportedOperations
            case .declaresOperationTwice: .operations
            case .getReturnsFirstData, .deleteDoesNothing: .roundTrip
            }
        }
    }

    final class LyingBinding: OutputBinding {
        let lie: BindingLie?
        private let files = Mutex<[String: [UInt8]]>([:])

        init(lie: BindingLie?) { self.lie = lie }

        var operations: [String] {
            switch self.lie {
            case .handlesUndeclaredOperation: ["create", "get", "delete"]
            case .declaresOperationTwice: ["create", "get", "list", "delete", "GET"]
            default: ["create", "get", "list", "delete"]
            }
        }

        func invoke(_ request: BindingInvokeRequest) async throws -> BindingInvokeResponse {
            let name = request.metadata["fileName"] ?? ""
            switch request.operation {
            case "create":
                self.files.withLock { files in
                    if self.lie == .getReturnsFirstData, files[name] != nil { return }
                    files[name] = request.data
                }
                return BindingInvokeResponse()
            case "get":
                guard let data = self.files.withLock({ $0[name] }) else { throw BindingError("file not found") }
                return BindingInvokeResponse(data: data)
            case "list":
                return BindingInvokeResponse(data: Array("[]".utf8))
            case "delete":
                if self.lie != .deleteDoesNothing { self.files.withLock { $0[name] = nil } }
                return BindingInvokeResponse()
            default:
                if self.lie == .acceptsUnknownOperations { return BindingInvokeResponse() }
                throw BindingError("unsupported operation \(request.operation)")
            }
        }
    }

    static func bindingSuite(_ lie: BindingLie?, expected: [String] = ["create", "get", "list", "delete"]) -> OutputBindingConformance {
        OutputBindingConformance(configuration: .init(expectedOperations: expected, requestMetadata: ["fileName": "f"])) { LyingBinding(lie: lie) }
    }

    @Test("output binding suite fails a lying binding", arguments: BindingLie.allCases)
    func bindingSuiteCatches(_ lie: BindingLie) async throws {
        let expected = lie == .handlesUndeclaredOperation ? ["create", "get", "delete"] : ["create", "get", "list", "delete"]
        let suite = Self.bindingSuite(lie, expected: expected)
        await withKnownIssue("a binding that \(lie) must fail the \(lie.check) check") {
            try await suite.run(lie.check)
        }
    }

    @Test("output binding suite passes the truthful fake")
    func bindingSuitePassesTruthfulFake() async throws {
        try await Self.bindingSuite(nil).run()
    }
}
