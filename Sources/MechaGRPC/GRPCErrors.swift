public import GRPCCore
public import MechaCore
import SwiftProtobuf

extension APIError {
    /// The gRPC rendering of a Dapr error: the status code, the message, and — where Dapr sends
    /// them — rich details as a `google.rpc.Status` in `grpc-status-details-bin`.
    public var rpcError: RPCError {
        // The answer the caller gets: its code is noted for `recordErrorCodes`.
        ErrorCodeScope.note(self.errorCode)
        var metadata = Metadata()
        var status = Google_Rpc_Status()
        status.code = Int32(self.grpcStatus.rawValue)
        status.message = self.message
        if let details = self.details ?? self.basicDetails {
            status.details = details.anyMessages
        }
        if let bytes = try? status.serializedBytes() as [UInt8] {
            metadata.addBinary(bytes, forKey: "grpc-status-details-bin")
        }
        return RPCError(code: RPCError.Code(self.grpcStatus), message: self.message, metadata: metadata)
    }
}

extension APIError {
    /// Errors daprd's gRPC API builds with its "basic" rich error: one ErrorInfo whose reason is the
    /// error code (domain `dapr.io`), so SDKs read `ERR_STATE_SAVE` and friends as the error code.
    static let basicErrorInfoCodes: Set<String> = [
        "ERR_STATE_GET", "ERR_STATE_SAVE", "ERR_STATE_DELETE", "ERR_STATE_BULK_DELETE", "ERR_STATE_TRANSACTION",
        "ERR_NOT_SUPPORTED_STATE_OPERATION", "ERR_INVOKE_OUTPUT_BINDING",
    ]

    var basicDetails: APIErrorDetails? {
        Self.basicErrorInfoCodes.contains(self.errorCode) ? APIErrorDetails(reason: self.errorCode) : nil
    }
}

extension APIErrorDetails {
    /// The details as packed `Any` messages, in daprd's order.
    var anyMessages: [Google_Protobuf_Any] {
        var messages: [any SwiftProtobuf.Message] = []
        if !self.fieldViolations.isEmpty {
            var badRequest = Google_Rpc_BadRequest()
            badRequest.fieldViolations = self.fieldViolations.map { violation in
                var field = Google_Rpc_BadRequest.FieldViolation()
                field.field = violation.field
                field.description_p = violation.description
                return field
            }
            messages.append(badRequest)
        }
        if !self.helpLinks.isEmpty {
            var help = Google_Rpc_Help()
            help.links = self.helpLinks.map { link in
                var entry = Google_Rpc_Help.Link()
                entry.url = link.url
                entry.description_p = link.description
                return entry
            }
            messages.append(help)
        }
        if self.resourceType != nil || self.resourceName != nil {
            var resource = Google_Rpc_ResourceInfo()
            resource.resourceType = self.resourceType ?? ""
            resource.resourceName = self.resourceName ?? ""
            resource.owner = self.resourceOwner ?? ""
            resource.description_p = self.resourceDescription ?? ""
            messages.append(resource)
        }
        var info = Google_Rpc_ErrorInfo()
        info.reason = self.reason
        info.domain = self.domain
        info.metadata = self.metadata
        messages.append(info)
        return messages.compactMap { try? Google_Protobuf_Any(message: $0) }
    }
}

extension RPCError.Code {
    init(_ code: GRPCStatusCode) {
        self = Status.Code(rawValue: code.rawValue).flatMap { RPCError.Code($0) } ?? .unknown
    }
}
