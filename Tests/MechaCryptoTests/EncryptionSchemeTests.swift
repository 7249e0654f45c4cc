import Foundation
import MechaCore
import Testing

@testable import MechaCrypto

/// Byte compatibility with daprd's `dapr.io/enc/v1`: each fixture is rebuilt from the manifest Go
/// wrote for dapr/kit's `schemes/enc/v1` test messages (pass-through key wrap: the manifest's `wfk`
/// is the file key itself) and must hash to what Go wrote (`GoVectors`).
@Suite struct EncryptionSchemeTests {
    struct DigestMismatch: Error {}

    static func fixture(_ name: String) throws -> [UInt8] {
        let vector = try #require(GoVectors.all[name])
        let manifest = try Manifest(decoding: Array(vector.manifest.utf8))
        let fileKey = FileKey(keyBytes: manifest.wrappedFileKey, noncePrefix: manifest.noncePrefix, cipher: manifest.cipher)
        var (output, payload) = EncryptionScheme.start(fileKey: fileKey, manifest: manifest)
        output += try payload.feed(try #require(Self.plaintexts[name]))
        output += try payload.finish()
        guard output.count == vector.length, GoVectors.hex(output) == vector.sha256 else { throw DigestMismatch() }
        return output
    }

    static func repeated(_ pattern: [UInt8], _ times: Int) -> [UInt8] {
        Array((0..<times).map { _ in pattern }.joined())
    }

    /// The plaintexts of kit's scheme tests.
    static let plaintexts: [String: [UInt8]] = [
        "single-segment": Array("hello world".utf8),
        "multi-segment": repeated([1, 2, 3, 4, 5, 6, 7, 8, 9, 0], 12 << 10),
        "one-full-segment": repeated([1, 2, 3, 4, 5, 6, 7, 8], 8 << 10),
        "two-full-segments": repeated([1, 2, 3, 4, 5, 6, 7, 8], 16 << 10),
        "large-file": repeated([1, 2, 3, 4, 5, 6, 7, 8, 9, 0], 30 << 10),
        "empty-message": [],
        "single-segment-no-key-name": Array("hello world".utf8),
    ]

    static func passThrough(_ manifest: Manifest) -> [UInt8]? { manifest.wrappedFileKey }

    @Test(arguments: ["single-segment", "multi-segment", "one-full-segment", "two-full-segments", "large-file", "empty-message"])
    func decryptsGoCiphertexts(name: String) throws {
        let message = try Self.fixture(name)
        #expect(try EncryptionScheme.decrypt(message, unwrap: Self.passThrough) == Self.plaintexts[name])
    }

    @Test(arguments: [1, 7, 512, 65_552, 100_000])
    func decryptsGoCiphertextsFedInChunks(chunk: Int) throws {
        let message = try Self.fixture("large-file")
        var reader = HeaderReader()
        var offset = 0
        var header: HeaderReader.Header?
        while header == nil {
            let end = min(offset + chunk, message.count)
            if case .complete(let complete) = try reader.feed(message[offset..<end]) { header = complete }
            offset = end
        }
        let manifest = try Manifest(decoding: header!.manifestLine)
        #expect(manifest.keyName == "mykey")
        #expect(manifest.keyWrapAlgorithm == .a256kw)
        var stream = try EncryptionScheme.open(header: header!, manifest: manifest, fileKey: manifest.wrappedFileKey)
        var output = try stream.feed(header!.remainder)
        while offset < message.count {
            let end = min(offset + chunk, message.count)
            output += try stream.feed(message[offset..<end])
            offset = end
        }
        output += try stream.finish()
        #expect(output == Self.plaintexts["large-file"])
    }

    @Test func manifestWithoutKeyName() throws {
        let message = try Self.fixture("single-segment-no-key-name")
        var reader = HeaderReader()
        guard case .complete(let header) = try reader.feed(message) else { Issue.record("incomplete header"); return }
        let manifest = try Manifest(decoding: header.manifestLine)
        #expect(manifest.keyName == "")
        #expect(try EncryptionScheme.decrypt(message, unwrap: Self.passThrough) == Array("hello world".utf8))
    }

    @Test func reEncodesGoManifestsByteForByte() throws {
        for name in Self.plaintexts.keys {
            var reader = HeaderReader()
            guard case .complete(let header) = try reader.feed(try Self.fixture(name)) else { Issue.record("incomplete header"); continue }
            let manifest = try Manifest(decoding: header.manifestLine)
            #expect(manifest.encoded == header.manifestLine, "\(name)")
            // The same file key and manifest give the same header, MAC included.
            let fileKey = FileKey(keyBytes: manifest.wrappedFileKey, noncePrefix: manifest.noncePrefix, cipher: manifest.cipher)
            #expect(fileKey.header(manifest: manifest.encoded) == [UInt8]("dapr.io/enc/v1\n".utf8) + header.manifestLine + [0x0A] + header.macLine + [0x0A])
        }
    }

    @Test func sealsSegmentsExactlyAsGo() throws {
        // Re-encrypting the plaintext with the fixture's key and nonce prefix gives its bytes.
        for name in ["single-segment", "multi-segment", "two-full-segments"] {
            let message = try Self.fixture(name)
            var reader = HeaderReader()
            guard case .complete(let header) = try reader.feed(message) else { continue }
            let manifest = try Manifest(decoding: header.manifestLine)
            let fileKey = FileKey(keyBytes: manifest.wrappedFileKey, noncePrefix: manifest.noncePrefix, cipher: manifest.cipher)
            var (output, payload) = EncryptionScheme.start(fileKey: fileKey, manifest: manifest)
            output += try payload.feed(Self.plaintexts[name]!)
            output += try payload.finish()
            #expect(output == message, "\(name)")
        }
    }

    @Test(arguments: [DataCipher.aesGCM, .chaCha20Poly1305], [0, 1, 65_535, 65_536, 65_537, 131_072, 200_000])
    func roundTrips(cipher: DataCipher, size: Int) throws {
        let plaintext = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let message = try EncryptionScheme.encrypt(plaintext, keyName: "k", algorithm: .a256kw, cipher: cipher) { $0 }
        let segments = size == 0 ? 0 : (size + EncryptionScheme.segmentSize - 1) / EncryptionScheme.segmentSize
        var reader = HeaderReader()
        guard case .complete(let header) = try reader.feed(message) else { Issue.record("incomplete header"); return }
        #expect(header.remainder.count == size + segments * EncryptionScheme.segmentOverhead)
        #expect(try EncryptionScheme.decrypt(message, unwrap: Self.passThrough) == plaintext)
    }

    @Test func refusesTruncatedCiphertexts() throws {
        let message = try Self.fixture("two-full-segments")
        // Dropping the last segment leaves a non-last segment at the end.
        let oneSegment = Array(message.prefix(message.count - (EncryptionScheme.segmentSize + EncryptionScheme.segmentOverhead)))
        #expect(throws: EncryptionSchemeError.self) { try EncryptionScheme.decrypt(oneSegment, unwrap: Self.passThrough) }
        #expect(throws: EncryptionSchemeError.self) { try EncryptionScheme.decrypt(Array(message.dropLast(1)), unwrap: Self.passThrough) }
        #expect(throws: EncryptionSchemeError.self) { try EncryptionScheme.decrypt(Array(message.prefix(40)), unwrap: Self.passThrough) }
    }

    @Test func refusesTamperedCiphertexts() throws {
        var message = try Self.fixture("single-segment")
        message[message.count - 3] ^= 0x01
        #expect {
            try EncryptionScheme.decrypt(message, unwrap: Self.passThrough)
        } throws: { error in
            (error as? EncryptionSchemeError)?.description == "error processing segment 0: failed to decrypt segment"
        }
    }

