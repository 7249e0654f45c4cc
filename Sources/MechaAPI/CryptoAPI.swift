public import MechaCore
import MechaResiliency
import MechaCrypto
public import MechaRuntime

extension DaprAPI {
    /// The cryptography building block over this sidecar's components. A computed value (it holds
    /// only the shared component store), so `DaprAPI`'s initialiser stays unchanged.
    public var crypto: CryptoAPI { CryptoAPI(components: self.lock.components) }
}

/// The cryptography building block (`EncryptAlpha1`/`DecryptAlpha1`, `/v1.0-alpha1/crypto/…`,
/// the `Subtle*Alpha1` methods), with daprd's checks in daprd's order and its error texts.
///
/// Encryption and decryption are sessions fed chunk by chunk, so a stream is never held whole:
/// at most one segment (64 KiB) plus the chunk being fed is buffered.
public struct CryptoAPI: Sendable {
    let components: ComponentStore

    public init(components: ComponentStore) {
        self.components = components
    }

    /// daprd's `CryptoValidateRequest`: any providers at all, a name, a provider of that name.
    public func provider(named name: String) throws(APIError) -> any CryptoProvider {
        guard self.components.count(in: .crypto) > 0 else { throw .cryptoProvidersNotConfigured }
        guard !name.isEmpty else { throw .badRequest("missing component name") }
        guard let provider = self.components.entry(named: name)?.component as? any CryptoProvider else {
            throw .cryptoProviderNotFound(name)
        }
        return provider
    }

    // MARK: Encrypt / decrypt

    /// Validates the options, wraps a fresh file key with the component, and answers the session
    /// whose `header` goes out first. Options are checked as daprd does: algorithm and cipher names
    /// are upper-cased, then resolved (`AES` → `A256KW`, `RSA` → `RSA-OAEP-256`).
    public func startEncryption(
        provider: any CryptoProvider,
        componentName: String,
        keyName: String,
        keyWrapAlgorithm: String,
        dataEncryptionCipher: String,
        omitDecryptionKeyName: Bool,
        decryptionKeyName: String
    ) async throws(APIError) -> EncryptionSession {
        guard !keyName.isEmpty else { throw .cryptoOperation("option KeyName is required") }
        let algorithmName = keyWrapAlgorithm.uppercased()
        guard !algorithmName.isEmpty else { throw .cryptoOperation("option Algorithm is required") }
        guard let algorithm = KeyWrapAlgorithm(name: algorithmName) else {
            throw .cryptoOperation("option Algorithm is not valid: algorithm \(algorithmName) is not supported")
        }
        var cipher = DataCipher.aesGCM
        if !dataEncryptionCipher.isEmpty {
            let cipherName = dataEncryptionCipher.uppercased()
            guard let chosen = DataCipher(name: cipherName) else {
                throw .cryptoOperation("option Cipher is not valid: cipher \(cipherName) is not supported")
            }
            cipher = chosen
        }
        let fileKey = FileKey.random(cipher: cipher)
        let wrapped: CryptoSealed
        do {
            wrapped = try await self.components.call(componentName, .crypto, "wrapKey") {
                try await provider.wrapKey(plaintextKey: fileKey.keyBytes, algorithm: algorithm.name, keyName: keyName, nonce: [], associatedData: [])
            }
        } catch {
            throw .cryptoOperation("failed to wrap the file key: \(error)")
        }
        let manifest = Manifest(
            keyName: omitDecryptionKeyName ? "" : (decryptionKeyName.isEmpty ? keyName : decryptionKeyName),
            keyWrapAlgorithm: algorithm,
            wrappedFileKey: wrapped.ciphertext,
            cipher: cipher,
            noncePrefix: fileKey.noncePrefix
        )
        let (header, payload) = EncryptionScheme.start(fileKey: fileKey, manifest: manifest)
        return EncryptionSession(header: header, payload: payload)
    }

    /// A decryption session; `keyName`, when not empty, overrides the manifest's key name.
    public func startDecryption(provider: any CryptoProvider, componentName: String, keyName: String) -> DecryptionSession {
        DecryptionSession(provider: provider, keyName: keyName, unwrap: { call in try await self.components.call(componentName, .crypto, "unwrapKey", call) })
    }

