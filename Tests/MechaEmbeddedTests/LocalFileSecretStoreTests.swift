import MechaCore
import Testing

@testable import MechaEmbedded

@Suite("secretstores.local.file")
struct LocalFileSecretStoreTests {
    private static let context = ComponentContext(appID: "test", dataDirectory: "/tmp", instanceID: "test")

    private static func make(_ metadata: [String: String]) async throws -> LocalFileSecretStore {
        let spec = ComponentSpec(
            name: "files",
            type: ComponentType(.secretstores, "local.file"),
            metadata: ComponentMetadata(metadata)
        )
        let component = try await LocalFileSecretStoreFactory().make(spec: spec, context: self.context)
        return try #require(component as? LocalFileSecretStore)
    }

    private static let nested = """
        {
          "plain": "text",
          "db": {"user": "admin", "conn": {"host": "h", "port": 5432}},
          "list": ["a", {"deep": "b"}],
          "n": 42, "f": 1.5, "yes": true, "no": false, "none": null,
          "empty": {}
        }
        """

    @Test func factoryType() {
        #expect(LocalFileSecretStoreFactory().type == ComponentType(.secretstores, "local.file"))
        #expect(LocalFileSecretStoreFactory().type.description == "secretstores.local.file")
    }

    @Test func flattensNestedValuesWithTheDefaultSeparator() async throws {
        try await ScratchFiles.withDirectory("localfile") { directory async throws in
            ScratchFiles.write(directory + "/secrets.json", Self.nested)
            let store = try await Self.make(["secretsFile": directory + "/secrets.json"])
            #expect(try await store.secret(named: "plain", metadata: [:]) == ["plain": "text"])
            #expect(try await store.secret(named: "db:user", metadata: [:]) == ["db:user": "admin"])
            #expect(try await store.secret(named: "db:conn:host", metadata: [:]) == ["db:conn:host": "h"])
            #expect(try await store.secret(named: "list:0", metadata: [:]) == ["list:0": "a"])
            #expect(try await store.secret(named: "list:1:deep", metadata: [:]) == ["list:1:deep": "b"])
            // Deliberate difference: JSON text, not Go's %!s(float64=42).
            #expect(try await store.secret(named: "db:conn:port", metadata: [:]) == ["db:conn:port": "5432"])
            #expect(try await store.secret(named: "n", metadata: [:]) == ["n": "42"])
            #expect(try await store.secret(named: "f", metadata: [:]) == ["f": "1.5"])
            #expect(try await store.secret(named: "yes", metadata: [:]) == ["yes": "true"])
            #expect(try await store.secret(named: "no", metadata: [:]) == ["no": "false"])
            #expect(try await store.secret(named: "none", metadata: [:]) == ["none": ""])
            #expect(store.capabilities.isEmpty)

            let bulk = try await store.bulkSecrets(metadata: [:])
            #expect(bulk.count == 11)
            #expect(bulk["db:conn:host"] == ["db:conn:host": "h"])
            #expect(bulk["db"] == nil)
            #expect(bulk["empty"] == nil)
        }
    }

