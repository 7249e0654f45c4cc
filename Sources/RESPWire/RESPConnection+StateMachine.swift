public import NIOCore

/// The protocol a connection ended up speaking after its handshake.
public enum RESPProtocolVersion: Int, Sendable, Hashable {
    case resp2 = 2
    case resp3 = 3
}

/// What to send after connecting.
public struct RESPHandshake: Sendable, Hashable {
    public var username: String?
    public var password: String?
    public var database: Int
    public var clientName: String?
    /// `.resp3` tries `HELLO 3` first; `.resp2` skips `HELLO` entirely.
    public var preferredProtocol: RESPProtocolVersion

    public init(
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        clientName: String? = nil,
        preferredProtocol: RESPProtocolVersion = .resp3
    ) {
        self.username = username
        self.password = password
        self.database = database
        self.clientName = clientName
        self.preferredProtocol = preferredProtocol
    }
}

/// One Redis connection's protocol logic, without IO: events in, actions out.
///
/// The shell (a channel handler) reports what happened (`connected`, a value decoded, a deadline
/// passed, the channel closed) and performs the returned action. `Promise` is whatever the shell
/// completes for a command (an `EventLoopPromise` in production, an `Int` in tests).
///
/// - Handshake: `HELLO 3 [AUTH user pass] [SETNAME name]`; when the server does not know `HELLO`
///   (Redis < 6) or refuses protocol 3, it falls back to RESP2 with `AUTH`, then `CLIENT SETNAME`.
///   `SELECT db` follows when `database != 0`. Each step waits for its reply; an error reply fails
///   the handshake with that error (`WRONGPASS …`, `NOAUTH …`).
/// - Commands are pipelined: written at once, their replies matched in FIFO order. A batch is
///   written in one piece, so nothing interleaves with it (`MULTI … EXEC` is safe on a shared connection).
/// - Push messages (RESP3 `>`, or RESP2 arrays in subscriber mode) go to `deliverPush`; the
///   confirmations of `SUBSCRIBE`-family commands complete those commands.
/// - A command's deadline passing closes the connection and fails everything pending: a reply
///   cannot be skipped in a pipeline.
public struct RESPConnectionStateMachine<Promise> {
    public typealias Handshake = RESPHandshake

    /// What the shell must do next.
    public enum Action {
        case none
        /// Write and flush these bytes.
        case write(ByteBuffer)
        /// The handshake is done; the connection accepts commands.
        case handshakeSucceeded(RESPProtocolVersion)
        /// The handshake failed (error reply, timeout, closed): fail the connect and close the channel.
        case failHandshakeAndClose(RESPError)
        /// Complete one command (or a batch, with an `.array` of its replies).
        case succeed(Promise, RESPValue)
        /// Fail one command, e.g. with its error reply.
        case fail(Promise, RESPError)
        /// Hand an out-of-band message to the subscriber; when it confirms a pending
        /// `SUBSCRIBE`-family command, also complete that command with `.push(values)`.
        case deliverPush([RESPValue], completing: Promise?)
        /// Fail every pending command and close the channel.
        case failAllAndClose([Promise], RESPError)
        /// The channel is closed already: fail every pending command.
        case failAll([Promise], RESPError)
    }

    enum HandshakeStep: Hashable {
        case hello
        case auth
        case select
        case setName
    }

    struct Pending {
        enum Kind {
            case single
            case batch(expected: Int, replies: [RESPValue])
            /// Completed by `remaining` confirmations of `kind`, or (nil) by the one that reports 0 subscriptions left.
            case subscription(kind: String, remaining: Int?)
        }

        var promise: Promise
        var kind: Kind
        var deadline: NIODeadline?
    }

    struct HandshakeState {
        var step: HandshakeStep
        var remaining: [HandshakeStep]
        var protocolVersion: RESPProtocolVersion
        var deadline: NIODeadline?
    }

    struct ReadyState {
        var protocolVersion: RESPProtocolVersion
        var pending: CircularBuffer<Pending> = []
        /// Channels and patterns subscribed, as the server last reported.
        var subscriptions = 0
    }

