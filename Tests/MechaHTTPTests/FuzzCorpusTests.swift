import MechaFuzzTargets
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The fuzz targets' seed corpora (`Fuzz/corpus/<target>/`), and every crash the fuzzer found
/// once fixed (kept there as a seed), replayed through the same entry points `scripts/fuzz`
/// fuzzes: a regression there fails here on every test run.
struct FuzzCorpusTests {
    static let corpusRoot: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/Fuzz/corpus"
    }()

    static func files(in directory: String) -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if !name.hasPrefix(".") { names.append(directory + "/" + name) }
        }
        return names.sorted()
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes += chunk[..<count]
        }
        return bytes
    }

    @Test(arguments: FuzzTarget.allCases)
    func seedCorpusPasses(_ target: FuzzTarget) throws {
        let files = Self.files(in: Self.corpusRoot + "/" + target.rawValue)
        #expect(files.count >= 3, "Fuzz/corpus/\(target.rawValue) should hold seeds")
        for file in files {
            let bytes = try #require(Self.read(file), "\(file) unreadable")
            target.run(bytes)
        }
    }
}
