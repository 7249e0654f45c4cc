/// The cryptography building block's component contract (Dapr's `crypto.*`, components-contrib's
/// `SubtleCrypto`): keys stay in the component; callers name a key and an algorithm.
///
/// Algorithms are JOSE names (`A256KW`, `RSA-OAEP-256`, `A256GCM`, `RS256`, …) plus Dapr's
/// `A128CBC-NOPAD`/`A192CBC-NOPAD`/`A256CBC-NOPAD`. Errors thrown are reported to callers inside
/// daprd's `ERR_CRYPTO` messages, so their descriptions should read like daprd's component errors
/// (`failed to retrieve the key: …`). Implementations are safe to call concurrently.
public protocol CryptoProvider: Component {
    /// The public part of a key, or `nil` when the component has nothing public to show (a
    /// symmetric key). Throws when the key cannot be read.
    func getKey(name: String) async throws -> CryptoPublicKey?
    /// Encrypts with the key; AEAD algorithms answer the tag separately.
    func encrypt(plaintext: [UInt8], algorithm: String, keyName: String, nonce: [UInt8], associatedData: [UInt8]) async throws -> CryptoSealed
    func decrypt(ciphertext: [UInt8], algorithm: String, keyName: String, nonce: [UInt8], tag: [UInt8], associatedData: [UInt8]) async throws -> [UInt8]
    /// Wraps serialised key bytes (raw for a symmetric key, PKCS#8/PKIX DER otherwise).
    func wrapKey(plaintextKey: [UInt8], algorithm: String, keyName: String, nonce: [UInt8], associatedData: [UInt8]) async throws -> CryptoSealed
    /// Unwraps a key; the answer is the raw key bytes.
    func unwrapKey(wrappedKey: [UInt8], algorithm: String, keyName: String, nonce: [UInt8], tag: [UInt8], associatedData: [UInt8]) async throws -> [UInt8]
    func sign(digest: [UInt8], algorithm: String, keyName: String) async throws -> [UInt8]
    /// `false` for a signature that does not match; throws only when verification cannot run.
    func verify(digest: [UInt8], signature: [UInt8], algorithm: String, keyName: String) async throws -> Bool
}

/// Output of an encryption or a key wrap.
public struct CryptoSealed: Sendable, Hashable {
    public var ciphertext: [UInt8]
    /// Authentication tag of AEAD algorithms; empty otherwise.
    public var tag: [UInt8]

    public init(ciphertext: [UInt8], tag: [UInt8] = []) {
        self.ciphertext = ciphertext
        self.tag = tag
    }
}

/// A public key as `SubtleGetKeyAlpha1` returns it.
public struct CryptoPublicKey: Sendable, Hashable {
    /// The key id when the key carries one (JWK `kid`), else `nil` (callers use the requested name).
    public var keyID: String?
    /// PKIX `PUBLIC KEY` PEM.
    public var pem: String
    /// The JWK as JSON text.
    public var jwk: String

    public init(keyID: String?, pem: String, jwk: String) {
        self.keyID = keyID
        self.pem = pem
        self.jwk = jwk
    }
}
