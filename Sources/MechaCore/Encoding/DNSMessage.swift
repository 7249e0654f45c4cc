/// A DNS message (RFC 1035) as multicast DNS uses it (RFC 6762): questions and the resource
/// records DNS service discovery needs (A, PTR, SRV, TXT; others kept as bytes). A pure value:
/// `encoded()` writes names without compression (always valid), `init(decoding:)` reads any
/// message, following compression pointers backwards only, and refuses malformed input with a
/// reason rather than trapping.
public struct DNSMessage: Sendable, Equatable {
    public var id: UInt16 = 0
    public var isResponse = false
    public var authoritative = false
    public var questions: [Question] = []
    public var answers: [Record] = []
    public var authorities: [Record] = []
    public var additionals: [Record] = []

    public init(id: UInt16 = 0, isResponse: Bool = false, authoritative: Bool = false, questions: [Question] = [], answers: [Record] = [], additionals: [Record] = []) {
        self.id = id
        self.isResponse = isResponse
        self.authoritative = authoritative
        self.questions = questions
        self.answers = answers
        self.additionals = additionals
    }

    public enum RecordType {
        public static let a: UInt16 = 1
        public static let ptr: UInt16 = 12
        public static let txt: UInt16 = 16
        public static let aaaa: UInt16 = 28
        public static let srv: UInt16 = 33
        public static let any: UInt16 = 255
    }

    public struct Question: Sendable, Equatable {
        /// Absolute, with the trailing dot: `orders.local.`.
        public var name: String
        public var type: UInt16
        /// mDNS's QU bit (the top bit of the class).
        public var unicastResponse = false

        public init(name: String, type: UInt16, unicastResponse: Bool = false) {
            self.name = name
            self.type = type
            self.unicastResponse = unicastResponse
        }
    }

    public struct Record: Sendable, Equatable {
        public var name: String
        public var ttl: UInt32
        /// mDNS's cache-flush bit (the top bit of the class): this set replaces what was cached.
        public var cacheFlush = false
        public var data: RecordData

        public init(name: String, ttl: UInt32, cacheFlush: Bool = false, data: RecordData) {
            self.name = name
            self.ttl = ttl
            self.cacheFlush = cacheFlush
            self.data = data
        }

        public var type: UInt16 {
            switch self.data {
            case .a: RecordType.a
            case .ptr: RecordType.ptr
            case .srv: RecordType.srv
            case .txt: RecordType.txt
            case .other(let type, _): type
            }
        }
    }

    public enum RecordData: Sendable, Equatable {
        /// Four bytes.
        case a([UInt8])
        case ptr(String)
        case srv(priority: UInt16, weight: UInt16, port: UInt16, target: String)
        case txt([String])
        case other(type: UInt16, bytes: [UInt8])
    }

    public struct DecodingError: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// Class IN.
    static let classIN: UInt16 = 1

