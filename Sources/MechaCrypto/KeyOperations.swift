import Crypto
import _CryptoExtras
import Foundation

/// The low-level operations of Dapr's local crypto components (Subtle API and key wrapping),
/// by JOSE algorithm name, with Dapr's error texts. Every primitive is swift-crypto's.
///
/// Supported: `A128/192/256CBC` (PKCS#7) and `-NOPAD`, `A128/192/256GCM`, `A128/192/256KW`,
/// `C20P`, `C20PKW`, `RSA1_5`, `RSA-OAEP`, `RSA-OAEP-256`; signatures `RS256/384/512`,
/// `PS256/384/512`, `ES256/384/512`, `EdDSA`. Dapr also lists `XC20P`, `A*CBC-HS*`,
/// `RSA-OAEP-384/512`, which swift-crypto does not offer: they answer "unsupported algorithm".
public enum KeyOperations {
    public static let unsupportedAlgorithm = CryptoKeyError("unsupported algorithm")
    public static let keyTypeMismatch = CryptoKeyError("key type mismatch")
    public static let invalidNonce = CryptoKeyError("invalid nonce")
    public static let invalidTag = CryptoKeyError("invalid tag")

    static func expectedKeySize(_ algorithm: String) -> Int {
        let bits = algorithm.dropFirst().prefix(3)
        return bits == "128" ? 16 : bits == "192" ? 24 : bits == "256" ? 32 : 0
    }

    // MARK: Encryption

    /// Encrypts (or wraps) `plaintext`; AEAD algorithms answer the tag separately.
    public static func encrypt(
        _ plaintext: [UInt8],
        algorithm: String,
        key: CryptoKey,
        nonce: [UInt8] = [],
        associatedData: [UInt8] = []
    ) throws(CryptoKeyError) -> (ciphertext: [UInt8], tag: [UInt8]) {
        switch algorithm {
        case "A128CBC", "A192CBC", "A256CBC", "A128CBC-NOPAD", "A192CBC-NOPAD", "A256CBC-NOPAD",
            "A128GCM", "A192GCM", "A256GCM", "A128KW", "A192KW", "A256KW", "C20P", "C20PKW":
            guard case .symmetric(let keyBytes) = key.material else { throw Self.keyTypeMismatch }
            return try self.encryptSymmetric(plaintext, algorithm: algorithm, key: keyBytes, nonce: nonce, associatedData: associatedData)
        case "RSA1_5", "RSA-OAEP", "RSA-OAEP-256":
            guard let publicKey = key.publicKey, case .rsaPublic(let rsa) = publicKey.material,
                let encryptionKey = try? _RSA.Encryption.PublicKey(unsafeDERRepresentation: rsa.derRepresentation)
            else { throw Self.keyTypeMismatch }
            do {
                return (Array(try encryptionKey.encrypt(plaintext, padding: self.rsaPadding(algorithm))), [])
            } catch {
                throw CryptoKeyError("\(error)")
            }
        default:
            throw Self.unsupportedAlgorithm
        }
    }

    /// Decrypts (or unwraps) `ciphertext`.
    public static func decrypt(
        _ ciphertext: [UInt8],
        algorithm: String,
        key: CryptoKey,
        nonce: [UInt8] = [],
        tag: [UInt8] = [],
        associatedData: [UInt8] = []
    ) throws(CryptoKeyError) -> [UInt8] {
        switch algorithm {
        case "A128CBC", "A192CBC", "A256CBC", "A128CBC-NOPAD", "A192CBC-NOPAD", "A256CBC-NOPAD",
            "A128GCM", "A192GCM", "A256GCM", "A128KW", "A192KW", "A256KW", "C20P", "C20PKW":
            guard case .symmetric(let keyBytes) = key.material else { throw Self.keyTypeMismatch }
            return try self.decryptSymmetric(ciphertext, algorithm: algorithm, key: keyBytes, nonce: nonce, tag: tag, associatedData: associatedData)
        case "RSA1_5", "RSA-OAEP", "RSA-OAEP-256":
            guard case .rsaPrivate(let rsa) = key.material,
                let decryptionKey = try? _RSA.Encryption.PrivateKey(unsafeDERRepresentation: rsa.derRepresentation)
            else { throw Self.keyTypeMismatch }
            do {
                return Array(try decryptionKey.decrypt(ciphertext, padding: self.rsaPadding(algorithm)))
            } catch {
                throw CryptoKeyError("crypto/rsa: decryption error")
            }
        default:
            throw Self.unsupportedAlgorithm
        }
    }

