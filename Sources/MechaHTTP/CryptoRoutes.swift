import HTTPTypes
import HummingbirdCore
import MechaAPI
import MechaCore
import NIOCore

/// The cryptography routes, as daprd serves them:
///
/// - `PUT /v1.0-alpha1/crypto/{name}/encrypt` and `…/decrypt`: options in headers
///   (`dapr-key-name`, `dapr-key-wrap-algorithm`, `dapr-data-encryption-cipher`,
///   `dapr-omit-decryption-key-name`, `dapr-decryption-key-name`), the data as the raw body, the
///   result as an `application/octet-stream` body. The request body is processed as it arrives
///   (within the sidecar's maximum body size); the answer is collected before it is sent, as
///   daprd does, so a failure late in the data is still reported as an error status.
/// - `POST /v1.0-alpha1/subtlecrypto/{name}/{getkey|encrypt|decrypt|wrapkey|unwrapkey|sign|verify}`:
///   the `Subtle*Request` message as protojson in, the response message as protojson out (bytes
///   as base64, unset fields omitted).
struct CryptoRoutes {
    static let keyNameHeader = "dapr-key-name"
    static let keyWrapAlgorithmHeader = "dapr-key-wrap-algorithm"
    static let omitDecryptionKeyNameHeader = "dapr-omit-decryption-key-name"
    static let decryptionKeyNameHeader = "dapr-decryption-key-name"
    static let dataEncryptionCipherHeader = "dapr-data-encryption-cipher"
    static let subtleOperations: Set<String> = ["getkey", "encrypt", "decrypt", "wrapkey", "unwrapkey", "sign", "verify"]

    let api: CryptoAPI
    let maxBodySize: Int

    /// daprd's endpoint groups for allow/deny lists.
    static func accessGroup(_ operation: String) -> (name: String, version: String, route: String) {
        operation.hasPrefix("subtle/") ? ("subtlecrypto", "v1.0-alpha1", "subtlecrypto") : ("crypto", "v1.0-alpha1", "crypto")
    }

    func handle(name: String, operation: String, request: Request) async -> HTTPReply {
        do {
            switch operation {
            case "encrypt": return try await self.encrypt(name: name, request: request)
            case "decrypt": return try await self.decrypt(name: name, request: request)
            default: return try await self.subtle(name: name, operation: String(operation.dropFirst("subtle/".count)), request: request)
            }
        } catch let error as APIError {
            return .error(error)
        } catch {
            return .error(.cryptoOperation("\(error)"))
        }
    }

    // MARK: Encrypt / decrypt

    private func encrypt(name: String, request: Request) async throws -> HTTPReply {
        let provider = try self.api.provider(named: name)
        let keyName = Self.header(request, Self.keyNameHeader)
        guard !keyName.isEmpty else { throw APIError.badRequest("missing header '\(Self.keyNameHeader)'") }
        let algorithm = Self.header(request, Self.keyWrapAlgorithmHeader)
        guard !algorithm.isEmpty else { throw APIError.badRequest("missing header '\(Self.keyWrapAlgorithmHeader)'") }
        var session = try await self.api.startEncryption(
            provider: provider,
            componentName: name,
            keyName: keyName,
            keyWrapAlgorithm: algorithm,
            dataEncryptionCipher: Self.header(request, Self.dataEncryptionCipherHeader),
            omitDecryptionKeyName: Self.isTruthy(Self.header(request, Self.omitDecryptionKeyNameHeader)),
            decryptionKeyName: Self.header(request, Self.decryptionKeyNameHeader)
        )
        var output = session.header
        try await self.forEachChunk(of: request) { chunk throws(APIError) in output += try session.feed(chunk) }
        output += try session.finish()
        return .bytes(output, contentType: "application/octet-stream")
    }

    private func decrypt(name: String, request: Request) async throws -> HTTPReply {
        let provider = try self.api.provider(named: name)
        var session = self.api.startDecryption(provider: provider, componentName: name, keyName: Self.header(request, Self.keyNameHeader))
        var output: [UInt8] = []
        try await self.forEachChunk(of: request) { chunk throws(APIError) in output += try await session.feed(chunk) }
        output += try session.finish()
        return .bytes(output, contentType: "application/octet-stream")
    }

    /// Hands each body chunk to `body`, refusing a body past the maximum size.
    private func forEachChunk(of request: Request, _ body: ([UInt8]) async throws(APIError) -> Void) async throws {
        var total = 0
        for try await chunk in request.body {
            total += chunk.readableBytes
            guard total <= self.maxBodySize else { throw APIError.cryptoOperation("http: request body too large") }
            try await body(Array(chunk.readableBytesView))
        }
    }

    static func header(_ request: Request, _ name: String) -> String {
        request.headers[HTTPField.Name(name)!] ?? ""
    }

    /// Go's `kit/strings.IsTruthy`.
    static func isTruthy(_ value: String) -> Bool {
        ["y", "yes", "true", "t", "on", "1"].contains(value.trimmingSpaces().lowercased())
    }

    // MARK: Subtle

