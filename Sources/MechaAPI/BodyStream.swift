public import NIOCore

/// A message body as a stream of buffers, type-erased so any surface (HTTP, gRPC) and any channel
/// can produce or consume it without buffering it whole.
public struct BodyStream: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    private let base: any AsyncSequence<ByteBuffer, any Error> & Sendable
    /// Total length when known in advance (e.g. from `Content-Length`).
    public let length: Int?

    public init(_ base: some AsyncSequence<ByteBuffer, any Error> & Sendable, length: Int? = nil) {
        self.base = base
        self.length = length
    }

    /// A body already in memory.
    public init(buffer: ByteBuffer) {
        self.base = SingleBuffer(buffer: buffer)
        self.length = buffer.readableBytes
    }

    public static let empty = BodyStream(buffer: ByteBuffer())

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: any AsyncIteratorProtocol<ByteBuffer, any Error>

        public mutating func next() async throws -> ByteBuffer? {
            try await self.base.next(isolation: nil)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: self.base.makeAsyncIterator())
    }

    /// Reads the whole body; throws `BodyTooLarge` past `maxBytes`.
    public func collect(upTo maxBytes: Int) async throws -> ByteBuffer {
        if let single = self.base as? SingleBuffer {
            guard single.buffer.readableBytes <= maxBytes else { throw BodyTooLarge(limit: maxBytes) }
            return single.buffer
        }
        var result = ByteBuffer()
        for try await chunk in self {
            guard result.readableBytes + chunk.readableBytes <= maxBytes else { throw BodyTooLarge(limit: maxBytes) }
            var chunk = chunk
            result.writeBuffer(&chunk)
        }
        return result
    }

    /// The buffer when the body is already in memory (no stream to read).
    public var bufferedBytes: ByteBuffer? {
        (self.base as? SingleBuffer)?.buffer
    }

    struct SingleBuffer: AsyncSequence, Sendable {
        typealias Element = ByteBuffer
        let buffer: ByteBuffer

        struct AsyncIterator: AsyncIteratorProtocol {
            var buffer: ByteBuffer?
            mutating func next() async throws -> ByteBuffer? {
                defer { self.buffer = nil }
                guard let buffer, buffer.readableBytes > 0 else { return nil }
                return buffer
            }
        }

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: self.buffer) }
    }
}

/// A body exceeded the configured limit.
public struct BodyTooLarge: Error, Sendable, CustomStringConvertible {
    public var limit: Int
    public init(limit: Int) { self.limit = limit }
    public var description: String { "stream too large" }
}

/// Header fields in order, names as received (compared case-insensitively).
public struct HeaderList: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var fields: [Field]

    public struct Field: Sendable, Hashable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(_ fields: [Field] = []) { self.fields = fields }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.fields = elements.map { Field(name: $0.0, value: $0.1) }
    }

    public func makeIterator() -> IndexingIterator<[Field]> { self.fields.makeIterator() }

    public mutating func add(_ name: String, _ value: String) {
        self.fields.append(Field(name: name, value: value))
    }

    /// Replaces every field named `name` with one value.
    public mutating func set(_ name: String, _ value: String) {
        self.remove(name)
        self.add(name, value)
    }

    public mutating func remove(_ name: String) {
        self.fields.removeAll { $0.name.lowercased() == name.lowercased() }
    }

    public mutating func removeAll(where predicate: (Field) -> Bool) {
        self.fields.removeAll(where: predicate)
    }

    public func first(_ name: String) -> String? {
        let lowered = name.lowercased()
        return self.fields.first { $0.name.lowercased() == lowered }?.value
    }

    public func contains(_ name: String) -> Bool { self.first(name) != nil }

    public var isEmpty: Bool { self.fields.isEmpty }
}
