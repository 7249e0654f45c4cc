/// Encodes finished spans as an OTLP `ExportTraceServiceRequest` protobuf (the body of
/// `POST /v1/traces` with `application/x-protobuf`, or the gRPC `TraceService/Export` message).
///
/// Hand-written against opentelemetry-proto v1 so the sidecar needs no generated code:
/// one `ResourceSpans` per service name (its `service.name` resource attribute), each with one
/// `ScopeSpans` for scope `mecha`. Optional fields (`trace_state`, `parent_span_id`, a status of
/// `UNSET`, zero `flags`) are omitted; attribute values are always written, being oneof members.
public enum OTLPEncoder {
    /// The instrumentation scope name on every span.
    public static let scopeName = "mecha"

    /// The serialized `ExportTraceServiceRequest` for `spans`.
    public static func encode(_ spans: [SpanRecord]) -> [UInt8] {
        // Group by service, keeping first-seen order so output is deterministic.
        var services: [String] = []
        var byService: [String: [SpanRecord]] = [:]
        for span in spans {
            if byService[span.serviceName] == nil { services.append(span.serviceName) }
            byService[span.serviceName, default: []].append(span)
        }
        var request = ProtobufWriter()
        for service in services {
            // ExportTraceServiceRequest.resource_spans = 1
            request.writeMessageField(1) { resourceSpans in
                // ResourceSpans.resource = 1 → Resource.attributes = 1
                resourceSpans.writeMessageField(1) { resource in
                    self.writeKeyValue(&resource, field: 1, key: "service.name", value: .string(service))
                }
                // ResourceSpans.scope_spans = 2
                resourceSpans.writeMessageField(2) { scopeSpans in
                    // ScopeSpans.scope = 1 → InstrumentationScope.name = 1
                    scopeSpans.writeMessageField(1) { scope in scope.writeStringField(1, self.scopeName) }
                    for span in byService[service] ?? [] {
                        // ScopeSpans.spans = 2
                        scopeSpans.writeMessageField(2) { self.writeSpan(&$0, span) }
                    }
                }
            }
        }
        return request.bytes
    }

    static func writeSpan(_ writer: inout ProtobufWriter, _ span: SpanRecord) {
        writer.writeBytesField(1, span.traceID.bytes)
        writer.writeBytesField(2, span.spanID.bytes)
        if !span.traceState.isEmpty { writer.writeStringField(3, span.traceState) }
        if let parent = span.parentSpanID { writer.writeBytesField(4, parent.bytes) }
        writer.writeStringField(5, span.name)
        writer.writeVarintField(6, self.kind(span.kind))
        writer.writeFixed64Field(7, span.startUnixNanos)
        writer.writeFixed64Field(8, span.endUnixNanos)
        for (key, value) in span.attributes {
            self.writeKeyValue(&writer, field: 9, key: key, value: value)
        }
        switch span.status {
        case .unset:
            break
        case .ok:
            // Status.code = 3
            writer.writeMessageField(15) { $0.writeVarintField(3, 1) }
        case .error(let message):
            writer.writeMessageField(15) { status in
                if let message, !message.isEmpty { status.writeStringField(2, message) }
                status.writeVarintField(3, 2)
            }
        }
        // Span.flags = 16 (fixed32): the W3C trace flags in the low byte.
        if span.traceFlags != 0 { writer.writeFixed32Field(16, UInt32(span.traceFlags)) }
    }

    /// `Span.SpanKind`: INTERNAL 1, SERVER 2, CLIENT 3, PRODUCER 4, CONSUMER 5.
    static func kind(_ kind: SpanRecord.Kind) -> UInt64 {
        switch kind {
        case .internal: 1
        case .server: 2
        case .client: 3
        case .producer: 4
        case .consumer: 5
        }
    }

    /// A `KeyValue{key = 1, value = 2 → AnyValue}` as field `field` of the enclosing message.
    static func writeKeyValue(_ writer: inout ProtobufWriter, field: Int, key: String, value: SpanRecord.AttributeValue) {
        writer.writeMessageField(field) { keyValue in
            keyValue.writeStringField(1, key)
            keyValue.writeMessageField(2) { any in
                switch value {
                case .string(let text): any.writeStringField(1, text)
                case .bool(let flag): any.writeBoolField(2, flag)
                case .int(let number): any.writeInt64Field(3, number)
                case .double(let number): any.writeDoubleField(4, number)
                }
            }
        }
    }
}
