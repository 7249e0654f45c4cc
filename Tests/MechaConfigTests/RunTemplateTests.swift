import MechaCore
import Testing

@testable import MechaConfig

/// The Dapr CLI's run template rules (`dapr run -f`): paths, precedence, merging, defaults, errors.
@Suite("RunTemplate")
struct RunTemplateTests {
    static func load(_ directory: TemporaryDirectory, _ text: String, defaultResources: [String] = [], defaultConfig: String? = nil) throws(ResourceError) -> RunTemplate {
        let file = directory.write("dapr.yaml", text)
        return try RunTemplate.load(path: file, home: directory.path + "/home", workingDirectory: "/", defaultResources: defaultResources, defaultConfig: defaultConfig)
    }

    @Test func quickstartTemplateResolvesPathsAndDefaults() throws {
        try TemporaryDirectory.with { directory in
            directory.makeDirectory("resources")
            directory.makeDirectory("sdk")
            directory.makeDirectory("sdk/order-processor")
            directory.makeDirectory("sdk/checkout")
            let file = directory.write(
                "sdk/dapr.yaml",
                """
                version: 1
                common:
                  resourcesPath: ../resources/
                  env:
                    DEBUG: true
                    SHARED: common
                apps:
                  - appID: order-processor-sdk
                    appDirPath: ./order-processor/
                    appPort: 6002
                    command: ["python3", "app.py"]
                    env:
                      SHARED: app
                  - appDirPath: ./checkout/
                    command: ["python3", "app.py"]
                    appLogDestination: console
                    daprdLogDestination: fileAndConsole
                    unknownContainerField: ignored
                """)
            let template = try RunTemplate.load(
                path: file, home: "/home/u", workingDirectory: "/", defaultResources: ["/home/u/.dapr/components"], defaultConfig: nil)
            #expect(template.file == file)
            #expect(template.apps.map(\.appID) == ["order-processor-sdk", "checkout"])
            let first = template.apps[0]
            #expect(first.appDirPath == directory.path + "/sdk/order-processor")
            #expect(first.resourcesPaths == [directory.path + "/resources"])
            #expect(first.appPort == 6002)
            #expect(first.command == ["python3", "app.py"])
            #expect(first.env == ["DEBUG": "true", "SHARED": "app"])
            #expect(first.appProtocol == "http")
            #expect(first.appLogDestination == .fileAndConsole && first.daprdLogDestination == .file)
            #expect(first.daprHTTPPort == nil && first.configFile == nil)
            let second = template.apps[1]
            #expect(second.appPort == nil)
            #expect(second.env["SHARED"] == "common")
            #expect(second.appLogDestination == .console && second.daprdLogDestination == .fileAndConsole)
        }
    }

    @Test func appPathsAreRelativeToTheAppFolderAndAppResourcesWin() throws {
        try TemporaryDirectory.with { directory in
            directory.makeDirectory("components")
            directory.makeDirectory("python")
            directory.makeDirectory("python/batch")
            directory.makeDirectory("python/common")
            let template = try RunTemplate.load(
                path: directory.write(
                    "python/dapr.yaml",
                    """
                    version: 1
                    common:
                      resourcesPaths: [./common]
                      configFilePath: ./common
                    apps:
                      - appID: batch-sdk
                        appDirPath: ./batch
                        resourcesPath: ../../components
                        daprHTTPPort: 3601
                        daprGRPCPort: -1
                    """),
                home: "/h", workingDirectory: "/", defaultResources: [], defaultConfig: "/h/.dapr/config.yaml")
            let app = try #require(template.apps.first)
            #expect(app.resourcesPaths == [directory.path + "/components"])
            #expect(app.configFile == directory.path + "/python/common")
            #expect(app.daprHTTPPort == 3601 && app.daprGRPCPort == nil)
        }
    }

