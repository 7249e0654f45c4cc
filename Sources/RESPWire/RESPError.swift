/// Why a command or connection failed: the server's error reply, or a connection problem.
///
/// `code == .server` carries the server's own text in `message` (`"NOSCRIPT No matching script…"`,
/// `"WRONGTYPE Operation against a key…"`), and ``serverErrorPrefix`` gives its first word.
/// Every other code is a connection problem (``isConnectionError``): the command may or may not
/// have reached the server.
public struct RESPError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure; extensible, compare with the static members.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let description: String
        private init(_ description: String) { self.description = description }

        /// The server answered with an error reply.
        public static let server = Code("server")
        /// No connection could be made (refused, unreachable, TLS handshake or dial timeout).
        public static let connectionFailed = Code("connectionFailed")
        /// The connection closed while the command waited for its reply, or was already closed.
        public static let connectionClosed = Code("connectionClosed")
        /// No reply within the read timeout; the connection was closed (its pipeline cannot skip a reply).
        public static let timeout = Code("timeout")
        /// The server sent bytes that are not valid RESP, or a reply nobody asked for.
        public static let protocolViolation = Code("protocolViolation")
        /// The pool or connection was shut down by its owner.
        public static let shutDown = Code("shutDown")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// An error reply from the server, e.g. `RESPError.server("WRONGTYPE Operation against a key…")`.
    public static func server(_ message: String) -> RESPError { RESPError(.server, message) }

    /// For server errors, the first word of the message (`ERR`, `NOSCRIPT`, `WRONGTYPE`, `WRONGPASS`,
    /// `NOAUTH`, `BUSYGROUP`, `EXECABORT`); nil for connection problems.
    public var serverErrorPrefix: String? {
        guard self.code == .server else { return nil }
        return self.message.split(separator: " ", maxSplits: 1).first.map(String.init)
    }

    /// True for every failure that is not an error reply: the connection is (or was) unusable.
    public var isConnectionError: Bool { self.code != .server }

    public var description: String {
        self.code == .server ? "redis: \(self.message)" : "redis \(self.code): \(self.message)"
    }
}
