import HTTP1Client
public import MechaAPI
public import MechaCore
import MechaIdentity
import NIOCore
import NIOHTTP1

/// Actor calls for an actor another sidecar hosts go to that sidecar's internal listener, over
/// the same pooled connections, peer token or mTLS (with secure naming) as service invocation.
extension SidecarInvoker: ActorForwarder {
    public func forward(_ request: ActorForwardRequest, to host: ActorHost) async throws -> ActorReply {
        guard !host.mtls || self.tls != nil else { throw NeedsMutualTLS(appID: host.appID) }
        var headers = HTTPHeaders()
        for field in request.headers where !field.name.lowercased().hasPrefix("x-mecha-") {
            headers.add(name: field.name, value: field.value)
        }
        for (name, value) in self.hopHeaders(appID: host.appID, mtls: host.mtls) { headers.add(name: name, value: value) }
        headers.replaceOrAdd(name: ActorsAPI.hopsHeader, value: String(request.hops))
        if let contentType = request.contentType { headers.replaceOrAdd(name: "content-type", value: contentType) }
        let httpRequest = HTTP1Request(
            target: HTTP1Target(
                host: host.host, port: host.internalPort, tls: host.mtls,
                peer: host.mtls ? MeshTLS.peer(appID: host.appID, namespace: host.namespace) : nil),
            method: HTTPMethod(rawValue: request.verb),
            uri: "/" + request.path,
            headers: headers,
            body: request.body.isEmpty ? .empty : .bytes(ByteBuffer(bytes: request.body))
        )
        return try await self.client.execute(httpRequest) { response in
            var collected: [UInt8] = []
            for try await chunk in response.body { collected.append(contentsOf: chunk.readableBytesView) }
            var responseHeaders = HeaderList()
            for (name, value) in response.headers where name.lowercased() != "content-length" && name.lowercased() != Self.sidecarErrorHeader {
                responseHeaders.add(name, value)
            }
            if response.status.code == 421, response.headers.contains(name: Self.sidecarErrorHeader) {
                throw Misdirected(description: "the sidecar at \(host.host):\(host.internalPort) serves another app")
            }
            return ActorReply(
                status: Int(response.status.code), headers: responseHeaders, contentType: response.headers.first(name: "content-type"), body: collected)
        }
    }
}