    @Test func objectKeysAndUnknownNamesAreNotFound() async throws {
        try await ScratchFiles.withDirectory("localfile") { directory async throws in
            ScratchFiles.write(directory + "/secrets.json", Self.nested)
            let store = try await Self.make(["secretsFile": directory + "/secrets.json"])
            for name in ["db", "missing", "list"] {
                let error = await #expect(throws: SecretStoreError.self) {
                    try await store.secret(named: name, metadata: [:])
                }
                #expect(error?.code == .notFound)
                #expect(error?.reason == "secret \(name) not found")
            }
        }
    }

    @Test func customSeparator() async throws {
        try await ScratchFiles.withDirectory("localfile") { directory async throws in
            ScratchFiles.write(directory + "/secrets.json", Self.nested)
            let store = try await Self.make(["secretsFile": directory + "/secrets.json", "nestedSeparator": "."])
            #expect(try await store.secret(named: "db.conn.host", metadata: [:]) == ["db.conn.host": "h"])
            await #expect(throws: SecretStoreError.self) { try await store.secret(named: "db:conn:host", metadata: [:]) }
        }
    }

    @Test func multiValuedKeepsTopLevelStringsAndObjects() async throws {
        try await ScratchFiles.withDirectory("localfile") { directory async throws in
            ScratchFiles.write(directory + "/secrets.json", Self.nested)
            let store = try await Self.make(["secretsFile": directory + "/secrets.json", "multiValued": "true"])
            #expect(try await store.secret(named: "plain", metadata: [:]) == ["plain": "text"])
            #expect(
                try await store.secret(named: "db", metadata: [:])
                    == ["user": "admin", "conn:host": "h", "conn:port": "5432"]
            )
            #expect(try await store.secret(named: "empty", metadata: [:]) == [:])
            for dropped in ["n", "f", "yes", "none", "list", "db:user"] {
                await #expect(throws: SecretStoreError.self) { try await store.secret(named: dropped, metadata: [:]) }
            }
            #expect(store.capabilities == ["MULTIPLE_KEY_VALUES_PER_SECRET"])
            let bulk = try await store.bulkSecrets(metadata: [:])
            #expect(Set(bulk.keys) == ["plain", "db", "empty"])
            #expect(bulk["db"]?["conn:port"] == "5432")
        }
    }

    @Test func multiValuedUsesTheSeparatorInsideObjects() async throws {
        let document = try JSONValue(parsing: #"{"app":{"db":{"user":"u"},"keys":["k0","k1"]}}"#)
        let store = try LocalFileSecretStore(document: document, nestedSeparator: "/", multiValued: true)
        let bulk = try await store.bulkSecrets(metadata: [:])
        #expect(bulk == ["app": ["db/user": "u", "keys/0": "k0", "keys/1": "k1"]])
    }

    @Test func duplicateJSONKeysKeepTheLastValueAndFlattenedClashesTheFirst() async throws {
        let document = try JSONValue(parsing: #"{"a":"first","a":"second","b:c":"flat","b":{"c":"nested"}}"#)
        let store = try LocalFileSecretStore(document: document)
        let bulk = try await store.bulkSecrets(metadata: [:])
        #expect(bulk["a"] == ["a": "second"])
        #expect(bulk["b:c"] == ["b:c": "flat"])
    }

    @Test func relativePathResolvesAgainstTheCurrentDirectory() async throws {
        try await ScratchFiles.withDirectory("localfile") { directory async throws in
            ScratchFiles.write(directory + "/secrets.json", #"{"k":"v"}"#)
            let relative = ScratchFiles.relativeToCurrentDirectory(directory + "/secrets.json")
            #expect(!relative.hasPrefix("/"))
            let store = try await Self.make(["secretsFile": relative])
            #expect(try await store.secret(named: "k", metadata: [:]) == ["k": "v"])
        }
    }

    @Test func missingSecretsFileMetadataNamesTheKey() async throws {
        for metadata in [[:], ["secretsFile": ""], ["secretsFile": "  "]] as [[String: String]] {
            let error = await #expect(throws: ComponentConfigurationError.self) { try await Self.make(metadata) }
            #expect(error?.key == "secretsFile")
        }
    }

    @Test func unreadableOrInvalidFilesFailInit() async throws {
        try await ScratchFiles.withDirectory("localfile") { directory async throws in
            let missing = await #expect(throws: ComponentConfigurationError.self) {
                try await Self.make(["secretsFile": directory + "/nope.json"])
            }
            #expect(missing?.key == "secretsFile")
            #expect(missing?.reason.contains("no such file or directory") == true)

            ScratchFiles.write(directory + "/bad.json", "{not json")
            let invalid = await #expect(throws: ComponentConfigurationError.self) {
                try await Self.make(["secretsFile": directory + "/bad.json"])
            }
            #expect(invalid?.key == "secretsFile")

            ScratchFiles.write(directory + "/array.json", #"["a","b"]"#)
            let notObject = await #expect(throws: ComponentConfigurationError.self) {
                try await Self.make(["secretsFile": directory + "/array.json"])
            }
            #expect(notObject?.reason.contains("JSON object") == true)

            ScratchFiles.write(directory + "/ok.json", "{}")
            let badBool = await #expect(throws: ComponentConfigurationError.self) {
                try await Self.make(["secretsFile": directory + "/ok.json", "multiValued": "maybe"])
            }
            #expect(badBool?.key == "multiValued")
        }
    }

    @Test func metadataKeysAreCaseInsensitive() async throws {
        try await ScratchFiles.withDirectory("localfile") { directory async throws in
            ScratchFiles.write(directory + "/s.json", #"{"x":{"y":"z"}}"#)
            let store = try await Self.make(["SECRETSFILE": directory + "/s.json", "NestedSeparator": "_"])
            #expect(try await store.secret(named: "x_y", metadata: [:]) == ["x_y": "z"])
        }
    }
}
