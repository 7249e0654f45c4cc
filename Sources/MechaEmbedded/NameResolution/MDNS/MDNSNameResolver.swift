#if canImport(Glibc)
import Glibc
#endif
import Logging
public import MechaCore
import NIOCore
import NIOPosix
import Synchronization

/// `nameresolution.mdns`: sidecars on one LAN find each other without a control plane, as with
/// daprd in self-hosted mode. Each sidecar listens on the mDNS group (224.0.0.251, UDP 5353) on
/// every multicast-capable IPv4 interface, announces its instance every `announceInterval` with a
/// TTL of `recordTTL` (so an instance that vanished without its goodbye is forgotten within that
/// time), answers queries for its app id, and sends a goodbye (TTL 0) when it stops. Resolution
/// answers from what it heard; for an app it has not heard of yet it queries and waits up to
/// `resolveTimeout`.
///
/// The address announced is the sidecar-to-sidecar listen address when it is a routable IPv4
/// address, otherwise the first non-loopback IPv4 address of a multicast-capable interface.
public final class MDNSNameResolver: NameResolver {
    let port: Int
    let announceInterval: Duration
    let resolveTimeout: Duration
    let logger: Logger
    private let directory: Mutex<MDNSDirectory>
    private let channels = Mutex<(listener: (any Channel)?, senders: [any Channel])>((nil, []))
    private let interfaceAddress = Mutex<String?>(nil)
    static let group = "224.0.0.251"

    init(port: Int, recordTTL: Duration, announceInterval: Duration, resolveTimeout: Duration, logger: Logger) {
        self.port = port
        self.announceInterval = announceInterval
        self.resolveTimeout = resolveTimeout
        self.logger = logger
        self.directory = Mutex(MDNSDirectory(ttl: UInt32(max(1, recordTTL.components.seconds))))
    }

