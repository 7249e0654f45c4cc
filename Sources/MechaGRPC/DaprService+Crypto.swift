import Foundation
import GRPCCore
import GRPCProtobuf
import MechaAPI
import MechaCore
import Synchronization

typealias EncryptRequest = Dapr_Proto_Runtime_V1_EncryptRequest
typealias EncryptResponse = Dapr_Proto_Runtime_V1_EncryptResponse
typealias DecryptRequest = Dapr_Proto_Runtime_V1_DecryptRequest
typealias DecryptResponse = Dapr_Proto_Runtime_V1_DecryptResponse

/// The cryptography methods of `dapr.proto.runtime.v1.Dapr`.
///
/// `EncryptAlpha1`/`DecryptAlpha1` are bidirectional streams, as in daprd: the first message
/// carries the options (and may carry data), every message's payload has a `seq` counting from 0,
/// and the answer is a stream of payload chunks with their own `seq`. The first message must
/// arrive within 5 seconds. Data is processed as it arrives — one segment at a time — so memory
/// does not grow with the message; each message is bounded by the server's maximum message size.
extension DaprService {
    static let cryptoFirstMessageTimeout = Duration.seconds(5)

    func registerCrypto<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: DaprMethod.EncryptAlpha1.descriptor,
            deserializer: ProtobufDeserializer<EncryptRequest>(),
            serializer: ProtobufSerializer<EncryptResponse>()
        ) { request, _ in
            self.encryptStream(request)
        }
        router.registerHandler(
            forMethod: DaprMethod.DecryptAlpha1.descriptor,
            deserializer: ProtobufDeserializer<DecryptRequest>(),
            serializer: ProtobufSerializer<DecryptResponse>()
        ) { request, _ in
            self.decryptStream(request)
        }
        Self.unary(&router, DaprMethod.SubtleGetKeyAlpha1.descriptor, self.subtleGetKey)
        Self.unary(&router, DaprMethod.SubtleEncryptAlpha1.descriptor, self.subtleEncrypt)
        Self.unary(&router, DaprMethod.SubtleDecryptAlpha1.descriptor, self.subtleDecrypt)
        Self.unary(&router, DaprMethod.SubtleWrapKeyAlpha1.descriptor, self.subtleWrapKey)
        Self.unary(&router, DaprMethod.SubtleUnwrapKeyAlpha1.descriptor, self.subtleUnwrapKey)
        Self.unary(&router, DaprMethod.SubtleSignAlpha1.descriptor, self.subtleSign)
        Self.unary(&router, DaprMethod.SubtleVerifyAlpha1.descriptor, self.subtleVerify)
    }

    // MARK: Streams

    func encryptStream(_ request: StreamingServerRequest<EncryptRequest>) -> StreamingServerResponse<EncryptResponse> {
        let crypto = self.api.crypto
        return Self.cryptoStream(request) { first in
            guard first.hasOptions else { throw APIError.badRequest("first message does not contain the required options") }
            let options = first.options
            guard !options.keyName.isEmpty else { throw APIError.badRequest("missing property 'keyName' in the options message") }
            guard !options.keyWrapAlgorithm.isEmpty else { throw APIError.badRequest("missing property 'keyWrapAlgorithm' in the options message") }
            let provider = try crypto.provider(named: options.componentName)
            var session = try await crypto.startEncryption(
                provider: provider,
                componentName: options.componentName,
                keyName: options.keyName,
                keyWrapAlgorithm: options.keyWrapAlgorithm,
                dataEncryptionCipher: options.dataEncryptionCipher,
                omitDecryptionKeyName: options.omitDecryptionKeyName,
                decryptionKeyName: options.decryptionKeyName
            )
            let header = session.header
            return CryptoStreamTransform(
                start: header,
                feed: { bytes in try session.feed(bytes) },
                finish: { try session.finish() }
            )
        } respond: { chunk in
            var response = EncryptResponse()
            response.payload = chunk
            return response
        }
    }

    func decryptStream(_ request: StreamingServerRequest<DecryptRequest>) -> StreamingServerResponse<DecryptResponse> {
        let crypto = self.api.crypto
        return Self.cryptoStream(request) { first in
            guard first.hasOptions else { throw APIError.badRequest("first message does not contain the required options") }
            let provider = try crypto.provider(named: first.options.componentName)
            var session = crypto.startDecryption(provider: provider, componentName: first.options.componentName, keyName: first.options.keyName)
            return CryptoStreamTransform(
                start: [],
                feed: { bytes in try await session.feed(bytes) },
                finish: { try session.finish() }
            )
        } respond: { chunk in
            var response = DecryptResponse()
            response.payload = chunk
            return response
        }
    }

    /// The stream skeleton both directions share: first message (with its deadline), options,
    /// then payload chunks in `seq` order through `transform`, answers numbered from 0.
    static func cryptoStream<Request: CryptoStreamMessage, Response: Sendable>(
        _ request: StreamingServerRequest<Request>,
        prepare: @escaping @Sendable (Request) async throws -> CryptoStreamTransform,
        respond: @escaping @Sendable (Dapr_Proto_Common_V1_StreamPayload) -> Response
    ) -> StreamingServerResponse<Response> {
        StreamingServerResponse { writer in
            let received = FirstMessageFlag()
            try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    do {
                        try await Task.sleep(for: Self.cryptoFirstMessageTimeout)
                    } catch {
                        return false  // the work finished first
                    }
                    guard received.value.load(ordering: .acquiring) else {
                        throw APIError.badRequest("error waiting for first message: context deadline exceeded").rpcError
                    }
                    return false
                }
                group.addTask {
                    do {
                        var messages = request.messages.makeAsyncIterator()
                        let first: Request
                        do {
                            guard let message = try await messages.next() else { throw APIError.cryptoOperation("error receiving the first message: EOF") }
                            first = message
                        } catch let error as APIError {
                            throw error
                        } catch {
                            throw APIError.cryptoOperation("error receiving the first message: \(error)")
                        }
                        received.value.store(true, ordering: .releasing)
                        let transform = try await prepare(first)
                        var sequence: UInt64 = 0
                        func send(_ bytes: [UInt8]) async throws {
                            guard !bytes.isEmpty else { return }
                            var chunk = Dapr_Proto_Common_V1_StreamPayload()
                            chunk.data = Data(bytes)
                            chunk.seq = sequence
                            sequence += 1
                            try await writer.write(respond(chunk))
                        }
                        try await send(transform.start)
                        var expected: UInt64 = 0
                        var current: Request? = first
                        while let message = current {
                            if message.hasPayload {
                                let payload = message.payload
                                guard payload.seq == expected else {
                                    throw APIError.cryptoOperation("invalid sequence number received: \(payload.seq) (expected: \(expected))")
                                }
                                expected += 1
                                try await send(try await transform.feed(Array(payload.data)))
                            }
                            do {
                                current = try await messages.next()
                            } catch {
                                throw APIError.cryptoOperation("error receiving message: \(error)")
                            }
                            if let next = current, next.hasOptions {
                                throw APIError.cryptoOperation("options found in non-leading message")
                            }
                        }
                        try await send(try transform.finish())
                        return true
                    } catch {
                        throw error.rpcErrorForStream
                    }
                }
                // The stream ends when the work does; the deadline child is then pointless.
                for try await workDone in group where workDone {
                    group.cancelAll()
                }
            }
            return [:]
        }
    }

    // MARK: Subtle

    func subtleGetKey(_ request: Dapr_Proto_Runtime_V1_SubtleGetKeyRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_SubtleGetKeyResponse {
        _ = try self.api.crypto.provider(named: request.componentName)
        let json: Bool
        switch request.format {
        case .pem: json = false
        case .json: json = true
        default: throw APIError.badRequest("invalid key format")
        }
        let key = try await self.api.crypto.getKey(componentName: request.componentName, name: request.name, json: json)
        var response = Dapr_Proto_Runtime_V1_SubtleGetKeyResponse()
        response.name = key.name
        response.publicKey = key.publicKey
        return response
    }

    func subtleEncrypt(_ request: Dapr_Proto_Runtime_V1_SubtleEncryptRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_SubtleEncryptResponse {
        let sealed = try await self.api.crypto.encrypt(
            componentName: request.componentName,
            plaintext: Array(request.plaintext),
            algorithm: request.algorithm,
            keyName: request.keyName,
            nonce: Array(request.nonce),
            associatedData: Array(request.associatedData)
        )
        var response = Dapr_Proto_Runtime_V1_SubtleEncryptResponse()
        response.ciphertext = Data(sealed.ciphertext)
        response.tag = Data(sealed.tag)
        return response
    }

    func subtleDecrypt(_ request: Dapr_Proto_Runtime_V1_SubtleDecryptRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_SubtleDecryptResponse {
        let plaintext = try await self.api.crypto.decrypt(
            componentName: request.componentName,
            ciphertext: Array(request.ciphertext),
            algorithm: request.algorithm,
            keyName: request.keyName,
            nonce: Array(request.nonce),
            tag: Array(request.tag),
            associatedData: Array(request.associatedData)
        )
        var response = Dapr_Proto_Runtime_V1_SubtleDecryptResponse()
        response.plaintext = Data(plaintext)
        return response
    }

    func subtleWrapKey(_ request: Dapr_Proto_Runtime_V1_SubtleWrapKeyRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_SubtleWrapKeyResponse {
        let sealed = try await self.api.crypto.wrapKey(
            componentName: request.componentName,
            plaintextKey: Array(request.plaintextKey),
            algorithm: request.algorithm,
            keyName: request.keyName,
            nonce: Array(request.nonce),
            associatedData: Array(request.associatedData)
        )
        var response = Dapr_Proto_Runtime_V1_SubtleWrapKeyResponse()
        response.wrappedKey = Data(sealed.ciphertext)
        response.tag = Data(sealed.tag)
        return response
    }

    func subtleUnwrapKey(_ request: Dapr_Proto_Runtime_V1_SubtleUnwrapKeyRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_SubtleUnwrapKeyResponse {
        let key = try await self.api.crypto.unwrapKey(
            componentName: request.componentName,
            wrappedKey: Array(request.wrappedKey),
            algorithm: request.algorithm,
            keyName: request.keyName,
            nonce: Array(request.nonce),
            tag: Array(request.tag),
            associatedData: Array(request.associatedData)
        )
        var response = Dapr_Proto_Runtime_V1_SubtleUnwrapKeyResponse()
        response.plaintextKey = Data(key)
        return response
    }

    func subtleSign(_ request: Dapr_Proto_Runtime_V1_SubtleSignRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_SubtleSignResponse {
        let signature = try await self.api.crypto.sign(
            componentName: request.componentName,
            digest: Array(request.digest),
            algorithm: request.algorithm,
            keyName: request.keyName
        )
        var response = Dapr_Proto_Runtime_V1_SubtleSignResponse()
        response.signature = Data(signature)
        return response
    }

    func subtleVerify(_ request: Dapr_Proto_Runtime_V1_SubtleVerifyRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_SubtleVerifyResponse {
        let valid = try await self.api.crypto.verify(
            componentName: request.componentName,
            digest: Array(request.digest),
            signature: Array(request.signature),
            algorithm: request.algorithm,
            keyName: request.keyName
        )
        var response = Dapr_Proto_Runtime_V1_SubtleVerifyResponse()
        response.valid = valid
        return response
    }
}

/// Set once the first message of a crypto stream has arrived.
final class FirstMessageFlag: Sendable {
    let value = Atomic<Bool>(false)
}

/// What a crypto stream does with its data: bytes to send first, then per chunk, then at the end.
struct CryptoStreamTransform {
    var start: [UInt8]
    var feed: ([UInt8]) async throws -> [UInt8]
    var finish: () throws -> [UInt8]
}

/// `EncryptRequest` and `DecryptRequest` alike: optional options, optional payload.
protocol CryptoStreamMessage: Sendable {
    var hasOptions: Bool { get }
    var hasPayload: Bool { get }
    var payload: Dapr_Proto_Common_V1_StreamPayload { get }
}

extension EncryptRequest: CryptoStreamMessage {}
extension DecryptRequest: CryptoStreamMessage {}
