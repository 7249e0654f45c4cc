/// A request to an output binding (`POST /v1.0/bindings/{name}`).
public struct BindingInvokeRequest: Sendable, Hashable {
    public var operation: String
    public var data: [UInt8]
    public var metadata: [String: String]

    public init(operation: String, data: [UInt8] = [], metadata: [String: String] = [:]) {
        self.operation = operation
        self.data = data
        self.metadata = metadata
    }
}

public struct BindingInvokeResponse: Sendable, Hashable {
    public var data: [UInt8]
    public var metadata: [String: String]
    public var contentType: String?
    /// False for `.noResponse`: the operation produced no response at all (HTTP 204), as opposed
    /// to a response with empty data (HTTP 200).
    public var hasResponse: Bool

    public init(data: [UInt8] = [], metadata: [String: String] = [:], contentType: String? = nil) {
        self.data = data
        self.metadata = metadata
        self.contentType = contentType
        self.hasResponse = true
    }

    /// No response (Dapr's nil response), e.g. after a delete.
    public static var noResponse: BindingInvokeResponse {
        var response = BindingInvokeResponse()
        response.hasResponse = false
        return response
    }
}

/// An output binding: the sidecar calls out to an external system.
public protocol OutputBinding: Component {
    /// Operation names this binding accepts (`create`, `get`, …); others are refused.
    var operations: [String] { get }
    func invoke(_ request: BindingInvokeRequest) async throws -> BindingInvokeResponse
}

/// An event read by an input binding, delivered to the app at `POST /{bindingName}`.
public struct BindingEvent: Sendable, Hashable {
    public var data: [UInt8]
    public var metadata: [String: String]

    public init(data: [UInt8], metadata: [String: String] = [:]) {
        self.data = data
        self.metadata = metadata
    }
}

/// An input binding: the external system triggers the app.
///
/// `read` calls `handler` for each event until `stop` fires; a handler that throws means the app did
/// not accept the event (the binding may retry when its source allows).
public protocol InputBinding: Component {
    func read(
        until stop: StopSignal,
        handler: @escaping @Sendable (BindingEvent) async throws -> Void
    ) async throws
}

public struct BindingError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { self.reason }
}
