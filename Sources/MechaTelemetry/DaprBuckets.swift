/// daprd's histogram bounds (`pkg/diagnostics/utils`).
public enum DaprBuckets {
    /// Latencies, in milliseconds.
    public static let latencyMilliseconds: [Double] = [
        1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 30, 40, 50, 65, 80, 100, 130, 160, 200, 250, 300, 400, 500, 650, 800,
        1000, 2000, 5000, 10000, 20000, 50000, 100000,
    ]
    /// Sizes, in bytes.
    public static let sizeBytes: [Double] = [
        1024, 2048, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864, 268435456, 1073741824, 4294967296,
    ]
}
