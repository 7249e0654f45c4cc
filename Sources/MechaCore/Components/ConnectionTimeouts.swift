/// How long a connection may stay silent, on every listener: the Dapr HTTP and gRPC APIs and the
/// sidecar-to-sidecar ports (`--connection-idle-timeout`, `--connection-read-timeout`).
///
/// HTTP/1.1: see `ConnectionDeadlines` in MechaHTTP. gRPC (HTTP/2): a connection with no call for
/// `idle` is closed gracefully (GOAWAY); the server pings a connection silent for `read`, and
/// closes one from which nothing at all (not even a ping's answer) arrives for three times `read`.
public struct ConnectionTimeouts: Sendable, Hashable {
    /// A connection with no request in progress (and nothing being read) is closed after this; so
    /// is one whose peer reads none of the answer (its socket stays full) for this long.
    public var idle: Duration
    /// A request's head must arrive within this time of its first byte, and its body may not
    /// stall longer than this between bytes.
    public var read: Duration

    public init(idle: Duration = .seconds(60), read: Duration = .seconds(30)) {
        self.idle = idle
        self.read = read
    }

    public static let standard = ConnectionTimeouts()
}
