import HummingbirdCore
import Logging
import MechaAPI
import MechaCore
import MechaIdentity
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Hummingbird's HTTP/1.1 child channel with the invocation fast path in front: the same pipeline
/// as `HTTP1Channel`, plus `FastInvokeHandler` between the HTTP/1 codec and the conversion to
/// HTTP types (it works on NIO's HTTP/1 parts, so a proxied request is never converted).
struct MechaHTTP1Channel: HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let router: (any FastInvokeRouter)?
    let timeouts: ConnectionTimeouts
    /// Told about every finished exchange (nil: nothing observes this listener).
    var observe: (@Sendable (InboundExchange) -> Void)? = nil
    /// A request header whose value the observer receives as `InboundExchange.caller`.
    var callerHeader: String? = nil
    /// A request header whose value the observer receives as `InboundExchange.invokeTarget`.
    var targetHeader: String? = nil
    /// The observer reads `userAgent` and `traceParent`.
    var details = false
    /// Spans for the exchanges (nil: not traced).
    var tracing: ExchangeTracing? = nil
    /// Mutual TLS with this identity (the sidecar-to-sidecar listener); nil: plaintext.
    var tls: MeshTLS? = nil

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let deadlines = ConnectionDeadlinesDriver.handlers(timeouts: self.timeouts)
            try channel.pipeline.syncOperations.addHandler(deadlines.bytes)
            if let tls = self.tls { try tls.addServerHandlers(to: channel) }
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false,
                withErrorHandling: false,
                withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: .init()
            )
            if let tls = self.tls { try channel.pipeline.syncOperations.addHandler(PeerIdentityHandler(tls: tls)) }
            try channel.pipeline.syncOperations.addHandler(deadlines.parts)
            if self.observe != nil || self.tracing != nil {
                try channel.pipeline.syncOperations.addHandler(
                    ExchangeObserverHandler(
                        report: self.observe, callerHeader: self.callerHeader, targetHeader: self.targetHeader, details: self.details,
                        tracing: self.tracing))
            }
            if let router = self.router {
                try channel.pipeline.syncOperations.addHandler(FastInvokeHandler(router: router))
            }
            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value: Value, logger: Logger) async {
        await self.handleHTTP(asyncChannel: value, logger: logger)
    }

    static func builder(
        router: (any FastInvokeRouter)?, timeouts: ConnectionTimeouts, observe: (@Sendable (InboundExchange) -> Void)? = nil,
        callerHeader: String? = nil, targetHeader: String? = nil, details: Bool = false, tracing: ExchangeTracing? = nil, tls: MeshTLS? = nil
    ) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            MechaHTTP1Channel(
                responder: responder, router: router, timeouts: timeouts, observe: observe, callerHeader: callerHeader,
                targetHeader: targetHeader, details: details, tracing: tracing, tls: tls)
        }
    }
}