    // MARK: Subtle

    /// `SubtleGetKeyAlpha1`: the public key as PEM (`json: false`) or JWK JSON. Answers the key's
    /// `kid` when it has one, else the requested name.
    public func getKey(componentName: String, name: String, json: Bool) async throws(APIError) -> (name: String, publicKey: String) {
        let provider = try self.provider(named: componentName)
        let key: CryptoPublicKey?
        do {
            key = try await self.components.call(componentName, .crypto, "getKey") { try await provider.getKey(name: name) }
        } catch {
            throw .cryptoGetKey(name, "\(error)")
        }
        guard let key else { return ("", "") }
        return (key.keyID.flatMap { $0.isEmpty ? nil : $0 } ?? name, json ? key.jwk : key.pem)
    }

    public func encrypt(componentName: String, plaintext: [UInt8], algorithm: String, keyName: String, nonce: [UInt8], associatedData: [UInt8]) async throws(APIError) -> CryptoSealed {
        let provider = try self.provider(named: componentName)
        do {
            return try await self.components.call(componentName, .crypto, "encrypt") { try await provider.encrypt(plaintext: plaintext, algorithm: algorithm, keyName: keyName, nonce: nonce, associatedData: associatedData) }
        } catch {
            throw .cryptoOperation("failed to encrypt")
        }
    }

    public func decrypt(componentName: String, ciphertext: [UInt8], algorithm: String, keyName: String, nonce: [UInt8], tag: [UInt8], associatedData: [UInt8]) async throws(APIError) -> [UInt8] {
        let provider = try self.provider(named: componentName)
        do {
            return try await self.components.call(componentName, .crypto, "decrypt") { try await provider.decrypt(ciphertext: ciphertext, algorithm: algorithm, keyName: keyName, nonce: nonce, tag: tag, associatedData: associatedData) }
        } catch {
            throw .cryptoOperation("failed to decrypt")
        }
    }

    /// `SubtleWrapKeyAlpha1`: the key bytes are read as Dapr reads a key (JWK, PEM or raw) and
    /// serialised (raw, PKCS#8, PKIX) before wrapping.
    public func wrapKey(componentName: String, plaintextKey: [UInt8], algorithm: String, keyName: String, nonce: [UInt8], associatedData: [UInt8]) async throws(APIError) -> CryptoSealed {
        let provider = try self.provider(named: componentName)
        let key: CryptoKey
        do {
            key = try CryptoKey.parse(plaintextKey)
        } catch {
            throw .cryptoOperation("failed to parse plaintext key: \(error)")
        }
        do {
            return try await self.components.call(componentName, .crypto, "wrapKey") { try await provider.wrapKey(plaintextKey: key.serialized, algorithm: algorithm, keyName: keyName, nonce: nonce, associatedData: associatedData) }
        } catch {
            throw .cryptoOperation("failed to wrap key")
        }
    }

    public func unwrapKey(componentName: String, wrappedKey: [UInt8], algorithm: String, keyName: String, nonce: [UInt8], tag: [UInt8], associatedData: [UInt8]) async throws(APIError) -> [UInt8] {
        let provider = try self.provider(named: componentName)
        do {
            return try await self.components.call(componentName, .crypto, "unwrapKey") { try await provider.unwrapKey(wrappedKey: wrappedKey, algorithm: algorithm, keyName: keyName, nonce: nonce, tag: tag, associatedData: associatedData) }
        } catch {
            throw .cryptoOperation("failed to unwrap key")
        }
    }

    public func sign(componentName: String, digest: [UInt8], algorithm: String, keyName: String) async throws(APIError) -> [UInt8] {
        let provider = try self.provider(named: componentName)
        do {
            return try await self.components.call(componentName, .crypto, "sign") { try await provider.sign(digest: digest, algorithm: algorithm, keyName: keyName) }
        } catch {
            throw .cryptoOperation("failed to sign")
        }
    }