    static func rsaPadding(_ algorithm: String) -> _RSA.Encryption.Padding {
        switch algorithm {
        case "RSA1_5": ._WEAK_AND_INSECURE_PKCS_V1_5
        case "RSA-OAEP": .PKCS1_OAEP
        default: .PKCS1_OAEP_SHA256
        }
    }

    static func encryptSymmetric(
        _ plaintext: [UInt8],
        algorithm: String,
        key: [UInt8],
        nonce: [UInt8],
        associatedData: [UInt8]
    ) throws(CryptoKeyError) -> (ciphertext: [UInt8], tag: [UInt8]) {
        let symmetricKey = SymmetricKey(data: key)
        do {
            switch algorithm {
            case "A128CBC", "A192CBC", "A256CBC", "A128CBC-NOPAD", "A192CBC-NOPAD", "A256CBC-NOPAD":
                guard key.count == self.expectedKeySize(algorithm) else { throw Self.keyTypeMismatch }
                guard nonce.count == 16 else { throw Self.invalidNonce }
                let noPadding = algorithm.hasSuffix("-NOPAD")
                if noPadding, plaintext.count % 16 != 0 { throw CryptoKeyError("invalid plaintext length") }
                let iv = try AES._CBC.IV(ivBytes: nonce)
                return (Array(try AES._CBC.encrypt(plaintext, using: symmetricKey, iv: iv, noPadding: noPadding)), [])
            case "A128GCM", "A192GCM", "A256GCM":
                guard key.count == self.expectedKeySize(algorithm) else { throw Self.keyTypeMismatch }
                guard nonce.count == 12 else { throw Self.invalidNonce }
                let box = try AES.GCM.seal(plaintext, using: symmetricKey, nonce: AES.GCM.Nonce(data: nonce), authenticating: associatedData)
                return (Array(box.ciphertext), Array(box.tag))
            case "A128KW", "A192KW", "A256KW":
                guard key.count == self.expectedKeySize(algorithm) else { throw Self.keyTypeMismatch }
                guard plaintext.count >= 16, plaintext.count % 8 == 0 else { throw CryptoKeyError("aeskw: invalid plaintext length") }
                return (Array(try AES.KeyWrap.wrap(SymmetricKey(data: plaintext), using: symmetricKey)), [])
            default:  // C20P, C20PKW
                guard key.count == 32 else { throw Self.keyTypeMismatch }
                guard nonce.count == 12 else { throw Self.invalidNonce }
                let box = try ChaChaPoly.seal(plaintext, using: symmetricKey, nonce: ChaChaPoly.Nonce(data: nonce), authenticating: associatedData)
                return (Array(box.ciphertext), Array(box.tag))
            }
        } catch let error as CryptoKeyError {
            throw error
        } catch {
            throw CryptoKeyError("\(error)")
        }
    }

