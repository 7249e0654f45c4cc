import MechaCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a time zone could not be loaded. `description` uses the wording of Go's `time.LoadLocation`
/// (`unknown time zone Mars/Base`, `time: invalid location name`, `malformed time zone information`).
public struct TimeZoneError: Error, Sendable, Hashable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { self.message }

    static let malformed = TimeZoneError("malformed time zone information")
    static let invalidName = TimeZoneError("time: invalid location name")
}

/// The UTC-offset history of one time zone: the transitions of a TZif file (RFC 8536, versions 1–4,
/// the 64-bit section when present) plus, for instants after the last transition, the POSIX TZ
/// footer rule. Pure value; loading it is the only thing that touches the file system, and nothing
/// here calls `tzset`/`localtime`/`mktime`, so it is safe to use from any thread.
public struct TimeZoneRules: Sendable, Hashable, CustomStringConvertible {
    /// The name the zone was loaded under (`America/New_York`, `UTC`, `Local`, or a POSIX string).
    public let name: String
    /// Transition instants (Unix seconds), ascending.
    let transitions: [Int64]
    /// `offsets[i]` (seconds east of UTC) applies from `transitions[i]` on.
    let offsets: [Int32]
    /// Offset for instants before the first transition (RFC 8536: local time type 0).
    let initialOffset: Int32
    /// Rule for instants after the last transition (or for all instants when there are none).
    let footer: PosixTimeZone?

    public var description: String { self.name }

    // MARK: Construction

    /// Coordinated Universal Time.
    public static let utc = TimeZoneRules(name: "UTC", fixedOffset: 0)

    /// A zone with a constant offset (seconds east of UTC).
    public init(name: String, fixedOffset: Int32) {
        self.name = name
        self.transitions = []
        self.offsets = []
        self.initialOffset = fixedOffset
        self.footer = nil
    }

    /// A zone described by a POSIX TZ string, e.g. `CET-1CEST,M3.5.0,M10.5.0/3` or `<+0530>-5:30`.
    public init(posix text: String) throws(TimeZoneError) {
        guard let rule = PosixTimeZone(text) else {
            throw TimeZoneError("invalid POSIX TZ string \(GoQuote.strconv(text))")
        }
        self.name = text
        self.transitions = []
        self.offsets = []
        self.initialOffset = rule.standardOffset
        self.footer = rule
    }

    /// Decodes the contents of a TZif file.
    public init(tzif data: [UInt8], name: String) throws(TimeZoneError) {
        var reader = TZifReader(data: data)
        let parsed = try reader.parse()
        self.name = name
        self.transitions = parsed.transitions
        self.offsets = parsed.offsets
        self.initialOffset = parsed.initialOffset
        self.footer = parsed.footer
    }

    /// Loads a zone by IANA name with the semantics of Go's `time.LoadLocation`: `""` and `"UTC"`
    /// are UTC; names containing `..` or starting with `/` or `\` are rejected; the file is looked
    /// up in `$ZONEINFO` (a directory) and then the usual system directories, first
    /// `/usr/share/zoneinfo`. (`"Local"` is resolved by the caller, see `CronSchedule`.)
    public static func named(_ name: String) throws(TimeZoneError) -> TimeZoneRules {
        if name.isEmpty || name == "UTC" { return .utc }
        let bytes = Array(name.utf8)
        let hasDotDot = zip(bytes, bytes.dropFirst()).contains { $0 == UInt8(ascii: ".") && $1 == UInt8(ascii: ".") }
        if bytes[0] == UInt8(ascii: "/") || bytes[0] == UInt8(ascii: "\\") || hasDotDot {
            throw .invalidName
        }
        var firstError: TimeZoneError?
        var directories: [String] = []
        if let custom = environmentValue("ZONEINFO"), !custom.isEmpty { directories.append(custom) }
        directories += zoneDirectories
        for directory in directories {
            switch readFile(directory + "/" + name) {
            case .success(let data):
                do throws(TimeZoneError) {
                    return try TimeZoneRules(tzif: data, name: name)
                } catch {
                    if firstError == nil { firstError = error }
                }
            case .failure(let code):
                if firstError == nil && code != ENOENT {
                    firstError = TimeZoneError(errnoText(code))
                }
            }
        }
        throw firstError ?? TimeZoneError("unknown time zone \(name)")
    }

    /// Directories searched for zone files (Go's list for Unix systems).
    static let zoneDirectories = [
        "/usr/share/zoneinfo", "/usr/share/lib/zoneinfo", "/usr/lib/locale/TZ", "/etc/zoneinfo",
    ]

    /// The process local zone, resolved once: `$TZ` if set, else `/etc/localtime`, else UTC.
    public static let local: TimeZoneRules = loadLocal(tzEnvironment: environmentValue("TZ"))

