/// The payload half of the scheme as an incremental machine: bytes in, sealed (or opened)
/// segments out, then `finish` at end of input.
///
/// A segment is only processed once the byte after it has arrived (or the input has ended),
/// because whether it is the last one is part of its nonce. Memory stays bounded by one segment
/// plus what a single `feed` hands in.
///
/// ```swift
/// var stream = SegmentStream(sealing: fileKey)
/// out += try stream.feed(chunk)   // zero or more whole segments
/// out += try stream.finish()      // the last segment
/// ```
public struct SegmentStream: Sendable {
    public enum Direction: Sendable { case seal, open }

    let fileKey: FileKey
    let direction: Direction
    /// Bytes per input segment: 64 KiB of plaintext, or 64 KiB + tag of ciphertext.
    let inputSegmentSize: Int
    var buffer: [UInt8] = []
    var segment: UInt32 = 0
    var finished = false

    public init(fileKey: FileKey, direction: Direction) {
        self.fileKey = fileKey
        self.direction = direction
        self.inputSegmentSize = EncryptionScheme.segmentSize + (direction == .open ? EncryptionScheme.segmentOverhead : 0)
    }

    public init(sealing fileKey: FileKey) { self.init(fileKey: fileKey, direction: .seal) }
    public init(opening fileKey: FileKey) { self.init(fileKey: fileKey, direction: .open) }

    /// How many segments have been emitted.
    public var segmentsProcessed: UInt32 { self.segment }

    /// Takes more input; returns the output of every segment now known not to be the last.
    public mutating func feed(_ bytes: some Collection<UInt8>) throws(EncryptionSchemeError) -> [UInt8] {
        precondition(!self.finished, "feed after finish")
        self.buffer.append(contentsOf: bytes)
        var output: [UInt8] = []
        while self.buffer.count > self.inputSegmentSize {
            output += try self.process(self.buffer[..<self.inputSegmentSize], last: false)
            self.buffer.removeSubrange(..<self.inputSegmentSize)
        }
        return output
    }

    /// Ends the input: processes what is left as the last segment. An empty input is a valid
    /// message with no segments; nothing but the very first segment may be empty.
    public mutating func finish() throws(EncryptionSchemeError) -> [UInt8] {
        precondition(!self.finished, "finish called twice")
        self.finished = true
        guard !self.buffer.isEmpty else { return [] }
        defer { self.buffer = [] }
        return try self.process(self.buffer[...], last: true)
    }

    private mutating func process(_ input: ArraySlice<UInt8>, last: Bool) throws(EncryptionSchemeError) -> [UInt8] {
        let number = self.segment
        let output: [UInt8]
        switch self.direction {
        case .seal:
            do {
                output = try self.fileKey.seal(input, segment: number, last: last)
            } catch {
                throw .segment(number, "\(error)")
            }
        case .open:
            do {
                output = try self.fileKey.open(Array(input), segment: number, last: last)
            } catch {
                throw .segment(number, error.description)
            }
        }
        if !last {
            guard number < UInt32.max else { throw EncryptionSchemeError("input stream is too large") }
            self.segment = number + 1
        }
        return output
    }
}
