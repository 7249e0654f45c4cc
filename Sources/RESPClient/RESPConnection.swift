public import Logging
public import NIOCore
public import NIOPosix
import NIOSSL
public import RESPWire

/// One connection to a Redis server, safe to share between tasks: concurrent `send`s are pipelined
/// and each gets its own reply.
///
/// ```swift
/// let connection = try await RESPConnection.connect(configuration: .init(port: 6379))
/// _ = try await connection.send(["SET", "greeting", "hello"])
/// let value = try await connection.send(["GET", "greeting"])   // .bulkString("hello")
/// await connection.close()
/// ```
/// A connection is never reopened: once closed (by either side) every command fails with
/// `RESPError.Code.connectionClosed`. ``RESPConnectionPool`` reconnects; use a connection directly
/// for blocking commands and pub/sub, where one connection belongs to one consumer.
public final class RESPConnection: Sendable {
    let channel: any Channel
    /// What the handshake settled on.
    public let protocolVersion: RESPProtocolVersion
    /// Out-of-band messages (RESP3 pushes, or RESP2 subscriber-mode arrays), each the push's elements,
    /// e.g. `["message", "orders", "payload"]`. One consumer only. Finishes when the connection
    /// closes: normally when closed by us, throwing a `.connectionClosed` error when the server
    /// went away.
    public let pushes: AsyncThrowingStream<[RESPValue], any Error>
    let readTimeout: Duration?
    let logger: Logger

    init(channel: any Channel, protocolVersion: RESPProtocolVersion, pushes: AsyncThrowingStream<[RESPValue], any Error>, readTimeout: Duration?, logger: Logger) {
        self.channel = channel
        self.protocolVersion = protocolVersion
        self.pushes = pushes
        self.readTimeout = readTimeout
        self.logger = logger
    }

