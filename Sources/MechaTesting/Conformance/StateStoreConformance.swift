public import MechaCore
import Testing

/// The state store conformance suite: the checks every `StateStore` must pass, shipped as a library
/// so in-tree and third-party implementations run the same ones. Modelled on Dapr components-contrib's
/// `tests/conformance/state`, with the contract of `StateStore`'s documentation.
///
/// Features are checked both ways: each declared feature must work, and one that is not declared
/// must be refused with `StateStoreError(.unsupported)` (or, for `.transactional`, the store must not
/// adopt `TransactionalStateStore`). Failures are recorded as swift-testing issues; a check that
/// cannot go on records why and stops, and the next check still runs.
///
/// ```swift
/// @Test(arguments: StateStoreConformance.Check.allCases)
/// func conformance(_ check: StateStoreConformance.Check) async throws {
///     try await StateStoreConformance(
///         configuration: .init(expectedFeatures: [.etag, .transactional, .ttl]),
///         makeStore: { try await MyStoreFactory().make(spec: spec, context: context) as! any StateStore }
///     ).run(check)
/// }
/// ```
public struct StateStoreConformance: Sendable {
    public struct Configuration: Sendable {
        /// What the store should declare (the equivalent of `operations:` in Dapr's `tests.yml`).
        public var expectedFeatures: StateFeatures
        /// An ETag that is well-formed for this store but never current (Dapr's `badEtag`).
        public var staleETag: String
        /// Prefix of every key the suite writes; a random run id follows it, so runs can share a backend.
        public var keyPrefix: String
        /// The TTL the TTL check gives items (default 8 s: long enough that a machine loaded by a
        /// parallel test run still reads the item before it expires). At least 2 s for stores with
        /// second-precision clocks.
        public var ttl: Duration
        /// Moves the store's clock forward: a real sleep for stores on the wall clock (the default),
        /// an advance of an injected clock otherwise.
        public var advanceTime: @Sendable (Duration) async throws -> Void
        /// The store's notion of now, to judge `ttlExpireTime`.
        public var now: @Sendable () -> Timestamp
        /// How long `run(until:)` may take to return once its stop signal fires.
        public var stopTimeout: Duration

        public init(
            expectedFeatures: StateFeatures,
            staleETag: String = "bad-etag",
            keyPrefix: String = "conformance",
            ttl: Duration = .seconds(8),
            advanceTime: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
            now: @escaping @Sendable () -> Timestamp = { WallClock.now() },
            stopTimeout: Duration = .seconds(5)
        ) {
            self.expectedFeatures = expectedFeatures
            self.staleETag = staleETag
            self.keyPrefix = keyPrefix
            self.ttl = ttl
            self.advanceTime = advanceTime
            self.now = now
            self.stopTimeout = stopTimeout
        }
    }

    /// One group of checks; each runs on a store of its own from `makeStore`.
    public enum Check: String, CaseIterable, Sendable, CustomStringConvertible {
        /// Declared features equal the expected ones; `.transactional` ⇔ `TransactionalStateStore`.
        case features
        /// Set/get/overwrite/delete of JSON, quoted strings, numbers, non-UTF-8 bytes, empty values.
        case values
        /// Get of a missing key is nil; deleting a missing key succeeds.
        case missingKeys
        /// Keys with spaces, unicode, `/`, `%`, quotes, `||`.
        case specialKeys
        /// Bulk get answers in request order, missing keys as items without value or error.
        case bulkGet
        /// ETag rules (or `.unsupported` when `.etag` is not declared).
        case etags
        /// First-write concurrency (or `.unsupported` when `.etag` is not declared).
        case firstWrite
        /// Order and atomicity of transactions (when `.transactional` is declared).
        case transactions
        /// Expiry and `ttlExpireTime` (or `.unsupported` when `.ttl` is not declared).
        case ttl

        public var description: String { self.rawValue }
    }

    /// What this run expects of the component.
    public let configuration: Configuration
    let makeStore: @Sendable () async throws -> any StateStore

    /// - Parameter makeStore: a new store for each check; stores made by one suite may share a backend.
    public init(configuration: Configuration, makeStore: @escaping @Sendable () async throws -> any StateStore) {
        self.configuration = configuration
        self.makeStore = makeStore
    }

