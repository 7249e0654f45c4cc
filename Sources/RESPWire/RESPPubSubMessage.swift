public import NIOCore

/// A message delivered to a subscriber: from `SUBSCRIBE` (`message`), `PSUBSCRIBE` (`pmessage`,
/// with the matching pattern) or `SSUBSCRIBE` (`smessage`). Keyspace notifications arrive the same
/// way: channel `__keyspace@0__:mykey`, payload the event name (`set`, `del`, `expired`).
public struct RESPPubSubMessage: Sendable, Hashable {
    /// The channel the message was published to.
    public var channel: String
    /// The pattern that matched, for pattern subscriptions.
    public var pattern: String?
    public var payload: ByteBuffer

    public init(channel: String, pattern: String? = nil, payload: ByteBuffer) {
        self.channel = channel
        self.pattern = pattern
        self.payload = payload
    }

    /// The payload as UTF-8 text.
    public var payloadString: String { String(buffer: self.payload) }

    /// Reads a push (or RESP2 subscriber-mode array) whose kind is `message`, `pmessage` or
    /// `smessage`; nil for anything else (subscription confirmations, invalidations).
    public init?(push values: [RESPValue]) {
        guard let kind = values.first?.string?.lowercased() else { return nil }
        switch kind {
        case "message", "smessage":
            guard values.count == 3, let channel = values[1].string, let payload = values[2].bytes else { return nil }
            self.init(channel: channel, payload: payload)
        case "pmessage":
            guard values.count == 4, let pattern = values[1].string, let channel = values[2].string, let payload = values[3].bytes else { return nil }
            self.init(channel: channel, pattern: pattern, payload: payload)
        default:
            return nil
        }
    }
}
