public import Crypto
public import _CryptoExtras
import Foundation
public import MechaCore

/// A key as a crypto component holds it: the material plus the JWK attributes that restrict it
/// (`kid`, `alg`, `use`, `key_ops`).
///
/// Parsed the way Dapr's `ParseKey` reads key files and secrets: JSON Web Keys, PEM (PKCS#1,
/// PKCS#8, SEC1, PKIX), or raw symmetric bytes (themselves possibly base64).
public struct CryptoKey: Sendable {
    public enum Material: Sendable {
        case symmetric([UInt8])
        case rsaPrivate(_RSA.Signing.PrivateKey)
        case rsaPublic(_RSA.Signing.PublicKey)
        case p256Private(P256.Signing.PrivateKey)
        case p256Public(P256.Signing.PublicKey)
        case p384Private(P384.Signing.PrivateKey)
        case p384Public(P384.Signing.PublicKey)
        case p521Private(P521.Signing.PrivateKey)
        case p521Public(P521.Signing.PublicKey)
        case ed25519Private(Curve25519.Signing.PrivateKey)
        case ed25519Public(Curve25519.Signing.PublicKey)
    }

    public var material: Material
    public var keyID: String?
    /// JWK `alg`: when set, the only algorithm the key may be used with.
    public var algorithm: String?
    /// JWK `use`: `enc` or `sig`.
    public var use: String?
    /// JWK `key_ops`.
    public var operations: [String]?

    public init(_ material: Material, keyID: String? = nil, algorithm: String? = nil, use: String? = nil, operations: [String]? = nil) {
        self.material = material
        self.keyID = keyID
        self.algorithm = algorithm
        self.use = use
        self.operations = operations
    }

    /// JWK `kty`.
    public var keyType: String {
        switch self.material {
        case .symmetric: "oct"
        case .rsaPrivate, .rsaPublic: "RSA"
        case .p256Private, .p256Public, .p384Private, .p384Public, .p521Private, .p521Public: "EC"
        case .ed25519Private, .ed25519Public: "OKP"
        }
    }

    public var isSymmetric: Bool {
        if case .symmetric = self.material { return true }
        return false
    }

    // MARK: Parsing

    /// Parses key bytes. `contentType` `application/json` forces a JWK, `application/x-pem-file`
    /// (or `application/pkcs8`) forces PEM; otherwise the bytes decide, as in Dapr: `{` starts a
    /// JWK (unless the length is 16, 24 or 32: a raw AES key), `-----` starts PEM, anything else
    /// is a symmetric key, base64-decoded when it is valid base64.
    public static func parse(_ raw: [UInt8], contentType: String? = nil) throws(CryptoKeyError) -> CryptoKey {
        guard !raw.isEmpty else { throw CryptoKeyError("key is empty") }
        switch contentType {
        case "application/json": return try self.parseJWK(raw)
        case "application/x-pem-file", "application/pkcs8": return try self.parsePEM(raw)
        default: break
        }
        if raw[0] == UInt8(ascii: "{") && ![16, 24, 32].contains(raw.count) { return try self.parseJWK(raw) }
        if raw.count > 10 && raw.starts(with: Array("-----".utf8)) { return try self.parsePEM(raw) }
        var trimmed = raw[...]
        while let last = trimmed.last, last == 0x0A || last == UInt8(ascii: "=") { trimmed = trimmed.dropLast() }
        if !trimmed.isEmpty, let decoded = Base64Text.decode(trimmed, alphabet: .standard) ?? Base64Text.decode(trimmed, alphabet: .url) {
            return CryptoKey(.symmetric(decoded))
        }
        return CryptoKey(.symmetric(raw))
    }

    /// The first PEM block: RSA (PKCS#1 or PKCS#8, private or public), EC P-256/384/521 (SEC1 or
    /// PKCS#8, PKIX), Ed25519 (PKCS#8, PKIX).
    public static func parsePEM(_ raw: [UInt8]) throws(CryptoKeyError) -> CryptoKey {
        guard let block = PEMBlock(parsing: raw) else { throw CryptoKeyError("failed to parse PEM encoded key: no PEM data found") }
        let der = block.der
        switch block.label {
        case "RSA PRIVATE KEY":
            if let key = try? _RSA.Signing.PrivateKey(unsafeDERRepresentation: der) { return CryptoKey(.rsaPrivate(key)) }
        case "RSA PUBLIC KEY":
            if let key = try? _RSA.Signing.PublicKey(unsafeDERRepresentation: der) { return CryptoKey(.rsaPublic(key)) }
        case "EC PRIVATE KEY", "PRIVATE KEY":
            if let key = self.privateKey(der: der) { return CryptoKey(key) }
        case "PUBLIC KEY":
            if let key = self.publicKey(der: der) { return CryptoKey(key) }
        default:
            throw CryptoKeyError("failed to parse PEM encoded key: invalid PEM block type '\(block.label)'")
        }
        throw CryptoKeyError("failed to parse PEM encoded key: unsupported or invalid \(block.label)")
    }

