import Foundation
public import GRPCCore
public import MechaAPI
public import MechaCore
import NIOCore
import NIOPosix
import SwiftProtobuf

/// Headers ⇄ gRPC metadata on the app channel, as daprd converts them.
enum AppMetadata {
    /// Hop-by-hop headers (RFC 7230 §6.1) and headers the gRPC transport owns.
    static let skippedOutgoing: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "http2-settings", "te", "trailer",
        "proxy-authorization", "proxy-authenticate", "content-type", "content-length", "host", "destination-app-id",
        "dapr-api-token",
    ]

    /// HTTP headers daprd passes to gRPC apps with a `dapr-` prefix (`isPermanentHTTPHeader`).
    static let permanentHTTPHeaders: Set<String> = [
        "accept", "accept-charset", "accept-language", "accept-ranges", "cache-control", "cookie", "date", "expect", "from",
        "if-match", "if-modified-since", "if-none-match", "if-schedule-tag-match", "if-unmodified-since", "max-forwards",
        "origin", "pragma", "referer", "via", "warning",
    ]

    /// Request headers as gRPC metadata: lower-case names; hop-by-hop, content headers, binary
    /// (`-bin`) keys and sidecar-internal (`x-mecha-`) headers left out; reserved names
    /// (`grpc-*`, HTTP-only headers) prefixed with `dapr-`; the app token added when configured.
    static func outgoing(_ headers: HeaderList, apiToken: String?) -> Metadata {
        var metadata = Metadata()
        for field in headers {
            let name = field.name.lowercased()
            if name.isEmpty || name.hasPrefix(":") || name.hasSuffix("-bin") || name.hasPrefix("x-mecha-") || self.skippedOutgoing.contains(name) { continue }
            guard name.utf8.allSatisfy(Self.isMetadataKeyByte) else { continue }
            let key = name.hasPrefix("grpc-") || self.permanentHTTPHeaders.contains(name) ? "dapr-" + name : name
            metadata.addString(field.value, forKey: key)
        }
        if let apiToken, !apiToken.isEmpty {
            metadata.removeAllValues(forKey: "dapr-api-token")
            metadata.addString(apiToken, forKey: "dapr-api-token")
        }
        return metadata
    }

    static func isMetadataKeyByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."): true
        default: false
        }
    }

    /// The app's response metadata as headers for the caller: text values only, without the
    /// transport's own (`grpc-*`, content type) and sidecar-internal names.
    static func incoming(_ metadata: Metadata) -> HeaderList {
        var headers = HeaderList()
        for (key, value) in metadata {
            let name = key.lowercased()
            if name.hasPrefix(":") || name.hasPrefix("grpc-") || name.hasPrefix("x-mecha-") || name.hasSuffix("-bin") { continue }
            if name == "content-type" || name == "content-length" || name == "te" || self.skippedOutgoing.contains(name) { continue }
            if case .string(let text) = value { headers.add(name, text) }
        }
        return headers
    }
}

/// A gRPC app's error status, as carried back to callers of an invocation: the JSON body HTTP
/// callers see (daprd's protojson of the status, unpopulated fields left out) and, in the
/// sidecar-internal header `x-mecha-grpc-status`, the `google.rpc.Status` (base64) so the gRPC API
/// can hand gRPC callers the app's own code, message and details.
public struct AppRPCStatus: Sendable {
    public static let header = "x-mecha-grpc-status"

    public var status: Google_Rpc_Status

    init(_ error: RPCError) {
        var status = Google_Rpc_Status()
        status.code = Int32(error.code.rawValue)
        status.message = error.message
        for bytes in error.metadata[binaryValues: "grpc-status-details-bin"] {
            if let decoded = try? Google_Rpc_Status(serializedBytes: bytes) {
                status.details = decoded.details
                break
            }
        }
        self.status = status
    }

    init(status: Google_Rpc_Status) {
        self.status = status
    }

    /// `{"code":5,"message":"…","details":[…]}` with empty fields left out, as Go's protojson
    /// writes it.
    var json: [UInt8] {
        var members: [(String, JSONValue)] = []
        if self.status.code != 0 { members.append(("code", .number(String(self.status.code)))) }
        if !self.status.message.isEmpty { members.append(("message", .string(self.status.message))) }
        let details = self.status.details.compactMap(Self.json)
        if !details.isEmpty { members.append(("details", .array(details))) }
        return JSONValue.object(members).serialized
    }

    /// One detail in protojson form (`{"@type":"type.googleapis.com/…", …}`); nil for types this
    /// sidecar does not know.
    static func json(_ any: Google_Protobuf_Any) -> JSONValue? {
        _ = Self.registered
        guard let text = try? any.jsonString() else { return nil }
        return try? JSONValue(parsing: Array(text.utf8))
    }

    /// The rich error detail types, registered once so `Any` can be rendered as JSON.
    static let registered: Bool = {
        let types: [any SwiftProtobuf.Message.Type] = [
            Google_Rpc_ErrorInfo.self, Google_Rpc_ResourceInfo.self, Google_Rpc_BadRequest.self, Google_Rpc_Help.self,
        ]
        for type in types { Google_Protobuf_Any.register(messageType: type) }
        return true
    }()

    /// The status for the internal header.
    var encoded: String {
        let bytes: [UInt8] = (try? self.status.serializedBytes()) ?? []
        return Base64.encode(bytes)
    }

    /// The app's status from an invocation answer's headers, when the app is a gRPC app that
    /// failed the call (for the gRPC API's `InvokeService`).
    public static func from(_ headers: HeaderList) -> AppRPCStatus? {
        guard let text = headers.first(Self.header), let bytes = Base64.decode(text),
            let status = try? Google_Rpc_Status(serializedBytes: bytes)
        else { return nil }
        return AppRPCStatus(status: status)
    }

    /// The status as an `RPCError` with the details in `grpc-status-details-bin`, the way the
    /// app sent it.
    public var rpcError: RPCError {
        var metadata = Metadata()
        if !self.status.details.isEmpty, let bytes = try? self.status.serializedBytes() as [UInt8] {
            metadata.addBinary(bytes, forKey: "grpc-status-details-bin")
        }
        let code = Status.Code(rawValue: Int(self.status.code)).flatMap { RPCError.Code($0) } ?? .unknown
        return RPCError(code: code, message: self.status.message, metadata: metadata)
    }

    /// Go's rendering of a gRPC error: `rpc error: code = NotFound desc = …`.
    static func goDescription(_ error: RPCError) -> String {
        "rpc error: code = \(Self.goName(error.code)) desc = \(error.message)"
    }

    static func goName(_ code: RPCError.Code) -> String {
        switch code.rawValue {
        case 1: "Canceled"
        case 2: "Unknown"
        case 3: "InvalidArgument"
        case 4: "DeadlineExceeded"
        case 5: "NotFound"
        case 6: "AlreadyExists"
        case 7: "PermissionDenied"
        case 8: "ResourceExhausted"
        case 9: "FailedPrecondition"
        case 10: "Aborted"
        case 11: "OutOfRange"
        case 12: "Unimplemented"
        case 13: "Internal"
        case 14: "Unavailable"
        case 15: "DataLoss"
        case 16: "Unauthenticated"
        default: "Code(\(code.rawValue))"
        }
    }
}

/// Checks whether something accepts TCP connections on a port (daprd dials every 100 ms with a
/// 500 ms timeout while waiting for the app).
enum TCPConnectProbe {
    static func canConnect(host: String, port: Int) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(500))
                .connect(host: host, port: port)
                .get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }
}
