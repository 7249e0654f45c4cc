import MechaCore
import Testing

@testable import MechaConfig

/// Files, directories, several documents per file, and error collection.
@Suite("ResourceLoader")
struct ResourceLoaderTests {
    static func component(_ name: String, type: String = "state.in-memory") -> String {
        """
        apiVersion: dapr.io/v1alpha1
        kind: Component
        metadata:
          name: \(name)
        spec:
          type: \(type)
          version: v1
        """
    }

    static let subscription = """
        apiVersion: dapr.io/v2alpha1
        kind: Subscription
        metadata:
          name: sub
        spec:
          pubsubname: pubsub
          topic: orders
          routes:
            default: /orders
        """

    static let configuration = """
        apiVersion: dapr.io/v1alpha1
        kind: Configuration
        metadata:
          name: appconfig
        spec:
          features:
          - name: F
            enabled: true
        """

    // MARK: Documents

    @Test func severalDocumentsPerFileInOrder() throws {
        let text = [Self.component("a"), Self.subscription, Self.component("b"), Self.configuration].joined(separator: "\n---\n")
        let loaded = try ResourceLoader.load(text: text, file: "all.yaml")
        #expect(loaded.components.map(\.name) == ["a", "b"])
        #expect(loaded.subscriptions.map(\.topic) == ["orders"])
        #expect(loaded.configurations.map(\.name) == ["appconfig"])
        // Each resource remembers the line its document starts on.
        #expect(loaded.components.map(\.source.line) == [1, 19])
        #expect(loaded.configurations.first?.source.line == 27)
        #expect(loaded.subscriptions.first?.source?.line == 9)
    }

    @Test func leadingTrailingAndEmptyDocumentsAreIgnored() throws {
        let text = "---\n" + Self.component("a") + "\n---\n---\n# just a comment\n---\n" + Self.component("b") + "\n---\n"
        let loaded = try ResourceLoader.load(text: text, file: "x.yaml")
        #expect(loaded.components.map(\.name) == ["a", "b"])
    }

    @Test func emptyTextLoadsNothing() throws {
        let loaded = try ResourceLoader.load(text: "", file: "empty.yaml")
        #expect(loaded.components.isEmpty && loaded.subscriptions.isEmpty && loaded.configurations.isEmpty)
    }

    @Test func otherKindsAreSkippedWithANote() throws {
        let endpoint = """
            apiVersion: dapr.io/v1alpha1
            kind: HTTPEndpoint
            metadata:
              name: myendpoint
            spec: {}
            """
        let loaded = try ResourceLoader.load(text: endpoint + "\n---\n" + Self.component("a"), file: "r.yaml")
        #expect(loaded.components.map(\.name) == ["a"])
        #expect(loaded.skipped.count == 1)
        #expect(loaded.skipped.first?.source.resource == "HTTPEndpoint/myendpoint")
        #expect(loaded.skipped.first?.reason.contains("HTTPEndpoint") == true)
    }