    static let ed25519PKCS8Prefix: [UInt8] = [0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]
    static let ed25519SPKIPrefix: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]

    static func privateKey(der: [UInt8]) -> Material? {
        if der.count == 48, der.starts(with: self.ed25519PKCS8Prefix),
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: der[16...])
        {
            return .ed25519Private(key)
        }
        if let key = try? P256.Signing.PrivateKey(derRepresentation: der) { return .p256Private(key) }
        if let key = try? P384.Signing.PrivateKey(derRepresentation: der) { return .p384Private(key) }
        if let key = try? P521.Signing.PrivateKey(derRepresentation: der) { return .p521Private(key) }
        if let key = try? _RSA.Signing.PrivateKey(unsafeDERRepresentation: der) { return .rsaPrivate(key) }
        return nil
    }

    static func publicKey(der: [UInt8]) -> Material? {
        if der.count == 44, der.starts(with: self.ed25519SPKIPrefix),
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: der[12...])
        {
            return .ed25519Public(key)
        }
        if let key = try? P256.Signing.PublicKey(derRepresentation: der) { return .p256Public(key) }
        if let key = try? P384.Signing.PublicKey(derRepresentation: der) { return .p384Public(key) }
        if let key = try? P521.Signing.PublicKey(derRepresentation: der) { return .p521Public(key) }
        if let key = try? _RSA.Signing.PublicKey(unsafeDERRepresentation: der) { return .rsaPublic(key) }
        return nil
    }

    /// One JSON Web Key (RFC 7517): `oct`, `RSA`, `EC` (P-256/384/521) or `OKP` (Ed25519).
    public static func parseJWK(_ raw: some Collection<UInt8>) throws(CryptoKeyError) -> CryptoKey {
        guard let json = try? JSONValue(parsing: raw), case .object(let members) = json else {
            throw CryptoKeyError("failed to parse JWK: invalid JSON object")
        }
        return try self.jwk(members)
    }

    /// A JWK already parsed as JSON members (a JWKS `keys` entry).
    public static func jwk(_ members: [(String, JSONValue)]) throws(CryptoKeyError) -> CryptoKey {
        func string(_ name: String) -> String? {
            guard case .string(let value)? = members.last(where: { $0.0 == name })?.1 else { return nil }
            return value
        }
        func bytes(_ name: String) throws(CryptoKeyError) -> [UInt8]? {
            guard let text = string(name) else { return nil }
            guard let value = Base64Text.decodeAny(Array(text.utf8)) else { throw CryptoKeyError("failed to parse JWK: invalid base64 in '\(name)'") }
            return value
        }
        func required(_ name: String) throws(CryptoKeyError) -> [UInt8] {
            guard let value = try bytes(name) else { throw CryptoKeyError("failed to parse JWK: missing required field '\(name)'") }
            return value
        }
        var operations: [String]?
        if case .array(let values)? = members.last(where: { $0.0 == "key_ops" })?.1 {
            operations = values.compactMap { if case .string(let op) = $0 { op } else { nil } }
        }
        let material: Material
        do {
            switch string("kty") {
            case "oct":
                material = .symmetric(try required("k"))
            case "RSA":
                let n = try required("n"), e = try required("e")
                if let d = try bytes("d") {
                    material = .rsaPrivate(try _RSA.Signing.PrivateKey(n: n, e: e, d: d, p: try required("p"), q: try required("q")))
                } else {
                    material = .rsaPublic(try _RSA.Signing.PublicKey(n: n, e: e))
                }
            case "EC":
                let x = try required("x"), y = try required("y")
                let d = try bytes("d")
                switch string("crv") {
                case "P-256":
                    material = try d.map { .p256Private(try P256.Signing.PrivateKey(rawRepresentation: $0)) } ?? .p256Public(try P256.Signing.PublicKey(rawRepresentation: x + y))
                case "P-384":
                    material = try d.map { .p384Private(try P384.Signing.PrivateKey(rawRepresentation: $0)) } ?? .p384Public(try P384.Signing.PublicKey(rawRepresentation: x + y))
                case "P-521":
                    material = try d.map { .p521Private(try P521.Signing.PrivateKey(rawRepresentation: $0)) } ?? .p521Public(try P521.Signing.PublicKey(rawRepresentation: x + y))
                default:
                    throw CryptoKeyError("failed to parse JWK: unsupported curve '\(string("crv") ?? "")'")
                }
            case "OKP":
                guard string("crv") == "Ed25519" else { throw CryptoKeyError("failed to parse JWK: unsupported curve '\(string("crv") ?? "")'") }
                if let d = try bytes("d") {
                    material = .ed25519Private(try Curve25519.Signing.PrivateKey(rawRepresentation: d))
                } else {
                    material = .ed25519Public(try Curve25519.Signing.PublicKey(rawRepresentation: try required("x")))
                }
            case let other:
                throw CryptoKeyError("failed to parse JWK: invalid key type '\(other ?? "")'")
            }
        } catch let error as CryptoKeyError {
            throw error
        } catch {
            throw CryptoKeyError("failed to parse JWK: \(error)")
        }
        return CryptoKey(material, keyID: string("kid"), algorithm: string("alg"), use: string("use"), operations: operations)
    }

    // MARK: Public half and serialisation

    /// The public half with the same attributes; `nil` for a symmetric key.
    public var publicKey: CryptoKey? {
        let material: Material
        switch self.material {
        case .symmetric: return nil
        case .rsaPrivate(let key): material = .rsaPublic(key.publicKey)
        case .p256Private(let key): material = .p256Public(key.publicKey)
        case .p384Private(let key): material = .p384Public(key.publicKey)
        case .p521Private(let key): material = .p521Public(key.publicKey)
        case .ed25519Private(let key): material = .ed25519Public(key.publicKey)
        case .rsaPublic, .p256Public, .p384Public, .p521Public, .ed25519Public: material = self.material
        }
        return CryptoKey(material, keyID: self.keyID, algorithm: self.algorithm, use: self.use, operations: self.operations)
    }

    /// PKIX (`PUBLIC KEY`) DER of the public half; `nil` for a symmetric key.
    public var publicKeyDER: [UInt8]? {
        switch self.publicKey?.material {
        case .rsaPublic(let key): Array(key.derRepresentation)
        case .p256Public(let key): Array(key.derRepresentation)
        case .p384Public(let key): Array(key.derRepresentation)
        case .p521Public(let key): Array(key.derRepresentation)
        case .ed25519Public(let key): Self.ed25519SPKIPrefix + Array(key.rawRepresentation)
        default: nil
        }
    }

    /// The public half as PEM, the way daprd's GetKey answers it.
    public var publicKeyPEM: String? {
        self.publicKeyDER.map { PEMBlock.encode(label: "PUBLIC KEY", der: $0) }
    }

    /// The public half as a JWK, members sorted by name as Go's jwx writes them.
    public var publicKeyJWK: JSONValue? {
        guard let publicKey = self.publicKey else { return nil }
        var members: [(String, JSONValue)] = []
        if let algorithm = self.algorithm { members.append(("alg", .string(algorithm))) }
        func ec(_ crv: String, _ raw: Data) {
            let half = raw.count / 2
            members.append(("crv", .string(crv)))
            members.append(("kty", .string("EC")))
            members.append(("x", .string(Base64Text.encodeURL(raw.prefix(half)))))
            members.append(("y", .string(Base64Text.encodeURL(raw.suffix(half)))))
        }
        switch publicKey.material {
        case .rsaPublic(let key):
            guard let primitives = try? key.getKeyPrimitives() else { return nil }
            members.append(("e", .string(Base64Text.encodeURL(primitives.publicExponent))))
            members.append(("kty", .string("RSA")))
            members.append(("n", .string(Base64Text.encodeURL(primitives.modulus))))
        case .p256Public(let key): ec("P-256", key.rawRepresentation)
        case .p384Public(let key): ec("P-384", key.rawRepresentation)
        case .p521Public(let key): ec("P-521", key.rawRepresentation)
        case .ed25519Public(let key):
            members.append(("crv", .string("Ed25519")))
            members.append(("kty", .string("OKP")))
            members.append(("x", .string(Base64Text.encodeURL(key.rawRepresentation))))
        default: return nil
        }
        if let operations = self.operations { members.append(("key_ops", .array(operations.map(JSONValue.string)))) }
        if let keyID = self.keyID { members.append(("kid", .string(keyID))) }
        if let use = self.use { members.append(("use", .string(use))) }
        members.sort { $0.0 < $1.0 }
        return .object(members)
    }

    /// Dapr's `SerializeKey`: raw bytes for a symmetric key, PKCS#8 DER for a private key, PKIX
    /// DER for a public key.
    public var serialized: [UInt8] {
        switch self.material {
        case .symmetric(let bytes): bytes
        case .rsaPrivate(let key): Array(key.pkcs8DERRepresentation)
        case .p256Private(let key): Array(key.derRepresentation)
        case .p384Private(let key): Array(key.derRepresentation)
        case .p521Private(let key): Array(key.derRepresentation)
        case .ed25519Private(let key): Self.ed25519PKCS8Prefix + Array(key.rawRepresentation)
        case .rsaPublic, .p256Public, .p384Public, .p521Public, .ed25519Public: self.publicKeyDER ?? []
        }
    }

    // MARK: Restrictions

    /// JWK `key_ops`/`use` allow `operation` (`encrypt`, `wrapKey`, `sign`, …). No restriction
    /// set means every operation is allowed.
    public func canPerform(_ operation: String) -> Bool {
        if let operations, !operations.isEmpty, !operations.contains(operation) { return false }
        guard let use, !use.isEmpty else { return true }
        switch operation {
        case "encrypt", "decrypt", "wrapKey", "unwrapKey": return use == "enc"
        case "sign", "verify": return use == "sig"
        default: return true
        }
    }

    /// JWK `alg` allows `algorithm` (an unset `alg` allows any).
    public func canUse(algorithm: String) -> Bool {
        guard let own = self.algorithm, !own.isEmpty else { return true }
        return own == algorithm
    }
}

/// A key could not be read or used.
public struct CryptoKeyError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
