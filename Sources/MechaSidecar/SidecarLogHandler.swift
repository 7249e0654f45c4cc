#if canImport(Glibc)
import Glibc
#endif
public import Logging
import MechaCore

/// Log lines in daprd's shapes: logfmt text by default, one JSON object per line with
/// `--log-as-json`. Written to stderr in one `write` per line.
public struct SidecarLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let label: String
    let json: Bool
    let appID: String

    public init(label: String, level: Logger.Level, json: Bool, appID: String) {
        self.label = label
        self.logLevel = level
        self.json = json
        self.appID = appID
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = self.metadata
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        let time = Timestamp.now().rfc3339Nano
        let level = Self.levelName(event.level)
        var line: String
        if self.json {
            var members: [(String, JSONValue)] = [
                ("app_id", .string(self.appID)),
                ("instance", .string(Self.hostname)),
                ("level", .string(level)),
                ("msg", .string(event.message.description)),
                ("scope", .string(self.label)),
                ("time", .string(time)),
                ("type", "log"),
                ("ver", .string(Sidecar.version)),
            ]
            for (key, value) in fields.sorted(by: { $0.key < $1.key }) { members.append((key, .string("\(value)"))) }
            line = JSONValue.object(members).jsonString
        } else {
            line = "time=\"\(time)\" level=\(level) msg=\(Self.quote(event.message.description)) app_id=\(self.appID) scope=\(self.label)"
            for (key, value) in fields.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(Self.quote("\(value)"))" }
        }
        line += "\n"
        _ = line.utf8CString.withUnsafeBufferPointer { buffer in
            write(2, buffer.baseAddress, buffer.count - 1)
        }
    }

    static func levelName(_ level: Logger.Level) -> String {
        switch level {
        case .trace, .debug: "debug"
        case .info, .notice: "info"
        case .warning: "warning"
        case .error: "error"
        case .critical: "fatal"
        }
    }

    static func quote(_ text: String) -> String {
        var output = "\""
        for character in text {
            switch character {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            default: output.append(character)
            }
        }
        return output + "\""
    }

    static let hostname: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        return String(cString: buffer)
    }()
}