    @Test func refusesATamperedManifestOrWrongKey() throws {
        let message = try Self.fixture("single-segment")
        let text = String(decoding: message.prefix(60), as: UTF8.self).replacingOccurrences(of: "mykey", with: "mykez")
        let tampered = Array(text.utf8) + message.dropFirst(60)
        #expect {
            try EncryptionScheme.decrypt(tampered, unwrap: Self.passThrough)
        } throws: { ($0 as? EncryptionSchemeError)?.description == "failed to validate the document's signature" }
        #expect {
            try EncryptionScheme.decrypt(message, unwrap: { _ in [UInt8](repeating: 7, count: 32) })
        } throws: { ($0 as? EncryptionSchemeError)?.description == "failed to validate the document's signature" }
        #expect {
            try EncryptionScheme.decrypt(message, unwrap: { _ in nil })
        } throws: { ($0 as? EncryptionSchemeError)?.description == "failed to validate the document's signature" }
    }

    @Test(arguments: [
        ("foo", "invalid header: scheme name not found"),
        ("invalidscheme\nfoo", "invalid header: unsupported scheme"),
        ("dapr.io/enc/v1\n\n", "invalid header: invalid format"),
        ("dapr.io/enc/v1\n{}", "invalid header: manifest not found"),
        ("dapr.io/enc/v1\n{}\nabc", "invalid header: message authentication code not found"),
        ("dapr.io/enc/v1\n{}\nabc\n", "invalid header: invalid manifest"),
        ("dapr.io/enc/v1\n{\"kw\":9,\"wfk\":\"AAAA\",\"cph\":1,\"np\":\"AAAAAAAAAA==\"}\nabc\n", "invalid header: invalid manifest"),
    ])
    func headerErrors(input: String, message: String) throws {
        #expect {
            try EncryptionScheme.decrypt(Array(input.utf8), unwrap: Self.passThrough)
        } throws: { ($0 as? EncryptionSchemeError)?.description == message }
    }

    @Test func namesAndAliases() {
        #expect(KeyWrapAlgorithm(name: "AES") == .a256kw)
        #expect(KeyWrapAlgorithm(name: "RSA") == .rsaOAEP256)
        #expect(KeyWrapAlgorithm(name: "A128CBC-NOPAD") == .a128cbcNoPad)
        #expect(KeyWrapAlgorithm(name: "A128KW") == nil)
        #expect(DataCipher(name: "CHACHA20-POLY1305") == .chaCha20Poly1305)
        #expect(DataCipher(name: "aes-gcm") == nil)
    }

    @Test func manifestEscapesLikeGo() {
        let manifest = Manifest(keyName: "a<b>&\"c\"", keyWrapAlgorithm: .rsaOAEP256, wrappedFileKey: [1, 2, 3], cipher: .chaCha20Poly1305, noncePrefix: [0, 0, 0, 0, 0, 0, 0])
        #expect(String(decoding: manifest.encoded, as: UTF8.self) == #"{"k":"a\u003cb\u003e\u0026\"c\"","kw":5,"wfk":"AQID","cph":2,"np":"AAAAAAAAAA=="}"#)
    }
}
