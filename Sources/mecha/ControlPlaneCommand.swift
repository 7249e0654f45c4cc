import ArgumentParser
import Foundation
import Logging
import MechaControlPlane
import MechaCore
import MechaIdentity
import MechaSidecar
import NIOCore
import ServiceLifecycle
import UnixSignals

/// `mecha control-plane`: the certificate authority of a trust domain for sidecars on several
/// hosts (more of the control plane — registry, resource distribution — comes later).
struct ControlPlaneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control-plane",
        abstract: "Run the control plane (certificate authority), or manage its join tokens and trust anchors.",
        subcommands: [Serve.self, Token.self, TrustAnchors.self],
        defaultSubcommand: Serve.self
    )

    /// Where the control plane keeps its state (shared by the subcommands).
    struct StoreOptions: ParsableArguments {
        @Option(name: .customLong("store"), help: "The control plane's SQLite database (default <mecha home>/control-plane.db).") var store: String?
        @Option(name: .customLong("trust-domain"), help: "The trust domain whose CA it is (default public, as Dapr).") var trustDomain = "public"
        @Option(name: .customLong("mecha-home"), help: "Mecha home for the default store (default ~/.mecha or $MECHA_HOME).") var mechaHome: String?

        func open() throws -> ControlPlaneStore {
            guard SPIFFEID.isTrustDomain(self.trustDomain) else {
                throw ValidationError("--trust-domain '\(self.trustDomain)' may only hold a-z, 0-9, '.', '-' and '_'")
            }
            let environment = ProcessInfo.processInfo.environment
            let home = self.mechaHome ?? environment["MECHA_HOME"] ?? ((environment["HOME"] ?? "/tmp") + "/.mecha")
            return try ControlPlaneStore(path: self.store ?? home + "/control-plane.db")
        }
    }

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "serve", abstract: "Serve the certificate authority (the default).")

        @Option(name: .customLong("port"), help: "Port to listen on.") var port = 50100
        @Option(name: .customLong("listen-address"), help: "Address to listen on.") var listenAddress = "127.0.0.1"
        @Option(name: .customLong("workload-cert-ttl"), help: "Longest lifetime of an SVID (Go duration).") var workloadCertTTL = "24h"
        @Option(name: .customLong("allowed-clock-skew"), help: "How far back an SVID's validity starts (Go duration).") var allowedClockSkew = "15m"
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            var logger = Logger(label: "mecha.control-plane")
            logger.logLevel = .info
            guard let ttl = GoDuration.parse(self.workloadCertTTL), ttl >= .seconds(5) else {
                throw ValidationError("invalid --workload-cert-ttl '\(self.workloadCertTTL)' (a Go duration of at least 5s)")
            }
            guard let skew = GoDuration.parse(self.allowedClockSkew), skew >= .zero else {
                throw ValidationError("invalid --allowed-clock-skew '\(self.allowedClockSkew)'")
            }
            let store = try self.storeOptions.open()
            let ca = try await store.certificateAuthority(trustDomain: self.storeOptions.trustDomain)
            let identity = try await MeshTLS.start(
                id: ControlPlaneAPI.controlPlaneID(trustDomain: ca.trustDomain), issuer: LocalIssuer(ca: ca, skew: skew), ttl: WorkloadCA.defaultTTL)
            let server = ControlPlaneServer(service: ControlPlaneAPI(ca: ca, store: store, maximumTTL: ttl, skew: skew), tls: identity, logger: logger)
            let channel = try await server.bind(host: self.listenAddress, port: self.port)
            let port = channel.localAddress?.port ?? self.port
            logger.info("control plane for trust domain \(ca.trustDomain) listening on \(self.listenAddress):\(port); store \(store.path)")
            logger.info("trust anchors: mecha control-plane trust-anchors --store \(store.path) > ca.pem; join tokens: mecha control-plane token --app-id <id>")
            let group = ServiceGroup(
                configuration: .init(
                    services: [.init(service: ControlPlaneService(channel: channel, identity: identity, logger: logger))],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }

    /// Hosts the listener and the renewal of the control plane's own certificate until shutdown.
    struct ControlPlaneService: Service {
        let channel: any Channel
        let identity: MeshTLS
        let logger: Logger

        func run() async throws {
            let renewal = Task { [identity, logger] in await identity.run { logger.info("\($0)") } }
            defer { renewal.cancel() }
            try? await gracefulShutdown()
            try? await self.channel.close()
        }
    }

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "token", abstract: "Print a new join token that lets one app id (in one namespace) get its certificates.")

        @Option(name: .customLong("app-id"), help: "The app id the token is for.") var appID: String
        @Option(name: .customLong("namespace"), help: "Its namespace.") var namespace = "default"
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            _ = try SPIFFEID(trustDomain: self.storeOptions.trustDomain, namespace: self.namespace, appID: self.appID)
            let store = try self.storeOptions.open()
            print(try await store.createToken(appID: self.appID, namespace: self.namespace))
        }
    }

    struct TrustAnchors: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "trust-anchors", abstract: "Print the CA's root certificate (PEM), for the sidecars' --trust-anchors-file.")

        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            let store = try self.storeOptions.open()
            print(try await store.certificateAuthority(trustDomain: self.storeOptions.trustDomain).rootPEM)
        }
    }
}

