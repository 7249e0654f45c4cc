import MechaConfig
import MechaCore
import MechaCrypto
@_spi(Fuzzing) import MechaHTTP
import NIOCore
import RESPWire

/// Every fuzz target: a function of arbitrary bytes that must neither crash nor break the
/// invariant it checks (a broken invariant traps, which libFuzzer reports as a finding).
///
/// `scripts/fuzz` runs them under libFuzzer (the package in `Fuzz/`); MechaHTTPTests replays the
/// seed corpora in `Fuzz/corpus/<target>/` through them on every test run.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// HTTP/1.1 request parsing, route table, fast-path routers, method normalization.
    case http
    /// The JSON parser: what parses serializes and parses back to the same value.
    case json
    /// The resource loader (YAML preflight, composition, decoding of every kind).
    case yaml
    /// The RESP2/RESP3 decoder: the same values whether the bytes come at once or split.
    case resp
    /// The CEL parser and evaluator (subscription routing rules).
    case cel
    /// Completing a CloudEvent an app publishes.
    case cloudevent
    /// Go durations (round trip through `format`) and byte quantities.
    case duration
    /// Encrypted messages (`dapr.io/enc/v1`) from a caller: the header read at once and split in
    /// two agree, a manifest that decodes re-encodes to itself, decryption fails cleanly.
    case enc
    /// Multi-app run templates (`dapr.yaml`).
    case runtemplate
    /// DNS messages as mDNS receives them from anyone on the LAN: decoding never traps, and what
    /// decodes re-encodes to a message that decodes to itself.
    case dns

    public func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .http: HTTPFuzzEntry.run(bytes)
        case .json: Self.json(bytes)
        case .yaml: Self.yaml(bytes)
        case .resp: Self.resp(bytes)
        case .cel: Self.cel(bytes)
        case .cloudevent: Self.cloudEvent(bytes)
        case .duration: Self.duration(bytes)
        case .enc: Self.encryptedMessage(bytes)
        case .runtemplate: Self.runTemplate(bytes)
        case .dns: Self.dns(bytes)
        }
    }

    public func run(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { self.run($0) }
    }

    static func encryptedMessage(_ bytes: UnsafeRawBufferPointer) {
        let message = Array(bytes)
        var whole = HeaderReader()
        let atOnce = Result { () throws(EncryptionSchemeError) in try whole.feed(message) }
        // The same bytes in two chunks (split where the first byte says) give the same outcome.
        let split = message.isEmpty ? 0 : Int(message[0]) % (message.count + 1)
        var parts = HeaderReader()
        let inTwo = Result { () throws(EncryptionSchemeError) -> HeaderReader.Progress in
            let first = try parts.feed(message[..<split])
            // Complete within the first chunk: the payload bytes of the second follow its remainder.
            if case .complete(var header) = first {
                header.remainder += message[split...]
                return .complete(header)
            }
            return try parts.feed(message[split...])
        }
        switch (atOnce, inTwo) {
        case (.success(let a), .success(let b)): precondition(a == b, "header reading depends on chunking")
        case (.failure, .failure): break
        default: preconditionFailure("header reading succeeds or fails depending on chunking")
        }
        if case .success(.complete(let header)) = atOnce, let manifest = try? Manifest(decoding: header.manifestLine) {
            let again = try? Manifest(decoding: manifest.encoded)
            precondition(again == manifest, "a decoded manifest does not re-encode to itself")
        }
        // A pass-through unwrap: whatever the manifest carries is the file key.
        _ = try? EncryptionScheme.decrypt(message) { $0.wrappedFileKey }
    }

    static func dns(_ bytes: UnsafeRawBufferPointer) {
        guard let first = try? DNSMessage(decoding: Array(bytes)), let second = try? DNSMessage(decoding: first.encoded()) else { return }
        precondition((try? DNSMessage(decoding: second.encoded())) == second, "a re-encoded DNS message does not decode to itself")
    }

    static func runTemplate(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? RunTemplate.parse(text: text, file: "/nonexistent/dapr.yaml", home: "/nonexistent", defaultResources: [], defaultConfig: nil)
    }

    static func json(_ bytes: UnsafeRawBufferPointer) {
        let parsed = try? JSONValue(parsing: bytes)
        precondition(JSONValue.isValid(bytes) == (parsed != nil), "isValid disagrees with the parser")
        guard let parsed else { return }
        var output: [UInt8] = []
        parsed.serialize(into: &output)
        guard let again = try? JSONValue(parsing: output) else {
            preconditionFailure("serialized JSON does not parse: \(String(decoding: output, as: UTF8.self))")
        }
        var second: [UInt8] = []
        again.serialize(into: &second)
        precondition(second == output, "JSON serialization is not stable")
    }

    static func yaml(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        do {
            _ = try ResourceLoader.load(text: text, file: "fuzz.yaml")
        } catch {
            for problem in error.errors {
                precondition(String(describing: problem).contains("fuzz.yaml"), "an error does not name the file: \(problem)")
            }
        }
    }

    static func resp(_ bytes: UnsafeRawBufferPointer) {
        func decodeAll(_ chunks: [UnsafeRawBufferPointer]) -> (values: [String], failed: Bool) {
            var decoder = RESPValueDecoder(maximumDepth: 32, maximumBulkLength: 1 << 20, maximumAggregateCount: 1 << 16)
            var buffer = ByteBuffer()
            var values: [String] = []
            for chunk in chunks {
                buffer.writeBytes(chunk)
                do {
                    while let value = try decoder.decode(buffer: &buffer) { values.append(String(describing: value)) }
                } catch {
                    return (values, true)
                }
            }
            return (values, false)
        }
        let whole = decodeAll([bytes])
        let middle = bytes.count / 2
        let split = decodeAll([UnsafeRawBufferPointer(rebasing: bytes[..<middle]), UnsafeRawBufferPointer(rebasing: bytes[middle...])])
        precondition(whole.failed == split.failed, "a split changes whether RESP decoding fails")
        if !whole.failed { precondition(whole.values == split.values, "a split changes the decoded RESP values") }
    }

    static func cel(_ bytes: UnsafeRawBufferPointer) {
        let source = String(decoding: bytes, as: UTF8.self)
        guard let expression = try? CELExpression(parsing: source) else { return }
        let event = CELValue(
            json: ["type": "com.example.order", "data": ["amount": 42, "tags": ["a", "b"], "nested": ["x": .double(1.5)]], "id": "1"])
        _ = try? expression.evaluate(["event": event])
        _ = try? expression.evaluateBool(["event": event])
    }

    static func cloudEvent(_ bytes: UnsafeRawBufferPointer) {
        let body = Array(bytes)
        guard
            let event = CloudEvent.complete(
                body, topic: "orders", pubsubName: "pubsub", traceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                traceState: "", now: Timestamp.now(), expiration: nil)
        else { return }
        guard case .object(let members) = event else { preconditionFailure("a completed CloudEvent is not an object") }
        let fields = Dictionary(members, uniquingKeysWith: { _, last in last })
        precondition(fields["topic"] == .string("orders") && fields["pubsubname"] == .string("pubsub"), "topic or pubsub kept from the app")
        var output: [UInt8] = []
        event.serialize(into: &output)
        precondition(JSONValue.isValid(output), "a completed CloudEvent does not serialize to JSON")
    }

    static func duration(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        if let duration = GoDuration.parse(text) {
            let formatted = GoDuration.format(duration)
            precondition(GoDuration.parse(formatted) == duration, "\(text) → \(formatted) does not parse back")
        }
        if let quantity = Quantity.bytes(text) { precondition(quantity >= 0, "negative quantity from \(text)") }
    }
}
