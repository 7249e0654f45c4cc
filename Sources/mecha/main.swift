import NIOCore
import NIOPosix

// Swift concurrency's global executor runs on NIO's event loop threads: a request's tasks then
// execute on the thread that does its I/O instead of hopping to the cooperative pool and back on
// every await (measured: the hops were most of the sidecar's CPU per request). Must run before any
// task is created. Nothing in the sidecar blocks a thread inside a task: SQLite runs on
// NIOThreadPool, child processes are awaited on their own threads.
_ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
await Mecha.main()