    static func decryptSymmetric(
        _ ciphertext: [UInt8],
        algorithm: String,
        key: [UInt8],
        nonce: [UInt8],
        tag: [UInt8],
        associatedData: [UInt8]
    ) throws(CryptoKeyError) -> [UInt8] {
        let symmetricKey = SymmetricKey(data: key)
        do {
            switch algorithm {
            case "A128CBC", "A192CBC", "A256CBC", "A128CBC-NOPAD", "A192CBC-NOPAD", "A256CBC-NOPAD":
                guard key.count == self.expectedKeySize(algorithm) else { throw Self.keyTypeMismatch }
                guard nonce.count == 16 else { throw Self.invalidNonce }
                guard ciphertext.count % 16 == 0 else { throw CryptoKeyError("invalid ciphertext length") }
                let iv = try AES._CBC.IV(ivBytes: nonce)
                return Array(try AES._CBC.decrypt(ciphertext, using: symmetricKey, iv: iv, noPadding: algorithm.hasSuffix("-NOPAD")))
            case "A128GCM", "A192GCM", "A256GCM":
                guard key.count == self.expectedKeySize(algorithm) else { throw Self.keyTypeMismatch }
                guard nonce.count == 12 else { throw Self.invalidNonce }
                guard tag.count == 16 else { throw Self.invalidTag }
                let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce), ciphertext: ciphertext, tag: tag)
                return Array(try AES.GCM.open(box, using: symmetricKey, authenticating: associatedData))
            case "A128KW", "A192KW", "A256KW":
                guard key.count == self.expectedKeySize(algorithm) else { throw Self.keyTypeMismatch }
                let unwrapped = try AES.KeyWrap.unwrap(ciphertext, using: symmetricKey)
                return unwrapped.withUnsafeBytes { Array($0) }
            default:  // C20P, C20PKW
                guard key.count == 32 else { throw Self.keyTypeMismatch }
                guard nonce.count == 12 else { throw Self.invalidNonce }
                guard tag.count == 16 else { throw Self.invalidTag }
                let box = try ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: nonce), ciphertext: ciphertext, tag: tag)
                return Array(try ChaChaPoly.open(box, using: symmetricKey, authenticating: associatedData))
            }
        } catch let error as CryptoKeyError {
            throw error
        } catch {
            throw CryptoKeyError("cipher: message authentication failed")
        }
    }

    // MARK: Signatures

    /// Signs a digest (EdDSA: the message itself) with a private key.
    public static func sign(digest: [UInt8], algorithm: String, key: CryptoKey) throws(CryptoKeyError) -> [UInt8] {
        do {
            switch (algorithm, key.material) {
            case ("RS256", .rsaPrivate(let rsa)), ("RS384", .rsaPrivate(let rsa)), ("RS512", .rsaPrivate(let rsa)):
                return try self.rsaSign(rsa, digest: digest, algorithm: algorithm, padding: .insecurePKCS1v1_5)
            case ("PS256", .rsaPrivate(let rsa)), ("PS384", .rsaPrivate(let rsa)), ("PS512", .rsaPrivate(let rsa)):
                return try self.rsaSign(rsa, digest: digest, algorithm: algorithm, padding: .PSS)
            case ("ES256", _), ("ES384", _), ("ES512", _):
                let signed = try self.withDigest(digest) { d throws -> Data? in
                    switch key.material {
                    case .p256Private(let k): try k.signature(for: d).derRepresentation
                    case .p384Private(let k): try k.signature(for: d).derRepresentation
                    case .p521Private(let k): try k.signature(for: d).derRepresentation
                    default: nil
                    }
                }
                guard let signed else { throw Self.keyTypeMismatch }
                return Array(signed)
            case ("EdDSA", .ed25519Private(let k)):
                return Array(try k.signature(for: digest))
            case ("RS256", _), ("RS384", _), ("RS512", _), ("PS256", _), ("PS384", _), ("PS512", _), ("EdDSA", _):
                throw Self.keyTypeMismatch
            default:
                throw Self.unsupportedAlgorithm
            }
        } catch let error as CryptoKeyError {
            throw error
        } catch {
            throw CryptoKeyError("\(error)")
        }
    }

    /// Verifies a signature with the public half of `key`. A signature that does not match is
    /// `false`, not an error.
    public static func verify(digest: [UInt8], signature: [UInt8], algorithm: String, key: CryptoKey) throws(CryptoKeyError) -> Bool {
        guard let publicKey = key.publicKey else { throw Self.keyTypeMismatch }
        do {
            switch (algorithm, publicKey.material) {
            case ("RS256", .rsaPublic(let rsa)), ("RS384", .rsaPublic(let rsa)), ("RS512", .rsaPublic(let rsa)):
                return try self.rsaVerify(rsa, signature: signature, digest: digest, algorithm: algorithm, padding: .insecurePKCS1v1_5)
            case ("PS256", .rsaPublic(let rsa)), ("PS384", .rsaPublic(let rsa)), ("PS512", .rsaPublic(let rsa)):
                return try self.rsaVerify(rsa, signature: signature, digest: digest, algorithm: algorithm, padding: .PSS)
            case ("ES256", _), ("ES384", _), ("ES512", _):
                let valid = try self.withDigest(digest) { d throws -> Bool? in
                    switch publicKey.material {
                    case .p256Public(let k): (try? P256.Signing.ECDSASignature(derRepresentation: signature)).map { k.isValidSignature($0, for: d) } ?? false
                    case .p384Public(let k): (try? P384.Signing.ECDSASignature(derRepresentation: signature)).map { k.isValidSignature($0, for: d) } ?? false
                    case .p521Public(let k): (try? P521.Signing.ECDSASignature(derRepresentation: signature)).map { k.isValidSignature($0, for: d) } ?? false
                    default: nil
                    }
                }
                guard let valid else { throw Self.keyTypeMismatch }
                return valid
            case ("EdDSA", .ed25519Public(let k)):
                return k.isValidSignature(signature, for: digest)
            case ("RS256", _), ("RS384", _), ("RS512", _), ("PS256", _), ("PS384", _), ("PS512", _), ("EdDSA", _):
                throw Self.keyTypeMismatch
            default:
                throw Self.unsupportedAlgorithm
            }
        } catch let error as CryptoKeyError {
            throw error
        } catch {
            throw CryptoKeyError("\(error)")
        }
    }

    static func rsaSign(_ key: _RSA.Signing.PrivateKey, digest: [UInt8], algorithm: String, padding: _RSA.Signing.Padding) throws -> [UInt8] {
        let hashBits = algorithm.suffix(3)
        let signature: _RSA.Signing.RSASignature
        switch hashBits {
        case "256": signature = try key.signature(for: try self.digest(SHA256Digest.self, digest), padding: padding)
        case "384": signature = try key.signature(for: try self.digest(SHA384Digest.self, digest), padding: padding)
        default: signature = try key.signature(for: try self.digest(SHA512Digest.self, digest), padding: padding)
        }
        return Array(signature.rawRepresentation)
    }

    static func rsaVerify(_ key: _RSA.Signing.PublicKey, signature: [UInt8], digest: [UInt8], algorithm: String, padding: _RSA.Signing.Padding) throws -> Bool {
        let rsaSignature = _RSA.Signing.RSASignature(rawRepresentation: signature)
        switch algorithm.suffix(3) {
        case "256": return key.isValidSignature(rsaSignature, for: try self.digest(SHA256Digest.self, digest), padding: padding)
        case "384": return key.isValidSignature(rsaSignature, for: try self.digest(SHA384Digest.self, digest), padding: padding)
        default: return key.isValidSignature(rsaSignature, for: try self.digest(SHA512Digest.self, digest), padding: padding)
        }
    }

    /// Runs `body` with a digest value whose type matches the length of `bytes`.
    static func withDigest<R>(_ bytes: [UInt8], _ body: (any Digest) throws -> R) throws -> R {
        switch bytes.count {
        case SHA256Digest.byteCount: return try body(try self.digest(SHA256Digest.self, bytes))
        case SHA384Digest.byteCount: return try body(try self.digest(SHA384Digest.self, bytes))
        case SHA512Digest.byteCount: return try body(try self.digest(SHA512Digest.self, bytes))
        default: throw CryptoKeyError("invalid digest length \(bytes.count)")
        }
    }

    /// A precomputed digest as swift-crypto's digest value. swift-crypto offers no initialiser for
    /// one, so the bytes are loaded into the (plain byte-tuple) value and checked to read back
    /// unchanged; a layout that ever differed would fail here rather than sign the wrong bytes.
    static func digest<D: Digest>(_ type: D.Type, _ bytes: [UInt8]) throws -> D {
        guard bytes.count == D.byteCount, MemoryLayout<D>.size == D.byteCount else {
            throw CryptoKeyError("invalid digest length \(bytes.count)")
        }
        let value = bytes.withUnsafeBytes { $0.loadUnaligned(as: D.self) }
        guard Array(value) == bytes else { throw CryptoKeyError("cannot represent the digest") }
        return value
    }
}
