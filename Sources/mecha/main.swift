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
NIOSingletons.groupLoopCountSuggestion = EventLoopSizing.loops()
_ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
await Mecha.main()

enum EventLoopSizing {
    static func loops() -> Int {
        if let text = getenv("MECHA_EVENT_LOOPS").map({ String(cString: $0) }), let count = Int(text), count > 0 {
            return min(count, 64)
        }
        var set = cpu_set_t()
        let allowed = withUnsafeMutablePointer(to: &set) { pointer -> Int in
            guard sched_getaffinity(0, MemoryLayout<cpu_set_t>.size, pointer) == 0 else { return 0 }
            return pointer.withMemoryRebound(to: UInt64.self, capacity: MemoryLayout<cpu_set_t>.size / 8) { words in
                (0..<(MemoryLayout<cpu_set_t>.size / 8)).reduce(0) { $0 + words[$1].nonzeroBitCount }
            }
        }
        let cores = System.coreCount
        return max(1, allowed > 0 ? min(allowed, cores) : cores)
    }
}
