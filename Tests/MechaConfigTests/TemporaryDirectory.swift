#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fresh directory under /tmp for file-based loader tests, removed afterwards.
struct TemporaryDirectory {
    let path: String

    static func with<T>(_ body: (TemporaryDirectory) throws -> T) throws -> T {
        var template = Array("/tmp/mecha-config-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp failed: \(errno)")
        let directory = TemporaryDirectory(path: String(cString: created!))
        defer { Self.removeTree(directory.path) }
        return try body(directory)
    }

    /// Writes `text` to `name` inside the directory and returns the full path.
    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        let path = self.path + "/" + name
        guard let file = fopen(path, "wb") else { preconditionFailure("cannot create \(path): \(errno)") }
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
        return path
    }

    /// Creates a subdirectory and returns its full path.
    @discardableResult
    func makeDirectory(_ name: String) -> String {
        let path = self.path + "/" + name
        precondition(mkdir(path, 0o755) == 0, "mkdir \(path): \(errno)")
        return path
    }

    private static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR {
            if let stream = opendir(path) {
                var names: [String] = []
                while let entry = readdir(stream) {
                    let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                        String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
                    }
                    if name != "." && name != ".." { names.append(name) }
                }
                closedir(stream)
                for name in names { self.removeTree(path + "/" + name) }
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
