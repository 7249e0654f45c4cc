import Crypto
import Foundation
import MechaCore
import Testing
import _CryptoExtras

@testable import MechaCrypto

/// Key files and JWKs as Dapr reads them, and the operations Dapr's local components perform.
@Suite struct CryptoKeyTests {
    static let rsa = try! _RSA.Signing.PrivateKey(keySize: .bits2048)

    static func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    @Test func readsRSAPrivateKeysInPKCS1AndPKCS8() throws {
        for pem in [Self.rsa.pemRepresentation, Self.rsa.pkcs8PEMRepresentation] {
            let key = try CryptoKey.parse(Array(pem.utf8))
            guard case .rsaPrivate(let parsed) = key.material else { Issue.record("not an RSA private key"); continue }
            #expect(parsed.publicKey.derRepresentation == Self.rsa.publicKey.derRepresentation)
            #expect(key.publicKeyPEM == Self.rsa.publicKey.pemRepresentation + "\n")
        }
    }

    @Test func readsPublicAndECKeys() throws {
        let rsaPublic = try CryptoKey.parse(Array(Self.rsa.publicKey.pemRepresentation.utf8))
        guard case .rsaPublic = rsaPublic.material else { Issue.record("not an RSA public key"); return }
        let p256 = P256.Signing.PrivateKey()
        let ec = try CryptoKey.parse(Array(p256.pemRepresentation.utf8))
        guard case .p256Private = ec.material else { Issue.record("not a P-256 key"); return }
        let ecPublic = try CryptoKey.parse(Array(p256.publicKey.pemRepresentation.utf8))
        guard case .p256Public = ecPublic.material else { Issue.record("not a P-256 public key"); return }
        let p384 = try CryptoKey.parse(Array(P384.Signing.PrivateKey().pemRepresentation.utf8))
        guard case .p384Private = p384.material else { Issue.record("not a P-384 key"); return }
        let ed = Curve25519.Signing.PrivateKey()
        let edKey = try CryptoKey.parse(Array(PEMBlock.encode(label: "PRIVATE KEY", der: CryptoKey.ed25519PKCS8Prefix + Array(ed.rawRepresentation)).utf8))
        guard case .ed25519Private = edKey.material else { Issue.record("not an Ed25519 key"); return }
        #expect(edKey.publicKeyDER == CryptoKey.ed25519SPKIPrefix + Array(ed.publicKey.rawRepresentation))
    }

    @Test func readsSymmetricKeysRawAndBase64() throws {
        let raw: [UInt8] = (0..<32).map { UInt8(truncatingIfNeeded: $0 * 7 + 200) }
        guard case .symmetric(let bytes) = try CryptoKey.parse(raw).material else { Issue.record("not symmetric"); return }
        #expect(bytes == raw)
        let encoded = Array((Base64.encode(raw) + "\n").utf8)
        guard case .symmetric(let decoded) = try CryptoKey.parse(encoded).material else { Issue.record("not symmetric"); return }
        #expect(decoded == raw)
        // 32 bytes starting with "{" are a raw AES key, not a JWK.
        let brace: [UInt8] = [UInt8(ascii: "{")] + [UInt8](repeating: 0xEE, count: 31)
        guard case .symmetric(let kept) = try CryptoKey.parse(brace).material else { Issue.record("not symmetric"); return }
        #expect(kept == brace)
        #expect(throws: CryptoKeyError.self) { try CryptoKey.parse([]) }
    }

