public import GRPCCore
import GRPCNIOTransportHTTP2
public import MechaCore

/// Sends OTLP trace batches to a collector over gRPC: one unary call of
/// `opentelemetry.proto.collector.trace.v1.TraceService/Export` per batch, whose body is the
/// already-encoded `ExportTraceServiceRequest` (the encoder lives with the spans; this is only
/// the transport). The connection is kept and re-established by grpc-swift.
public final class OTLPGRPCExporter: Sendable {
    typealias Transport = HTTP2ClientTransport.Posix

    let client: GRPCClient<Transport>
    let headers: [(name: String, value: String)]
    let timeout: Duration

    static let export = MethodDescriptor(fullyQualifiedService: "opentelemetry.proto.collector.trace.v1.TraceService", method: "Export")

    /// - Parameters:
    ///   - address: `host:port`.
    public init(address: String, secure: Bool, headers: [(name: String, value: String)], timeout: Duration) throws {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            throw SidecarConfigurationError("otel endpointAddress '\(address)' is not host:port")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var config = Transport.Config.defaults
        config.backoff = .init(initial: .milliseconds(200), max: .seconds(5), multiplier: 1.6, jitter: 0.2)
        let transport = try Transport(
            target: GRPCAppChannel.target(host: host, port: port),
            transportSecurity: secure ? .tls : .plaintext,
            config: config
        )
        self.client = GRPCClient(transport: transport)
        self.headers = headers
        self.timeout = timeout
    }

    /// Keeps the connection; returns after `shutdown()`.
    public func run() async {
        try? await self.client.runConnections()
    }

    public func shutdown() {
        self.client.beginGracefulShutdown()
    }

    /// Sends one encoded `ExportTraceServiceRequest`; throws when the collector refuses it.
    public func export(_ request: [UInt8]) async throws {
        var metadata = Metadata()
        for (name, value) in self.headers { metadata.addString(value, forKey: name.lowercased()) }
        var options = CallOptions.defaults
        options.timeout = self.timeout
        try await self.client.unary(
            request: ClientRequest(message: request, metadata: metadata),
            descriptor: Self.export,
            serializer: BytesSerializer(),
            deserializer: BytesDeserializer(),
            options: options
        ) { response in _ = try response.message }
    }
}

/// An encoding done elsewhere, sent as is.
struct BytesSerializer: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
}

struct BytesDeserializer: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

/// A configuration value the sidecar cannot use.
public struct SidecarConfigurationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
