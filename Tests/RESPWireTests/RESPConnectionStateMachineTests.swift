import NIOCore
import RESPWire
import Testing

/// Transcripts of a connection's life, no sockets: each event and the action it must produce.
struct RESPConnectionStateMachineTests {
    typealias Machine = RESPConnectionStateMachine<Int>
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    static func wire(_ command: RESPCommand) -> ByteBuffer {
        var buffer = ByteBuffer()
        command.encode(into: &buffer)
        return buffer
    }

    static func wire(_ commands: [RESPCommand]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for command in commands { command.encode(into: &buffer) }
        return buffer
    }

    static let helloReply = RESPValue.map([.init(key: "server", value: "redis"), .init(key: "proto", value: 3)])

    /// A machine that finished a plain `HELLO 3` handshake.
    func readyMachine() -> Machine {
        var machine = Machine(handshake: .init())
        _ = machine.connected(deadline: nil)
        _ = machine.valueReceived(Self.helloReply)
        return machine
    }

    // MARK: Handshake

    @Test func helloWithAuthAndNameThenSelect() {
        var machine = Machine(handshake: .init(username: "app", password: "s3cret", database: 2, clientName: "mecha"))
        #expect(machine.connected(deadline: t0) == .write(Self.wire(["HELLO", "3", "AUTH", "app", "s3cret", "SETNAME", "mecha"])))
        #expect(machine.nextDeadline == t0)
        #expect(machine.valueReceived(Self.helloReply) == .write(Self.wire(["SELECT", 2])))
        #expect(machine.valueReceived(.simpleString("OK")) == .handshakeSucceeded(.resp3))
        #expect(machine.protocolVersion == .resp3)
        #expect(machine.nextDeadline == nil)
    }

    @Test func passwordWithoutUsernameAuthenticatesAsDefault() {
        var machine = Machine(handshake: .init(password: "pw"))
        #expect(machine.connected(deadline: nil) == .write(Self.wire(["HELLO", "3", "AUTH", "default", "pw"])))
        #expect(machine.valueReceived(Self.helloReply) == .handshakeSucceeded(.resp3))
    }

    @Test func unknownHelloFallsBackToAuthSelectAndSetNameOnRESP2() {
        var machine = Machine(handshake: .init(password: "pw", database: 1, clientName: "mecha"))
        _ = machine.connected(deadline: nil)
        #expect(machine.valueReceived(.error("ERR unknown command 'HELLO', with args beginning with: '3'")) == .write(Self.wire(["AUTH", "pw"])))
        #expect(machine.valueReceived(.simpleString("OK")) == .write(Self.wire(["SELECT", 1])))
        #expect(machine.valueReceived(.simpleString("OK")) == .write(Self.wire(["CLIENT", "SETNAME", "mecha"])))
        #expect(machine.valueReceived(.simpleString("OK")) == .handshakeSucceeded(.resp2))
        #expect(machine.protocolVersion == .resp2)
    }

    @Test func noProtoFallsBackWithUsername() {
        var machine = Machine(handshake: .init(username: "u", password: "pw"))
        _ = machine.connected(deadline: nil)
        #expect(machine.valueReceived(.error("NOPROTO sorry, this protocol version is not supported")) == .write(Self.wire(["AUTH", "u", "pw"])))
        #expect(machine.valueReceived(.simpleString("OK")) == .handshakeSucceeded(.resp2))
    }

    @Test func unknownHelloWithNothingElseToSendIsReadyAtOnce() {
        var machine = Machine(handshake: .init())
        _ = machine.connected(deadline: nil)
        #expect(machine.valueReceived(.error("ERR unknown command 'HELLO'")) == .handshakeSucceeded(.resp2))
    }

    @Test func preferringRESP2SkipsHello() {
        var machine = Machine(handshake: .init(password: "pw", preferredProtocol: .resp2))
        #expect(machine.connected(deadline: nil) == .write(Self.wire(["AUTH", "pw"])))
        #expect(machine.valueReceived(.simpleString("OK")) == .handshakeSucceeded(.resp2))
    }

