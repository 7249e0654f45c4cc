import Foundation
public import MechaCore

/// A Dapr CLI multi-app run template (`dapr.yaml`, `dapr run -f`), resolved: every path absolute,
/// `common` merged into each app, defaults applied — the precedence rules the Dapr CLI documents:
///
/// - resources: the app's `resourcesPath(s)` > `<appDirPath>/.dapr/resources` > `common`'s >
///   the default resources folder (`~/.dapr/components`, passed in by the caller);
/// - configuration: the app's `configFilePath` > `<appDirPath>/.dapr/config.yaml` > `common`'s >
///   the default configuration file;
/// - paths in `common` are relative to the template's folder, paths in an app relative to its
///   `appDirPath`; `~` is the home directory; every path must exist;
/// - `env`: the app's entries win over `common`'s; `appID` defaults to the folder name of
///   `appDirPath`; logs go to `file` (sidecar) and `fileAndConsole` (app) unless set.
///
/// Errors name the file and the field (`apps[1].appPort`). Unknown fields are ignored, as the
/// CLI's YAML decoder ignores them (container fields for Kubernetes, for instance).
public struct RunTemplate: Sendable {
    /// The template file, absolute.
    public var file: String
    /// `name`, when the template sets one.
    public var name: String
    public var apps: [App]

    public enum LogDestination: String, Sendable, Hashable {
        case console
        case file
        case fileAndConsole

        public var toFile: Bool { self != .console }
        public var toConsole: Bool { self != .file }
    }

    /// One app of the template. Ports are `nil` when not given (the runner picks free ones).
    public struct App: Sendable {
        public var appID: String
        public var appDirPath: String
        public var command: [String] = []
        public var env: [String: String] = [:]
        public var appPort: Int?
        public var appProtocol: String = "http"
        public var appChannelAddress: String = ""
        public var daprHTTPPort: Int?
        public var daprGRPCPort: Int?
        public var daprInternalGRPCPort: Int?
        public var metricsPort: Int?
        public var resourcesPaths: [String] = []
        public var configFile: String?
        public var logLevel: String = ""
        public var appMaxConcurrency: Int?
        public var apiListenAddresses: String = ""
        public var maxBodySize: String = ""
        public var readBufferSize: String = ""
        public var enableAppHealthCheck = false
        public var appHealthCheckPath: String = ""
        public var appHealthProbeInterval: Int = 0
        public var appHealthProbeTimeout: Int = 0
        public var appHealthThreshold: Int = 0
        public var enableAPILogging = false
        public var appSSL = false
        public var unixDomainSocket: String = ""
        public var appLogDestination: LogDestination = .fileAndConsole
        public var daprdLogDestination: LogDestination = .file
    }

