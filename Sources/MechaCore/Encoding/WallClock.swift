#if canImport(Glibc)
import Glibc
#endif


/// The system's real-time clock as a `Timestamp`.
public enum WallClock {
    public static func now() -> Timestamp { Timestamp.now() }
}

extension Timestamp {
    /// The current wall-clock time.
    public static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(seconds: Int64(spec.tv_sec), nanoseconds: Int32(spec.tv_nsec))
    }
}