    @Test func localDotDaprFolderBeatsCommonAndDefaults() throws {
        try TemporaryDirectory.with { directory in
            directory.makeDirectory("shared")
            directory.makeDirectory("web")
            directory.makeDirectory("web/.dapr")
            directory.makeDirectory("web/.dapr/resources")
            directory.write("web/.dapr/config.yaml", "kind: Configuration\n")
            directory.makeDirectory("api")
            let template = try Self.load(
                directory,
                "version: 1\ncommon:\n  resourcesPath: ./shared\napps:\n- appDirPath: web\n- appDirPath: api\n",
                defaultResources: ["/default"], defaultConfig: "/default.yaml")
            #expect(template.apps[0].resourcesPaths == [directory.path + "/web/.dapr/resources"])
            #expect(template.apps[0].configFile == directory.path + "/web/.dapr/config.yaml")
            #expect(template.apps[1].resourcesPaths == [directory.path + "/shared"])
            #expect(template.apps[1].configFile == "/default.yaml")
        }
    }

    @Test func noResourcesAnywhereUsesTheDefaults() throws {
        try TemporaryDirectory.with { directory in
            directory.makeDirectory("a")
            let template = try Self.load(directory, "version: 1\napps:\n- appDirPath: a\n  appID: alpha\n", defaultResources: ["/x/components"])
            #expect(template.apps[0].resourcesPaths == ["/x/components"])
            #expect(template.apps[0].configFile == nil)
        }
    }

    @Test func errorsNameTheFileAndField() throws {
        try TemporaryDirectory.with { directory in
            directory.makeDirectory("a")
            let cases: [(String, String?, String)] = [
                ("apps:\n- appDirPath: a\n", "version", "required field 'version'"),
                ("version: 1\napps:\n- appID: x\n", "apps[0]", "required field 'appDirPath'"),
                ("version: 1\napps:\n- appDirPath: missing\n", "apps[0].appDirPath", "no such file or directory"),
                ("version: 1\napps:\n- appDirPath: a\n  appPort: abc\n", "apps[0].appPort", "expected an integer"),
                ("version: 1\napps:\n- appDirPath: a\n  appPort: 70000\n", "apps[0].appPort", "invalid port"),
                ("version: 1\napps:\n- appDirPath: a\n  appLogDestination: syslog\n", "apps[0].appLogDestination", "console, file or fileAndConsole"),
                ("version: 1\napps:\n- appDirPath: a\n  command: [\"\"]\n", "apps[0].command", "exec: no command"),
                ("version: 1\napps:\n- appDirPath: a\n- appDirPath: a\n", "apps[1].appID", "appears more than once"),
                ("version: 1\ncommon:\n  resourcesPath: ./nope\napps: []\n", "common.resourcesPath", "no such file or directory"),
                ("version: [1\n", nil, ""),
            ]
            for (text, field, reason) in cases {
                do throws(ResourceError) {
                    _ = try Self.load(directory, text)
                    Issue.record("expected an error for \(text)")
                } catch {
                    #expect(error.source.file == directory.path + "/dapr.yaml", "\(text)")
                    #expect(error.field == field, "\(text): \(error)")
                    #expect(error.reason.contains(reason), "\(text): \(error)")
                }
            }
        }
    }

    @Test func locateFindsDaprYamlInAFolderAndRefusesOtherFiles() throws {
        try TemporaryDirectory.with { directory in
            directory.write("dapr.yaml", "version: 1\n")
            directory.write("notes.txt", "")
            let located = try RunTemplate.locate(directory.path)
            #expect(located == directory.path + "/dapr.yaml")
            #expect(throws: ResourceError.self) { try RunTemplate.locate(directory.path + "/notes.txt") }
            #expect(throws: ResourceError.self) { try RunTemplate.locate(directory.path + "/absent") }
        }
    }

    @Test func absolutePathsFoldDots() {
        #expect(RunTemplate.absolute("../../resources/", base: "/q/state/python/sdk") == "/q/state/resources")
        #expect(RunTemplate.absolute("./x/./y", base: "/a") == "/a/x/y")
        #expect(RunTemplate.absolute("/abs", base: "/a") == "/abs")
    }
}