    /// Binds the group's port (shared with other resolvers on the host) and one sender per
    /// multicast-capable IPv4 interface.
    func start() async throws {
        let devices = try System.enumerateDevices().filter { device in
            guard device.multicastSupported, case .v4 = device.address else { return false }
            return true
        }
        guard !devices.isEmpty else {
            throw MDNSStartError("nameresolution.mdns: no multicast-capable IPv4 interface (is the interface up with MULTICAST?)")
        }
        let group = try SocketAddress(ipAddress: Self.group, port: self.port)
        let listener = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(Self.option(SOL_SOCKET, SO_REUSEPORT), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(MDNSInbound(resolver: self)) }
            }
            .bind(host: "0.0.0.0", port: self.port).get()
        var senders: [any Channel] = []
        do {
            for device in devices {
                try await (listener as! any MulticastChannel).joinGroup(group, device: device).get()
                guard case .v4(let address) = device.address else { continue }
                let sender = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(MDNSInbound(resolver: self)) }
                    }
                    .bind(host: address.host, port: 0).get()
                // IP_MULTICAST_IF takes the interface's address (an in_addr: four bytes in
                // network order, which an int of the same bytes is), TTL 255 as RFC 6762 asks.
                try await sender.setOption(Self.option(CInt(IPPROTO_IP), IP_MULTICAST_IF), value: Int(CInt(bitPattern: inet_addr(address.host)))).get()
                try await sender.setOption(Self.option(CInt(IPPROTO_IP), IP_MULTICAST_TTL), value: 255).get()
                try await sender.setOption(Self.option(CInt(IPPROTO_IP), IP_MULTICAST_LOOP), value: 1).get()
                senders.append(sender)
            }
        } catch {
            try? await listener.close()
            for sender in senders { try? await sender.close() }
            throw MDNSStartError("nameresolution.mdns: cannot join \(Self.group) on port \(self.port): \(error)")
        }
        let routable = devices.compactMap { device -> String? in
            guard case .v4(let address) = device.address, !address.host.hasPrefix("127.") else { return nil }
            return address.host
        }
        self.interfaceAddress.withLock { $0 = routable.first }
        self.channels.withLock { $0 = (listener, senders) }
        self.logger.info("nameresolution.mdns: listening on \(Self.group):\(self.port) on \(devices.map(\.name).joined(separator: ", "))")
    }

    static func option(_ level: CInt, _ name: CInt) -> ChannelOptions.Types.SocketOption {
        ChannelOptions.Types.SocketOption(level: NIOBSDSocket.OptionLevel(rawValue: level), name: NIOBSDSocket.Option(rawValue: name))
    }

    func received(_ bytes: [UInt8]) {
        guard let message = try? DNSMessage(decoding: bytes) else { return }
        if message.isResponse {
            self.directory.withLock { $0.learn(message, now: .now) }
        } else if let answer = self.directory.withLock({ $0.answer(message) }) {
            self.send(answer)
        }
    }

    func send(_ message: DNSMessage) {
        let bytes = message.encoded()
        guard let group = try? SocketAddress(ipAddress: Self.group, port: self.port) else { return }
        for sender in self.channels.withLock({ $0.senders }) {
            let buffer = sender.allocator.buffer(bytes: bytes)
            sender.writeAndFlush(AddressedEnvelope(remoteAddress: group, data: buffer), promise: nil)
        }
    }

    /// The instance as announced: a routable address instead of a loopback or wildcard one.
    func announced(_ instance: AppInstance) -> AppInstance {
        var instance = instance
        if instance.host == "0.0.0.0" || instance.host.hasPrefix("127.") || MDNSDirectory.ipv4(instance.host) == nil,
            let address = self.interfaceAddress.withLock({ $0 })
        {
            instance.host = address
        }
        return instance
    }

    public func register(_ instance: AppInstance) async throws {
        let announced = self.announced(instance)
        let message = self.directory.withLock { directory -> DNSMessage? in
            directory.add(announced)
            return directory.announcement(only: [announced])
        }
        if let message { self.send(message) }
    }

    public func deregister(instanceID: String) async throws {
        let goodbye = self.directory.withLock { directory -> DNSMessage? in
            guard let removed = directory.remove(instanceID: instanceID) else { return nil }
            return directory.announcement(goodbye: true, only: [removed])
        }
        if let goodbye { await self.sendTwice(goodbye) }
    }

    /// A goodbye goes out twice, 50 ms apart: a lost one would leave callers on a gone instance
    /// until its records expire.
    func sendTwice(_ message: DNSMessage) async {
        self.send(message)
        try? await Task.sleep(for: .milliseconds(50))
        self.send(message)
    }

    public func cachedInstances(appID: String, namespace: String) -> [AppInstance]? {
        let found = self.directory.withLock { $0.instances(appID: appID, namespace: namespace, now: .now) }
        return found.isEmpty ? nil : found
    }

    public func resolve(appID: String, namespace: String) async throws -> [AppInstance] {
        if let known = self.cachedInstances(appID: appID, namespace: namespace) { return known }
        self.send(MDNSDirectory.query(appID: appID))
        let deadline = ContinuousClock.now + self.resolveTimeout
        var asked = ContinuousClock.now
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            if let known = self.cachedInstances(appID: appID, namespace: namespace) { return known }
            // Multicast may lose a packet: ask again after 250 ms.
            if ContinuousClock.now - asked > .milliseconds(250) {
                self.send(MDNSDirectory.query(appID: appID))
                asked = .now
            }
        }
        return []
    }

    public func allInstances() async throws -> [AppInstance]? {
        self.directory.withLock { $0.all(now: .now) }
    }

    /// Announces every own instance each `announceInterval`; forgets what expired.
    public func run(until stop: StopSignal) async throws {
        while !(await stop.sleep(for: self.announceInterval)) {
            let message = self.directory.withLock { directory -> DNSMessage? in
                directory.expire(now: .now)
                return directory.announcement()
            }
            if let message { self.send(message) }
        }
    }

    public func close() async throws {
        if let goodbye = self.directory.withLock({ $0.announcement(goodbye: true) }) { await self.sendTwice(goodbye) }
        let (listener, senders) = self.channels.withLock { channels in
            defer { channels = (nil, []) }
            return channels
        }
        // Give the goodbye a moment to leave.
        try? await Task.sleep(for: .milliseconds(20))
        try? await listener?.close()
        for sender in senders { try? await sender.close() }
    }
}

struct MDNSStartError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Hands every datagram to the resolver.
final class MDNSInbound: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let resolver: MDNSNameResolver

    init(resolver: MDNSNameResolver) {
        self.resolver = resolver
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var envelope = self.unwrapInboundIn(data)
        guard envelope.data.readableBytes <= 9000, let bytes = envelope.data.readBytes(length: envelope.data.readableBytes) else { return }
        self.resolver.received(bytes)
    }
}

/// Factory for `nameresolution.mdns`. Metadata (all optional): `port` (5353), `recordTTL` (10s),
/// `announceInterval` (3s), `resolveTimeout` (1s).
public struct MDNSNameResolverFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.nameresolution, "mdns") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let metadata = spec.metadata
        let port = try metadata.int("port", default: 5353, range: 1...65535)
        let resolver = MDNSNameResolver(
            port: port,
            recordTTL: try metadata.duration("recordTTL", default: .seconds(10), range: .seconds(1) ... .seconds(3600)),
            announceInterval: try metadata.duration("announceInterval", default: .seconds(3), range: .milliseconds(100) ... .seconds(3600)),
            resolveTimeout: try metadata.duration("resolveTimeout", default: .seconds(1), range: .milliseconds(10) ... .seconds(60)),
            logger: context.logger)
        try await resolver.start()
        return resolver
    }
}