    /// Resolves a local zone from a `TZ` value (nil = unset), like Go's `initLocal` plus POSIX strings:
    /// unset → `/etc/localtime`; empty → UTC; `:name` / `name` → zone file (absolute path or name
    /// under the zoneinfo directories); otherwise a POSIX TZ string (`CET-1CEST,M3.5.0,M10.5.0/3`);
    /// anything unusable → UTC.
    public static func loadLocal(tzEnvironment tz: String?, localtimePath: String = "/etc/localtime") -> TimeZoneRules {
        guard var tz else {
            if case .success(let data) = readFile(localtimePath),
                let zone = try? TimeZoneRules(tzif: data, name: "Local")
            {
                return zone
            }
            return .utc
        }
        if tz.hasPrefix(":") { tz.removeFirst() }
        if tz.isEmpty || tz == "UTC" { return .utc }
        if tz.hasPrefix("/") {
            if case .success(let data) = readFile(tz), let zone = try? TimeZoneRules(tzif: data, name: tz) {
                return zone
            }
        } else if let zone = try? TimeZoneRules.named(tz) {
            return zone
        }
        if let zone = try? TimeZoneRules(posix: tz) { return zone }
        return .utc
    }

    // MARK: Queries

    /// Seconds east of UTC in effect at `unixSeconds`.
    public func offset(at unixSeconds: Int64) -> Int32 {
        guard let last = self.transitions.last else {
            return self.footer?.offset(at: unixSeconds) ?? self.initialOffset
        }
        if unixSeconds >= last, let footer = self.footer {
            return footer.offset(at: unixSeconds)
        }
        // Index of the last transition <= unixSeconds.
        var low = 0
        var high = self.transitions.count
        while low < high {
            let mid = (low + high) / 2
            if self.transitions[mid] <= unixSeconds { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? self.initialOffset : self.offsets[low - 1]
    }

    /// The first instant strictly after `unixSeconds` at which the offset changes (for the POSIX
    /// footer: the next rule change, even one that keeps the offset); nil if it never changes again.
    public func nextTransition(after unixSeconds: Int64) -> Int64? {
        if let last = self.transitions.last, unixSeconds < last {
            var low = 0
            var high = self.transitions.count
            while low < high {
                let mid = (low + high) / 2
                if self.transitions[mid] <= unixSeconds { low = mid + 1 } else { high = mid }
            }
            return self.transitions[low]
        }
        return self.footer?.nextTransition(after: unixSeconds)
    }

    /// Local wall-clock time at `unixSeconds`, as local seconds counted as if they were UTC.
    public func wallSeconds(at unixSeconds: Int64) -> Int64 {
        unixSeconds + Int64(self.offset(at: unixSeconds))
    }

    /// The instants (ascending) at which the local clock reads `wall` (local seconds counted as if
    /// UTC): one normally, none in a spring-forward gap, two in a fall-back overlap.
    public func instants(forWallSeconds wall: Int64) -> [Int64] {
        // Candidate offsets: those in effect around the wall value (offset changes are days apart),
        // refined by one fixed-point step.
        var candidates: [Int32] = []
        for probe in [wall - 172_800, wall - 86_400, wall, wall + 86_400, wall + 172_800] {
            let offset = self.offset(at: probe)
            if !candidates.contains(offset) { candidates.append(offset) }
        }
        for offset in candidates {
            let refined = self.offset(at: wall - Int64(offset))
            if !candidates.contains(refined) { candidates.append(refined) }
        }
        var result: [Int64] = []
        for offset in candidates {
            let instant = wall - Int64(offset)
            if self.offset(at: instant) == offset && !result.contains(instant) { result.append(instant) }
        }
        return result.sorted()
    }

    // MARK: File access

    enum ReadResult {
        case success([UInt8])
        case failure(Int32)
    }

    /// Reads a whole (small) file with plain POSIX calls.
    static func readFile(_ path: String, limit: Int = 10 << 20) -> ReadResult {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return .failure(errno) }
        defer { close(fd) }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                let error = errno
                if error == EINTR { continue }
                return .failure(error)
            }
            if count == 0 { break }
            data.append(contentsOf: buffer[0..<count])
            if data.count > limit { return .failure(EFBIG) }
        }
        return .success(data)
    }

    static func environmentValue(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    /// Go's text for the `syscall.Errno` values a zone lookup can plausibly hit.
    static func errnoText(_ code: Int32) -> String {
        switch code {
        case ENOENT: return "no such file or directory"
        case EISDIR: return "is a directory"
        case ENOTDIR: return "not a directory"
        case EACCES: return "permission denied"
        case ENAMETOOLONG: return "file name too long"
        case ELOOP: return "too many levels of symbolic links"
        case EMFILE: return "too many open files"
        case EFBIG: return "file too large"
        case EIO: return "input/output error"
        default: return "errno \(code)"
        }
    }
}

