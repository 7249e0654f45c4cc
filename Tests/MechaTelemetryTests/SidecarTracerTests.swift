import MechaCore
import MechaResiliency
import Testing

@testable import MechaTelemetry

@Suite struct SidecarTracerTests {
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test func aSpanContinuesTheCallersTraceAndIsRecordedWhenSampled() throws {
        let tracer = SidecarTracer(appID: "orders", samplingRate: 1)
        let span = tracer.start(name: "/v1.0/state/store", kind: .client, incoming: self.incoming, traceState: "vendor=1")
        #expect(span.context.traceID.hex == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(span.context.spanID.hex != "00f067aa0ba902b7")
        #expect(span.traceParent.hasSuffix("-01"))
        span.set("dapr.api", "GET /v1.0/state/store")
        span.end(httpStatus: 500)
        span.end(httpStatus: 200)  // once only
        let records = tracer.queue.drain(max: 10)
        let record = try #require(records.first)
        #expect(records.count == 1)
        #expect(record.parentSpanID?.hex == "00f067aa0ba902b7")
        #expect(record.traceState == "vendor=1")
        #expect(record.serviceName == "orders")
        #expect(record.status == .error(message: "Code(500): Internal Server Error"))
        #expect(record.attributes.contains { $0.0 == "dapr.status_code" && $0.1 == .int(500) })
        #expect(tracer.recentProblems().arrayValues?.count == 1)
    }

    @Test func samplingZeroStillPropagatesAFreshContextAndRecordsNothing() {
        let tracer = SidecarTracer(appID: "orders", samplingRate: 0)
        let unsampledParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        let child = tracer.start(name: "x", kind: .client, incoming: unsampledParent)
        #expect(child.traceParent.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-"))
        #expect(child.traceParent.hasSuffix("-00"))
        child.end(error: nil)
        let root = tracer.start(name: "y", kind: .client, incoming: "garbage")
        #expect(!root.isRecording)
        root.end(error: nil)
        #expect(tracer.queue.drain(max: 10).isEmpty)
    }

    @Test func aSampledParentKeepsItsChildrenSampledWhateverTheRate() {
        let tracer = SidecarTracer(appID: "orders", samplingRate: 0)
        let span = tracer.start(name: "x", kind: .client, incoming: self.incoming)
        #expect(span.isRecording)
    }

    @Test func componentCallsAreChildrenOfTheCurrentScope() throws {
        let tracer = SidecarTracer(appID: "orders", samplingRate: 1)
        #expect(tracer.startCall(.component("store", .state, .outbound), "get") == nil)
        let span = try #require(
            TraceScope.$traceParent.withValue(self.incoming) { tracer.startCall(.component("store", .state, .outbound), "get") })
        span.end(error: "backend down")
        let record = try #require(tracer.queue.drain(max: 1).first)
        #expect(record.name == "state/store/get")
        #expect(record.parentSpanID?.hex == "00f067aa0ba902b7")
        #expect(record.attributes.contains { $0.0 == "db.system" && $0.1 == .string("state") })
        let publish = try #require(
            TraceScope.$traceParent.withValue(self.incoming) { tracer.startCall(.component("pubsub", .pubsub, .outbound), OperationName("publish", subject: "orders")) })
        publish.end(error: nil)
        let published = try #require(tracer.queue.drain(max: 1).first)
        #expect(published.kind == .producer)
        #expect(published.attributes.contains { $0.0 == "messaging.destination.name" && $0.1 == .string("orders") })
    }

    @Test func aFullQueueDropsAndCounts() {
        let tracer = SidecarTracer(appID: "orders", samplingRate: 1, queue: SpanQueue(capacity: 2))
        for _ in 0..<5 { tracer.start(name: "x", kind: .client, incoming: self.incoming).end(error: nil) }
        #expect(tracer.queue.count == 2)
        #expect(tracer.queue.dropped == 3)
    }
}
