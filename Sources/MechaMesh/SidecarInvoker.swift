public import HTTP1Client
public import Logging
public import MechaAPI
public import MechaCore
import NIOCore
import NIOHTTP1
import Synchronization

/// Sends invocations to another app's sidecar: resolves the app id to live instances, balances
/// round-robin, and fails over to another instance when one cannot be reached (before any
/// response byte, and only when the request body can be replayed).
public final class SidecarInvoker: RemoteInvoker, DirectHopProvider {
    /// Header naming the app the caller meant to reach; the receiving sidecar refuses others.
    public static let targetHeader = "x-mecha-target-app"
    /// Set by a receiving sidecar on answers it produced itself (not the app's), e.g. misdirected calls.
    public static let sidecarErrorHeader = "x-mecha-sidecar-error"

    let resolver: any NameResolver
    let client: HTTP1Client
    let logger: Logger
    /// This host's address and name, for `X-Forwarded-*` / `Forwarded` on outgoing calls.
    let hostAddress: String
    let hostname: String
    /// The `X-Forwarded-*` / `Forwarded` headers of every hop (they only name this host).
    let forwardedHeaders: [(name: String, value: String)]
    /// Presented to the receiving sidecar, which refuses calls without it.
    let peerToken: PeerToken
    private let counters = Mutex<[String: Int]>([:])

    public init(
        resolver: any NameResolver,
        client: HTTP1Client,
        peerToken: PeerToken,
        logger: Logger,
        hostAddress: String = "127.0.0.1",
        hostname: String = "localhost"
    ) {
        self.peerToken = peerToken
        self.resolver = resolver
        self.client = client
        self.logger = logger
        self.hostAddress = hostAddress
        self.hostname = hostname
        let forwardedFor = hostAddress.contains(":") ? "\"[\(hostAddress)]\"" : hostAddress
        self.forwardedHeaders = [
            ("x-forwarded-for", hostAddress),
            ("x-forwarded-host", hostname),
            ("forwarded", "for=\(forwardedFor);by=\(forwardedFor);host=\(hostname)"),
        ]
    }

    public func invoke<Output: Sendable>(
        appID: String,
        namespace: String,
        request: InvocationRequest,
        _ handler: (InvocationResponse) async throws -> Output
    ) async throws -> Output {
        let instances: [AppInstance]
        do {
            instances = try await self.resolver.resolve(appID: appID, namespace: namespace)
        } catch {
            throw InvocationError("couldn't find service: \(appID): \(error)")
        }
        guard !instances.isEmpty else { throw InvocationError("couldn't find service: \(appID)") }
        let start = self.nextIndex(appID)
        let replayable = request.body.bufferedBytes != nil
        let attempts = replayable ? min(instances.count, 3) : 1
        var lastError: (any Error)?
        for attempt in 0..<attempts {
            let instance = instances[(start + attempt) % instances.count]
            do {
                return try await self.send(request, to: instance, appID: appID, handler)
            } catch let error as Misdirected {
                lastError = error
                self.logger.debug("instance \(instance.instanceID) of \(appID) refused the call: \(error)")
            } catch let error as HandlerFailure {
                throw error.underlying
            } catch let error as APIError {
                throw error
            } catch {
                lastError = error
                self.logger.debug("cannot reach sidecar of \(appID) at \(instance.host):\(instance.internalPort): \(error)")
            }
        }
        throw InvocationError("failed to invoke target \(appID) after \(attempts) attempts. Error: \(lastError.map { "\($0)" } ?? "unknown")")
    }

    /// The next instance of `appID` by round robin when resolution is cached, with the headers
    /// `send` adds on this hop.
    public func directHop(appID: String, namespace: String) -> DirectHop? {
        guard let instances = self.resolver.cachedInstances(appID: appID, namespace: namespace), !instances.isEmpty else { return nil }
        let instance = instances[self.nextIndex(appID) % instances.count]
        return DirectHop(host: instance.host, port: instance.internalPort, headers: self.hopHeaders(appID: appID))
    }

    func nextIndex(_ appID: String) -> Int {
        self.counters.withLock { counters -> Int in
            let value = counters[appID, default: 0]
            counters[appID] = value &+ 1
            return value
        }
    }

    /// The target check, the peer token and, as daprd adds them on the sidecar-to-sidecar hop,
    /// `X-Forwarded-*`.
    func hopHeaders(appID: String) -> [(name: String, value: String)] {
        [(Self.targetHeader, appID), (PeerToken.header, self.peerToken.value)] + self.forwardedHeaders
    }

    struct Misdirected: Error, CustomStringConvertible {
        var description: String
    }

    struct HandlerFailure: Error {
        var underlying: any Error
    }

    func send<Output: Sendable>(
        _ request: InvocationRequest,
        to instance: AppInstance,
        appID: String,
        _ handler: (InvocationResponse) async throws -> Output
    ) async throws -> Output {
        var headers = HTTPHeaders()
        for field in request.headers where !field.name.lowercased().hasPrefix("x-mecha-") {
            headers.add(name: field.name, value: field.value)
        }
        for (name, value) in self.hopHeaders(appID: appID) { headers.add(name: name, value: value) }
        if let contentType = request.contentType { headers.replaceOrAdd(name: "content-type", value: contentType) }
        var uri = "/" + request.method
        if !request.queryString.isEmpty { uri += "?" + request.queryString }
        let body: HTTP1RequestBody
        if let buffered = request.body.bufferedBytes {
            body = buffered.readableBytes == 0 ? .empty : .bytes(buffered)
        } else {
            body = .stream(ByteStream(request.body), length: request.body.length)
        }
        let httpRequest = HTTP1Request(
            target: HTTP1Target(host: instance.host, port: instance.internalPort),
            method: HTTPMethod(rawValue: request.httpVerb),
            uri: uri,
            headers: headers,
            body: body
        )
        return try await self.client.execute(httpRequest) { response in
            if response.status.code == 421, response.headers.contains(name: Self.sidecarErrorHeader) {
                throw Misdirected(description: "instance serves another app")
            }
            var responseHeaders = HeaderList()
            for (name, value) in response.headers where name.lowercased() != "content-length" && name.lowercased() != Self.sidecarErrorHeader {
                responseHeaders.add(name, value)
            }
            let length = response.headers.first(name: "content-length").flatMap(Int.init)
            do {
                return try await handler(
                    InvocationResponse(
                        status: Int(response.status.code),
                        headers: responseHeaders,
                        contentType: response.headers.first(name: "content-type"),
                        body: BodyStream(response.body, length: length)
                    )
                )
            } catch {
                throw HandlerFailure(underlying: error)
            }
        }
    }
}
