public import MechaCore
public import MechaTelemetry

/// One finished exchange on a surface of the Dapr API, as observers (metrics, API logs) see it.
/// Reported once the answer has ended, by the HTTP connection handler (every HTTP request,
/// general and fast path alike) and the gRPC interceptor and proxy route.
public struct InboundExchange: Sendable {
    public var surface: InboundOperation.Surface
    /// HTTP: the method (`GET`); gRPC: empty.
    public var verb: String
    /// HTTP: the path without the query; gRPC: the full method (`/pkg.Service/Method`).
    public var path: Substring
    /// HTTP: the status code; gRPC: the status code's number.
    public var status: Int
    public var elapsed: Duration
    public var requestBytes: Int
    public var responseBytes: Int
    /// The calling app, where the listener knows it (the sidecar-to-sidecar listener).
    public var caller: String?
    /// `user-agent` and `traceparent` of the request, when an observer `wantsDetails`.
    public var userAgent: String?
    public var traceParent: String?
    /// The app a `dapr-app-id` header names (the API listener): the request is an invocation.
    public var invokeTarget: String?
    /// The Dapr error code the call was answered with (when an observer `wantsErrorCodes`).
    public var errorCode: String?

    public init(
        surface: InboundOperation.Surface, verb: String, path: Substring, status: Int, elapsed: Duration, requestBytes: Int = 0,
        responseBytes: Int = 0, caller: String? = nil, userAgent: String? = nil, traceParent: String? = nil, invokeTarget: String? = nil,
        errorCode: String? = nil
    ) {
        self.errorCode = errorCode
        self.invokeTarget = invokeTarget
        self.caller = caller
        self.userAgent = userAgent
        self.traceParent = traceParent
        self.surface = surface
        self.verb = verb
        self.path = path
        self.status = status
        self.elapsed = elapsed
        self.requestBytes = requestBytes
        self.responseBytes = responseBytes
    }
}

/// Told about every finished exchange. Called on the event loop (HTTP) or the call's task (gRPC):
/// must not block.
public protocol InboundObserver: Sendable {
    func completed(_ exchange: InboundExchange)
    /// Whether `completed` reads `userAgent` and `traceParent` (surfaces skip the header lookups
    /// otherwise).
    var wantsDetails: Bool { get }
    /// Whether `completed` reads `errorCode` (surfaces note error codes only then).
    var wantsErrorCodes: Bool { get }
}

extension InboundObserver {
    public var wantsDetails: Bool { false }
    public var wantsErrorCodes: Bool { false }
}

/// The Dapr HTTP and gRPC server metrics, fed by the surfaces.
public struct MetricsObserver: InboundObserver {
    public let metrics: DaprMetrics
    public init(metrics: DaprMetrics) { self.metrics = metrics }

    public var wantsErrorCodes: Bool { self.metrics.recordsErrorCodes }

    public func completed(_ exchange: InboundExchange) {
        if let code = exchange.errorCode { self.metrics.errorCode(code, category: APIError.category(ofErrorCode: code)) }
        switch exchange.surface {
        case .http:
            // `/v1.0/invoke/<app>/method/…` or the `dapr-app-id` header: the caller's side of
            // service invocation, recorded with the exchange.
            self.metrics.httpServer(
                method: exchange.verb, path: exchange.path, status: exchange.status, elapsed: exchange.elapsed,
                requestBytes: exchange.requestBytes, responseBytes: exchange.responseBytes,
                invokeTarget: Self.invokeTarget(exchange.path) ?? exchange.invokeTarget)
        case .grpc:
            self.metrics.grpcServer(method: String(exchange.path), status: GRPCStatusCode(rawValue: exchange.status)?.goName ?? "Unknown", elapsed: exchange.elapsed)
        }
    }
}

extension MetricsObserver {
    /// The app id of `/v1.0/invoke/<app>/method/…`, as the caller wrote it (with any `.namespace`);
    /// the `dapr-app-id` header form is `InboundExchange.invokeTarget`.
    static func invokeTarget(_ path: Substring) -> String? {
        InvocationPath.split(path).map { String($0.app) }
    }
}

/// `/v1.0/invoke/<app>/method/<method>` as the observers read it (metrics, span names): target
/// and method as written, compared byte by byte — this runs for every request, and
/// Character-wise `hasPrefix` showed in the profile.
public enum InvocationPath {
    public static func split(_ path: Substring) -> (app: Substring, method: Substring)? {
        let utf8 = path.utf8
        // Offsets of the slash after the app id and of the method, found in the contiguous bytes
        // (a generic `starts(with:)` over the view was 1 % of a request in the profile).
        let found = utf8.withContiguousStorageIfAvailable { bytes -> (slash: Int, method: Int)? in
            Self.offsets(UnsafeRawBufferPointer(bytes))
        }
        let offsets: (slash: Int, method: Int)?
        if let found { offsets = found } else { offsets = Array(utf8).withUnsafeBytes { Self.offsets($0) } }
        guard let offsets else { return nil }
        let slash = utf8.index(utf8.startIndex, offsetBy: offsets.slash)
        let method = utf8.index(utf8.startIndex, offsetBy: offsets.method)
        let appStart = utf8.index(utf8.startIndex, offsetBy: Self.prefix.count)
        return (Substring(utf8[appStart..<slash]), Substring(utf8[method...]))
    }

    private static let prefix: [UInt8] = Array("/v1.0/invoke/".utf8)
    private static let methodMark: [UInt8] = Array("/method/".utf8)

    private static func offsets(_ bytes: UnsafeRawBufferPointer) -> (slash: Int, method: Int)? {
        let prefix = Self.prefix
        guard bytes.count > prefix.count + Self.methodMark.count else { return nil }
        for index in 0..<prefix.count where bytes[index] != prefix[index] { return nil }
        var slash = prefix.count
        while slash < bytes.count, bytes[slash] != UInt8(ascii: "/") { slash += 1 }
        guard slash != prefix.count, slash + Self.methodMark.count <= bytes.count else { return nil }
        for index in 0..<Self.methodMark.count where bytes[slash + index] != Self.methodMark[index] { return nil }
        return (slash, slash + Self.methodMark.count)
    }
}

extension GRPCStatusCode {
    /// The code as Go's `codes.Code.String()` writes it (daprd's `grpc_server_status` label).
    public var goName: String {
        switch self {
        case .ok: "OK"
        case .cancelled: "Canceled"
        case .unknown: "Unknown"
        case .invalidArgument: "InvalidArgument"
        case .deadlineExceeded: "DeadlineExceeded"
        case .notFound: "NotFound"
        case .alreadyExists: "AlreadyExists"
        case .permissionDenied: "PermissionDenied"
        case .resourceExhausted: "ResourceExhausted"
        case .failedPrecondition: "FailedPrecondition"
        case .aborted: "Aborted"
        case .outOfRange: "OutOfRange"
        case .unimplemented: "Unimplemented"
        case .internalError: "Internal"
        case .unavailable: "Unavailable"
        case .dataLoss: "DataLoss"
        case .unauthenticated: "Unauthenticated"
        }
    }
}
