public import MechaCore

/// A crypto component whose keys are read into this process (local files, a JWKS): it only has to
/// find a key; every operation is performed here, as components-contrib's
/// `LocalCryptoBaseComponent` does, with its checks (`key_ops`/`use`, `alg`) and error texts.
public protocol LocalKeyProvider: CryptoProvider {
    /// The key called `name`. Throw `CryptoKeyError.keyNotFound` when there is none.
    func retrieveKey(_ name: String) async throws -> CryptoKey
}

extension CryptoKeyError {
    public static let keyNotFound = CryptoKeyError("key not found")
}

extension LocalKeyProvider {
    public func getKey(name: String) async throws -> CryptoPublicKey? {
        let key = try await self.retrieveKey(name)
        guard !key.isSymmetric, let pem = key.publicKeyPEM, let jwk = key.publicKeyJWK else { throw CryptoKeyError.keyNotFound }
        return CryptoPublicKey(keyID: key.keyID, pem: pem, jwk: jwk.jsonString)
    }

    public func encrypt(plaintext: [UInt8], algorithm: String, keyName: String, nonce: [UInt8], associatedData: [UInt8]) async throws -> CryptoSealed {
        let key = try await self.key(keyName, for: "encrypt", algorithm: algorithm, what: "key")
        do {
            let (ciphertext, tag) = try KeyOperations.encrypt(plaintext, algorithm: algorithm, key: key, nonce: nonce, associatedData: associatedData)
            return CryptoSealed(ciphertext: ciphertext, tag: tag)
        } catch {
            throw CryptoKeyError("failed to encrypt data: \(error)")
        }
    }

    public func decrypt(ciphertext: [UInt8], algorithm: String, keyName: String, nonce: [UInt8], tag: [UInt8], associatedData: [UInt8]) async throws -> [UInt8] {
        let key = try await self.key(keyName, for: "decrypt", algorithm: algorithm, what: "key")
        do {
            return try KeyOperations.decrypt(ciphertext, algorithm: algorithm, key: key, nonce: nonce, tag: tag, associatedData: associatedData)
        } catch {
            throw CryptoKeyError("failed to decrypt data: \(error)")
        }
    }

    public func wrapKey(plaintextKey: [UInt8], algorithm: String, keyName: String, nonce: [UInt8], associatedData: [UInt8]) async throws -> CryptoSealed {
        let key = try await self.key(keyName, for: "wrapKey", algorithm: algorithm, what: "key encryption key")
        do {
            let (ciphertext, tag) = try KeyOperations.encrypt(plaintextKey, algorithm: algorithm, key: key, nonce: nonce, associatedData: associatedData)
            return CryptoSealed(ciphertext: ciphertext, tag: tag)
        } catch {
            throw CryptoKeyError("failed to encrypt data: \(error)")
        }
    }

    public func unwrapKey(wrappedKey: [UInt8], algorithm: String, keyName: String, nonce: [UInt8], tag: [UInt8], associatedData: [UInt8]) async throws -> [UInt8] {
        let key = try await self.key(keyName, for: "unwrapKey", algorithm: algorithm, what: "key encryption key")
        do {
            return try KeyOperations.decrypt(wrappedKey, algorithm: algorithm, key: key, nonce: nonce, tag: tag, associatedData: associatedData)
        } catch {
            throw CryptoKeyError("failed to decrypt data: \(error)")
        }
    }

    public func sign(digest: [UInt8], algorithm: String, keyName: String) async throws -> [UInt8] {
        let key = try await self.key(keyName, for: "sign", algorithm: algorithm, what: "key")
        do {
            return try KeyOperations.sign(digest: digest, algorithm: algorithm, key: key)
        } catch {
            throw CryptoKeyError("failed to sign message: \(error)")
        }
    }

    public func verify(digest: [UInt8], signature: [UInt8], algorithm: String, keyName: String) async throws -> Bool {
        let key = try await self.key(keyName, for: "verify", algorithm: algorithm, what: "key")
        do {
            return try KeyOperations.verify(digest: digest, signature: signature, algorithm: algorithm, key: key)
        } catch {
            throw CryptoKeyError("failed to validate the signature: \(error)")
        }
    }

    /// Finds the key and checks that it may perform `operation` with `algorithm`.
    func key(_ name: String, for operation: String, algorithm: String, what: String) async throws -> CryptoKey {
        let key: CryptoKey
        do {
            key = try await self.retrieveKey(name)
        } catch {
            throw CryptoKeyError("failed to retrieve the \(what): \(error)")
        }
        guard key.canPerform(operation) else { throw CryptoKeyError("key cannot perform the '\(operation)' operation") }
        guard key.canUse(algorithm: algorithm) else { throw CryptoKeyError("key cannot be used with algorithm '\(algorithm)'") }
        return key
    }
}
