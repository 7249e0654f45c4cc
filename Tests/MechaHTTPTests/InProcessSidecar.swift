import Logging
import MechaComponents
import MechaRuntime
import MechaSidecar
import MechaTesting

/// Runs a real sidecar inside the test process on free ports, with its own home directory, and
/// shuts it down gracefully after `body`. Resources are YAML text written to a resources folder;
/// with none, the embedded defaults apply.
struct InProcessSidecar {
    let httpPort: Int
    let grpcPort: Int
    let internalPort: Int
    let home: String
    let sidecar: Sidecar

    static func with<Output: Sendable>(
        appID: String = "testapp",
        appPort: Int? = nil,
        resources: [String: String]? = nil,
        configuration: String? = nil,
        environment: [String: String] = [:],
        configure: (inout SidecarOptions) -> Void = { _ in },
        _ body: (InProcessSidecar) async throws -> Output
    ) async throws -> Output {
        let home = TestEnvironment.temporaryDirectory("mecha-inproc")
        defer { TestEnvironment.remove(home) }
        var options = SidecarOptions(appID: appID, mechaHome: home)
        options.httpPort = 0
        options.grpcPort = 0
        options.internalPort = 0
        options.appPort = appPort
        options.gracefulShutdownTimeout = .seconds(2)
        if let resources {
            let directory = TestEnvironment.makeDirectory(home + "/resources")
            for (name, text) in resources { try TestEnvironment.write(text, to: directory + "/" + name) }
            options.resourcesPaths = [directory]
        }
        if let configuration {
            try TestEnvironment.write(configuration, to: home + "/config.yaml")
            options.configPath = home + "/config.yaml"
        }
        configure(&options)
        var logger = Logger(label: "test.sidecar")
        logger.logLevel = .warning
        let sidecar = Sidecar(options: options, registry: BuiltInComponents.registry, environment: environment, logger: logger)
        return try await withThrowingTaskGroup(of: Output?.self) { group in
            group.addTask {
                try await sidecar.run(gracefulShutdownSignals: [])
                return nil
            }
            let ports = try await sidecar.listeningPorts()
            let output = try await body(InProcessSidecar(httpPort: ports.http, grpcPort: ports.grpc, internalPort: ports.internal, home: home, sidecar: sidecar))
            await sidecar.shutdown()
            try await group.waitForAll()
            return output
        }
    }
}
