#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// What `mecha run` / `dapr run` (single app or `-f`) records about each running app, so
/// `dapr list`, `dapr stop` and `dapr invoke` find it — the Dapr CLI reads the same facts from
/// daprd's process table and metadata. One JSON file per app in `<mecha home>/runs`, written once
/// the sidecar listens and removed when the run ends; records whose processes are gone are
/// dropped when read. The JSON keys are the CLI's `dapr list -o json` keys.
struct RunRecord: Codable, Sendable, Equatable {
    var appId: String
    var httpPort: Int
    var grpcPort: Int
    var appPort: Int
    var metricsEnabled: Bool
    var command: String
    var created: String
    var createdUnix: Int
    var daprdPid: Int32
    var cliPid: Int32
    var appPid: Int32
    var maxRequestBodySize: Int
    var httpReadBufferSize: Int
    var runTemplatePath: String
    var appLogPath: String
    var daprdLogPath: String
    var runTemplateName: String
}

enum RunRegistry {
    static func directory(home: String) -> String { home + "/runs" }

    /// The Mecha home a CLI command uses: `--mecha-home`, else `$MECHA_HOME`, else `~/.mecha`.
    static func home(_ flag: String?, environment: [String: String]) -> String {
        flag ?? environment["MECHA_HOME"] ?? ((environment["HOME"] ?? "/tmp") + "/.mecha")
    }

    /// Writes `record`; returns the file to remove when the app stops.
    @discardableResult
    static func register(_ record: RunRecord, home: String) -> String? {
        let directory = self.directory(home: home)
        mkdir(home, 0o700)
        mkdir(directory, 0o700)
        let file = "\(directory)/\(Self.safeName(record.appId))-\(record.cliPid)-\(record.daprdPid).json"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(record) else { return nil }
        let temporary = file + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data), rename(temporary, file) == 0 else { return nil }
        return file
    }

    static func remove(_ file: String?) {
        if let file { unlink(file) }
    }

    /// Every live run, oldest first. Records of processes that no longer exist are deleted.
    static func list(home: String) -> [RunRecord] {
        let directory = self.directory(home: home)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var records: [RunRecord] = []
        for name in names where name.hasSuffix(".json") {
            let file = "\(directory)/\(name)"
            guard let data = FileManager.default.contents(atPath: file),
                let record = try? JSONDecoder().decode(RunRecord.self, from: data)
            else { continue }
            guard Self.alive(record.daprdPid) else {
                unlink(file)
                continue
            }
            records.append(record)
        }
        return records.sorted { ($0.createdUnix, $0.appId) < ($1.createdUnix, $1.appId) }
    }

    static func alive(_ pid: Int32) -> Bool {
        pid > 0 && (kill(pid, 0) == 0 || errno == EPERM)
    }

    static func safeName(_ appID: String) -> String {
        String(appID.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
    }

    /// The CLI's CREATED column (`2006-01-02 15:04.05`, local time).
    static func createdText(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        localtime_r(&time, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\(two(parts.tm_min)).\(two(parts.tm_sec))"
    }

    /// The CLI's AGE column: the largest unit (`12s`, `5m`, `3h`, `2d`).
    static func ageText(since seconds: Int, now: Int) -> String {
        let age = max(0, now - seconds)
        if age < 60 { return "\(age)s" }
        if age < 3600 { return "\(age / 60)m" }
        if age < 86400 { return "\(age / 3600)h" }
        return "\(age / 86400)d"
    }

    static func now() -> Int { Int(time(nil)) }
}
