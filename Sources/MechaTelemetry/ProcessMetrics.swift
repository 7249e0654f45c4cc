#if canImport(Glibc)
import Glibc
#endif
import CoreMetrics
import Synchronization

/// The process figures Prometheus's client libraries export (`process_*`), read from `/proc` at
/// scrape time: nothing runs between scrapes.
enum ProcessMetrics {
    static func install(on registry: MetricsRegistry) {
        let resident = registry.gauge("process_resident_memory_bytes", labels: [])([])
        let virtual = registry.gauge("process_virtual_memory_bytes", labels: [])([])
        let cpu = CoreMetrics.FloatingPointCounter(label: "process_cpu_seconds_total", dimensions: [], factory: registry.factory)
        let cpuSeen = Mutex(0.0)
        let openFDs = registry.gauge("process_open_fds", labels: [])([])
        let maxFDs = registry.gauge("process_max_fds", labels: [])([])
        let start = registry.gauge("process_start_time_seconds", labels: [])([])
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        let bootTime = Self.bootTime()
        registry.onScrape {
            if let stat = Self.selfStat() {
                resident.record(stat.rssPages * pageSize)
                virtual.record(stat.virtualBytes)
                let seconds = (stat.userTicks + stat.systemTicks) / ticks
                let delta = cpuSeen.withLock { seen in
                    defer { seen = max(seen, seconds) }
                    return seconds - seen
                }
                if delta > 0 { cpu.increment(by: delta) }
                if let bootTime { start.record(bootTime + stat.startTicks / ticks) }
            }
            openFDs.record(Double(Self.openFileDescriptors()))
            var limit = rlimit()
            if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { maxFDs.record(Double(limit.rlim_cur)) }
        }
    }

    struct Stat {
        var userTicks: Double
        var systemTicks: Double
        var startTicks: Double
        var virtualBytes: Double
        var rssPages: Double
    }

    /// `/proc/self/stat`, fields after the command name (which may hold spaces and parentheses).
    static func selfStat() -> Stat? {
        guard let text = Self.read("/proc/self/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3 of proc(5)); field n is fields[n - 3].
        func field(_ n: Int) -> Double { n - 3 < fields.count ? Double(fields[n - 3]) ?? 0 : 0 }
        return Stat(userTicks: field(14), systemTicks: field(15), startTicks: field(22), virtualBytes: field(23), rssPages: field(24))
    }

    static func bootTime() -> Double? {
        guard let text = Self.read("/proc/stat") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: " "))
        }
        return nil
    }

    static func openFileDescriptors() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != 46 { count += 1 }  // not "." or ".."
        }
        return max(0, count - 1)  // the directory's own descriptor
    }

    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 4096) }
            if count <= 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in character: Character) -> Substring {
        var text = self
        while text.first == character { text = text.dropFirst() }
        while text.last == character { text = text.dropLast() }
        return text
    }
}
