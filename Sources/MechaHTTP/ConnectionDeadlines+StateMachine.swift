import MechaCore

/// The deadlines of one HTTP/1.1 connection: events in (bytes, request parts, response ends,
/// writability, clock checks), a verdict out. Pure: time is passed in, so tests read like
/// transcripts.
///
/// A connection is in one of three situations. Reading a request (its head since the first byte,
/// or its body): it must make progress within `read`. Waiting for answers the sidecar still owes:
/// no deadline (the app's time is the resiliency policy's business). Idle (nothing owed, nothing
/// being read): closed after `idle`. Independently, a peer that stops reading our answers (the
/// socket stays unwritable) is cut off after `idle`.
struct ConnectionDeadlines {
    enum Request: Equatable {
        case none
        /// The first byte of a head arrived at this time.
        case head(since: Duration)
        /// The head is complete; the body last progressed at this time.
        case body(lastProgress: Duration)
    }

    enum Verdict: Equatable {
        case keep
        case close(reason: String)
    }

    let timeouts: ConnectionTimeouts
    private(set) var request = Request.none
    /// Requests whose answer has not ended.
    private(set) var owed = 0
    private(set) var idleSince: Duration
    private(set) var unwritableSince: Duration?
    /// Bytes arrived since the last check (body progress is sampled, not stamped per read).
    private var progressed = false
    /// The server asked the socket for bytes and none came yet. While the server holds reading
    /// (back-pressure: the app consumes a streamed body slowly, or a pipelined request waits),
    /// the peer is not the one stalling.
    private var awaitingBytes = true

    init(timeouts: ConnectionTimeouts, now: Duration) {
        self.timeouts = timeouts
        self.idleSince = now
    }

    /// The server asked for more bytes.
    mutating func readRequested() {
        self.awaitingBytes = true
    }

    /// Bytes arrived (before decoding).
    mutating func bytesRead(now: @autoclosure () -> Duration) {
        self.awaitingBytes = false
        switch self.request {
        case .none: self.request = .head(since: now())
        case .head: break
        case .body: self.progressed = true
        }
    }

    /// A request's head was decoded.
    mutating func headReceived(now: Duration) {
        self.owed += 1
        self.request = .body(lastProgress: now)
        self.progressed = false
    }

    /// A request's end was decoded.
    mutating func requestEnded(now: Duration) {
        self.request = .none
        if self.owed == 0 { self.idleSince = now }
    }

    /// An answer was written to its end.
    mutating func responseEnded(now: Duration) {
        self.owed = max(0, self.owed - 1)
        if self.owed == 0, self.request == .none { self.idleSince = now }
    }

    mutating func writabilityChanged(writable: Bool, now: Duration) {
        if writable {
            self.unwritableSince = nil
        } else if self.unwritableSince == nil {
            self.unwritableSince = now
        }
    }

    /// The verdict at `now`, and when to look again (nil: no deadline is running).
    mutating func check(now: Duration) -> (verdict: Verdict, next: Duration?) {
        switch self.request {
        case .body where self.progressed || !self.awaitingBytes:
            self.request = .body(lastProgress: now)
        case .head where !self.awaitingBytes:
            self.request = .head(since: now)
        default:
            break
        }
        self.progressed = false
        var next: Duration?
        func consider(_ deadline: Duration) {
            next = next.map { min($0, deadline) } ?? deadline
        }
        if let since = self.unwritableSince {
            if now - since >= self.timeouts.idle { return (.close(reason: "the peer reads nothing"), nil) }
            consider(since + self.timeouts.idle)
        }
        switch self.request {
        case .head(let since):
            if now - since >= self.timeouts.read { return (.close(reason: "request head not complete in time"), nil) }
            consider(since + self.timeouts.read)
        case .body(let last):
            // A body stalls only while it is being read: an answer owed with the body done is
            // the `.none` case.
            if now - last >= self.timeouts.read { return (.close(reason: "request body stalled"), nil) }
            consider(last + self.timeouts.read)
        case .none:
            if self.owed == 0 {
                if now - self.idleSince >= self.timeouts.idle { return (.close(reason: "idle"), nil) }
                consider(self.idleSince + self.timeouts.idle)
            }
        }
        return (.keep, next)
    }
}