/// RFC 8536 decoder.
private struct TZifReader {
    let data: [UInt8]
    var position = 0

    init(data: [UInt8]) { self.data = data }

    struct Parsed {
        var transitions: [Int64]
        var offsets: [Int32]
        var initialOffset: Int32
        var footer: PosixTimeZone?
    }

    struct Header {
        var version: UInt8
        var isUTCCount: Int
        var isStdCount: Int
        var leapCount: Int
        var timeCount: Int
        var typeCount: Int
        var charCount: Int

        func dataLength(timeSize: Int) -> Int {
            self.timeCount * timeSize + self.timeCount + self.typeCount * 6 + self.charCount
                + self.leapCount * (timeSize + 4) + self.isStdCount + self.isUTCCount
        }
    }

    mutating func bytes(_ count: Int) throws(TimeZoneError) -> ArraySlice<UInt8> {
        guard count >= 0, self.data.count - self.position >= count else { throw .malformed }
        defer { self.position += count }
        return self.data[self.position..<(self.position + count)]
    }

    mutating func bigEndian(_ size: Int) throws(TimeZoneError) -> UInt64 {
        var value: UInt64 = 0
        for byte in try self.bytes(size) { value = value << 8 | UInt64(byte) }
        return value
    }

    mutating func header() throws(TimeZoneError) -> Header {
        guard Array(try self.bytes(4)) == Array("TZif".utf8) else { throw .malformed }
        let version = try self.bytes(1).first!
        _ = try self.bytes(15)
        var counts: [Int] = []
        for _ in 0..<6 {
            let count = try self.bigEndian(4)
            guard count < 1 << 24 else { throw .malformed }
            counts.append(Int(count))
        }
        return Header(
            version: version, isUTCCount: counts[0], isStdCount: counts[1], leapCount: counts[2],
            timeCount: counts[3], typeCount: counts[4], charCount: counts[5]
        )
    }

    mutating func parse() throws(TimeZoneError) -> Parsed {
        var header = try self.header()
        var timeSize = 4
        if header.version >= UInt8(ascii: "2") {
            // Skip the 32-bit block; the 64-bit header and block follow.
            _ = try self.bytes(header.dataLength(timeSize: 4))
            header = try self.header()
            timeSize = 8
        }
        guard header.typeCount >= 1 else { throw .malformed }

        var transitions: [Int64] = []
        transitions.reserveCapacity(header.timeCount)
        for _ in 0..<header.timeCount {
            let raw = try self.bigEndian(timeSize)
            transitions.append(timeSize == 8 ? Int64(bitPattern: raw) : Int64(Int32(bitPattern: UInt32(raw))))
        }
        let indices = try self.bytes(header.timeCount)
        var typeOffsets: [Int32] = []
        for _ in 0..<header.typeCount {
            let offset = Int32(bitPattern: UInt32(try self.bigEndian(4)))
            _ = try self.bytes(2)  // isdst, abbreviation index
            guard offset > -(26 * 3600) && offset < 26 * 3600 else { throw .malformed }
            typeOffsets.append(offset)
        }
        var offsets: [Int32] = []
        offsets.reserveCapacity(header.timeCount)
        for index in indices {
            guard Int(index) < header.typeCount else { throw .malformed }
            offsets.append(typeOffsets[Int(index)])
        }
        for i in transitions.indices.dropFirst() where transitions[i] <= transitions[i - 1] {
            throw .malformed
        }
        _ = try self.bytes(header.charCount + header.leapCount * (timeSize + 4))
        _ = try self.bytes(header.isStdCount + header.isUTCCount)

        var footer: PosixTimeZone?
        if timeSize == 8, self.position < self.data.count, self.data[self.position] == UInt8(ascii: "\n") {
            let start = self.position + 1
            if let end = self.data[start...].firstIndex(of: UInt8(ascii: "\n")), end > start {
                // An unusable footer is ignored: the last transition's offset then applies.
                footer = PosixTimeZone(String(decoding: self.data[start..<end], as: UTF8.self))
            }
        }
        // Drop transitions that do not change the offset (abbreviation or isdst changes, and the
        // sentinel transitions "fat" files carry), so `nextTransition` reports real changes.
        var keptTransitions: [Int64] = []
        var keptOffsets: [Int32] = []
        var current = typeOffsets[0]
        for (instant, offset) in zip(transitions, offsets) where offset != current {
            keptTransitions.append(instant)
            keptOffsets.append(offset)
            current = offset
        }
        return Parsed(
            transitions: keptTransitions, offsets: keptOffsets, initialOffset: typeOffsets[0], footer: footer
        )
    }
}
