#if canImport(Glibc)
import Glibc
#endif
import MechaCore
import Testing

@testable import MechaEmbedded

@Suite("bindings.localstorage")
struct LocalStorageBindingTests {
    private static let context = ComponentContext(appID: "test", dataDirectory: "/tmp", instanceID: "test")

    private static func make(_ metadata: [String: String]) async throws -> LocalStorageBinding {
        let spec = ComponentSpec(
            name: "files",
            type: ComponentType(.bindings, "localstorage"),
            metadata: ComponentMetadata(metadata)
        )
        let component = try await LocalStorageBindingFactory().make(spec: spec, context: self.context)
        return try #require(component as? LocalStorageBinding)
    }

    /// A binding on a fresh root (symlink-free, so paths compare exactly), removed afterwards.
    private static func withBinding(_ body: (LocalStorageBinding, String) async throws -> Void) async throws {
        try await ScratchFiles.withDirectory("localstorage") { directory async throws in
            let binding = try await Self.make(["rootPath": directory])
            try await body(binding, binding.rootPath)
        }
    }

    private static func create(
        _ binding: LocalStorageBinding,
        _ data: String,
        fileName: String?,
        metadata: [String: String] = [:]
    ) async throws -> String {
        var metadata = metadata
        if let fileName { metadata["fileName"] = fileName }
        let response = try await binding.invoke(BindingInvokeRequest(operation: "create", data: Array(data.utf8), metadata: metadata))
        let json = try JSONValue(parsing: response.data)
        return try #require(json["fileName"]?.stringValue)
    }

    private static func get(_ binding: LocalStorageBinding, _ fileName: String) async throws -> [UInt8] {
        try await binding.invoke(BindingInvokeRequest(operation: "get", metadata: ["fileName": fileName])).data
    }

    private static func list(_ binding: LocalStorageBinding, _ fileName: String? = nil) async throws -> [String] {
        let response = try await binding.invoke(
            BindingInvokeRequest(operation: "list", metadata: fileName.map { ["fileName": $0] } ?? [:])
        )
        let json = try JSONValue(parsing: response.data)
        return try #require(json.arrayValues).map { try #require($0.stringValue) }
    }

    private static func bindingError(_ binding: LocalStorageBinding, _ request: BindingInvokeRequest) async -> String? {
        let error = await #expect(throws: BindingError.self) { try await binding.invoke(request) }
        return error?.reason
    }

    // MARK: Init

    @Test func factoryTypeAndOperations() async throws {
        #expect(LocalStorageBindingFactory().type.description == "bindings.localstorage")
        try await Self.withBinding { binding, _ async throws in
            #expect(binding.operations == ["create", "get", "list", "delete"])
        }
    }

    @Test func missingRootPathNamesTheKey() async {
        for metadata in [[:], ["rootPath": ""]] as [[String: String]] {
            let error = await #expect(throws: ComponentConfigurationError.self) { try await Self.make(metadata) }
            #expect(error?.key == "rootPath")
        }
    }

    @Test func forbiddenRootsAreRefused() async {
        for root in ["/proc", "/proc/self", "/sys/kernel", "/boot", "/boot/efi/x", "/var/run/secrets", "/var/run/secrets/kubernetes.io", "/tmp/../proc/1"] {
            let error = await #expect(throws: ComponentConfigurationError.self) { try await Self.make(["rootPath": root]) }
            #expect(error?.key == "rootPath")
            #expect(error?.reason == "property rootPath points to a disallowed location", "\(root)")
        }
    }

