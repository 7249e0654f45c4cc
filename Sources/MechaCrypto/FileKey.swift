import Crypto
public import Foundation
import MechaCore

/// The per-message key and what derives from it: the header MAC key and the payload key.
/// All primitives come from swift-crypto (HKDF-SHA-256, HMAC-SHA-256, AES-GCM, ChaCha20-Poly1305).
public struct FileKey: Sendable {
    public let keyBytes: [UInt8]
    public let noncePrefix: [UInt8]
    public let cipher: DataCipher
    let headerKey: SymmetricKey
    let payloadKey: SymmetricKey

    /// Derives the header and payload keys. `keyBytes` should be 32 bytes; `noncePrefix` 7.
    public init(keyBytes: [UInt8], noncePrefix: [UInt8], cipher: DataCipher) {
        self.keyBytes = keyBytes
        self.noncePrefix = noncePrefix
        self.cipher = cipher
        let ikm = SymmetricKey(data: keyBytes)
        self.headerKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: ikm, info: Array("header".utf8), outputByteCount: 32)
        self.payloadKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: ikm, salt: noncePrefix, info: Array("payload".utf8), outputByteCount: 32)
    }

    /// A fresh random key and nonce prefix from the system CSPRNG.
    public static func random(cipher: DataCipher) -> FileKey {
        let key = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        var generator = SystemRandomNumberGenerator()
        let prefix = (0..<EncryptionScheme.noncePrefixLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return FileKey(keyBytes: key, noncePrefix: prefix, cipher: cipher)
    }

    /// `scheme\nmanifest\n`: the bytes the MAC covers.
    static func signedPart(manifest: some Collection<UInt8>) -> [UInt8] {
        var message = Array(EncryptionScheme.name.utf8)
        message.append(0x0A)
        message.append(contentsOf: manifest)
        message.append(0x0A)
        return message
    }

    /// The complete header: the signed part, the base64 MAC and the final newline.
    public func header(manifest: [UInt8]) -> [UInt8] {
        var header = Self.signedPart(manifest: manifest)
        let mac = HMAC<SHA256>.authenticationCode(for: header, using: self.headerKey)
        header.append(contentsOf: Array(Base64.encode(Array(mac)).utf8))
        header.append(0x0A)
        return header
    }

    /// Checks the header MAC in constant time.
    public func verifyHeader(manifest: some Collection<UInt8>, macBase64: some Collection<UInt8>) throws(EncryptionSchemeError) {
        guard let mac = Base64.decode(String(decoding: macBase64, as: UTF8.self)) else {
            throw EncryptionSchemeError("failed to decode header's signature: illegal base64 data")
        }
        let valid = HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Self.signedPart(manifest: manifest), using: self.headerKey)
        guard valid else { throw .signature }
    }

    func nonce(segment: UInt32, last: Bool) -> [UInt8] {
        var nonce = self.noncePrefix
        nonce.append(UInt8(truncatingIfNeeded: segment >> 24))
        nonce.append(UInt8(truncatingIfNeeded: segment >> 16))
        nonce.append(UInt8(truncatingIfNeeded: segment >> 8))
        nonce.append(UInt8(truncatingIfNeeded: segment))
        nonce.append(last ? 1 : 0)
        return nonce
    }

    /// Seals one segment: ciphertext followed by the 16-byte tag.
    public func seal(_ plaintext: some DataProtocol, segment: UInt32, last: Bool) throws -> [UInt8] {
        let nonce = self.nonce(segment: segment, last: last)
        switch self.cipher {
        case .aesGCM:
            let box = try AES.GCM.seal(plaintext, using: self.payloadKey, nonce: AES.GCM.Nonce(data: nonce))
            return Array(box.ciphertext) + Array(box.tag)
        case .chaCha20Poly1305:
            let box = try ChaChaPoly.seal(plaintext, using: self.payloadKey, nonce: ChaChaPoly.Nonce(data: nonce))
            return Array(box.ciphertext) + Array(box.tag)
        }
    }

    /// Opens one segment (ciphertext || tag).
    public func open(_ sealed: [UInt8], segment: UInt32, last: Bool) throws(EncryptionSchemeError) -> [UInt8] {
        guard sealed.count > EncryptionScheme.segmentOverhead else { throw EncryptionSchemeError("failed to decrypt segment") }
        let nonce = self.nonce(segment: segment, last: last)
        let split = sealed.count - EncryptionScheme.segmentOverhead
        do {
            switch self.cipher {
            case .aesGCM:
                let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce), ciphertext: sealed[..<split], tag: sealed[split...])
                return Array(try AES.GCM.open(box, using: self.payloadKey))
            case .chaCha20Poly1305:
                let box = try ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: nonce), ciphertext: sealed[..<split], tag: sealed[split...])
                return Array(try ChaChaPoly.open(box, using: self.payloadKey))
            }
        } catch {
            throw EncryptionSchemeError("failed to decrypt segment")
        }
    }
}