    private func subtle(name: String, operation: String, request: Request) async throws -> HTTPReply {
        var body: [UInt8] = []
        do {
            for try await chunk in request.body {
                guard body.count + chunk.readableBytes <= self.maxBodySize else { throw BodyTooLarge(limit: self.maxBodySize) }
                body.append(contentsOf: chunk.readableBytesView)
            }
        } catch {
            throw APIError.bodyRead("\(error)")
        }
        let message = try SubtleMessage(body)
        let keyName = try message.string("keyName", "key_name")
        let algorithm = try message.string("algorithm")
        var output: [(String, JSONValue)] = []
        func bytes(_ name: String, _ value: [UInt8]) {
            if !value.isEmpty { output.append((name, .string(Base64.encode(value)))) }
        }
        switch operation {
        case "getkey":
            _ = try self.api.provider(named: name)
            let json: Bool
            switch try message.format() {
            case 0: json = false
            case 1: json = true
            default: throw APIError.badRequest("invalid key format")
            }
            let key = try await self.api.getKey(componentName: name, name: try message.string("name"), json: json)
            if !key.name.isEmpty { output.append(("name", .string(key.name))) }
            if !key.publicKey.isEmpty { output.append(("publicKey", .string(key.publicKey))) }
        case "encrypt":
            let sealed = try await self.api.encrypt(
                componentName: name, plaintext: try message.bytes("plaintext"), algorithm: algorithm, keyName: keyName,
                nonce: try message.bytes("nonce"), associatedData: try message.bytes("associatedData", "associated_data")
            )
            bytes("ciphertext", sealed.ciphertext)
            bytes("tag", sealed.tag)
        case "decrypt":
            let plaintext = try await self.api.decrypt(
                componentName: name, ciphertext: try message.bytes("ciphertext"), algorithm: algorithm, keyName: keyName,
                nonce: try message.bytes("nonce"), tag: try message.bytes("tag"), associatedData: try message.bytes("associatedData", "associated_data")
            )
            bytes("plaintext", plaintext)
        case "wrapkey":
            let sealed = try await self.api.wrapKey(
                componentName: name, plaintextKey: try message.bytes("plaintextKey", "plaintext_key"), algorithm: algorithm, keyName: keyName,
                nonce: try message.bytes("nonce"), associatedData: try message.bytes("associatedData", "associated_data")
            )
            bytes("wrappedKey", sealed.ciphertext)
            bytes("tag", sealed.tag)
        case "unwrapkey":
            let key = try await self.api.unwrapKey(
                componentName: name, wrappedKey: try message.bytes("wrappedKey", "wrapped_key"), algorithm: algorithm, keyName: keyName,
                nonce: try message.bytes("nonce"), tag: try message.bytes("tag"), associatedData: try message.bytes("associatedData", "associated_data")
            )
            bytes("plaintextKey", key)
        case "sign":
            let signature = try await self.api.sign(componentName: name, digest: try message.bytes("digest"), algorithm: algorithm, keyName: keyName)
            bytes("signature", signature)
        default:  // verify
            let valid = try await self.api.verify(
                componentName: name, digest: try message.bytes("digest"), signature: try message.bytes("signature"), algorithm: algorithm, keyName: keyName
            )
            if valid { output.append(("valid", .bool(true))) }
        }
        return .json(.object(output))
    }
}

/// A `Subtle*Request` read as protojson reads it: fields by JSON or proto name, `null` as unset,
/// bytes as base64 (standard or URL alphabet), unknown fields ignored.
struct SubtleMessage {
    let members: [(String, JSONValue)]

    init(_ body: [UInt8]) throws(APIError) {
        guard !body.isEmpty else {
            self.members = []
            return
        }
        guard let json = try? JSONValue(parsing: body), case .object(let members) = json else {
            throw .malformedRequest("proto: syntax error: invalid JSON object")
        }
        self.members = members
    }

    func value(_ names: [String]) -> JSONValue? {
        guard let value = self.members.last(where: { names.contains($0.0) })?.1, !value.isNull else { return nil }
        return value
    }

    func string(_ names: String...) throws(APIError) -> String {
        guard let value = self.value(names) else { return "" }
        guard case .string(let text) = value else { throw .malformedRequest("proto: invalid value for string field \(names[0])") }
        return text
    }

    func bytes(_ names: String...) throws(APIError) -> [UInt8] {
        guard let value = self.value(names) else { return [] }
        guard case .string(let text) = value, let decoded = Self.base64(text) else {
            throw .malformedRequest("proto: invalid value for bytes field \(names[0])")
        }
        return decoded
    }

    /// Standard or URL-safe base64, padded or not, as protojson accepts bytes.
    static func base64(_ text: String) -> [UInt8]? {
        var normalized = String(text.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        while normalized.utf8.count % 4 != 0 { normalized += "=" }
        return Base64.decode(normalized)
    }

    /// `format`: `PEM`/`JSON` or their numbers.
    func format() throws(APIError) -> Int {
        switch self.value(["format"]) {
        case nil: return 0
        case .string("PEM")?: return 0
        case .string("JSON")?: return 1
        case .number(let digits)?: return Int(digits) ?? -1
        default: throw .malformedRequest("proto: invalid value for enum field format")
        }
    }
}

extension DaprRoute {
    /// `PUT /v1.0-alpha1/crypto/{name}/encrypt|decrypt` and
    /// `POST /v1.0-alpha1/subtlecrypto/{name}/{operation}`.
    static func matchCrypto(method: String, segments: [String]) -> DaprRoute? {
        guard segments.count == 4, segments[0] == "v1.0-alpha1", let name = PercentDecoding.queryUnescape(segments[2]) else { return nil }
        if segments[1] == "crypto", method == "PUT", segments[3] == "encrypt" || segments[3] == "decrypt" {
            return .crypto(name: name, operation: segments[3])
        }
        if segments[1] == "subtlecrypto", method == "POST", CryptoRoutes.subtleOperations.contains(segments[3]) {
            return .crypto(name: name, operation: "subtle/" + segments[3])
        }
        return nil
    }
}
