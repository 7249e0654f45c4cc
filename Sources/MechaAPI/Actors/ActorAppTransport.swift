public import MechaCore
import NIOCore

/// How actor calls reach the app that hosts the actor: HTTP (`PUT /actors/…`, daprd's app
/// contract) or the gRPC actor stream (`SubscribeActorEventsAlpha1`).
public protocol ActorAppTransport: Sendable {
    /// A turn: `call.path` is `method/<m>`, `method/remind/<name>` or `method/timer/<name>`; for
    /// reminders and timers the body is daprd's JSON (`{"data","dueTime","period"[,"callback"]}`).
    func call(_ key: ActorKey, _ call: ActorCall, maxBodySize: Int) async throws -> ActorReply
    /// The actor is deactivated; returns the app's status.
    func deactivate(_ key: ActorKey) async throws -> Int
}

/// Actor calls over the HTTP app channel.
public struct HTTPActorTransport: ActorAppTransport {
    let appChannel: any AppChannel

    public init(appChannel: any AppChannel) {
        self.appChannel = appChannel
    }

    public func call(_ key: ActorKey, _ call: ActorCall, maxBodySize: Int) async throws -> ActorReply {
        let request = InvocationRequest(
            method: "actors/\(key.type)/\(key.id)/\(call.path)", httpVerb: "PUT", headers: call.headers, contentType: call.contentType ?? "application/json",
            body: BodyStream(buffer: ByteBuffer(bytes: call.body)))
        return try await self.appChannel.invoke(request) { response in
            let body = try await response.body.collect(upTo: maxBodySize)
            return ActorReply(status: response.status, headers: response.headers, contentType: response.contentType, body: Array(body.readableBytesView))
        }
    }

    public func deactivate(_ key: ActorKey) async throws -> Int {
        try await self.appChannel.invoke(InvocationRequest(method: "actors/\(key.type)/\(key.id)", httpVerb: "DELETE")) { response in
            for try await _ in response.body {}
            return response.status
        }
    }
}