    @Test func missingKind() throws {
        let failure = try #require(throws: ResourceLoadError.self) {
            try ResourceLoader.load(text: "apiVersion: dapr.io/v1alpha1\nmetadata:\n  name: x\n", file: "k.yaml")
        }
        #expect(failure.errors.count == 1)
        #expect(failure.errors.first?.field == "kind")
        #expect(failure.errors.first?.source.resource == "document/x")
    }

    @Test func documentThatIsNotAMapping() throws {
        let failure = try #require(throws: ResourceLoadError.self) {
            try ResourceLoader.load(text: Self.component("a") + "\n---\n- just\n- a list\n", file: "l.yaml")
        }
        #expect(failure.errors.count == 1)
        #expect(failure.errors.first?.source.resource == "document #2")
        #expect(failure.errors.first?.source.line == 9)
        #expect(failure.errors.first?.reason.contains("mapping") == true)
    }

    // MARK: Syntax errors

    @Test func malformedYAMLNamesFileAndLine() throws {
        let text = """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: broken
            spec:
              type: state.redis
              metadata:
              - name: a
                value: "unterminated
            """
        let failure = try #require(throws: ResourceLoadError.self) {
            try ResourceLoader.load(text: text, file: "/etc/mecha/broken.yaml")
        }
        #expect(failure.errors.count == 1)
        let error = try #require(failure.errors.first)
        #expect(error.source.file == "/etc/mecha/broken.yaml")
        let line = try #require(error.source.line)
        #expect((9...10).contains(line))
        #expect(error.reason.contains("invalid YAML"))
        #expect(error.reason.contains("line \(line)"))
        #expect(failure.description.contains("/etc/mecha/broken.yaml"))
    }

    @Test func badIndentationNamesTheLine() throws {
        let text = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: a\n   bad: indent\nspec:\n  type: state.redis\n"
        let failure = try #require(throws: ResourceLoadError.self) {
            try ResourceLoader.load(text: text, file: "indent.yaml")
        }
        let error = try #require(failure.errors.first)
        #expect(error.source.file == "indent.yaml")
        #expect(error.source.line == 5)
    }

    @Test func duplicateKeysAreASyntaxError() throws {
        let text = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: a\n  name: b\nspec:\n  type: state.redis\n"
        let failure = try #require(throws: ResourceLoadError.self) {
            try ResourceLoader.load(text: text, file: "dup.yaml")
        }
        let error = try #require(failure.errors.first)
        #expect(error.reason.contains("duplicate"))
        #expect(error.reason.contains("name"))
        // Yams reports the line of the mapping that holds the duplicate.
        #expect(error.source.line == 4)
    }

    @Test func aliasesAreResolvedAsInGo() throws {
        let text = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: &n a\nspec:\n  type: state.redis\n  version: *n\n"
        let loaded = try ResourceLoader.load(text: text, file: "alias.yaml")
        #expect(loaded.components.first?.version == "a")
    }

    // MARK: Several errors

    @Test func everyBadDocumentIsReported() throws {
        let text = [
            Self.component("good"),
            Self.component("badtype", type: "nosuch.thing"),
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: notimeout\nspec:\n  type: state.redis\n  initTimeout: never",
            Self.component("alsogood"),
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {}\nspec:\n  type: state.redis",
        ].joined(separator: "\n---\n")
        let failure = try #require(throws: ResourceLoadError.self) {
            try ResourceLoader.load(text: text, file: "many.yaml")
        }
        #expect(failure.errors.count == 3)
        #expect(failure.errors.map(\.source.resource) == ["Component/badtype", "Component/notimeout", "Component/#5"])
        #expect(failure.errors.map(\.field) == ["spec.type", "spec.initTimeout", "metadata.name"])
        #expect(failure.description.split(separator: "\n").count == 3)
    }

    // MARK: Files and directories

    @Test func singleFilePath() throws {
        try TemporaryDirectory.with { directory in
            let file = directory.write("one.yaml", Self.component("a") + "\n---\n" + Self.component("b"))
            let loaded = try ResourceLoader.load(paths: [file])
            #expect(loaded.components.map(\.name) == ["a", "b"])
            #expect(loaded.components.allSatisfy { $0.source.file == file })
        }
    }

    @Test func directoryInNameOrderSkippingOtherFiles() throws {
        try TemporaryDirectory.with { directory in
            directory.write("b.yaml", Self.component("from-b"))
            directory.write("a.yml", Self.component("from-a"))
            directory.write("c.yaml", Self.subscription)
            directory.write("README.md", "not: [yaml")
            directory.write("notes.txt", "::::")
            directory.write("secrets.json", "{\"a\": 1}")
            directory.write(".hidden.yaml", Self.component("hidden"))
            let nested = directory.makeDirectory("nested.yaml")
            TemporaryDirectory(path: nested).write("d.yaml", Self.component("nested"))
            TemporaryDirectory(path: directory.makeDirectory("sub")).write("e.yaml", Self.component("sub"))

            let loaded = try ResourceLoader.load(paths: [directory.path])
            #expect(loaded.components.map(\.name) == ["from-a", "from-b"])
            #expect(loaded.components.map(\.source.file) == [directory.path + "/a.yml", directory.path + "/b.yaml"])
            #expect(loaded.subscriptions.count == 1)
        }
    }

    @Test func directoryPathWithTrailingSlash() throws {
        try TemporaryDirectory.with { directory in
            directory.write("a.yaml", Self.component("a"))
            let loaded = try ResourceLoader.load(paths: [directory.path + "/"])
            #expect(loaded.components.first?.source.file == directory.path + "/a.yaml")
        }
    }

    @Test func severalPathsInTheOrderGiven() throws {
        try TemporaryDirectory.with { directory in
            let first = directory.makeDirectory("first")
            let second = directory.makeDirectory("second")
            TemporaryDirectory(path: first).write("z.yaml", Self.component("first-z"))
            TemporaryDirectory(path: second).write("a.yaml", Self.component("second-a"))
            let file = directory.write("single.yaml", Self.component("single"))
            let loaded = try ResourceLoader.load(paths: [second, first, file])
            #expect(loaded.components.map(\.name) == ["second-a", "first-z", "single"])
        }
    }

    @Test func emptyDirectoryLoadsNothing() throws {
        try TemporaryDirectory.with { directory in
            let loaded = try ResourceLoader.load(paths: [directory.path])
            #expect(loaded.components.isEmpty)
        }
    }

    @Test func missingResourcesPathIsAnError() throws {
        let failure = try #require(throws: ResourceLoadError.self) {
            try ResourceLoader.load(paths: ["/nonexistent/mecha/resources"])
        }
        #expect(failure.errors.count == 1)
        #expect(failure.errors.first?.source.file == "/nonexistent/mecha/resources")
        #expect(failure.errors.first?.reason.contains("no such file") == true)
    }

    @Test func errorsFromSeveralFilesAreAllReported() throws {
        try TemporaryDirectory.with { directory in
            directory.write("a.yaml", "key: [unclosed\n")
            directory.write("b.yaml", Self.component("good"))
            directory.write("c.yaml", Self.component("bad", type: "wat"))
            let failure = try #require(throws: ResourceLoadError.self) {
                try ResourceLoader.load(paths: [directory.path, "/nonexistent/path"])
            }
            #expect(failure.errors.count == 3)
            #expect(failure.errors.map(\.source.file) == [directory.path + "/a.yaml", directory.path + "/c.yaml", "/nonexistent/path"])
        }
    }

    @Test func invalidUTF8FileIsAnError() throws {
        try TemporaryDirectory.with { directory in
            let path = directory.path + "/bad.yaml"
            guard let file = fopenForTest(path) else { Issue.record("cannot create file"); return }
            let bytes: [UInt8] = [0x6B, 0x3A, 0x20, 0xFF, 0xFE, 0x0A]
            _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
            let failure = try #require(throws: ResourceLoadError.self) { try ResourceLoader.load(paths: [path]) }
            #expect(failure.errors.first?.source.file == path)
            #expect(failure.errors.first?.reason.contains("UTF-8") == true)
        }
    }

    // MARK: --config

    @Test func loadConfigurationFromAFile() throws {
        try TemporaryDirectory.with { directory in
            let file = directory.write("config.yaml", Self.configuration)
            let configuration = try ResourceLoader.loadConfiguration(file: file)
            #expect(configuration.name == "appconfig")
            #expect(configuration.features == ["F": true])
            #expect(configuration.source.file == file)
        }
    }

    @Test func loadConfigurationFromAFileWithoutOne() throws {
        try TemporaryDirectory.with { directory in
            let file = directory.write("config.yaml", Self.component("a"))
            let failure = try #require(throws: ResourceLoadError.self) { try ResourceLoader.loadConfiguration(file: file) }
            #expect(failure.errors.first?.reason.contains("no Configuration") == true)
        }
    }

    @Test func loadConfigurationFromAMissingFile() throws {
        let failure = try #require(throws: ResourceLoadError.self) {
            try ResourceLoader.loadConfiguration(file: "/nonexistent/config.yaml")
        }
        #expect(failure.errors.first?.source.file == "/nonexistent/config.yaml")
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private func fopenForTest(_ path: String) -> UnsafeMutablePointer<FILE>? {
    fopen(path, "wb")
}