    @Test func wrongPasswordFailsTheHandshake() {
        var machine = Machine(handshake: .init(password: "wrong"))
        _ = machine.connected(deadline: nil)
        let refusal = "WRONGPASS invalid username-password pair or user is disabled."
        #expect(machine.valueReceived(.error(refusal)) == .failHandshakeAndClose(.server(refusal)))
        #expect(machine.sendRequested(["PING"], promise: 1, deadline: nil) == .fail(1, RESPError(.connectionClosed, "the connection is closed")))
    }

    @Test func selectRefusedFailsTheHandshake() {
        var machine = Machine(handshake: .init(database: 99))
        _ = machine.connected(deadline: nil)
        _ = machine.valueReceived(Self.helloReply)
        #expect(machine.valueReceived(.error("ERR DB index is out of range")) == .failHandshakeAndClose(.server("ERR DB index is out of range")))
    }

    @Test func handshakeTimesOut() {
        var machine = Machine(handshake: .init())
        _ = machine.connected(deadline: t0)
        #expect(machine.deadlinePassed(now: t0 - .milliseconds(1)) == .none)
        guard case .failHandshakeAndClose(let error) = machine.deadlinePassed(now: t0) else {
            Issue.record("expected the handshake to fail")
            return
        }
        #expect(error.code == .timeout)
    }

    @Test func serverClosingDuringHandshakeFailsIt() {
        var machine = Machine(handshake: .init())
        _ = machine.connected(deadline: nil)
        guard case .failHandshakeAndClose(let error) = machine.channelClosed() else {
            Issue.record("expected the handshake to fail")
            return
        }
        #expect(error.code == .connectionClosed)
    }

    @Test func commandsBeforeTheHandshakeAreRefused() {
        var machine = Machine(handshake: .init())
        _ = machine.connected(deadline: nil)
        guard case .fail(7, let error) = machine.sendRequested(["PING"], promise: 7, deadline: nil) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(error.code == .connectionClosed)
    }

    // MARK: Commands

    @Test func pipelinedRepliesCompleteCommandsInOrder() {
        var machine = self.readyMachine()
        #expect(machine.sendRequested(["SET", "a", "1"], promise: 1, deadline: nil) == .write(Self.wire(["SET", "a", "1"])))
        #expect(machine.sendRequested(["GET", "a"], promise: 2, deadline: nil) == .write(Self.wire(["GET", "a"])))
        #expect(machine.sendRequested(["INCR", "a"], promise: 3, deadline: nil) == .write(Self.wire(["INCR", "a"])))
        #expect(machine.pendingCount == 3)
        #expect(machine.valueReceived(.simpleString("OK")) == .succeed(1, .simpleString("OK")))
        #expect(machine.valueReceived("1") == .succeed(2, "1"))
        #expect(machine.valueReceived(2) == .succeed(3, 2))
        #expect(machine.pendingCount == 0)
    }

    @Test func errorReplyFailsOnlyItsCommand() {
        var machine = self.readyMachine()
        _ = machine.sendRequested(["EVALSHA", "abc", "0"], promise: 1, deadline: nil)
        _ = machine.sendRequested(["GET", "a"], promise: 2, deadline: nil)
        let noscript = "NOSCRIPT No matching script. Please use EVAL."
        #expect(machine.valueReceived(.error(noscript)) == .fail(1, .server(noscript)))
        #expect(machine.valueReceived(.null) == .succeed(2, .null))
        #expect(RESPError.server(noscript).serverErrorPrefix == "NOSCRIPT")
    }