    enum State {
        case initial
        case handshaking(HandshakeState)
        case ready(ReadyState)
        case closed
    }

    public let handshake: Handshake
    private(set) var state: State = .initial

    public init(handshake: Handshake) {
        self.handshake = handshake
    }

    /// The protocol in use once ready; nil before and after.
    public var protocolVersion: RESPProtocolVersion? {
        if case .ready(let ready) = self.state { return ready.protocolVersion }
        return nil
    }

    /// Commands written and not answered yet.
    public var pendingCount: Int {
        if case .ready(let ready) = self.state { return ready.pending.count }
        return 0
    }

    public var isReady: Bool {
        if case .ready = self.state { return true }
        return false
    }

    /// The earliest deadline among the handshake and pending commands; the shell calls
    /// `deadlinePassed(now:)` when it arrives.
    public var nextDeadline: NIODeadline? {
        switch self.state {
        case .handshaking(let handshaking): return handshaking.deadline
        case .ready(let ready): return ready.pending.lazy.compactMap(\.deadline).min()
        case .initial, .closed: return nil
        }
    }

    // MARK: Events

    /// The transport is up: start the handshake, which must finish by `deadline`.
    public mutating func connected(deadline: NIODeadline?) -> Action {
        guard case .initial = self.state else { return .none }
        if self.handshake.preferredProtocol == .resp3 {
            self.state = .handshaking(.init(step: .hello, remaining: [], protocolVersion: .resp3, deadline: deadline))
            return .write(self.encode(.hello))
        }
        return self.advance(HandshakeState(step: .hello, remaining: self.resp2Steps, protocolVersion: .resp2, deadline: deadline))
    }

    /// Send one command; its reply completes `promise`. An error reply fails it with `.server`.
    public mutating func sendRequested(_ command: RESPCommand, promise: Promise, deadline: NIODeadline?) -> Action {
        guard case .ready(var ready) = self.state else { return .fail(promise, self.notReadyError) }
        let kind: Pending.Kind
        switch command.name {
        case "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE":
            let targets = command.argumentCount - 1
            kind = .subscription(kind: command.name.lowercased(), remaining: targets > 0 ? targets : nil)
        default:
            kind = .single
        }
        var buffer = ByteBuffer()
        command.encode(into: &buffer)
        self.state = .closed  // avoid a copy of the queue while mutating it
        ready.pending.append(Pending(promise: promise, kind: kind, deadline: deadline))
        self.state = .ready(ready)
        return .write(buffer)
    }

    /// Send several commands in one write; `promise` gets an `.array` of their replies in order,
    /// error replies included as `.error` values. `SUBSCRIBE`-family commands do not belong here.
    public mutating func batchRequested(_ commands: [RESPCommand], promise: Promise, deadline: NIODeadline?) -> Action {
        guard case .ready(var ready) = self.state else { return .fail(promise, self.notReadyError) }
        guard !commands.isEmpty else { return .succeed(promise, .array([])) }
        var buffer = ByteBuffer()
        for command in commands { command.encode(into: &buffer) }
        self.state = .closed
        ready.pending.append(Pending(promise: promise, kind: .batch(expected: commands.count, replies: []), deadline: deadline))
        self.state = .ready(ready)
        return .write(buffer)
    }

    /// The decoder produced a value.
    public mutating func valueReceived(_ value: RESPValue) -> Action {
        switch self.state {
        case .initial, .closed:
            return .none
        case .handshaking(let handshaking):
            return self.handshakeReplyReceived(value, handshaking)
        case .ready(var ready):
            self.state = .closed
            defer { self.state = .ready(ready) }
            return Self.replyReceived(value, &ready)
        }
    }

