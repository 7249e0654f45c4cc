public import MechaCore
import Testing

/// The secret store conformance suite (Dapr components-contrib's `tests/conformance/secretstores`):
/// known secrets read back exactly, one by one and in bulk; a missing secret is refused with
/// `SecretStoreError(.notFound)` — or, for stores that answer an empty value instead (Dapr's
/// `local.env`), with empty values, as `missingSecretThrows` says.
///
/// ```swift
/// try await SecretStoreConformance(
///     configuration: .init(knownSecrets: ["conftestsecret": ["conftestsecret": "abcd"]]),
///     makeStore: { try await factory.make(spec: spec, context: context) as! any SecretStore }
/// ).run()
/// ```
public struct SecretStoreConformance: Sendable {
    public struct Configuration: Sendable {
        /// Secrets the store holds (the test sets them up), by name, with their exact values.
        public var knownSecrets: [String: [String: String]]
        /// Whether reading a secret that does not exist throws `SecretStoreError(.notFound)` (the
        /// contract) or answers empty values (Dapr's env store).
        public var missingSecretThrows: Bool
        /// A name no secret has.
        public var missingSecretName: String
        /// Whether every secret bulk answers (not only the known ones) must read the same through
        /// `secret(named:)`. Turn off for stores whose content may change while the test runs (the
        /// process environment).
        public var verifiesBulkAgainstGet: Bool

        public init(
            knownSecrets: [String: [String: String]],
            missingSecretThrows: Bool = true,
            missingSecretName: String = "conformance-missing-\(RandomID.uuid())",
            verifiesBulkAgainstGet: Bool = true
        ) {
            self.knownSecrets = knownSecrets
            self.missingSecretThrows = missingSecretThrows
            self.missingSecretName = missingSecretName
            self.verifiesBulkAgainstGet = verifiesBulkAgainstGet
        }
    }

    public enum Check: String, CaseIterable, Sendable, CustomStringConvertible {
        /// Each known secret reads back as exactly its map.
        case get
        /// A missing secret is refused (or empty, per configuration).
        case missing
        /// Bulk includes every known secret exactly (others allowed) and agrees with `get`.
        case bulk

        public var description: String { self.rawValue }
    }

    /// What this run expects of the component.
    public let configuration: Configuration
    let makeStore: @Sendable () async throws -> any SecretStore

    public init(configuration: Configuration, makeStore: @escaping @Sendable () async throws -> any SecretStore) {
        self.configuration = configuration
        self.makeStore = makeStore
    }

    public func run() async throws {
        for check in Check.allCases { try await self.run(check) }
    }

    /// Runs one check on a fresh store. Throws only when the store cannot be made.
    public func run(_ check: Check) async throws {
        let store = try await self.makeStore()
        try await LiveComponent.with(store, label: "secret store", stopTimeout: .seconds(5)) {
            await Conformance.record("secret store", check.rawValue) {
                switch check {
                case .get: try await self.checkGet(store)
                case .missing: try await self.checkMissing(store)
                case .bulk: try await self.checkBulk(store)
                }
            }
        }
    }

    func checkGet(_ store: any SecretStore) async throws {
        #expect(!self.configuration.knownSecrets.isEmpty, "the configuration names no known secrets: nothing to check")
        for (name, expected) in self.configuration.knownSecrets.sorted(by: { $0.key < $1.key }) {
            let values = try await store.secret(named: name, metadata: [:])
            #expect(values == expected, "secret \(name) read as \(values), expected exactly \(expected)")
        }
    }

    func checkMissing(_ store: any SecretStore) async throws {
        let name = self.configuration.missingSecretName
        do {
            let values = try await store.secret(named: name, metadata: [:])
            if self.configuration.missingSecretThrows {
                Issue.record("missing secret \(name) read as \(values), expected SecretStoreError(.notFound)")
            } else {
                #expect(values.values.allSatisfy { $0.isEmpty }, "missing secret \(name) read as \(values), expected empty values")
                #expect(values.keys.allSatisfy { $0 == name }, "missing secret \(name) read with other keys: \(values.keys.sorted())")
            }
        } catch let error as SecretStoreError {
            if self.configuration.missingSecretThrows {
                #expect(error.code == .notFound, "missing secret \(name) failed with \(error.code): \(error), expected .notFound")
            } else {
                Issue.record("missing secret \(name) threw \(error); this store is configured to answer empty values")
            }
        } catch {
            Issue.record("missing secret \(name) threw \(type(of: error)): \(error), expected \(self.configuration.missingSecretThrows ? "SecretStoreError(.notFound)" : "empty values")")
        }
    }

    func checkBulk(_ store: any SecretStore) async throws {
        let bulk = try await store.bulkSecrets(metadata: [:])
        for (name, expected) in self.configuration.knownSecrets.sorted(by: { $0.key < $1.key }) {
            #expect(bulk[name] == expected, "bulk secrets answer \(name) as \(bulk[name].map { "\($0)" } ?? "absent"), expected \(expected)")
        }
        #expect(bulk[self.configuration.missingSecretName] == nil, "bulk secrets include the missing secret \(self.configuration.missingSecretName)")
        // Bulk and single reads agree (a sample, in a stable order).
        guard self.configuration.verifiesBulkAgainstGet else { return }
        for (name, values) in bulk.sorted(by: { $0.key < $1.key }).prefix(50) {
            let single = try await store.secret(named: name, metadata: [:])
            #expect(single == values, "secret \(name) reads as \(single) but bulk answers \(values)")
        }
    }
}