    /// The run file a `-f` argument names: a YAML file as is, or `dapr.yaml` in a folder.
    public static func locate(_ path: String) throws(ResourceError) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ResourceError(source: .init(file: path, resource: "run template"), field: nil, reason: "no such file or directory")
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            for name in ["dapr.yaml", "dapr.yml"] {
                let candidate = (path.hasSuffix("/") ? path : path + "/") + name
                if stat(candidate, &info) == 0 { return candidate }
            }
            throw ResourceError(source: .init(file: path, resource: "run template"), field: nil, reason: "no dapr.yaml in this folder")
        }
        guard path.hasSuffix(".yaml") || path.hasSuffix(".yml") else {
            throw ResourceError(source: .init(file: path, resource: "run template"), field: nil, reason: "the run template must be a YAML file (.yaml or .yml)")
        }
        return path
    }

    /// Reads and resolves the template at `path` (a file; see `locate`).
    /// - Parameters:
    ///   - home: the user's home directory, for `~`.
    ///   - workingDirectory: what a relative `path` is relative to.
    ///   - defaultResources: resources when neither the app, its `.dapr/resources` nor `common` name any.
    ///   - defaultConfig: configuration file when none is named or found.
    public static func load(
        path: String,
        home: String,
        workingDirectory: String,
        defaultResources: [String],
        defaultConfig: String?
    ) throws(ResourceError) -> RunTemplate {
        let file = Self.absolute(path, base: workingDirectory)
        let text = try ResourceLoader.readText(file)
        return try Self.parse(text: text, file: file, home: home, defaultResources: defaultResources, defaultConfig: defaultConfig)
    }

    /// Resolves template text as if read from `file` (absolute).
    public static func parse(
        text: String,
        file: String,
        home: String,
        defaultResources: [String],
        defaultConfig: String?
    ) throws(ResourceError) -> RunTemplate {
        let source = ResourceSource(file: file, resource: "run template")
        let documents: [YAMLNode]
        do throws(YAMLDocuments.SyntaxError) {
            documents = try YAMLDocuments.parse(text)
        } catch {
            throw ResourceError(source: .init(file: file, resource: "run template", line: error.line), field: nil, reason: error.message)
        }
        guard let document = documents.first(where: { !$0.isNull }) else {
            throw ResourceError(source: source, field: nil, reason: "the run template is empty")
        }
        let root = NodeReader(document, path: "", source: source)
        guard let version = try root.optional("version"), try version.int() != 0 else {
            throw ResourceError(source: source, field: "version", reason: "required field 'version' not found in the provided run template file")
        }
        let baseDirectory = Self.directory(of: file)
        let resolver = PathResolver(home: home)

        var common = App(appID: "", appDirPath: baseDirectory)
        if let node = try root.optional("common") {
            try Self.readShared(node, into: &common, base: baseDirectory, resolver: resolver)
        }
        let name = try root.optional("name")?.string() ?? ""

        var apps: [App] = []
        for node in try root.optional("apps")?.sequence() ?? [] {
            guard let dirNode = try node.optional("appDirPath"), !(try dirNode.string()).isEmpty else {
                throw node.error("required field 'appDirPath' not found in the provided app config file")
            }
            let appDir = try resolver.existing(try dirNode.string(), base: baseDirectory, node: dirNode)
            var app = App(appID: "", appDirPath: appDir)
            // Shared fields not set by the app come from `common` (the CLI's zero-value merge).
            app.appProtocol = ""
            app.appLogDestination = common.appLogDestination
            app.daprdLogDestination = common.daprdLogDestination
            try Self.readShared(node, into: &app, base: appDir, resolver: resolver, explicitDestinations: true)
            if app.appProtocol.isEmpty { app.appProtocol = common.appProtocol }
            if app.logLevel.isEmpty { app.logLevel = common.logLevel }
            if app.appMaxConcurrency == nil { app.appMaxConcurrency = common.appMaxConcurrency }
            if app.apiListenAddresses.isEmpty { app.apiListenAddresses = common.apiListenAddresses }
            if app.maxBodySize.isEmpty { app.maxBodySize = common.maxBodySize }
            if app.readBufferSize.isEmpty { app.readBufferSize = common.readBufferSize }
            if !app.enableAppHealthCheck { app.enableAppHealthCheck = common.enableAppHealthCheck }
            if app.appHealthCheckPath.isEmpty { app.appHealthCheckPath = common.appHealthCheckPath }
            if app.appHealthProbeInterval == 0 { app.appHealthProbeInterval = common.appHealthProbeInterval }
            if app.appHealthProbeTimeout == 0 { app.appHealthProbeTimeout = common.appHealthProbeTimeout }
            if app.appHealthThreshold == 0 { app.appHealthThreshold = common.appHealthThreshold }
            if !app.enableAPILogging { app.enableAPILogging = common.enableAPILogging }
            if !app.appSSL { app.appSSL = common.appSSL }
            for (key, value) in common.env where app.env[key] == nil { app.env[key] = value }

            if let id = try node.optional("appID") { app.appID = try id.string() }
            if app.appID.isEmpty { app.appID = Self.lastComponent(of: appDir) }
            app.appChannelAddress = try node.optional("appChannelAddress")?.string() ?? ""
            app.appPort = try Self.port(node, "appPort")
            app.daprHTTPPort = try Self.port(node, "daprHTTPPort")
            app.daprGRPCPort = try Self.port(node, "daprGRPCPort")
            app.daprInternalGRPCPort = try Self.port(node, "daprInternalGRPCPort")
            app.metricsPort = try Self.port(node, "metricsPort")
            app.unixDomainSocket = try node.optional("unixDomainSocket")?.string() ?? ""
            if let command = try node.optional("command") {
                app.command = try command.strings()
                if let first = app.command.first, first.trimmingSpaces().isEmpty {
                    throw command.error("exec: no command")
                }
            }

            if app.resourcesPaths.isEmpty {
                let local = appDir + "/.dapr/resources"
                if Self.exists(local) {
                    app.resourcesPaths = [local]
                } else if !common.resourcesPaths.isEmpty {
                    app.resourcesPaths = common.resourcesPaths
                } else {
                    app.resourcesPaths = defaultResources
                }
            }
            if app.configFile == nil {
                let local = appDir + "/.dapr/config.yaml"
                if Self.exists(local) {
                    app.configFile = local
                } else {
                    app.configFile = common.configFile ?? defaultConfig
                }
            }
            apps.append(app)
        }
        var seen: Set<String> = []
        for (index, app) in apps.enumerated() where !seen.insert(app.appID).inserted {
            throw ResourceError(source: source, field: "apps[\(index)].appID", reason: "app id \(app.appID) appears more than once")
        }
        return RunTemplate(file: file, name: name, apps: apps)
    }

    /// The fields a template's `common` section may set (Dapr's SharedRunConfig).
    private static func readShared(
        _ node: NodeReader, into app: inout App, base: String, resolver: PathResolver, explicitDestinations: Bool = false
    ) throws(ResourceError) {
        if let value = try node.optional("configFilePath"), !(try value.string()).isEmpty {
            app.configFile = try resolver.existing(try value.string(), base: base, node: value)
        }
        var resources: [String] = []
        if let list = try node.optional("resourcesPaths") {
            for item in try list.sequence() { resources.append(try resolver.existing(try item.string(), base: base, node: item)) }
        }
        if let single = try node.optional("resourcesPath"), !(try single.string()).trimmingSpaces().isEmpty {
            resources.append(try resolver.existing(try single.string(), base: base, node: single))
        }
        if !resources.isEmpty { app.resourcesPaths = resources }
        if let value = try node.optional("appProtocol") {
            let text = try value.string().lowercased()
            guard ["http", "grpc", "https", "grpcs", "h2c"].contains(text) else {
                throw value.error("invalid app protocol '\(text)': expected http, grpc, https, grpcs or h2c")
            }
            app.appProtocol = text
        }
        if let value = try node.optional("apiListenAddresses") { app.apiListenAddresses = try value.string() }
        if let value = try node.optional("logLevel") {
            let text = try value.string().lowercased()
            guard ["debug", "info", "warn", "warning", "error", "fatal"].contains(text) else {
                throw value.error("invalid log level '\(text)': expected debug, info, warn, error or fatal")
            }
            app.logLevel = text
        }
        if let value = try node.optional("appMaxConcurrency") { app.appMaxConcurrency = try value.int() }
        if let value = try node.optional("maxBodySize") { app.maxBodySize = try value.string() }
        if let value = try node.optional("readBufferSize") { app.readBufferSize = try value.string() }
        if let value = try node.optional("enableAppHealthCheck") { app.enableAppHealthCheck = try value.bool() }
        if let value = try node.optional("appHealthCheckPath") { app.appHealthCheckPath = try value.string() }
        if let value = try node.optional("appHealthProbeInterval") { app.appHealthProbeInterval = try Self.nonNegative(value) }
        if let value = try node.optional("appHealthProbeTimeout") { app.appHealthProbeTimeout = try Self.nonNegative(value) }
        if let value = try node.optional("appHealthThreshold") { app.appHealthThreshold = try Self.nonNegative(value) }
        if let value = try node.optional("enableApiLogging") { app.enableAPILogging = try value.bool() }
        if let value = try node.optional("appSSL") { app.appSSL = try value.bool() }
        if let value = try node.optional("env") { app.env = try value.stringMap() }
        if let value = try node.optional("appLogDestination") { app.appLogDestination = try Self.destination(value) }
        if let value = try node.optional("daprdLogDestination") { app.daprdLogDestination = try Self.destination(value) }
    }

    private static func destination(_ node: NodeReader) throws(ResourceError) -> LogDestination {
        let text = try node.string()
        guard let destination = LogDestination(rawValue: text) else {
            throw node.error("invalid value for log destination: '\(text)'; expected console, file or fileAndConsole")
        }
        return destination
    }

    private static func nonNegative(_ node: NodeReader) throws(ResourceError) -> Int {
        let value = try node.int()
        guard value >= 0 else { throw node.error("must not be negative") }
        return value
    }

    /// A port field: absent, `0` or `-1` mean "pick one".
    private static func port(_ node: NodeReader, _ key: String) throws(ResourceError) -> Int? {
        guard let value = try node.optional(key) else { return nil }
        let port = try value.int()
        guard port <= 65535, port >= -1 else { throw value.error("invalid port \(port): must be from 1 to 65535") }
        return port > 0 ? port : nil
    }

    struct PathResolver {
        var home: String

        /// `path` made absolute against `base` (with `~` expanded), which must exist.
        func existing(_ path: String, base: String, node: NodeReader) throws(ResourceError) -> String {
            var text = path.trimmingSpaces()
            if text == "~" {
                text = self.home
            } else if text.hasPrefix("~/") {
                text = self.home + text.dropFirst(1)
            }
            let absolute = RunTemplate.absolute(text, base: base)
            guard RunTemplate.exists(absolute) else { throw node.error("no such file or directory: \(absolute)") }
            return absolute
        }
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    /// `path` against `base`, with `.` and `..` segments folded.
    public static func absolute(_ path: String, base: String) -> String {
        let joined = path.hasPrefix("/") ? path : base + "/" + path
        var parts: [Substring] = []
        for part in joined.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                if !parts.isEmpty { parts.removeLast() }
                continue
            }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    static func directory(of file: String) -> String {
        guard let slash = file.lastIndex(of: "/") else { return "." }
        let directory = String(file[..<slash])
        return directory.isEmpty ? "/" : directory
    }

    static func lastComponent(of path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}
