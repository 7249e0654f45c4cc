public import MechaCore

/// The secret that Mecha sidecars sharing a home (and so a name-resolution registry) present to
/// each other on the sidecar-to-sidecar ports, until mTLS identities replace it.
///
/// Those ports listen on the internal address, where any local process can reach them. Without
/// the token a caller could claim any `dapr-caller-app-id` and have the receiving sidecar add the
/// app's `APP_API_TOKEN`; with it, such a call is refused before it reaches the app. The token
/// lives in a file only the home's owner can read (see `PeerTokenFile` in MechaSidecar).
public struct PeerToken: Sendable, Hashable {
    /// The header (HTTP) and metadata key (gRPC) carrying it. Like every `x-mecha-` header it is
    /// never accepted from callers of the public APIs and never passed to an app.
    public static let header = "x-mecha-sidecar-token"

    public let value: String

    public init(_ value: String) {
        self.value = value
    }

    /// True when `sent` is this token (compared in constant time).
    public func accepts(_ sent: String?) -> Bool {
        guard let sent else { return false }
        return ConstantTime.equals(sent, self.value)
    }
}

extension APIError {
    /// A call on a sidecar-to-sidecar port without this home's sidecar token.
    public static let peerUnauthenticated = APIError(
        errorCode: "ERR_UNAUTHENTICATED",
        message: "the sidecar-to-sidecar port accepts calls only from Mecha sidecars of the same home: missing or wrong \(PeerToken.header)",
        httpStatus: 401,
        grpcStatus: .unauthenticated
    )
}

/// How a sidecar-to-sidecar listener knows its caller is a Mecha sidecar.
public enum PeerAuthentication: Sendable, Hashable {
    /// Plaintext listener: callers present the home's peer token; their `dapr-caller-*` headers
    /// are then trusted.
    case token(PeerToken)
    /// Mutual TLS: the listener completed a handshake with a verified SVID before any request,
    /// and the `dapr-caller-*` headers were set from the certificate by the transport.
    case certificate

    /// True when a request carrying `sent` in `PeerToken.header` is from a sidecar.
    @inline(__always)
    public func accepts(_ sent: String?) -> Bool {
        switch self {
        case .token(let token): token.accepts(sent)
        case .certificate: true
        }
    }
}
