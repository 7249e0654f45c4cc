import Glibc
import MechaAPI

/// `<mecha home>/sidecar-token`: the peer token every sidecar of a home shares (`PeerToken`).
///
/// The first sidecar creates it (32 random bytes from the system's generator, hex, mode 0600);
/// the others read it. It is written to a temporary file and linked into place, so a sidecar
/// starting at the same moment either finds the whole token or creates it itself, never half.
enum PeerTokenFile {
    static let name = "sidecar-token"

    static func loadOrCreate(home: String) throws -> PeerToken {
        let path = home + "/" + self.name
        var current = home.hasPrefix("/") ? "" : "."
        for component in home.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw SidecarError("cannot create the Mecha home \(home): \(String(cString: strerror(errno)))")
            }
        }
        for _ in 0..<3 {
            if let token = try self.read(path) { return token }
            var generator = SystemRandomNumberGenerator()
            var bytes: [UInt8] = []
            for _ in 0..<4 {
                var word: UInt64 = generator.next()
                for _ in 0..<8 {
                    bytes.append(UInt8(truncatingIfNeeded: word))
                    word >>= 8
                }
            }
            let hex = Array("0123456789abcdef".utf8)
            let text = String(decoding: bytes.flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 0xF)]] }, as: UTF8.self)
            let temporary = "\(path).\(getpid()).tmp"
            let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else { throw SidecarError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
            let written = text.utf8CString.withUnsafeBufferPointer { Glibc.write(descriptor, $0.baseAddress, $0.count - 1) }
            close(descriptor)
            defer { unlink(temporary) }
            guard written == text.utf8.count else { throw SidecarError("cannot write \(temporary)") }
            // link() fails when the token exists already: another sidecar won the race; read its token.
            if link(temporary, path) == 0 { return PeerToken(text) }
            guard errno == EEXIST else { throw SidecarError("cannot create \(path): \(String(cString: strerror(errno)))") }
        }
        throw SidecarError("cannot read or create \(path)")
    }

    /// The token in `path`, nil when the file does not exist.
    static func read(_ path: String) throws -> PeerToken? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        if descriptor < 0 {
            if errno == ENOENT { return nil }
            throw SidecarError("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { throw SidecarError("\(path) is empty: delete it and start again") }
        let text = String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters()
        guard text.utf8.count >= 32, text.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw SidecarError("\(path) does not hold a sidecar token: delete it and start again")
        }
        return PeerToken(text)
    }
}

extension String {
    fileprivate func trimmingCharacters() -> String {
        String(self.filter { !$0.isWhitespace })
    }
}