    /// Time has reached `now`: anything whose deadline passed fails the connection.
    public mutating func deadlinePassed(now: NIODeadline) -> Action {
        switch self.state {
        case .handshaking(let handshaking):
            guard let deadline = handshaking.deadline, deadline <= now else { return .none }
            self.state = .closed
            return .failHandshakeAndClose(RESPError(.timeout, "no reply to the handshake (\(handshaking.step)) in time"))
        case .ready(let ready):
            guard ready.pending.contains(where: { $0.deadline.map { $0 <= now } ?? false }) else { return .none }
            self.state = .closed
            return .failAllAndClose(ready.pending.map(\.promise), RESPError(.timeout, "no reply within the read timeout; connection closed"))
        case .initial, .closed:
            return .none
        }
    }

    /// The owner closes the connection.
    public mutating func closeRequested() -> Action {
        switch self.state {
        case .initial, .handshaking:
            self.state = .closed
            return .failHandshakeAndClose(RESPError(.connectionClosed, "connection closed by the client during the handshake"))
        case .ready(let ready):
            self.state = .closed
            return .failAllAndClose(ready.pending.map(\.promise), RESPError(.connectionClosed, "connection closed by the client"))
        case .closed:
            return .none
        }
    }

    /// The transport failed (IO error, TLS error, malformed bytes).
    public mutating func errorCaught(_ error: RESPError) -> Action {
        switch self.state {
        case .initial, .handshaking:
            self.state = .closed
            return .failHandshakeAndClose(error)
        case .ready(let ready):
            self.state = .closed
            return .failAllAndClose(ready.pending.map(\.promise), error)
        case .closed:
            return .none
        }
    }

    /// The channel closed (peer, error, or our own close).
    public mutating func channelClosed() -> Action {
        switch self.state {
        case .initial, .handshaking:
            self.state = .closed
            return .failHandshakeAndClose(RESPError(.connectionClosed, "the server closed the connection during the handshake"))
        case .ready(let ready):
            self.state = .closed
            guard !ready.pending.isEmpty else { return .none }
            return .failAll(ready.pending.map(\.promise), RESPError(.connectionClosed, "the server closed the connection"))
        case .closed:
            return .none
        }
    }

    // MARK: Handshake

    private var resp2Steps: [HandshakeStep] {
        var steps: [HandshakeStep] = []
        if self.handshake.password != nil { steps.append(.auth) }
        if self.handshake.database != 0 { steps.append(.select) }
        if self.handshake.clientName != nil { steps.append(.setName) }
        return steps
    }

    private var notReadyError: RESPError {
        if case .closed = self.state { return RESPError(.connectionClosed, "the connection is closed") }
        return RESPError(.connectionClosed, "the connection is not ready (handshake in progress)")
    }

    private func encode(_ step: HandshakeStep) -> ByteBuffer {
        let handshake = self.handshake
        var command: RESPCommand
        switch step {
        case .hello:
            command = ["HELLO", "3"]
            if let password = handshake.password {
                command.append(contentsOf: ["AUTH", handshake.username ?? "default", password])
            }
            if let name = handshake.clientName { command.append(contentsOf: ["SETNAME", name]) }
        case .auth:
            command = ["AUTH"]
            if let username = handshake.username { command.append(username) }
            command.append(handshake.password ?? "")
        case .select:
            command = ["SELECT", handshake.database]
        case .setName:
            command = ["CLIENT", "SETNAME", handshake.clientName ?? ""]
        }
        var buffer = ByteBuffer()
        command.encode(into: &buffer)
        return buffer
    }

    private mutating func handshakeReplyReceived(_ value: RESPValue, _ handshaking: HandshakeState) -> Action {
        var handshaking = handshaking
        if case .push = value { return .none }
        if case .error(let message) = value {
            if handshaking.step == .hello && Self.refusesHello(message) {
                handshaking.protocolVersion = .resp2
                handshaking.remaining = self.resp2Steps
                return self.advance(handshaking)
            }
            self.state = .closed
            return .failHandshakeAndClose(.server(message))
        }
        if handshaking.step == .hello && self.handshake.database != 0 {
            handshaking.remaining = [.select]
        }
        return self.advance(handshaking)
    }

