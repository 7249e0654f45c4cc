#if canImport(Glibc)
import Glibc
#endif

/// Where the built `mecha` and `mecha-testapp` binaries are: `$MECHA_BUILD_DIR`, else
/// `.build/debug` under the current directory or one of its parents. A missing binary fails the
/// test with the command that builds it.
public enum MechaBinaries {
    public static func path(_ name: String) throws -> String {
        var candidates: [String] = []
        if let dir = getenv("MECHA_BUILD_DIR").map({ String(cString: $0) }) { candidates.append(dir + "/" + name) }
        var directory = TestEnvironment.currentDirectory
        for _ in 0..<6 {
            candidates.append(directory + "/.build/debug/" + name)
            guard let slash = directory.lastIndex(of: "/"), slash != directory.startIndex else { break }
            directory = String(directory[..<slash])
        }
        for candidate in candidates where access(candidate, X_OK) == 0 { return candidate }
        throw HarnessError("\(name) is not built; run `swift build --build-tests` first (looked in \(candidates.joined(separator: ", ")))")
    }

    public static var mecha: String { get throws { try self.path("mecha") } }
    public static var testApp: String { get throws { try self.path("mecha-testapp") } }
}

extension TestEnvironment {
    public static var currentDirectory: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { return "." }
        return String(cString: buffer)
    }
}
