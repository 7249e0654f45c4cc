#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

// Threads: one NIO event loop per CPU this process may run on (its affinity mask, so `taskset -c 0`
// gives one loop; `MECHA_EVENT_LOOPS` overrides), and Swift concurrency's global executor runs on
// those loops. A request's tasks then execute on the threads that do the I/O instead of hopping to
// the cooperative pool and back on every await. Must run before any task is created. Nothing in
// the sidecar blocks a thread inside a task: SQLite runs on NIOThreadPool, child processes are
// awaited on their own threads.
MemoryReturn.configure()
NIOSingletons.groupLoopCountSuggestion = EventLoopSizing.loops()
_ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
await Mecha.main()

/// glibc's malloc raises its mmap threshold each time a large mmapped block is freed (up to 32 MB),
/// after which multi-megabyte bodies come from the heap arenas and their pages are kept when
/// freed: a burst of large answers left hundreds of MB resident for good. A fixed threshold keeps
/// every block of 128 KiB or more in its own mapping, returned to the system when freed.
/// `MALLOC_MMAP_THRESHOLD_` in the environment still wins.
enum MemoryReturn {
    static func configure() {
        #if canImport(Glibc)
        guard getenv("MALLOC_MMAP_THRESHOLD_") == nil, let symbol = dlsym(nil, "mallopt") else { return }
        typealias MallOpt = @convention(c) (Int32, Int32) -> Int32
        let mallopt = unsafeBitCast(symbol, to: MallOpt.self)
        let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD in <malloc.h>
        _ = mallopt(mmapThreshold, 128 << 10)
        #endif
    }
}

enum EventLoopSizing {
    static func loops() -> Int {
        if let text = getenv("MECHA_EVENT_LOOPS").map({ String(cString: $0) }), let count = Int(text), count > 0 {
            return min(count, 64)
        }
        let allowed = self.allowedCPUs() ?? 0
        let cores = System.coreCount
        return max(1, allowed > 0 ? min(allowed, cores) : cores)
    }

    /// The number of CPUs in `Cpus_allowed` of /proc/self/status (a hex mask, comma-separated words).
    static func allowedCPUs() -> Int? {
        guard let file = fopen("/proc/self/status", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard text.hasPrefix("Cpus_allowed:") else { continue }
            return text.dropFirst("Cpus_allowed:".count).reduce(0) { count, character in
                count + (character.hexDigitValue.map { $0.nonzeroBitCount } ?? 0)
            }
        }
        return nil
    }
}