    /// Runs every check.
    public func run() async throws {
        for check in Check.allCases { try await self.run(check) }
    }

    /// Runs one check on a fresh store. Throws only when the store cannot be made.
    public func run(_ check: Check) async throws {
        let store = try await self.makeStore()
        let keys = Keys(prefix: self.configuration.keyPrefix)
        try await LiveComponent.with(store, label: "state store", stopTimeout: self.configuration.stopTimeout) {
            await Conformance.record("state store", check.rawValue) {
                switch check {
                case .features: self.checkFeatures(store)
                case .values: try await self.checkValues(store, keys)
                case .missingKeys: try await self.checkMissingKeys(store, keys)
                case .specialKeys: try await self.checkSpecialKeys(store, keys)
                case .bulkGet: try await self.checkBulkGet(store, keys)
                case .etags: try await self.checkETags(store, keys)
                case .firstWrite: try await self.checkFirstWrite(store, keys)
                case .transactions: try await self.checkTransactions(store, keys)
                case .ttl: try await self.checkTTL(store, keys)
                }
            }
        }
    }

    /// Keys of one run: `<prefix>-<run id>-<suffix>`.
    struct Keys {
        let base: String
        init(prefix: String) { self.base = "\(prefix)-\(Conformance.runID())" }
        func callAsFunction(_ suffix: String) -> String { "\(self.base)-\(suffix)" }
    }

    // MARK: Checks