    // MARK: Encoding

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        Self.put16(&out, self.id)
        var flags: UInt16 = 0
        if self.isResponse { flags |= 0x8000 }
        if self.authoritative { flags |= 0x0400 }
        Self.put16(&out, flags)
        Self.put16(&out, UInt16(truncatingIfNeeded: self.questions.count))
        Self.put16(&out, UInt16(truncatingIfNeeded: self.answers.count))
        Self.put16(&out, UInt16(truncatingIfNeeded: self.authorities.count))
        Self.put16(&out, UInt16(truncatingIfNeeded: self.additionals.count))
        for question in self.questions {
            Self.putName(&out, question.name)
            Self.put16(&out, question.type)
            Self.put16(&out, Self.classIN | (question.unicastResponse ? 0x8000 : 0))
        }
        for record in self.answers + self.authorities + self.additionals {
            Self.putName(&out, record.name)
            Self.put16(&out, record.type)
            Self.put16(&out, Self.classIN | (record.cacheFlush ? 0x8000 : 0))
            Self.put32(&out, record.ttl)
            var data: [UInt8] = []
            switch record.data {
            case .a(let bytes): data = Array(bytes.prefix(4))
            case .ptr(let target): Self.putName(&data, target)
            case .srv(let priority, let weight, let port, let target):
                Self.put16(&data, priority)
                Self.put16(&data, weight)
                Self.put16(&data, port)
                Self.putName(&data, target)
            case .txt(let strings):
                for string in strings {
                    let bytes = Array(string.utf8.prefix(255))
                    data.append(UInt8(bytes.count))
                    data += bytes
                }
                if strings.isEmpty { data.append(0) }
            case .other(_, let bytes): data = bytes
            }
            Self.put16(&out, UInt16(truncatingIfNeeded: data.count))
            out += data
        }
        return out
    }

    static func put16(_ out: inout [UInt8], _ value: UInt16) {
        out.append(UInt8(value >> 8))
        out.append(UInt8(value & 0xff))
    }

    static func put32(_ out: inout [UInt8], _ value: UInt32) {
        self.put16(&out, UInt16(value >> 16))
        self.put16(&out, UInt16(value & 0xffff))
    }

    /// Labels split on dots, each at most 63 bytes (longer ones are cut).
    static func putName(_ out: inout [UInt8], _ name: String) {
        for label in name.split(separator: ".", omittingEmptySubsequences: true) {
            let bytes = Array(label.utf8.prefix(63))
            out.append(UInt8(bytes.count))
            out += bytes
        }
        out.append(0)
    }

    // MARK: Decoding

    public init(decoding bytes: [UInt8]) throws(DecodingError) {
        var reader = Reader(bytes: bytes)
        self.id = try reader.u16()
        let flags = try reader.u16()
        self.isResponse = flags & 0x8000 != 0
        self.authoritative = flags & 0x0400 != 0
        let counts = (try reader.u16(), try reader.u16(), try reader.u16(), try reader.u16())
        // Every question takes at least 5 bytes and every record 11: counts beyond what the
        // message can hold are refused before anything is allocated for them.
        let remaining = bytes.count - reader.offset
        guard Int(counts.0) * 5 + (Int(counts.1) + Int(counts.2) + Int(counts.3)) * 11 <= remaining else {
            throw DecodingError("the section counts exceed the message's \(bytes.count) bytes")
        }
        for _ in 0..<counts.0 {
            let name = try reader.name()
            let type = try reader.u16()
            let klass = try reader.u16()
            self.questions.append(Question(name: name, type: type, unicastResponse: klass & 0x8000 != 0))
        }
        for _ in 0..<counts.1 { self.answers.append(try reader.record()) }
        for _ in 0..<counts.2 { self.authorities.append(try reader.record()) }
        for _ in 0..<counts.3 { self.additionals.append(try reader.record()) }
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func u8() throws(DecodingError) -> UInt8 {
            guard self.offset < self.bytes.count else { throw DecodingError("truncated at byte \(self.offset)") }
            defer { self.offset += 1 }
            return self.bytes[self.offset]
        }

        mutating func u16() throws(DecodingError) -> UInt16 {
            UInt16(try self.u8()) << 8 | UInt16(try self.u8())
        }

        mutating func u32() throws(DecodingError) -> UInt32 {
            UInt32(try self.u16()) << 16 | UInt32(try self.u16())
        }

        mutating func take(_ count: Int) throws(DecodingError) -> [UInt8] {
            guard count >= 0, self.offset + count <= self.bytes.count else { throw DecodingError("truncated at byte \(self.offset)") }
            defer { self.offset += count }
            return Array(self.bytes[self.offset..<self.offset + count])
        }

        /// A name at the current offset, following compression pointers (each must point before
        /// the label that holds it, so they cannot loop).
        mutating func name() throws(DecodingError) -> String {
            var labels: [String] = []
            var length = 0
            var position = self.offset
            var resumeAt: Int?
            var lowestPointer = position
            while true {
                guard position < self.bytes.count else { throw DecodingError("a name runs past the end of the message") }
                let size = Int(self.bytes[position])
                if size & 0xC0 == 0xC0 {
                    guard position + 1 < self.bytes.count else { throw DecodingError("a truncated name pointer") }
                    let target = (size & 0x3F) << 8 | Int(self.bytes[position + 1])
                    guard target < lowestPointer else { throw DecodingError("a name pointer that does not point backwards") }
                    if resumeAt == nil { resumeAt = position + 2 }
                    lowestPointer = target
                    position = target
                    continue
                }
                guard size & 0xC0 == 0 else { throw DecodingError("an unknown label type \(size >> 6)") }
                if size == 0 {
                    position += 1
                    break
                }
                guard position + 1 + size <= self.bytes.count else { throw DecodingError("a label runs past the end of the message") }
                length += size + 1
                guard length <= 255 else { throw DecodingError("a name longer than 255 bytes") }
                labels.append(String(decoding: self.bytes[(position + 1)...(position + size)], as: UTF8.self))
                position += 1 + size
            }
            self.offset = resumeAt ?? position
            return labels.joined(separator: ".") + "."
        }

        mutating func record() throws(DecodingError) -> Record {
            let name = try self.name()
            let type = try self.u16()
            let klass = try self.u16()
            let ttl = try self.u32()
            let length = Int(try self.u16())
            guard self.offset + length <= self.bytes.count else { throw DecodingError("record data of \(name) runs past the end of the message") }
            let end = self.offset + length
            let data: RecordData
            switch type {
            case RecordType.a:
                guard length == 4 else { throw DecodingError("an A record of \(length) bytes") }
                data = .a(try self.take(4))
            case RecordType.ptr:
                data = .ptr(try self.name())
            case RecordType.srv:
                let priority = try self.u16()
                let weight = try self.u16()
                let port = try self.u16()
                data = .srv(priority: priority, weight: weight, port: port, target: try self.name())
            case RecordType.txt:
                var strings: [String] = []
                while self.offset < end {
                    let size = Int(try self.u8())
                    guard self.offset + size <= end else { throw DecodingError("a TXT string runs past its record") }
                    if size > 0 { strings.append(String(decoding: try self.take(size), as: UTF8.self)) }
                }
                data = .txt(strings)
            default:
                data = .other(type: type, bytes: try self.take(length))
            }
            guard self.offset == end else { throw DecodingError("the data of \(name)'s type \(type) record is \(length) bytes, not \(self.offset - end + length)") }
            return Record(name: name, ttl: ttl, cacheFlush: klass & 0x8000 != 0, data: data)
        }
    }
}
