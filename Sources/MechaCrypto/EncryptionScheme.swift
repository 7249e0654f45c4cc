/// Constants and names of Dapr's encryption scheme v1 (`dapr.io/enc/v1`).
///
/// A message is `header || segment_0 || … || segment_k`. The header is three lines: the scheme
/// name, a compact JSON manifest, and the base64 HMAC-SHA-256 of the first two lines (keyed by
/// HKDF(file key, info "header")). Each plaintext segment of 64 KiB (the last may be shorter) is
/// sealed with an AEAD under HKDF(file key, salt nonce prefix, info "payload"); the nonce is
/// `prefix(7) || seq(4, big-endian) || last(1)`, so truncation and reordering are detected.
public enum EncryptionScheme {
    /// The first header line.
    public static let name = "dapr.io/enc/v1"
    /// Plaintext bytes per segment.
    public static let segmentSize = 64 << 10
    /// Authentication tag appended to each segment.
    public static let segmentOverhead = 16
    /// Length of the random nonce prefix in the manifest.
    public static let noncePrefixLength = 7
    /// Length of the random file key.
    public static let fileKeyLength = 32
    /// The header never exceeds one segment.
    public static let maximumHeaderLength = segmentSize
}

/// How the file key is wrapped (manifest `kw`), with Dapr's names and aliases.
public enum KeyWrapAlgorithm: Int, Sendable, Hashable, CaseIterable {
    case a256kw = 1
    case a128cbcNoPad = 2
    case a192cbcNoPad = 3
    case a256cbcNoPad = 4
    case rsaOAEP256 = 5

    /// Resolves a name as daprd does after upper-casing it: the canonical names plus the aliases
    /// `AES` (A256KW) and `RSA` (RSA-OAEP-256). `nil` for anything else.
    public init?(name: String) {
        switch name {
        case "A256KW", "AES": self = .a256kw
        case "A128CBC-NOPAD": self = .a128cbcNoPad
        case "A192CBC-NOPAD": self = .a192cbcNoPad
        case "A256CBC-NOPAD": self = .a256cbcNoPad
        case "RSA-OAEP-256", "RSA": self = .rsaOAEP256
        default: return nil
        }
    }

    /// The canonical name, as passed to a component's wrap/unwrap.
    public var name: String {
        switch self {
        case .a256kw: "A256KW"
        case .a128cbcNoPad: "A128CBC-NOPAD"
        case .a192cbcNoPad: "A192CBC-NOPAD"
        case .a256cbcNoPad: "A256CBC-NOPAD"
        case .rsaOAEP256: "RSA-OAEP-256"
        }
    }
}

/// The AEAD that seals the segments (manifest `cph`).
public enum DataCipher: Int, Sendable, Hashable, CaseIterable {
    case aesGCM = 1
    case chaCha20Poly1305 = 2

    /// `AES-GCM` or `CHACHA20-POLY1305` (daprd upper-cases the option first).
    public init?(name: String) {
        switch name {
        case "AES-GCM": self = .aesGCM
        case "CHACHA20-POLY1305": self = .chaCha20Poly1305
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .aesGCM: "AES-GCM"
        case .chaCha20Poly1305: "CHACHA20-POLY1305"
        }
    }
}

/// Why a scheme operation failed. Descriptions are daprd's texts, which the API puts after
/// `failed to perform operation: `.
public struct EncryptionSchemeError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }

    static let signature = EncryptionSchemeError("failed to validate the document's signature")
    static let keyNameMissing = EncryptionSchemeError("document's manifest does not contain a key name, and no key name was provided")
    static let invalidManifest = EncryptionSchemeError("invalid header: invalid manifest")
    static func segment(_ number: UInt32, _ reason: String) -> EncryptionSchemeError {
        EncryptionSchemeError("error processing segment \(number): \(reason)")
    }
}
