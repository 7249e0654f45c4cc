import Foundation
import MechaCore
import MechaCrypto
import MechaEmbedded
import Testing

/// `crypto.dapr.localstorage` and `crypto.dapr.jwks`: configuration errors name the field, keys
/// load in every form Dapr accepts, and the scheme works end to end through a component.
@Suite struct CryptoComponentsTests {
    static func write(_ directory: String, _ name: String, _ bytes: [UInt8]) {
        _ = FileManager.default.createFile(atPath: directory + "/" + name, contents: Data(bytes))
    }

    static let jwk = #"{"kty":"oct","kid":"k1","k":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}"#

    @Test func localStorageNeedsAnExistingFolder() throws {
        let directory = ScratchFiles.makeDirectory("crypto-config")
        defer { ScratchFiles.removeTree(directory) }
        do {
            #expect(throws: ComponentConfigurationError(key: "path", reason: "metadata property 'path' is required")) {
                try LocalStorageCrypto(path: "")
            }
            #expect(throws: ComponentConfigurationError(key: "path", reason: "could not stat path '\(directory)/absent': no such file or directory")) {
                try LocalStorageCrypto(path: directory + "/absent")
            }
            Self.write(directory, "file", [1])
            #expect(throws: ComponentConfigurationError(key: "path", reason: "path '\(directory)/file' is not a directory")) {
                try LocalStorageCrypto(path: directory + "/file")
            }
            // Relative to the working directory.
            let parent = URL(fileURLWithPath: directory).deletingLastPathComponent().path
            let name = URL(fileURLWithPath: directory).lastPathComponent
            #expect(try LocalStorageCrypto(path: "./" + name, workingDirectory: parent).folder == directory)
        }
    }

    @Test func localStorageReadsKeyFiles() async throws {
        try await ScratchFiles.withDirectory("crypto-keys") { directory in
            let raw: [UInt8] = (0..<32).map { UInt8(255 - $0) }
            Self.write(directory, "symmetric-key-256", raw)
            Self.write(directory, "key.json", Array(Self.jwk.utf8))
            try FileManager.default.createDirectory(atPath: directory + "/nested", withIntermediateDirectories: true)
            Self.write(directory, "nested/inner", Array(Base64.encode(raw).utf8))
            let store = try LocalStorageCrypto(path: directory + "/")

            guard case .symmetric(let bytes) = try await store.retrieveKey("symmetric-key-256").material else { Issue.record("not symmetric"); return }
            #expect(bytes == raw)
            guard case .symmetric(let nested) = try await store.retrieveKey("nested/inner").material else { Issue.record("not symmetric"); return }
            #expect(nested == raw)
            #expect(try await store.retrieveKey("key.json").keyID == "k1")

            await #expect {
                try await store.retrieveKey("../outside")
            } throws: { "\($0)" == "invalid key path: cannot contain '..'" }
            await #expect {
                try await store.retrieveKey("missing")
            } throws: { "\($0)" == "failed to load key 'missing': open \(directory)/missing: no such file or directory" }
            // A symmetric key has no public half to show.
            await #expect(throws: CryptoKeyError.keyNotFound) { try await store.getKey(name: "symmetric-key-256") }
        }
    }

    @Test func schemeRoundTripThroughAComponent() async throws {
        try await ScratchFiles.withDirectory("crypto-scheme") { directory in
            Self.write(directory, "aes", (0..<32).map { UInt8($0) })
            let store = try LocalStorageCrypto(path: directory)
            let fileKey = FileKey.random(cipher: .aesGCM)
            let wrapped = try await store.wrapKey(plaintextKey: fileKey.keyBytes, algorithm: "A256KW", keyName: "aes", nonce: [], associatedData: [])
            #expect(wrapped.ciphertext.count == 40)
            let unwrapped = try await store.unwrapKey(wrappedKey: wrapped.ciphertext, algorithm: "A256KW", keyName: "aes", nonce: [], tag: [], associatedData: [])
            #expect(unwrapped == fileKey.keyBytes)
            await #expect {
                try await store.wrapKey(plaintextKey: fileKey.keyBytes, algorithm: "RSA-OAEP-256", keyName: "aes", nonce: [], associatedData: [])
            } throws: { "\($0)" == "failed to encrypt data: key type mismatch" }
        }
    }

    @Test func jwksFromInlineBase64AndFile() async throws {
        let inline = try await JWKSCrypto.load(jwks: #"{"keys":[\#(Self.jwk)]}"#)
        #expect(inline.source == .inline)
        #expect(try await inline.retrieveKey("k1").isSymmetric)
        await #expect(throws: CryptoKeyError.keyNotFound) { try await inline.retrieveKey("k2") }

        let encoded = try await JWKSCrypto.load(jwks: Base64.encode(Array(#"{"keys":[\#(Self.jwk)]}"#.utf8)))
        #expect(try await encoded.retrieveKey("k1").isSymmetric)

        try await ScratchFiles.withDirectory("crypto-jwks") { directory in
            Self.write(directory, "jwks.json", Array(#"{"keys":[\#(Self.jwk)]}"#.utf8))
            let file = try await JWKSCrypto.load(jwks: directory + "/jwks.json")
            #expect(file.source == .file(directory + "/jwks.json"))
            #expect(try await file.retrieveKey("k1").keyID == "k1")
        }

        await #expect(throws: ComponentConfigurationError.self) { try await JWKSCrypto.load(jwks: "not json") }
        await #expect(throws: ComponentConfigurationError.self) { try await JWKSCrypto.load(jwks: "http://127.0.0.1:1/jwks", requestTimeout: .seconds(1)) }
    }

    @Test func factoriesReadMetadata() async throws {
        let missing = ComponentSpec.cryptoTest(name: "c", type: ComponentType(.crypto, "dapr.localstorage"), metadata: [:])
        await #expect(throws: ComponentConfigurationError.self) {
            try await LocalStorageCryptoFactory().make(spec: missing, context: .cryptoTest)
        }
        let badTimeout = ComponentSpec.cryptoTest(name: "j", type: ComponentType(.crypto, "dapr.jwks"), metadata: ["jwks": Self.jwk, "requestTimeout": "soon"])
        await #expect(throws: ComponentConfigurationError.self) {
            try await JWKSCryptoFactory().make(spec: badTimeout, context: .cryptoTest)
        }
        let good = ComponentSpec.cryptoTest(name: "j", type: ComponentType(.crypto, "dapr.jwks"), metadata: ["jwks": Self.jwk, "minRefreshInterval": "0"])
        let component = try await JWKSCryptoFactory().make(spec: good, context: .cryptoTest)
        #expect((component as? JWKSCrypto)?.minRefreshInterval == .seconds(600))
    }
}

extension ComponentSpec {
    fileprivate static func cryptoTest(name: String, type: ComponentType, metadata: [String: String]) -> ComponentSpec {
        ComponentSpec(name: name, type: type, version: "v1", metadata: ComponentMetadata(metadata))
    }
}

extension ComponentContext {
    fileprivate static let cryptoTest = ComponentContext(appID: "test", dataDirectory: "/tmp", instanceID: "test")
}