    @Test func forbiddenRootReachedThroughASymlinkIsRefused() async throws {
        try await ScratchFiles.withDirectory("localstorage") { directory async throws in
            ScratchFiles.symlink("/proc", at: directory + "/procfs")
            let error = await #expect(throws: ComponentConfigurationError.self) {
                try await Self.make(["rootPath": directory + "/procfs/self"])
            }
            #expect(error?.reason == "property rootPath points to a disallowed location")
        }
    }

    @Test func rootThatIsAFileIsRefused() async throws {
        try await ScratchFiles.withDirectory("localstorage") { directory async throws in
            ScratchFiles.write(directory + "/file", "x")
            let error = await #expect(throws: ComponentConfigurationError.self) { try await Self.make(["rootPath": directory + "/file"]) }
            #expect(error?.key == "rootPath")
            #expect(error?.reason == "property rootPath represents a file and not a directory")
        }
    }

    @Test func missingRootIsCreatedAndRelativeRootsResolve() async throws {
        try await ScratchFiles.withDirectory("localstorage") { directory async throws in
            let nested = try await Self.make(["rootPath": directory + "/a/b/c"])
            #expect(nested.rootPath.hasSuffix("/a/b/c"))
            var info = stat()
            #expect(stat(directory + "/a/b/c", &info) == 0 && info.st_mode & S_IFMT == S_IFDIR)

            let relative = try await Self.make(["rootPath": ScratchFiles.relativeToCurrentDirectory(directory + "/rel/../relroot")])
            #expect(relative.rootPath.hasPrefix("/"))
            #expect(relative.rootPath.hasSuffix("/relroot"))
            #expect(ScratchFiles.exists(directory + "/relroot"))
            #expect(!ScratchFiles.exists(directory + "/rel"))
        }
    }

    // MARK: create / get

    @Test func createUnquotesJSONStringsAndWritesTheFile() async throws {
        try await Self.withBinding { binding, root async throws in
            #expect(try await Self.create(binding, #""hello""#, fileName: "my-test-file.txt") == "my-test-file.txt")
            #expect(ScratchFiles.read(root + "/my-test-file.txt") == Array("hello".utf8))
            #expect(try await Self.get(binding, "my-test-file.txt") == Array("hello".utf8))
        }
    }

    @Test func createDecodesBase64LikeDapr() async throws {
        try await Self.withBinding { binding, root async throws in
            _ = try await Self.create(binding, #""aGVsbG8=""#, fileName: "b64")
            #expect(ScratchFiles.read(root + "/b64") == Array("hello".utf8))
            // A plain word that happens to be valid base64 is decoded too (Dapr's behaviour)…
            _ = try await Self.create(binding, #""test""#, fileName: "word")
            #expect(ScratchFiles.read(root + "/word") == [0xB5, 0xEB, 0x2D])
            // …unless the request turns decoding off.
            _ = try await Self.create(binding, #""test""#, fileName: "word2", metadata: ["decodeBase64": "false"])
            #expect(ScratchFiles.read(root + "/word2") == Array("test".utf8))
            // Unquoted raw bytes that are base64 are decoded as well; `null` is 3 bytes.
            _ = try await Self.create(binding, "aGk=", fileName: "raw")
            #expect(ScratchFiles.read(root + "/raw") == Array("hi".utf8))
            _ = try await Self.create(binding, "null", fileName: "null")
            #expect(ScratchFiles.read(root + "/null")?.count == 3)
            // Escapes inside the JSON string are honoured.
            _ = try await Self.create(binding, #""line\nnext \"q\"""#, fileName: "escaped")
            #expect(ScratchFiles.read(root + "/escaped") == Array("line\nnext \"q\"".utf8))
        }
    }

    @Test func createRejectsAnInvalidDecodeBase64Flag() async throws {
        try await Self.withBinding { binding, _ async throws in
            let reason = await Self.bindingError(
                binding,
                BindingInvokeRequest(operation: "create", data: Array("x".utf8), metadata: ["fileName": "f", "decodeBase64": "perhaps"])
            )
            #expect(reason?.contains("decodeBase64") == true)
        }
    }

    @Test func createWritesObjectsAsJSONAndMakesParentDirectories() async throws {
        try await Self.withBinding { binding, root async throws in
            let relative = try await Self.create(binding, #"{"a":1,"b":[true,null]}"#, fileName: "deep/er/doc.json")
            #expect(relative == "deep/er/doc.json")
            #expect(ScratchFiles.read(root + "/deep/er/doc.json") == Array(#"{"a":1,"b":[true,null]}"#.utf8))
            // Overwrite truncates.
            _ = try await Self.create(binding, #""hello""#, fileName: "deep/er/doc.json")
            #expect(try await Self.get(binding, "deep/er/doc.json") == Array("hello".utf8))
        }
    }

    @Test func createWithoutFileNameUsesAUUID() async throws {
        try await Self.withBinding { binding, root async throws in
            let name = try await Self.create(binding, #""hello""#, fileName: nil)
            #expect(name.count == 36)
            #expect(name.split(separator: "-").map(\.count) == [8, 4, 4, 4, 12])
            #expect(ScratchFiles.read(root + "/" + name) == Array("hello".utf8))
            let empty = try await Self.create(binding, #""hello""#, fileName: "")
            #expect(empty.count == 36 && empty != name)
        }
    }

    @Test func getMissingFileIsNotFound() async throws {
        try await Self.withBinding { binding, root async throws in
            let reason = await Self.bindingError(binding, BindingInvokeRequest(operation: "get", metadata: ["fileName": "nope.txt"]))
            #expect(reason == "file not found: \(root)/nope.txt")
        }
    }

    @Test func getWithoutFileNameReadsTheRootDirectory() async throws {
        try await Self.withBinding { binding, root async throws in
            let reason = await Self.bindingError(binding, BindingInvokeRequest(operation: "get"))
            #expect(reason == "error reading file \(root): read \(root): is a directory")
        }
    }

    @Test func getReturnsBinaryBytes() async throws {
        try await Self.withBinding { binding, root async throws in
            let bytes: [UInt8] = [0, 1, 2, 0xFF, 0xFE, 10, 13]
            ScratchFiles.write(root + "/bin", bytes)
            #expect(try await Self.get(binding, "bin") == bytes)
        }
    }

    // MARK: list

    @Test func listReturnsAbsolutePathsRecursively() async throws {
        try await Self.withBinding { binding, root async throws in
            #expect(try await Self.list(binding) == [])
            let empty = try await binding.invoke(BindingInvokeRequest(operation: "list"))
            #expect(empty.data == Array("[]".utf8))  // Dapr answers null here

            for name in ["b.txt", "a/z.txt", "a/m/n.txt", "c/d/e.txt", "a.txt"] {
                _ = try await Self.create(binding, #""x""#, fileName: name)
            }
            ScratchFiles.makeDirectoryPath(root + "/emptydir")
            #expect(
                try await Self.list(binding) == [
                    root + "/a/m/n.txt", root + "/a/z.txt", root + "/a.txt", root + "/b.txt", root + "/c/d/e.txt",
                ]
            )
            #expect(try await Self.list(binding, "a") == [root + "/a/m/n.txt", root + "/a/z.txt"])
            #expect(try await Self.list(binding, "emptydir") == [])
        }
    }

    @Test func listErrors() async throws {
        try await Self.withBinding { binding, root async throws in
            _ = try await Self.create(binding, #""x""#, fileName: "file.txt")
            let notDirectory = await Self.bindingError(binding, BindingInvokeRequest(operation: "list", metadata: ["fileName": "file.txt"]))
            #expect(notDirectory == "unable to list files as the file specified is not a directory: \(root)/file.txt")
            let missing = await Self.bindingError(binding, BindingInvokeRequest(operation: "list", metadata: ["fileName": "nope"]))
            #expect(missing == "error getting stats for path \(root)/nope: stat \(root)/nope: no such file or directory")
        }
    }

    @Test func listDoesNotFollowSymlinks() async throws {
        try await Self.withBinding { binding, root async throws in
            try await ScratchFiles.withDirectory("outside") { outside async throws in
                ScratchFiles.write(outside + "/secret", "s")
                ScratchFiles.symlink(outside, at: root + "/outdir")
                ScratchFiles.symlink(outside + "/secret", at: root + "/outfile")
                _ = try await Self.create(binding, #""x""#, fileName: "real")
                #expect(try await Self.list(binding) == [root + "/real"])
            }
        }
    }

    // MARK: delete

    @Test func deleteRemovesTheFile() async throws {
        try await Self.withBinding { binding, root async throws in
            _ = try await Self.create(binding, #""x""#, fileName: "dir/gone.txt")
            let response = try await binding.invoke(BindingInvokeRequest(operation: "delete", metadata: ["fileName": "dir/gone.txt"]))
            #expect(response.data.isEmpty)
            #expect(!ScratchFiles.exists(root + "/dir/gone.txt"))
            // An empty directory goes too, like Go's os.Remove.
            _ = try await binding.invoke(BindingInvokeRequest(operation: "delete", metadata: ["fileName": "dir"]))
            #expect(!ScratchFiles.exists(root + "/dir"))
        }
    }

    @Test func deleteMissingFileFails() async throws {
        try await Self.withBinding { binding, root async throws in
            let reason = await Self.bindingError(binding, BindingInvokeRequest(operation: "delete", metadata: ["fileName": "nope.txt"]))
            #expect(reason == "error deleting file \(root)/nope.txt: no such file or directory")
        }
    }

    @Test func unsupportedOperation() async throws {
        try await Self.withBinding { binding, _ async throws in
            let reason = await Self.bindingError(binding, BindingInvokeRequest(operation: "rename"))
            #expect(reason == "unsupported operation rename")
            // Operation names match case-insensitively (the API layer does too).
            _ = try await binding.invoke(BindingInvokeRequest(operation: "LIST"))
        }
    }

    // MARK: Path safety

    @Test func dotDotIsClampedAtTheRoot() async throws {
        try await Self.withBinding { binding, root async throws in
            #expect(try await Self.create(binding, #""pwned""#, fileName: "../../etc/passwd") == "etc/passwd")
            #expect(ScratchFiles.read(root + "/etc/passwd") == Array("pwned".utf8))
            #expect(try await Self.get(binding, "../../etc/passwd") == Array("pwned".utf8))
            #expect(try await Self.create(binding, #""y""#, fileName: "a/../../../b/./c") == "b/c")
            let reason = await Self.bindingError(binding, BindingInvokeRequest(operation: "get", metadata: ["fileName": "../../../../etc/hostname"]))
            #expect(reason == "file not found: \(root)/etc/hostname")
        }
    }

    @Test func absoluteFileNamesStayUnderTheRoot() async throws {
        try await Self.withBinding { binding, root async throws in
            #expect(try await Self.create(binding, #""abs""#, fileName: "/etc/passwd") == "etc/passwd")
            #expect(ScratchFiles.read(root + "/etc/passwd") == Array("abs".utf8))
            let reason = await Self.bindingError(binding, BindingInvokeRequest(operation: "get", metadata: ["fileName": "/etc/hostname"]))
            #expect(reason == "file not found: \(root)/etc/hostname")
            let deleted = await Self.bindingError(binding, BindingInvokeRequest(operation: "delete", metadata: ["fileName": "/etc/hostname"]))
            #expect(deleted == "error deleting file \(root)/etc/hostname: no such file or directory")
        }
    }

    @Test func symlinksPointingOutsideTheRootAreRefused() async throws {
        try await Self.withBinding { binding, root async throws in
            try await ScratchFiles.withDirectory("outside") { outside async throws in
                ScratchFiles.write(outside + "/secret.txt", "secret")
                ScratchFiles.symlink(outside, at: root + "/absdir")
                ScratchFiles.symlink("../" + outside.split(separator: "/").last! + "/secret.txt", at: root + "/relfile")
                ScratchFiles.symlink("/etc/passwd", at: root + "/passwd")
                ScratchFiles.makeDirectoryPath(root + "/sub")
                ScratchFiles.symlink("../../..", at: root + "/sub/up")

                let requests: [BindingInvokeRequest] = [
                    BindingInvokeRequest(operation: "get", metadata: ["fileName": "absdir/secret.txt"]),
                    BindingInvokeRequest(operation: "get", metadata: ["fileName": "relfile"]),
                    BindingInvokeRequest(operation: "get", metadata: ["fileName": "passwd"]),
                    BindingInvokeRequest(operation: "get", metadata: ["fileName": "sub/up/etc/passwd"]),
                    BindingInvokeRequest(operation: "create", data: Array("x".utf8), metadata: ["fileName": "absdir/new.txt"]),
                    BindingInvokeRequest(operation: "create", data: Array("x".utf8), metadata: ["fileName": "passwd"]),
                    BindingInvokeRequest(operation: "list", metadata: ["fileName": "absdir"]),
                    BindingInvokeRequest(operation: "delete", metadata: ["fileName": "absdir/secret.txt"]),
                ]
                for request in requests {
                    let reason = await Self.bindingError(binding, request)
                    #expect(reason?.contains("points outside rootPath") == true, "\(request.operation) \(request.metadata)")
                }
                #expect(ScratchFiles.read(outside + "/secret.txt") == Array("secret".utf8))
                #expect(!ScratchFiles.exists(outside + "/new.txt"))
            }
        }
    }

    @Test func symlinksInsideTheRootAreFollowed() async throws {
        try await Self.withBinding { binding, root async throws in
            ScratchFiles.makeDirectoryPath(root + "/real")
            ScratchFiles.symlink("real", at: root + "/alias")
            ScratchFiles.symlink(root + "/real", at: root + "/absalias")
            ScratchFiles.symlink("real/target.txt", at: root + "/link.txt")
            ScratchFiles.symlink("../real/target.txt", at: root + "/real/sibling.txt")

            #expect(try await Self.create(binding, #""via link""#, fileName: "alias/target.txt") == "real/target.txt")
            #expect(ScratchFiles.read(root + "/real/target.txt") == Array("via link".utf8))
            #expect(try await Self.get(binding, "absalias/target.txt") == Array("via link".utf8))
            #expect(try await Self.get(binding, "link.txt") == Array("via link".utf8))
            #expect(try await Self.get(binding, "alias/sibling.txt") == Array("via link".utf8))
            #expect(try await Self.list(binding, "alias") == [root + "/real/target.txt"])
        }
    }

    @Test func symlinkLoopsFail() async throws {
        try await Self.withBinding { binding, root async throws in
            ScratchFiles.symlink("loop2", at: root + "/loop1")
            ScratchFiles.symlink("loop1", at: root + "/loop2")
            let reason = await Self.bindingError(binding, BindingInvokeRequest(operation: "get", metadata: ["fileName": "loop1"]))
            #expect(reason?.contains("too many levels of symbolic links") == true)
        }
    }

    @Test func contentDecoding() {
        #expect(LocalStorageBinding.content(of: Array(#""hello""#.utf8), decodeBase64: true) == Array("hello".utf8))
        #expect(LocalStorageBinding.content(of: Array(#""aGVs\nbG8=""#.utf8), decodeBase64: true) == Array("hello".utf8))
        #expect(LocalStorageBinding.content(of: Array(#""aGVsbG8=""#.utf8), decodeBase64: false) == Array("aGVsbG8=".utf8))
        #expect(LocalStorageBinding.content(of: Array(#"{"a":"b"}"#.utf8), decodeBase64: true) == Array(#"{"a":"b"}"#.utf8))
        #expect(LocalStorageBinding.content(of: Array("\"unterminated".utf8), decodeBase64: true) == Array("\"unterminated".utf8))
        #expect(LocalStorageBinding.content(of: [], decodeBase64: true) == [])
    }
}
