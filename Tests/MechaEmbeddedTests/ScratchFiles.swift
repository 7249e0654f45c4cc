#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Temporary directories and small file helpers for the file-based component tests (Glibc only).
enum ScratchFiles {
    /// A new empty directory under /tmp (mkdtemp).
    static func makeDirectory(_ label: String) -> String {
        var template = Array("/tmp/mecha-\(label)-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp failed: \(errno)")
        return String(cString: created!)
    }

    /// Runs `body` with a fresh directory and removes it afterwards.
    static func withDirectory<T>(_ label: String, _ body: (String) async throws -> T) async rethrows -> T {
        let directory = self.makeDirectory(label)
        defer { self.removeTree(directory) }
        return try await body(directory)
    }

    /// `rm -rf path` without following symlinks.
    static func removeTree(_ path: String) {
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

    static func write(_ path: String, _ text: String) {
        self.write(path, Array(text.utf8))
    }

    static func write(_ path: String, _ bytes: [UInt8]) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(descriptor >= 0, "cannot create \(path): \(errno)")
        _ = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        _ = Glibc.close(descriptor)
    }

    /// The file's bytes, or nil when it cannot be opened.
    static func read(_ path: String) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return nil }
        defer { _ = Glibc.close(descriptor) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count <= 0 { return result }
            result += chunk[0..<count]
        }
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    static func makeDirectoryPath(_ path: String) {
        precondition(mkdir(path, 0o755) == 0 || errno == EEXIST, "mkdir \(path): \(errno)")
    }

    static func symlink(_ target: String, at path: String) {
        precondition(Glibc.symlink(target, path) == 0, "symlink \(path): \(errno)")
    }

    /// `absolutePath` spelled relative to the current directory (`../../tmp/x`).
    static func relativeToCurrentDirectory(_ absolutePath: String) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let cwd = getcwd(&buffer, buffer.count).map { String(cString: $0) } ?? "/"
        let depth = cwd.split(separator: "/").count
        return String(repeating: "../", count: depth) + absolutePath.drop { $0 == "/" }
    }
}