    func checkFeatures(_ store: any StateStore) {
        let expected = self.configuration.expectedFeatures
        #expect(
            store.features == expected,
            "declared features \(store.features.capabilityNames) differ from the expected \(expected.capabilityNames)"
        )
        let transactional = store is any TransactionalStateStore
        #expect(
            store.features.contains(.transactional) == transactional,
            "declares .transactional = \(store.features.contains(.transactional)) but adopts TransactionalStateStore = \(transactional)"
        )
    }

    /// Values every store must return byte for byte (Dapr's `-int`, `-bool`, `-bytes`, `-string-with-json`, …).
    static let valueKinds: [(name: String, value: [UInt8])] = [
        ("json-object", Array(#"{"message":"hello","nested":{"list":[1,2.5,true,null]},"unicode":"ü€"}"#.utf8)),
        ("json-object-spacing", Array("{ \"b\" : 1 ,\n  \"a\":[ ] }".utf8)),
        ("json-string-with-quotes", Array(#""she said \"hi\"""#.utf8)),
        ("string-with-json", Array(#""{\"a\":\"b\"}""#.utf8)),
        ("text-with-quotes", Array(#"he said "hi" & left <b>"#.utf8)),
        ("text", Array("hello world".utf8)),
        ("int", Array("123".utf8)),
        ("float", Array("-1.5e3".utf8)),
        ("bool", Array("true".utf8)),
        ("null", Array("null".utf8)),
        ("binary", [0xFF, 0xFE, 0x00, 0x80, 0xC3, 0x28, 0x01, 0x7F]),
        ("single-byte", [0x01]),
        ("base64-looking-text", Array("aGVsbG8=".utf8)),
        ("empty", []),
        ("large", (0..<(256 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }),
    ]

    func checkValues(_ store: any StateStore, _ keys: Keys) async throws {
        for (name, value) in Self.valueKinds {
            let key = keys("value-\(name)")
            try await store.set(StateSetRequest(key: key, value: value))
            try await self.expectValue(store, key, value, "value \(name)")
        }
        // Overwrite: the last write wins and a successful write changes the ETag.
        let key = keys("overwrite")
        try await store.set(StateSetRequest(key: key, value: Array("1".utf8)))
        let first = try await store.get(StateGetRequest(key: key))
        try await store.set(StateSetRequest(key: key, value: Array(#"{"v":2}"#.utf8)))
        let second = try await self.expectValue(store, key, Array(#"{"v":2}"#.utf8), "overwritten value")
        if self.configuration.expectedFeatures.contains(.etag), let before = first?.etag, let after = second?.etag {
            #expect(before != after, "overwriting \(key) kept ETag \(before): every successful write must change it")
        }
        // Delete, then the key reads as missing.
        for (name, _) in Self.valueKinds {
            let key = keys("value-\(name)")
            try await store.delete(StateDeleteRequest(key: key))
            let item = try await store.get(StateGetRequest(key: key))
            #expect(item == nil, "value \(name): \(key) still readable after delete")
        }
        try await store.delete(StateDeleteRequest(key: key))
    }

    func checkMissingKeys(_ store: any StateStore, _ keys: Keys) async throws {
        let key = keys("never-written")
        let item = try await store.get(StateGetRequest(key: key))
        #expect(item == nil, "get of never-written key \(key) returned \(String(describing: item))")
        let strong = try await store.get(StateGetRequest(key: key, consistency: .strong))
        #expect(strong == nil, "strong get of never-written key \(key) returned \(String(describing: strong))")
        try await store.delete(StateDeleteRequest(key: key))
        // Deleted twice: the second delete finds nothing and still succeeds.
        let deleted = keys("deleted-twice")
        try await store.set(StateSetRequest(key: deleted, value: Array("x".utf8)))
        try await store.delete(StateDeleteRequest(key: deleted))
        try await store.delete(StateDeleteRequest(key: deleted))
        let gone = try await store.get(StateGetRequest(key: deleted))
        #expect(gone == nil, "\(deleted) readable after delete")
    }

    static let specialKeySuffixes = [
        "with space", "ünïcødé-ключ-鍵-🔑", "a/b/c", "/leading-slash", "100%", "%2F%20%", "under_score_",
        "quote'\"key", "back\\slash", "query?x=1&y=2#frag", "semi;colon:colon", "tab\tkey", "app||key", "dots..key",
    ]

    func checkSpecialKeys(_ store: any StateStore, _ keys: Keys) async throws {
        let all = Self.specialKeySuffixes.map { keys($0) }
        for (index, key) in all.enumerated() {
            try await store.set(StateSetRequest(key: key, value: Array("value-\(index)".utf8)))
        }
        for (index, key) in all.enumerated() {
            let item = try await self.expectValue(store, key, Array("value-\(index)".utf8), "special key")
            if let item { #expect(item.key == key, "get(\(key)) answered for key \(item.key)") }
        }
        let bulk = try await store.bulkGet(all.map { StateGetRequest(key: $0) })
        #expect(bulk.map(\.key) == all, "bulk get of special keys answered keys \(bulk.map(\.key))")
        for (index, entry) in bulk.enumerated() where index < all.count {
            let same = entry.item?.value == Array("value-\(index)".utf8)
            #expect(same, "bulk get of special key \(entry.key) returned \(entry.item.map { Conformance.show($0.value) } ?? "nil")")
        }
        for key in all {
            try await store.delete(StateDeleteRequest(key: key))
            let item = try await store.get(StateGetRequest(key: key))
            #expect(item == nil, "special key \(key) readable after delete")
        }
    }

    func checkBulkGet(_ store: any StateStore, _ keys: Keys) async throws {
        let present = [keys("bulk-int"), keys("bulk-bytes"), keys("bulk-struct")]
        let values: [[UInt8]] = [Array("123".utf8), [0x00, 0xFF, 0x10], Array(#"{"message":"bulk"}"#.utf8)]
        for (key, value) in zip(present, values) {
            try await store.set(StateSetRequest(key: key, value: value))
        }
        let missing = keys("bulk-does-not-exist")
        let requested = [present[1], missing, present[0], present[2]]
        let expected: [[UInt8]?] = [values[1], nil, values[0], values[2]]
        let results = try await store.bulkGet(requested.map { StateGetRequest(key: $0) })
        #expect(results.map(\.key) == requested, "bulk get must answer every key in request order; answered \(results.map(\.key))")
        for (entry, value) in zip(results, expected) {
            #expect(entry.error == nil, "bulk get of \(entry.key) reported error \(entry.error ?? "")")
            if let value {
                let same = entry.item?.value == value
                #expect(same, "bulk get of \(entry.key) returned \(entry.item.map { Conformance.show($0.value) } ?? "nil"), expected \(Conformance.show(value))")
                if self.configuration.expectedFeatures.contains(.etag) {
                    let single = try await store.get(StateGetRequest(key: entry.key))
                    #expect(entry.item?.etag != nil && entry.item?.etag == single?.etag, "bulk get ETag of \(entry.key) (\(entry.item?.etag ?? "nil")) differs from get's (\(single?.etag ?? "nil"))")
                }
            } else {
                #expect(entry.item == nil, "bulk get of missing \(entry.key) returned an item")
            }
        }
        let empty = try await store.bulkGet([])
        #expect(empty.isEmpty, "bulk get of no keys returned \(empty.count) items")
        for key in present { try await store.delete(StateDeleteRequest(key: key)) }
    }

    func checkETags(_ store: any StateStore, _ keys: Keys) async throws {
        let stale = self.configuration.staleETag
        guard self.configuration.expectedFeatures.contains(.etag) else {
            let key = keys("etag-undeclared")
            try await store.set(StateSetRequest(key: key, value: Array("1".utf8)))
            await self.expectStateError(.unsupported, "set with an ETag on a store without .etag") {
                try await store.set(StateSetRequest(key: key, value: Array("2".utf8), etag: stale))
            }
            await self.expectStateError(.unsupported, "delete with an ETag on a store without .etag") {
                try await store.delete(StateDeleteRequest(key: key, etag: stale))
            }
            try await self.expectValue(store, key, Array("1".utf8), "value after refused ETag requests")
            try await store.delete(StateDeleteRequest(key: key))
            return
        }
        let key = keys("etag")
        try await store.set(StateSetRequest(key: key, value: Array("1".utf8)))
        let firstItem = try await self.expectValue(store, key, Array("1".utf8), "etag item")
        let first = try #require(firstItem?.etag, "get must return an ETag for a store declaring .etag")
        #expect(!first.isEmpty, "get returned an empty ETag")

        await self.expectStateError(.etagMismatch, "set with a stale ETag") {
            try await store.set(StateSetRequest(key: key, value: Array("2".utf8), etag: stale))
        }
        await self.expectStateError(.etagMismatch, "delete with a stale ETag") {
            try await store.delete(StateDeleteRequest(key: key, etag: stale))
        }
        let untouched = try await self.expectValue(store, key, Array("1".utf8), "value after stale-ETag requests")
        #expect(untouched?.etag == first, "a refused request changed the ETag")

        // An ETag of another key does not match either.
        let other = keys("etag-other")
        try await store.set(StateSetRequest(key: other, value: Array("o".utf8)))
        if let otherETag = try await store.get(StateGetRequest(key: other))?.etag, otherETag != first {
            await self.expectStateError(.etagMismatch, "set with another key's ETag") {
                try await store.set(StateSetRequest(key: key, value: Array("x".utf8), etag: otherETag))
            }
        }
        try await store.delete(StateDeleteRequest(key: other))

        try await store.set(StateSetRequest(key: key, value: Array("3".utf8), etag: first))
        let secondItem = try await self.expectValue(store, key, Array("3".utf8), "value after a set with the current ETag")
        let second = try #require(secondItem?.etag, "no ETag after a successful set")
        #expect(second != first, "a set with the current ETag kept ETag \(first): every successful write must change it")
        await self.expectStateError(.etagMismatch, "set with the previous (now stale) ETag") {
            try await store.set(StateSetRequest(key: key, value: Array("4".utf8), etag: first))
        }

        try await store.set(StateSetRequest(key: key, value: Array("5".utf8)))
        let thirdItem = try await self.expectValue(store, key, Array("5".utf8), "value after a last-write set")
        let third = try #require(thirdItem?.etag, "no ETag after a last-write set")
        #expect(third != second, "a last-write set kept ETag \(second)")

        await self.expectStateError(.etagMismatch, "delete with the previous (now stale) ETag") {
            try await store.delete(StateDeleteRequest(key: key, etag: second))
        }
        try await self.expectValue(store, key, Array("5".utf8), "value after a refused delete")
        try await store.delete(StateDeleteRequest(key: key, etag: third))
        let deleted = try await store.get(StateGetRequest(key: key))
        #expect(deleted == nil, "\(key) readable after a delete with the current ETag")

        let missing = keys("etag-missing")
        await self.expectStateError(.etagMismatch, "set with an ETag on a missing key") {
            try await store.set(StateSetRequest(key: missing, value: Array("1".utf8), etag: stale))
        }
        let created = try await store.get(StateGetRequest(key: missing))
        #expect(created == nil, "a set with an ETag on a missing key created it")
        await self.expectStateError(.etagMismatch, "delete with an ETag on a missing key") {
            try await store.delete(StateDeleteRequest(key: missing, etag: stale))
        }
        await self.expectStateError(.etagMismatch, "set with the ETag of a deleted item") {
            try await store.set(StateSetRequest(key: key, value: Array("6".utf8), etag: third))
        }
    }

    func checkFirstWrite(_ store: any StateStore, _ keys: Keys) async throws {
        let key = keys("first-write")
        guard self.configuration.expectedFeatures.contains(.etag) else {
            await self.expectStateError(.unsupported, "first-write set on a store without .etag") {
                try await store.set(StateSetRequest(key: key, value: Array("1".utf8), concurrency: .firstWrite))
            }
            try await store.delete(StateDeleteRequest(key: key))
            return
        }
        // Without an ETag: only the first write succeeds.
        try await store.set(StateSetRequest(key: key, value: Array("1".utf8), concurrency: .firstWrite))
        await self.expectStateError(.etagMismatch, "second first-write set without an ETag") {
            try await store.set(StateSetRequest(key: key, value: Array("2".utf8), concurrency: .firstWrite))
        }
        let firstItem = try await self.expectValue(store, key, Array("1".utf8), "value after a refused first-write set")
        let first = try #require(firstItem?.etag, "no ETag on a first-write item")

        // With an ETag: behaves like an ETag check.
        try await store.set(StateSetRequest(key: key, value: Array("3".utf8), etag: first, concurrency: .firstWrite))
        let secondItem = try await self.expectValue(store, key, Array("3".utf8), "value after a first-write set with the current ETag")
        let second = try #require(secondItem?.etag, "no ETag after a first-write set")
        #expect(second != first, "a first-write set with the current ETag kept the ETag")
        await self.expectStateError(.etagMismatch, "first-write set with the previous ETag") {
            try await store.set(StateSetRequest(key: key, value: Array("4".utf8), etag: first, concurrency: .firstWrite))
        }
        await self.expectStateError(.etagMismatch, "first-write delete with the previous ETag") {
            try await store.delete(StateDeleteRequest(key: key, etag: first, concurrency: .firstWrite))
        }
        try await store.delete(StateDeleteRequest(key: key, etag: second, concurrency: .firstWrite))
        let gone = try await store.get(StateGetRequest(key: key))
        #expect(gone == nil, "\(key) readable after a first-write delete")
        // Once deleted, the key can be first-written again.
        try await store.set(StateSetRequest(key: key, value: Array("5".utf8), concurrency: .firstWrite))
        try await self.expectValue(store, key, Array("5".utf8), "value first-written after a delete")
        try await store.delete(StateDeleteRequest(key: key))
    }

    func checkTransactions(_ store: any StateStore, _ keys: Keys) async throws {
        guard self.configuration.expectedFeatures.contains(.transactional) else {
            #expect(!(store is any TransactionalStateStore), "adopts TransactionalStateStore without declaring .transactional")
            return
        }
        let transactional = try #require(store as? any TransactionalStateStore, "declares .transactional but does not adopt TransactionalStateStore")
        if let limit = transactional.maxOperationsPerTransaction {
            #expect(limit >= 4, "maxOperationsPerTransaction \(limit) is too small to be useful")
        }
        try await transactional.transact([], metadata: [:])

        // Groups, as in Dapr's suite: each group's upserts are readable, the previous group's deletes gone.
        let int = keys("trx-int"), bytes = keys("trx-bytes"), string = keys("trx-string"), doomed = keys("trx-to-be-deleted")
        try await transactional.transact(
            [
                .set(StateSetRequest(key: int, value: Array("42".utf8))),
                .set(StateSetRequest(key: bytes, value: [0xFF, 0x00, 0x01])),
                .set(StateSetRequest(key: string, value: Array(#""hello""#.utf8))),
                .set(StateSetRequest(key: doomed, value: Array("true".utf8))),
            ],
            metadata: ["partitionKey": "myPartition"]
        )
        try await self.expectValue(store, int, Array("42".utf8), "transaction group 1")
        try await self.expectValue(store, bytes, [0xFF, 0x00, 0x01], "transaction group 1")
        try await self.expectValue(store, string, Array(#""hello""#.utf8), "transaction group 1")
        try await self.expectValue(store, doomed, Array("true".utf8), "transaction group 1")
        let structKey = keys("trx-struct")
        try await transactional.transact(
            [.set(StateSetRequest(key: structKey, value: Array(#"{"message":"trx"}"#.utf8))), .delete(StateDeleteRequest(key: doomed))],
            metadata: ["partitionKey": "myPartition"]
        )
        try await self.expectValue(store, structKey, Array(#"{"message":"trx"}"#.utf8), "transaction group 2")
        let doomedItem = try await store.get(StateGetRequest(key: doomed))
        #expect(doomedItem == nil, "transaction group 2 did not delete \(doomed)")

        // Deleting a missing key inside a transaction is fine.
        try await transactional.transact([.delete(StateDeleteRequest(key: keys("trx-never-existed")))], metadata: [:])

        // Order within a transaction (Dapr's transaction-order case).
        let key1 = keys("order-1"), key2 = keys("order-2"), key3 = keys("order-3")
        try await store.set(StateSetRequest(key: key1, value: Array(#""value1""#.utf8)))
        try await store.delete(StateDeleteRequest(key: key2))
        try await store.delete(StateDeleteRequest(key: key3))
        try await transactional.transact(
            [
                .delete(StateDeleteRequest(key: key1)),
                .set(StateSetRequest(key: key2, value: Array(#""value2""#.utf8))),
                .delete(StateDeleteRequest(key: key2)),
                .set(StateSetRequest(key: key3, value: Array(#""value3""#.utf8))),
            ],
            metadata: [:]
        )
        let order1 = try await store.get(StateGetRequest(key: key1))
        let order2 = try await store.get(StateGetRequest(key: key2))
        #expect(order1 == nil, "transaction order: \(key1) survives its delete")
        #expect(order2 == nil, "transaction order: \(key2) survives a delete that follows its upsert")
        try await self.expectValue(store, key3, Array(#""value3""#.utf8), "transaction order")
        // Two upserts of one key: the later wins; delete then upsert: the upsert wins.
        try await transactional.transact(
            [
                .set(StateSetRequest(key: key1, value: Array("1".utf8))),
                .set(StateSetRequest(key: key1, value: Array("2".utf8))),
                .delete(StateDeleteRequest(key: key3)),
                .set(StateSetRequest(key: key3, value: Array("3".utf8))),
            ],
            metadata: [:]
        )
        try await self.expectValue(store, key1, Array("2".utf8), "transaction order (upsert, upsert)")
        try await self.expectValue(store, key3, Array("3".utf8), "transaction order (delete, upsert)")

        guard self.configuration.expectedFeatures.contains(.etag) else { return }

        // All or nothing: a stale ETag in the last operation undoes the earlier ones.
        let fresh = keys("atomic-fresh"), existing = keys("atomic-existing"), guarded = keys("atomic-guarded")
        try await store.set(StateSetRequest(key: existing, value: Array("old".utf8)))
        try await store.set(StateSetRequest(key: guarded, value: Array("guarded".utf8)))
        let existingETag = try await store.get(StateGetRequest(key: existing))?.etag
        let guardedETag = try await store.get(StateGetRequest(key: guarded))?.etag
        await self.expectStateError(.etagMismatch, "transaction whose last operation has a stale ETag") {
            try await transactional.transact(
                [
                    .set(StateSetRequest(key: fresh, value: Array("new".utf8))),
                    .set(StateSetRequest(key: existing, value: Array("new".utf8))),
                    .delete(StateDeleteRequest(key: existing)),
                    .set(StateSetRequest(key: existing, value: Array("newer".utf8))),
                    .delete(StateDeleteRequest(key: guarded, etag: self.configuration.staleETag)),
                ],
                metadata: [:]
            )
        }
        let freshItem = try await store.get(StateGetRequest(key: fresh))
        #expect(freshItem == nil, "a failed transaction created \(fresh): transactions must be all or nothing")
        let existingItem = try await self.expectValue(store, existing, Array("old".utf8), "item after a failed transaction")
        #expect(existingItem?.etag == existingETag, "a failed transaction changed the ETag of \(existing)")
        let guardedItem = try await self.expectValue(store, guarded, Array("guarded".utf8), "item after a failed transaction")
        #expect(guardedItem?.etag == guardedETag, "a failed transaction changed the ETag of \(guarded)")

        await self.expectStateError(.etagMismatch, "transaction with a stale ETag on an upsert") {
            try await transactional.transact(
                [
                    .delete(StateDeleteRequest(key: guarded)),
                    .set(StateSetRequest(key: existing, value: Array("x".utf8), etag: self.configuration.staleETag)),
                ],
                metadata: [:]
            )
        }
        try await self.expectValue(store, guarded, Array("guarded".utf8), "item deleted by a failed transaction")

        await self.expectStateError(.etagMismatch, "transaction with a first-write upsert of an existing key") {
            try await transactional.transact(
                [
                    .set(StateSetRequest(key: fresh, value: Array("new".utf8))),
                    .set(StateSetRequest(key: existing, value: Array("x".utf8), concurrency: .firstWrite)),
                ],
                metadata: [:]
            )
        }
        let freshAgain = try await store.get(StateGetRequest(key: fresh))
        #expect(freshAgain == nil, "a failed first-write transaction created \(fresh)")

        // Correct ETags inside a transaction succeed and change the ETag.
        let current = try #require(existingETag, "no ETag for \(existing)")
        try await transactional.transact(
            [
                .set(StateSetRequest(key: existing, value: Array("tx".utf8), etag: current)),
                .delete(StateDeleteRequest(key: guarded, etag: guardedETag)),
            ],
            metadata: [:]
        )
        let updated = try await self.expectValue(store, existing, Array("tx".utf8), "item after a transaction with current ETags")
        #expect(updated?.etag != nil && updated?.etag != current, "a transactional set kept the ETag")
        let guardedGone = try await store.get(StateGetRequest(key: guarded))
        #expect(guardedGone == nil, "a transactional delete with the current ETag left \(guarded)")

        for key in [int, bytes, string, structKey, key1, key3, existing] {
            try await store.delete(StateDeleteRequest(key: key))
        }
    }

    func checkTTL(_ store: any StateStore, _ keys: Keys) async throws {
        let ttl = self.configuration.ttl
        guard self.configuration.expectedFeatures.contains(.ttl) else {
            let key = keys("ttl-undeclared")
            await self.expectStateError(.unsupported, "set with a TTL on a store without .ttl") {
                try await store.set(StateSetRequest(key: key, value: Array("1".utf8), ttl: ttl))
            }
            let item = try await store.get(StateGetRequest(key: key))
            #expect(item == nil, "a refused TTL set stored the item anyway")
            return
        }
        let expiring = keys("ttl-expiring"), cleared = keys("ttl-cleared"), zero = keys("ttl-zero")
        let negative = keys("ttl-negative"), plain = keys("ttl-none"), extended = keys("ttl-extended")
        let before = self.configuration.now()
        try await store.set(StateSetRequest(key: expiring, value: Array("expiring".utf8), ttl: ttl))
        try await store.set(StateSetRequest(key: cleared, value: Array("1".utf8), ttl: ttl))
        try await store.set(StateSetRequest(key: cleared, value: Array("cleared".utf8)))
        try await store.set(StateSetRequest(key: zero, value: Array("zero".utf8), ttl: .zero))
        try await store.set(StateSetRequest(key: negative, value: Array("negative".utf8), ttl: .seconds(-1)))
        try await store.set(StateSetRequest(key: plain, value: Array("plain".utf8)))
        try await store.set(StateSetRequest(key: extended, value: Array("1".utf8), ttl: ttl))
        try await store.set(StateSetRequest(key: extended, value: Array("extended".utf8), ttl: .seconds(3600)))
        let after = self.configuration.now()

        let item = try await self.expectValue(store, expiring, Array("expiring".utf8), "item with a TTL, right after its set")
        let expiringETag = item?.etag
        if let item {
            self.expectExpireTime(item, between: before.adding(ttl - .seconds(2)), and: after.adding(ttl + .seconds(2)))
        }
        let bulk = try await store.bulkGet([StateGetRequest(key: expiring)])
        if let entry = bulk.first?.item {
            self.expectExpireTime(entry, between: before.adding(ttl - .seconds(2)), and: after.adding(ttl + .seconds(2)))
        }
        if let item = try await self.expectValue(store, extended, Array("extended".utf8), "item whose TTL was extended") {
            self.expectExpireTime(item, between: before.adding(.seconds(3598)), and: after.adding(.seconds(3602)))
        }
        for (key, value, what) in [
            (cleared, "cleared", "an item set again without a TTL"), (zero, "zero", "an item set with a zero TTL"),
            (negative, "negative", "an item set with a negative TTL"), (plain, "plain", "an item set without a TTL"),
        ] {
            if let item = try await self.expectValue(store, key, Array(value.utf8), what) {
                #expect(item.metadata["ttlExpireTime"] == nil, "\(what) reports ttlExpireTime \(item.metadata["ttlExpireTime"] ?? "")")
            }
        }

        try await self.configuration.advanceTime(ttl)
        var gone = try await store.get(StateGetRequest(key: expiring)) == nil
        var waited = Duration.zero
        while !gone && waited < .seconds(3) {
            try await self.configuration.advanceTime(.milliseconds(200))
            waited += .milliseconds(200)
            gone = try await store.get(StateGetRequest(key: expiring)) == nil
        }
        #expect(gone, "an item with a TTL of \(ttl) was still readable \(ttl + waited) later")
        let bulkAfter = try await store.bulkGet([StateGetRequest(key: expiring)])
        #expect(bulkAfter.first?.item == nil, "bulk get returned an expired item")

        for (key, value, what) in [
            (cleared, "cleared", "an item set again without a TTL"), (zero, "zero", "an item set with a zero TTL"),
            (negative, "negative", "an item set with a negative TTL"), (plain, "plain", "an item set without a TTL"),
            (extended, "extended", "an item whose TTL was extended"),
        ] {
            try await self.expectValue(store, key, Array(value.utf8), "\(what), after the short TTL passed")
        }

        if self.configuration.expectedFeatures.contains(.etag) {
            // An expired item is a missing item.
            if let expiringETag {
                await self.expectStateError(.etagMismatch, "set with the ETag of an expired item") {
                    try await store.set(StateSetRequest(key: expiring, value: Array("again".utf8), etag: expiringETag))
                }
            }
            try await store.set(StateSetRequest(key: expiring, value: Array("again".utf8), concurrency: .firstWrite))
            try await self.expectValue(store, expiring, Array("again".utf8), "first-write set over an expired item")
        }
        for key in [expiring, cleared, zero, negative, plain, extended] {
            try await store.delete(StateDeleteRequest(key: key))
        }
    }

    // MARK: Expectations

    @discardableResult
    func expectValue(_ store: any StateStore, _ key: String, _ expected: [UInt8], _ what: String) async throws -> StateItem? {
        guard let item = try await store.get(StateGetRequest(key: key)) else {
            Issue.record("\(what): get(\(key)) returned nil, expected \(Conformance.show(expected))")
            return nil
        }
        // Compared outside #expect: a failed comparison of large arrays makes swift-testing diff them, slowly.
        let same = item.value == expected
        #expect(same, "\(what): get(\(key)) returned \(Conformance.show(item.value)), expected \(Conformance.show(expected))")
        return item
    }

    func expectExpireTime(_ item: StateItem, between earliest: Timestamp, and latest: Timestamp) {
        guard let text = item.metadata["ttlExpireTime"] else {
            Issue.record("\(item.key) has a TTL but its metadata has no ttlExpireTime")
            return
        }
        guard let expires = Timestamp(rfc3339: text) else {
            Issue.record("ttlExpireTime of \(item.key) is not RFC 3339: \(text)")
            return
        }
        #expect(
            expires >= earliest && expires <= latest,
            "ttlExpireTime of \(item.key) is \(text), expected between \(earliest.rfc3339) and \(latest.rfc3339)"
        )
    }

    func expectStateError(_ code: StateStoreError.Code, _ what: String, _ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("\(what): succeeded, expected StateStoreError(.\(code))")
        } catch let error as StateStoreError {
            #expect(error.code == code, "\(what): failed with StateStoreError(.\(error.code)): \(error), expected .\(code)")
        } catch {
            Issue.record("\(what): failed with \(type(of: error)): \(error), expected StateStoreError(.\(code))")
        }
    }
}
