/// Reads the three header lines of an encrypted message from a stream of chunks.
///
/// Mirrors daprd's reader: the first line must be the scheme name (checked as soon as it is
/// complete), no line may be empty, and the header must fit in one segment (64 KiB). Bytes after
/// the header are handed back in `Header.remainder` for the payload.
public struct HeaderReader: Sendable {
    /// A complete, not yet authenticated header.
    public struct Header: Sendable, Hashable {
        /// The manifest line exactly as written (the MAC covers these bytes).
        public var manifestLine: [UInt8]
        public var macLine: [UInt8]
        /// Payload bytes that arrived with the header.
        public var remainder: [UInt8]
    }

    public enum Progress: Sendable, Hashable {
        case needMoreData
        case complete(Header)
    }

    var buffer: [UInt8] = []
    var scanned = 0
    var lineStart = 0
    var lines: [[UInt8]] = []

    public init() {}

    /// Takes more bytes; answers the header once all three lines are in.
    public mutating func feed(_ bytes: some Collection<UInt8>) throws(EncryptionSchemeError) -> Progress {
        self.buffer.append(contentsOf: bytes)
        let limit = min(self.buffer.count, EncryptionScheme.maximumHeaderLength)
        while self.scanned < limit {
            let index = self.scanned
            self.scanned += 1
            guard self.buffer[index] == 0x0A else { continue }
            guard index > self.lineStart else { throw EncryptionSchemeError("invalid header: invalid format") }
            let line = Array(self.buffer[self.lineStart..<index])
            self.lineStart = index + 1
            if self.lines.isEmpty, line != Array(EncryptionScheme.name.utf8) {
                throw EncryptionSchemeError("invalid header: unsupported scheme")
            }
            self.lines.append(line)
            if self.lines.count == 3 {
                return .complete(Header(manifestLine: self.lines[1], macLine: self.lines[2], remainder: Array(self.buffer[self.lineStart...])))
            }
        }
        if self.scanned >= EncryptionScheme.maximumHeaderLength { throw self.incompleteError }
        return .needMoreData
    }

    /// The input ended before the header was complete.
    public func finish() throws(EncryptionSchemeError) -> Never {
        throw self.incompleteError
    }

    var incompleteError: EncryptionSchemeError {
        switch self.lines.count {
        case 0: EncryptionSchemeError("invalid header: scheme name not found")
        case 1: EncryptionSchemeError("invalid header: manifest not found")
        default: EncryptionSchemeError("invalid header: message authentication code not found")
        }
    }
}