    /// Connects, runs the handshake (HELLO/AUTH/SELECT/SETNAME) and returns a ready connection.
    ///
    /// - Throws: ``RESPError`` with `.connectionFailed` when the server cannot be reached or the
    ///   handshake times out (`dialTimeout`), or `.server` when the server refuses the handshake
    ///   (`WRONGPASS …`, `NOAUTH …`, `ERR DB index is out of range`).
    public static func connect(
        configuration: RESPConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "mecha.resp")
    ) async throws -> RESPConnection {
        try await self.connect(configuration: configuration, sslContext: configuration.makeSSLContext(), eventLoopGroup: eventLoopGroup, logger: logger)
    }

    static func connect(
        configuration: RESPConfiguration,
        sslContext: NIOSSLContext?,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger
    ) async throws -> RESPConnection {
        let eventLoop = eventLoopGroup.next()
        let handshakePromise = eventLoop.makePromise(of: RESPProtocolVersion.self)
        let (pushes, pushContinuation) = AsyncThrowingStream.makeStream(of: [RESPValue].self)
        let host = configuration.host
        let serverHostname = host.first.map { $0.isLetter } == true ? host : nil
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(configuration.dialTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let sslContext {
                        try pipeline.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverHostname))
                    }
                    try pipeline.addHandler(ByteToMessageHandler(RESPValueDecoder()))
                    try pipeline.addHandler(
                        RESPChannelHandler(
                            handshake: configuration.handshake,
                            handshakeTimeout: configuration.dialTimeout,
                            handshakePromise: handshakePromise,
                            pushes: pushContinuation,
                            logger: logger
                        )
                    )
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: configuration.port).get()
        } catch {
            handshakePromise.fail(error)
            pushContinuation.finish()
            throw RESPError(.connectionFailed, "cannot connect to \(host):\(configuration.port): \(error)")
        }
        do {
            let version = try await handshakePromise.futureResult.get()
            logger.debug("redis connection ready", metadata: ["address": "\(host):\(configuration.port)", "protocol": "\(version.rawValue)"])
            return RESPConnection(channel: channel, protocolVersion: version, pushes: pushes, readTimeout: configuration.readTimeout, logger: logger)
        } catch let error as RESPError where error.code == .server {
            try? await channel.close()
            throw error
        } catch {
            try? await channel.close()
            throw RESPError(.connectionFailed, "handshake with \(host):\(configuration.port) failed: \((error as? RESPError)?.message ?? "\(error)")")
        }
    }

    /// Sends one command and returns its reply.
    ///
    /// - Parameter timeout: how long to wait for the reply; nil uses the configured `readTimeout`.
    ///   When it passes the connection is closed (a pipeline cannot skip a reply) and every command
    ///   waiting on it fails with `.timeout`. For `BLOCK`/`BLPOP`-style commands pass the blocking
    ///   time plus a margin.
    /// - Throws: ``RESPError`` `.server` for an error reply (`serverErrorPrefix` gives `NOSCRIPT`,
    ///   `WRONGTYPE`, …); a connection error otherwise. Cancelling the task stops the wait
    ///   (throwing `CancellationError`); the reply, when it comes, is discarded.
    public func send(_ command: RESPCommand, timeout: Duration? = nil) async throws -> RESPValue {
        try await self.submit(.command(command), timeout: timeout)
    }

    /// Sends commands in one write and returns their replies in order. Error replies are returned
    /// as `.error` values, not thrown; nothing from other tasks is interleaved with the batch.
    public func pipeline(_ commands: [RESPCommand], timeout: Duration? = nil) async throws -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        return try await self.submit(.batch(commands), timeout: timeout).array ?? []
    }

    /// Runs `MULTI`, the commands and `EXEC` in one write and returns `EXEC`'s replies (error replies
    /// of single commands as `.error` values), or nil when a `WATCH`ed key changed and the
    /// transaction was discarded.
    ///
    /// - Throws: ``RESPError`` `.server` when a command was refused while queueing (`EXECABORT …`),
    ///   with the first refusal in the message.
    public func transaction(_ commands: [RESPCommand], timeout: Duration? = nil) async throws -> [RESPValue]? {
        let replies = try await self.pipeline([["MULTI"]] + commands + [["EXEC"]], timeout: timeout)
        return try Self.execResult(replies)
    }

    static func execResult(_ replies: [RESPValue]) throws -> [RESPValue]? {
        guard let exec = replies.last else { return nil }
        switch exec {
        case .error(let message):
            let cause = replies.dropLast().first(where: { if case .error = $0 { true } else { false } })
            throw RESPError.server(cause.flatMap { $0.string }.map { "\(message) (\($0))" } ?? message)
        case .null:
            return nil
        default:
            return exec.array ?? []
        }
    }

    /// Closes the connection; commands still waiting fail with `.connectionClosed` and ``pushes`` finishes.
    public func close() async {
        try? await self.channel.close()
    }

    /// False once the connection has closed.
    public var isActive: Bool { self.channel.isActive }

    private func submit(_ payload: RESPRequest.Payload, timeout: Duration?) async throws -> RESPValue {
        let promise = self.channel.eventLoop.makePromise(of: RESPValue.self)
        let request = RESPRequest(payload: payload, promise: promise, timeout: timeout ?? self.readTimeout)
        self.channel.writeAndFlush(request).whenFailure { error in
            promise.fail(RESPError(.connectionClosed, "cannot write to the connection: \(error)"))
        }
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            promise.fail(CancellationError())
        }
    }
}

// MARK: Pub/sub

extension RESPConnection {
    /// Subscribes to channels; returns after the server confirmed every one. Messages arrive on ``messages``.
    public func subscribe(_ channels: [String]) async throws {
        precondition(!channels.isEmpty, "subscribe needs at least one channel")
        _ = try await self.send(RESPCommand(["SUBSCRIBE"] + channels), timeout: nil)
    }

    /// Subscribes to glob patterns (`__keyspace@0__:*` for keyspace notifications).
    public func psubscribe(_ patterns: [String]) async throws {
        precondition(!patterns.isEmpty, "psubscribe needs at least one pattern")
        _ = try await self.send(RESPCommand(["PSUBSCRIBE"] + patterns), timeout: nil)
    }

    /// Unsubscribes from the channels, or from every channel when empty.
    public func unsubscribe(_ channels: [String] = []) async throws {
        _ = try await self.send(RESPCommand(["UNSUBSCRIBE"] + channels), timeout: nil)
    }

    /// Unsubscribes from the patterns, or from every pattern when empty.
    public func punsubscribe(_ patterns: [String] = []) async throws {
        _ = try await self.send(RESPCommand(["PUNSUBSCRIBE"] + patterns), timeout: nil)
    }

    /// The published messages among ``pushes`` (confirmations and other pushes left out).
    public var messages: AsyncCompactMapSequence<AsyncThrowingStream<[RESPValue], any Error>, RESPPubSubMessage> {
        self.pushes.compactMap { RESPPubSubMessage(push: $0) }
    }
}