    public func verify(componentName: String, digest: [UInt8], signature: [UInt8], algorithm: String, keyName: String) async throws(APIError) -> Bool {
        let provider = try self.provider(named: componentName)
        do {
            return try await self.components.call(componentName, .crypto, "verify") { try await provider.verify(digest: digest, signature: signature, algorithm: algorithm, keyName: keyName) }
        } catch {
            throw .cryptoOperation("failed to verify signature")
        }
    }
}

/// An encryption in progress: send `header`, then what `feed` and `finish` return.
public struct EncryptionSession: Sendable {
    public let header: [UInt8]
    var payload: SegmentStream

    /// Sealed segments now complete.
    public mutating func feed(_ bytes: some Collection<UInt8>) throws(APIError) -> [UInt8] {
        do {
            return try self.payload.feed(bytes)
        } catch {
            throw .cryptoOperation(error.description)
        }
    }

    /// The last segment.
    public mutating func finish() throws(APIError) -> [UInt8] {
        do {
            return try self.payload.finish()
        } catch {
            throw .cryptoOperation(error.description)
        }
    }
}

/// A decryption in progress: the header is read from the first bytes, the file key unwrapped by
/// the component (a failure is hidden behind the header's MAC check, as daprd does), then the
/// payload is opened segment by segment. Only authenticated plaintext is ever returned.
public struct DecryptionSession: Sendable {
    enum State: Sendable {
        case header(HeaderReader)
        case payload(SegmentStream)
    }

    let provider: any CryptoProvider
    let keyName: String
    /// Runs the unwrap through the component's outbound policies.
    let unwrap: @Sendable (@Sendable () async throws -> [UInt8]) async throws -> [UInt8]
    var state: State = .header(HeaderReader())

    init(provider: any CryptoProvider, keyName: String, unwrap: @escaping @Sendable (@Sendable () async throws -> [UInt8]) async throws -> [UInt8]) {
        self.unwrap = unwrap
        self.provider = provider
        self.keyName = keyName
    }

    /// Plaintext of the segments now complete and authenticated.
    public mutating func feed(_ bytes: some Collection<UInt8>) async throws(APIError) -> [UInt8] {
        switch self.state {
        case .payload(var stream):
            defer { self.state = .payload(stream) }
            do {
                return try stream.feed(bytes)
            } catch {
                throw .cryptoOperation(error.description)
            }
        case .header(var reader):
            let progress: HeaderReader.Progress
            do {
                progress = try reader.feed(bytes)
            } catch {
                throw .cryptoOperation(error.description)
            }
            guard case .complete(let header) = progress else {
                self.state = .header(reader)
                return []
            }
            var stream = try await self.openPayload(header)
            defer { self.state = .payload(stream) }
            do {
                return try stream.feed(header.remainder)
            } catch {
                throw .cryptoOperation(error.description)
            }
        }
    }

    /// The input ended: the last segment's plaintext.
    public mutating func finish() throws(APIError) -> [UInt8] {
        switch self.state {
        case .header(let reader):
            do {
                try reader.finish()
            } catch {
                throw .cryptoOperation(error.description)
            }
        case .payload(var stream):
            do {
                let output = try stream.finish()
                self.state = .payload(stream)
                return output
            } catch {
                throw .cryptoOperation(error.description)
            }
        }
    }

    private func openPayload(_ header: HeaderReader.Header) async throws(APIError) -> SegmentStream {
        let manifest: Manifest
        do {
            manifest = try Manifest(decoding: header.manifestLine)
        } catch {
            throw .cryptoOperation(error.description)
        }
        let keyName = self.keyName.isEmpty ? manifest.keyName : self.keyName
        guard !keyName.isEmpty else {
            throw .cryptoOperation("document's manifest does not contain a key name, and no key name was provided")
        }
        let provider = self.provider
        let fileKey = try? await self.unwrap {
            try await provider.unwrapKey(
                wrappedKey: manifest.wrappedFileKey,
                algorithm: manifest.keyWrapAlgorithm.name,
                keyName: keyName,
                nonce: [],
                tag: [],
                associatedData: []
            )
        }
        do {
            return try EncryptionScheme.open(header: header, manifest: manifest, fileKey: fileKey)
        } catch {
            throw .cryptoOperation(error.description)
        }
    }
}
