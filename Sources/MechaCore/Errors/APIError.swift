/// gRPC status codes (google.rpc.Code) used on the Dapr API surface.
public enum GRPCStatusCode: Int, Sendable, Hashable {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case internalError = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16
}

/// An error as the Dapr API reports it: one `ERR_*` code and message, rendered as an HTTP status and
/// JSON body on the HTTP surface and as a gRPC status (with rich details) on the gRPC surface.
/// Both surfaces render the same value; the catalogue lives in `APIError+Catalogue.swift`.
public struct APIError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Dapr error code, e.g. `ERR_STATE_STORE_NOT_FOUND`. Part of the compatibility contract.
    public var errorCode: String
    public var message: String
    public var httpStatus: Int
    public var grpcStatus: GRPCStatusCode
    /// Rich error details (`google.rpc.ErrorInfo` and friends), where Dapr sends them.
    public var details: APIErrorDetails?

    public init(errorCode: String, message: String, httpStatus: Int, grpcStatus: GRPCStatusCode, details: APIErrorDetails? = nil) {
        self.errorCode = errorCode
        self.message = message
        self.httpStatus = httpStatus
        self.grpcStatus = grpcStatus
        self.details = details
    }

    public var description: String { "\(self.errorCode): \(self.message)" }

    /// The HTTP body Dapr sends: `{"errorCode":"…","message":"…"}`, plus `details` when present.
    public var jsonBody: JSONValue {
        var members: [(String, JSONValue)] = [("errorCode", .string(self.errorCode)), ("message", .string(self.message))]
        if let details = self.details { members.append(("details", details.json)) }
        return .object(members)
    }
}

/// The structured details Dapr attaches to newer errors.
public struct APIErrorDetails: Sendable, Hashable {
    /// `google.rpc.ErrorInfo.reason`, e.g. `DAPR_STATE_NOT_FOUND`.
    public var reason: String
    /// `google.rpc.ErrorInfo.domain`: always `dapr.io`.
    public var domain: String
    public var metadata: [String: String]
    /// `google.rpc.ResourceInfo`: type (e.g. `state`), name (the component), owner, description.
    public var resourceType: String?
    public var resourceName: String?
    public var resourceOwner: String?
    public var resourceDescription: String?
    /// `google.rpc.BadRequest.field_violations`: (field, description).
    public var fieldViolations: [FieldViolation]

    public struct FieldViolation: Sendable, Hashable {
        public var field: String
        public var description: String
        public init(field: String, description: String) {
            self.field = field
            self.description = description
        }
    }

    public init(
        reason: String,
        domain: String = "dapr.io",
        metadata: [String: String] = [:],
        resourceType: String? = nil,
        resourceName: String? = nil,
        resourceOwner: String? = nil,
        resourceDescription: String? = nil,
        fieldViolations: [FieldViolation] = []
    ) {
        self.reason = reason
        self.domain = domain
        self.metadata = metadata
        self.resourceType = resourceType
        self.resourceName = resourceName
        self.resourceOwner = resourceOwner
        self.resourceDescription = resourceDescription
        self.fieldViolations = fieldViolations
    }

    /// Links for `google.rpc.Help` (url, description).
    public var helpLinks: [(url: String, description: String)] = []

    /// The HTTP rendering: typed detail objects in daprd's order (BadRequest, Help, ResourceInfo,
    /// then ErrorInfo), keys sorted as Go writes maps.
    public var json: JSONValue {
        var details: [JSONValue] = []
        if !self.fieldViolations.isEmpty {
            details.append(
                .object([
                    ("@type", "type.googleapis.com/google.rpc.BadRequest"),
                    (
                        "field_violations",
                        .array(self.fieldViolations.map { .object([("description", .string($0.description)), ("field", .string($0.field))]) })
                    ),
                ])
            )
        }
        if !self.helpLinks.isEmpty {
            details.append(
                .object([
                    ("@type", "type.googleapis.com/google.rpc.Help"),
                    ("links", .array(self.helpLinks.map { .object([("description", .string($0.description)), ("url", .string($0.url))]) })),
                ])
            )
        }
        if self.resourceType != nil || self.resourceName != nil {
            details.append(
                .object([
                    ("@type", "type.googleapis.com/google.rpc.ResourceInfo"),
                    ("description", .string(self.resourceDescription ?? "")),
                    ("owner", .string(self.resourceOwner ?? "")),
                    ("resource_name", .string(self.resourceName ?? "")),
                    ("resource_type", .string(self.resourceType ?? "")),
                ])
            )
        }
        details.append(
            .object([
                ("@type", "type.googleapis.com/google.rpc.ErrorInfo"),
                ("domain", .string(self.domain)),
                ("metadata", self.metadata.isEmpty ? .null : .stringMap(self.metadata)),
                ("reason", .string(self.reason)),
            ])
        )
        return .array(details)
    }

    public static func == (lhs: APIErrorDetails, rhs: APIErrorDetails) -> Bool {
        lhs.reason == rhs.reason && lhs.domain == rhs.domain && lhs.metadata == rhs.metadata && lhs.resourceType == rhs.resourceType
            && lhs.resourceName == rhs.resourceName && lhs.fieldViolations == rhs.fieldViolations
            && lhs.helpLinks.map(\.url) == rhs.helpLinks.map(\.url)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.reason)
        hasher.combine(self.resourceName)
    }
}

/// Adopted by component-level errors so the API layer never switches over concrete error types.
public protocol APIErrorConvertible: Error {
    func apiError(componentName: String) -> APIError
}