    /// Redis before 6 answers `ERR unknown command 'HELLO'`; a server without RESP3 answers `NOPROTO`.
    private static func refusesHello(_ message: String) -> Bool {
        message.hasPrefix("NOPROTO") || message.lowercased().contains("unknown command")
    }

    private mutating func advance(_ handshaking: HandshakeState) -> Action {
        var handshaking = handshaking
        guard !handshaking.remaining.isEmpty else {
            self.state = .ready(ReadyState(protocolVersion: handshaking.protocolVersion))
            return .handshakeSucceeded(handshaking.protocolVersion)
        }
        handshaking.step = handshaking.remaining.removeFirst()
        self.state = .handshaking(handshaking)
        return .write(self.encode(handshaking.step))
    }

    // MARK: Replies


    private static func replyReceived(_ value: RESPValue, _ ready: inout ReadyState) -> Action {
        if case .push(let values) = value { return self.pushReceived(values, &ready) }
        if ready.protocolVersion == .resp2, case .array(let values) = value, let kind = values.first?.string?.lowercased() {
            // RESP2 has no push type: in subscriber mode, messages and confirmations are plain arrays.
            let headIsSubscription: Bool
            if case .subscription? = ready.pending.first?.kind { headIsSubscription = true } else { headIsSubscription = false }
            if (ready.subscriptions > 0 || headIsSubscription)
                && (RESPSubscriptionKinds.messages.contains(kind) || RESPSubscriptionKinds.confirmations.contains(kind))
            {
                return self.pushReceived(values, &ready)
            }
        }
        guard var head = ready.pending.popFirst() else {
            return .failAllAndClose([], RESPError(.protocolViolation, "the server sent a reply nobody asked for: \(value)"))
        }
        switch head.kind {
        case .single, .subscription:
            if case .error(let message) = value { return .fail(head.promise, .server(message)) }
            return .succeed(head.promise, value)
        case .batch(let expected, var replies):
            replies.append(value)
            if replies.count == expected { return .succeed(head.promise, .array(replies)) }
            head.kind = .batch(expected: expected, replies: replies)
            ready.pending.prepend(head)
            return .none
        }
    }

    private static func pushReceived(_ values: [RESPValue], _ ready: inout ReadyState) -> Action {
        guard let kind = values.first?.string?.lowercased(), RESPSubscriptionKinds.confirmations.contains(kind) else {
            return .deliverPush(values, completing: nil)
        }
        let remainingSubscriptions = values.count >= 3 ? values[2].int : nil
        if let remainingSubscriptions { ready.subscriptions = remainingSubscriptions }
        guard var head = ready.pending.first, case .subscription(let pendingKind, let remaining) = head.kind, pendingKind == kind else {
            return .deliverPush(values, completing: nil)
        }
        let done: Bool
        if let remaining {
            done = remaining <= 1
            head.kind = .subscription(kind: pendingKind, remaining: remaining - 1)
        } else {
            done = remainingSubscriptions == 0
        }
        if done {
            _ = ready.pending.popFirst()
            return .deliverPush(values, completing: head.promise)
        }
        ready.pending[ready.pending.startIndex] = head
        return .deliverPush(values, completing: nil)
    }
}

extension RESPConnectionStateMachine: Sendable where Promise: Sendable {}
extension RESPConnectionStateMachine.Pending: Sendable where Promise: Sendable {}
extension RESPConnectionStateMachine.Pending.Kind: Sendable where Promise: Sendable {}
extension RESPConnectionStateMachine.HandshakeState: Sendable where Promise: Sendable {}
extension RESPConnectionStateMachine.ReadyState: Sendable where Promise: Sendable {}
extension RESPConnectionStateMachine.State: Sendable where Promise: Sendable {}
extension RESPConnectionStateMachine.Action: Sendable where Promise: Sendable {}
extension RESPConnectionStateMachine.Action: Equatable where Promise: Equatable {}

/// The first element of pub/sub pushes.
enum RESPSubscriptionKinds {
    static let confirmations: Set<String> = ["subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe"]
    static let messages: Set<String> = ["message", "pmessage", "smessage"]
}
