#if canImport(Glibc)
import Glibc
#endif

/// The CLI's few raw socket and descriptor operations, on 127.0.0.1.
enum Loopback {
    /// Runs `body` with a TCP socket and 127.0.0.1:`port` as a `sockaddr`; the socket is closed after.
    static func withSocket<T>(port: Int, _ body: (Int32, UnsafePointer<sockaddr>, socklen_t) -> T) -> T? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// Whether something accepts connections on 127.0.0.1:`port`.
    static func listening(_ port: Int) -> Bool {
        self.withSocket(port: port) { fd, address, length in connect(fd, address, length) == 0 } ?? false
    }

    /// Writes all of `bytes` to `fd` (retrying on EINTR and short writes; gives up on an error).
    static func writeAll(_ fd: Int32, _ bytes: some Collection<UInt8>) {
        var pending = Array(bytes)[...]
        while !pending.isEmpty {
            let written = pending.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            pending = pending.dropFirst(written)
        }
    }
}
