import HTTPTypes
import HummingbirdCore
public import MechaCore
import NIOCore

/// A buffered HTTP answer produced by a route handler.
struct HTTPReply: Sendable {
    var status: Int
    var headers: HTTPFields
    var body: ByteBuffer?
    /// The Dapr error code of an error answer (counted with `recordErrorCodes`).
    var errorCode: String? = nil

    /// The internal header that carries `errorCode` to the connection's exchange observer, which
    /// removes it before the answer leaves (written only while error codes are recorded).
    static let errorCodeHeader = "x-mecha-error-code"

    static func noContent(_ headers: HTTPFields = [:]) -> HTTPReply {
        HTTPReply(status: 204, headers: headers, body: nil)
    }

    static func json(_ value: JSONValue, status: Int = 200, headers: HTTPFields = [:], trailingNewline: Bool = false) -> HTTPReply {
        var bytes = value.serialized
        if trailingNewline { bytes.append(0x0A) }
        var headers = headers
        headers[.contentType] = "application/json"
        return HTTPReply(status: status, headers: headers, body: ByteBuffer(bytes: bytes))
    }

    static func bytes(_ bytes: [UInt8], status: Int = 200, contentType: String = "application/json", headers: HTTPFields = [:]) -> HTTPReply {
        var headers = headers
        headers[.contentType] = contentType
        return HTTPReply(status: status, headers: headers, body: ByteBuffer(bytes: bytes))
    }

    static func error(_ error: APIError, headers: HTTPFields = [:]) -> HTTPReply {
        var reply = HTTPReply.json(error.jsonBody, status: error.httpStatus, headers: headers)
        reply.errorCode = error.errorCode
        return reply
    }

    static func text(_ text: String, status: Int) -> HTTPReply {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        return HTTPReply(status: status, headers: headers, body: ByteBuffer(string: text))
    }

    /// `marksErrorCode`: the answer carries `errorCode` in `errorCodeHeader` for the exchange
    /// observer (which is then in the pipeline and removes it).
    func write(to writer: consuming ResponseWriter, marksErrorCode: Bool = false) async throws {
        var headers = self.headers
        if marksErrorCode, let errorCode { headers[HTTPField.Name(Self.errorCodeHeader)!] = errorCode }
        if let body {
            headers[.contentLength] = String(body.readableBytes)
            try await writer.write(response: HTTPResponse(status: .init(code: self.status), headerFields: headers), body: .init(byteBuffer: body))
        } else {
            if self.status != 204 && self.status != 304 { headers[.contentLength] = "0" }
            try await writer.writeResponse(HTTPResponse(status: .init(code: self.status), headerFields: headers))
        }
    }
}

extension HTTPFields {
    /// Adds a header by string name, ignoring names HTTP does not allow.
    mutating func add(_ name: String, _ value: String) {
        guard let fieldName = HTTPField.Name(name) else { return }
        self.append(HTTPField(name: fieldName, value: value))
    }
}