    @Test func batchIsWrittenOnceAndCompletedWithAllReplies() {
        var machine = self.readyMachine()
        let commands: [RESPCommand] = [["MULTI"], ["INCR", "n"], ["LPUSH", "n", "x"], ["EXEC"]]
        #expect(machine.batchRequested(commands, promise: 1, deadline: nil) == .write(Self.wire(commands)))
        _ = machine.sendRequested(["PING"], promise: 2, deadline: nil)
        #expect(machine.valueReceived(.simpleString("OK")) == .none)
        #expect(machine.valueReceived(.simpleString("QUEUED")) == .none)
        #expect(machine.valueReceived(.simpleString("QUEUED")) == .none)
        let exec: RESPValue = [1, .error("WRONGTYPE Operation against a key holding the wrong kind of value")]
        #expect(machine.valueReceived(exec) == .succeed(1, [.simpleString("OK"), .simpleString("QUEUED"), .simpleString("QUEUED"), exec]))
        #expect(machine.valueReceived(.simpleString("PONG")) == .succeed(2, .simpleString("PONG")))
    }

    @Test func emptyBatchSucceedsAtOnce() {
        var machine = self.readyMachine()
        #expect(machine.batchRequested([], promise: 1, deadline: nil) == .succeed(1, .array([])))
    }

    @Test func replyNobodyAskedForClosesTheConnection() {
        var machine = self.readyMachine()
        guard case .failAllAndClose([], let error) = machine.valueReceived(.simpleString("OK")) else {
            Issue.record("expected the connection to close")
            return
        }
        #expect(error.code == .protocolViolation)
    }

    // MARK: Push messages

    @Test func pushesAreRoutedApartFromReplies() {
        var machine = self.readyMachine()
        _ = machine.sendRequested(["GET", "a"], promise: 1, deadline: nil)
        #expect(machine.valueReceived(.push(["invalidate", ["a"]])) == .deliverPush(["invalidate", ["a"]], completing: nil))
        #expect(machine.valueReceived("v") == .succeed(1, "v"))
    }

    @Test func subscribeCompletesOnItsConfirmations() {
        var machine = self.readyMachine()
        #expect(machine.sendRequested(["SUBSCRIBE", "a", "b"], promise: 1, deadline: nil) == .write(Self.wire(["SUBSCRIBE", "a", "b"])))
        _ = machine.sendRequested(["PING"], promise: 2, deadline: nil)
        #expect(machine.valueReceived(.push(["subscribe", "a", 1])) == .deliverPush(["subscribe", "a", 1], completing: nil))
        #expect(machine.valueReceived(.push(["subscribe", "b", 2])) == .deliverPush(["subscribe", "b", 2], completing: 1))
        #expect(machine.valueReceived(.push(["message", "a", "hello"])) == .deliverPush(["message", "a", "hello"], completing: nil))
        #expect(machine.valueReceived(.simpleString("PONG")) == .succeed(2, .simpleString("PONG")))
    }

    @Test func unsubscribeFromAllCompletesWhenNothingIsLeft() {
        var machine = self.readyMachine()
        _ = machine.sendRequested(["PSUBSCRIBE", "x*", "y*"], promise: 1, deadline: nil)
        _ = machine.valueReceived(.push(["psubscribe", "x*", 1]))
        _ = machine.valueReceived(.push(["psubscribe", "y*", 2]))
        _ = machine.sendRequested(["PUNSUBSCRIBE"], promise: 2, deadline: nil)
        #expect(machine.valueReceived(.push(["punsubscribe", "x*", 1])) == .deliverPush(["punsubscribe", "x*", 1], completing: nil))
        #expect(machine.valueReceived(.push(["punsubscribe", "y*", 0])) == .deliverPush(["punsubscribe", "y*", 0], completing: 2))
    }

    @Test func subscribeRefusedFailsTheCommand() {
        var machine = self.readyMachine()
        _ = machine.sendRequested(["SUBSCRIBE"], promise: 1, deadline: nil)
        let refusal = "ERR wrong number of arguments for 'subscribe' command"
        #expect(machine.valueReceived(.error(refusal)) == .fail(1, .server(refusal)))
    }