    @Test func readsJWKs() throws {
        let oct = try CryptoKey.parse(Array(#"{"kty":"oct","k":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8","kid":"s","alg":"A256KW","use":"enc"}"#.utf8))
        guard case .symmetric(let k) = oct.material else { Issue.record("not symmetric"); return }
        #expect(k == Array(0..<32))
        #expect(oct.keyID == "s")
        #expect(oct.canUse(algorithm: "A256KW"))
        #expect(!oct.canUse(algorithm: "A128KW"))
        #expect(oct.canPerform("wrapKey"))
        #expect(!oct.canPerform("sign"))

        let p256 = P256.Signing.PrivateKey()
        let raw = p256.publicKey.rawRepresentation
        let x = Base64Text.encodeURL(raw.prefix(32)), y = Base64Text.encodeURL(raw.suffix(32)), d = Base64Text.encodeURL(p256.rawRepresentation)
        let ec = try CryptoKey.parse(Array(#"{"kty":"EC","crv":"P-256","x":"\#(x)","y":"\#(y)","d":"\#(d)","key_ops":["sign"]}"#.utf8))
        guard case .p256Private = ec.material else { Issue.record("not P-256"); return }
        #expect(ec.canPerform("sign"))
        #expect(!ec.canPerform("verify"))
        #expect(ec.publicKeyJWK?.jsonString == #"{"crv":"P-256","key_ops":["sign"],"kty":"EC","x":"\#(x)","y":"\#(y)"}"#)

        let primitives = try Self.rsa.publicKey.getKeyPrimitives()
        let n = Base64Text.encodeURL(primitives.modulus), e = Base64Text.encodeURL(primitives.publicExponent)
        let rsa = try CryptoKey.parse(Array(#"{"kty":"RSA","n":"\#(n)","e":"\#(e)","kid":"r"}"#.utf8))
        guard case .rsaPublic = rsa.material else { Issue.record("not RSA"); return }
        #expect(rsa.publicKeyJWK?.jsonString == #"{"e":"AQAB","kid":"r","kty":"RSA","n":"\#(n)"}"#)
    }

    @Test func aesKeyWrapMatchesRFC3394() throws {
        // RFC 3394 §4.6: 256 bits of key data with a 256-bit KEK.
        let kek = CryptoKey(.symmetric(Self.hex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")))
        let data = Self.hex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
        let expected = Self.hex("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
        #expect(try KeyOperations.encrypt(data, algorithm: "A256KW", key: kek).ciphertext == expected)
        #expect(try KeyOperations.decrypt(expected, algorithm: "A256KW", key: kek) == data)
        #expect(throws: CryptoKeyError.self) { try KeyOperations.decrypt(expected, algorithm: "A128KW", key: kek) }
    }

    @Test(arguments: ["A256KW", "A128CBC-NOPAD", "A192CBC-NOPAD", "A256CBC-NOPAD", "RSA-OAEP-256"])
    func wrapsAFileKey(algorithm: String) throws {
        let fileKey = Array(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
        let key: CryptoKey
        switch algorithm {
        case "RSA-OAEP-256": key = CryptoKey(.rsaPrivate(Self.rsa))
        default: key = CryptoKey(.symmetric(Array(repeating: 9, count: KeyOperations.expectedKeySize(algorithm))))
        }
        // The scheme passes no nonce; CBC needs one, so daprd's CBC wraps only work through Subtle.
        let nonce: [UInt8] = algorithm.contains("CBC") ? Array(repeating: 1, count: 16) : []
        let wrapped = try KeyOperations.encrypt(fileKey, algorithm: algorithm, key: key, nonce: nonce)
        #expect(wrapped.ciphertext != fileKey)
        #expect(try KeyOperations.decrypt(wrapped.ciphertext, algorithm: algorithm, key: key, nonce: nonce) == fileKey)
    }

    @Test func refusesMismatchedKeys() {
        let symmetric = CryptoKey(.symmetric(Array(repeating: 1, count: 16)))
        #expect(throws: CryptoKeyError.self) { try KeyOperations.encrypt(Array(repeating: 0, count: 32), algorithm: "A256KW", key: symmetric) }
        #expect(throws: CryptoKeyError.self) { try KeyOperations.encrypt([1], algorithm: "RSA-OAEP-256", key: symmetric) }
        #expect(throws: CryptoKeyError.self) { try KeyOperations.encrypt([1], algorithm: "XC20P", key: symmetric) }
        let publicOnly = CryptoKey(.rsaPublic(Self.rsa.publicKey))
        #expect(throws: CryptoKeyError.self) { try KeyOperations.decrypt([1], algorithm: "RSA-OAEP-256", key: publicOnly) }
    }

    @Test func authenticatedEncryption() throws {
        let key = CryptoKey(.symmetric(Array(repeating: 3, count: 32)))
        let nonce = [UInt8](repeating: 5, count: 12)
        for algorithm in ["A256GCM", "C20P"] {
            let sealed = try KeyOperations.encrypt(Array("hello".utf8), algorithm: algorithm, key: key, nonce: nonce, associatedData: [1])
            #expect(sealed.tag.count == 16)
            #expect(try KeyOperations.decrypt(sealed.ciphertext, algorithm: algorithm, key: key, nonce: nonce, tag: sealed.tag, associatedData: [1]) == Array("hello".utf8))
            #expect(throws: CryptoKeyError.self) {
                try KeyOperations.decrypt(sealed.ciphertext, algorithm: algorithm, key: key, nonce: nonce, tag: sealed.tag, associatedData: [2])
            }
        }
        let cbc = CryptoKey(.symmetric(Array(repeating: 3, count: 16)))
        let sealed = try KeyOperations.encrypt(Array("hello".utf8), algorithm: "A128CBC", key: cbc, nonce: Array(repeating: 0, count: 16))
        #expect(sealed.ciphertext.count == 16)
        #expect(try KeyOperations.decrypt(sealed.ciphertext, algorithm: "A128CBC", key: cbc, nonce: Array(repeating: 0, count: 16)) == Array("hello".utf8))
    }

    @Test(arguments: ["RS256", "PS256", "ES256", "ES384", "EdDSA", "RS512"])
    func signsAndVerifies(algorithm: String) throws {
        let key: CryptoKey = switch algorithm {
        case "ES256": CryptoKey(.p256Private(P256.Signing.PrivateKey()))
        case "ES384": CryptoKey(.p384Private(P384.Signing.PrivateKey()))
        case "EdDSA": CryptoKey(.ed25519Private(Curve25519.Signing.PrivateKey()))
        default: CryptoKey(.rsaPrivate(Self.rsa))
        }
        let message = Array("message".utf8)
        let digest: [UInt8] = switch algorithm {
        case "ES384": Array(SHA384.hash(data: message))
        case "RS512": Array(SHA512.hash(data: message))
        case "EdDSA": message
        default: Array(SHA256.hash(data: message))
        }
        let signature = try KeyOperations.sign(digest: digest, algorithm: algorithm, key: key)
        #expect(try KeyOperations.verify(digest: digest, signature: signature, algorithm: algorithm, key: key))
        var other = digest
        other[0] ^= 1
        #expect(try KeyOperations.verify(digest: other, signature: signature, algorithm: algorithm, key: key) == false)
    }

    @Test func rsaSignatureIsStandardPKCS1() throws {
        // Our RS256 over a precomputed digest equals swift-crypto's over the message.
        let message = Array("interop".utf8)
        let ours = try KeyOperations.sign(digest: Array(SHA256.hash(data: message)), algorithm: "RS256", key: CryptoKey(.rsaPrivate(Self.rsa)))
        let theirs = try Self.rsa.signature(for: message, padding: .insecurePKCS1v1_5)
        #expect(ours == Array(theirs.rawRepresentation))
    }
}