    @Test func resp2SubscriberModeArraysBecomePushes() {
        var machine = Machine(handshake: .init(preferredProtocol: .resp2))
        #expect(machine.connected(deadline: nil) == .handshakeSucceeded(.resp2))
        _ = machine.sendRequested(["SUBSCRIBE", "orders"], promise: 1, deadline: nil)
        #expect(machine.valueReceived(["subscribe", "orders", 1]) == .deliverPush(["subscribe", "orders", 1], completing: 1))
        #expect(machine.valueReceived(["message", "orders", "hi"]) == .deliverPush(["message", "orders", "hi"], completing: nil))
        _ = machine.sendRequested(["UNSUBSCRIBE"], promise: 2, deadline: nil)
        #expect(machine.valueReceived(["unsubscribe", "orders", 0]) == .deliverPush(["unsubscribe", "orders", 0], completing: 2))
        // Out of subscriber mode, an array reply is a reply again.
        _ = machine.sendRequested(["LRANGE", "l", "0", "-1"], promise: 3, deadline: nil)
        #expect(machine.valueReceived(["message", "x", "y"]) == .succeed(3, ["message", "x", "y"]))
    }

    // MARK: Timeouts and closing

    @Test func lateReplyFailsEverythingAndCloses() {
        var machine = self.readyMachine()
        _ = machine.sendRequested(["GET", "a"], promise: 1, deadline: t0 + .seconds(3))
        _ = machine.sendRequested(["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"], promise: 2, deadline: nil)
        _ = machine.sendRequested(["GET", "b"], promise: 3, deadline: t0 + .seconds(1))
        #expect(machine.nextDeadline == t0 + .seconds(1))
        #expect(machine.deadlinePassed(now: t0) == .none)
        #expect(machine.valueReceived("a") == .succeed(1, "a"))
        guard case .failAllAndClose(let promises, let error) = machine.deadlinePassed(now: t0 + .seconds(1)) else {
            Issue.record("expected a timeout")
            return
        }
        #expect(promises == [2, 3])
        #expect(error.code == .timeout)
        #expect(machine.nextDeadline == nil)
        #expect(machine.valueReceived("late") == .none)
    }

    @Test func commandsWithoutDeadlineNeverTimeOut() {
        var machine = self.readyMachine()
        _ = machine.sendRequested(["BLPOP", "q", "0"], promise: 1, deadline: nil)
        #expect(machine.nextDeadline == nil)
        #expect(machine.deadlinePassed(now: t0 + .hours(1)) == .none)
    }

    @Test func closeRequestedFailsPending() {
        var machine = self.readyMachine()
        _ = machine.sendRequested(["GET", "a"], promise: 1, deadline: nil)
        _ = machine.batchRequested([["GET", "b"], ["GET", "c"]], promise: 2, deadline: nil)
        #expect(machine.closeRequested() == .failAllAndClose([1, 2], RESPError(.connectionClosed, "connection closed by the client")))
        #expect(machine.closeRequested() == .none)
        #expect(machine.channelClosed() == .none)
    }

    @Test func serverClosingFailsPending() {
        var machine = self.readyMachine()
        _ = machine.sendRequested(["BLPOP", "q", "10"], promise: 1, deadline: nil)
        #expect(machine.channelClosed() == .failAll([1], RESPError(.connectionClosed, "the server closed the connection")))
        guard case .fail(2, let error) = machine.sendRequested(["PING"], promise: 2, deadline: nil) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(error.code == .connectionClosed)
    }

    @Test func transportErrorFailsPendingAndCloses() {
        var machine = self.readyMachine()
        _ = machine.sendRequested(["GET", "a"], promise: 1, deadline: nil)
        let error = RESPError(.protocolViolation, "unknown RESP type byte 0x3f ('?')")
        #expect(machine.errorCaught(error) == .failAllAndClose([1], error))
    }
}
