import ArgumentParser
import Foundation
import Logging
import MechaControlPlane
import MechaComponents
import MechaConfig
import MechaCore
import MechaRuntime
import MechaIdentity
import MechaSidecar
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import UnixSignals

/// `mecha control-plane`: the certificate authority of a trust domain for sidecars on several
/// hosts (more of the control plane — registry, resource distribution — comes later).
struct ControlPlaneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control-plane",
        abstract: "Run the control plane (certificate authority), or manage its join tokens and trust anchors.",
        subcommands: [Serve.self, Token.self, TrustAnchors.self, Root.self, Apply.self, Delete.self],
        defaultSubcommand: Serve.self
    )

    /// Where the control plane keeps its state (shared by the subcommands).
    struct StoreOptions: ParsableArguments {
        @Option(
            name: .customLong("store"),
            help: "Where the control plane keeps its state: a SQLite file (default <mecha home>/control-plane.db) or a PostgreSQL connection string (postgres://… or host=… dbname=…), which several control planes can share."
        ) var store: String?
        @Option(name: .customLong("trust-domain"), help: "The trust domain whose CA it is (default public, as Dapr).") var trustDomain = "public"
        @Option(name: .customLong("mecha-home"), help: "Mecha home for the default store (default ~/.mecha or $MECHA_HOME).") var mechaHome: String?

        func open() throws -> ControlPlaneStore {
            guard SPIFFEID.isTrustDomain(self.trustDomain) else {
                throw ValidationError("--trust-domain '\(self.trustDomain)' may only hold a-z, 0-9, '.', '-' and '_'")
            }
            let environment = ProcessInfo.processInfo.environment
            let home = self.mechaHome ?? environment["MECHA_HOME"] ?? ((environment["HOME"] ?? "/tmp") + "/.mecha")
            do {
                return try ControlPlaneStore(location: self.store ?? home + "/control-plane.db")
            } catch {
                throw ValidationError("--store: \(error)")
            }
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
            let ca: WorkloadCA
            do {
                ca = try await store.certificateAuthority(trustDomain: self.storeOptions.trustDomain)
            } catch {
                await store.close()
                throw ValidationError("cannot read the CA from the store \(store.kind) \(store.path): \(error)")
            }
            let ownIssuer = StoreIssuer(store: store, skew: skew)
            let identity = try await MeshTLS.start(
                id: ControlPlaneAPI.controlPlaneID(trustDomain: ca.trustDomain), issuer: ownIssuer, ttl: WorkloadCA.defaultTTL)
            // Pushed components are checked against the component types this build knows.
            let check: @Sendable (ComponentResource) -> String? = { resource in
                guard case .failure(let lookup) = BuiltInComponents.registry.factory(for: resource.type, version: resource.version) else { return nil }
                return ResourceError(source: resource.source, field: "spec.type", reason: lookup.description).description
            }
            let leadership = ControlPlaneLeadership(store: store, trustDomain: ca.trustDomain, logger: logger)
            let server = ControlPlaneServer(
                service: ControlPlaneAPI(ca: ca, store: store, maximumTTL: ttl, skew: skew, componentCheck: check, leadership: leadership),
                tls: identity, logger: logger)
            let channel = try await server.bind(host: self.listenAddress, port: self.port)
            let port = channel.localAddress?.port ?? self.port
            logger.info("control plane for trust domain \(ca.trustDomain) listening on \(self.listenAddress):\(port); store \(store.kind) \(store.path)")
            logger.info("trust anchors: mecha control-plane trust-anchors > ca.pem; join tokens: mecha control-plane token --app-id <id> (both with the same --store)")
            let group = ServiceGroup(
                configuration: .init(
                    services: [
                        .init(service: ControlPlaneService(channel: channel, identity: identity, issuer: ownIssuer, leadership: leadership, logger: logger))
                    ],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
            await store.close()
        }
    }

    /// Hosts the listener and the renewal of the control plane's own certificate until shutdown.
    struct ControlPlaneService: Service {
        let channel: any Channel
        let identity: MeshTLS
        let issuer: StoreIssuer
        let leadership: ControlPlaneLeadership
        let logger: Logger

        func run() async throws {
            let renewal = Task { [identity, logger] in await identity.run { logger.info("\($0)") } }
            let leading = Task { [leadership] in await leadership.run() }
            // A root rollover step (made through this control plane or another on the store): the
            // control plane's own certificate follows within 2 s.
            let rollover = Task { [identity, issuer, logger] in
                var seen = try? await issuer.trustVersion(trustDomain: identity.id.trustDomain)
                while (try? await Task.sleep(for: .seconds(2))) != nil {
                    guard let now = try? await issuer.trustVersion(trustDomain: identity.id.trustDomain), now != seen else { continue }
                    do {
                        try await identity.renew()
                        seen = now
                        logger.info("the trusted roots changed: the control plane's certificate was renewed (valid until \(identity.svid.notAfter))")
                    } catch {
                        logger.warning("the trusted roots changed but the control plane's certificate could not be renewed: \(error)")
                    }
                }
            }
            defer {
                renewal.cancel()
                leading.cancel()
                rollover.cancel()
            }
            try? await gracefulShutdown()
            try? await self.channel.close()
        }
    }

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "token", abstract: "Print a new join token that lets one app id (in one namespace) get its certificates.")

        @Option(name: .customLong("app-id"), help: "The app id the token is for.") var appID: String?
        @Option(name: .customLong("namespace"), help: "Its namespace.") var namespace = "default"
        @Flag(name: .customLong("admin"), help: "A token for `apply` and `delete` instead (no certificates).") var admin = false
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            if !self.admin {
                guard let appID = self.appID else { throw ValidationError("--app-id is required (or --admin)") }
                _ = try SPIFFEID(trustDomain: self.storeOptions.trustDomain, namespace: self.namespace, appID: appID)
            }
            let store = try self.storeOptions.open()
            let token: Result<String, any Error>
            do {
                token = .success(
                    self.admin
                        ? try await store.createToken(appID: ControlPlaneStore.administrator, namespace: ControlPlaneStore.administrator)
                        : try await store.createToken(appID: self.appID ?? "", namespace: self.namespace))
            } catch {
                token = .failure(error)
            }
            await store.close()
            print(try token.get())
        }
    }

    /// What `apply` and `delete` need to reach the control plane as an administrator.
    struct RemoteOptions: ParsableArguments {
        @Option(name: .customLong("control-plane-address"), help: "host:port of the control plane.") var address: String
        @Option(name: .customLong("trust-anchors-file"), help: "The control plane's root (mecha control-plane trust-anchors).") var anchors: String
        @Option(name: [.customShort("f"), .customLong("filename")], help: "Resource files or directories.") var files: [String]

        func client() throws -> ControlPlaneClient {
            guard let text = try? String(contentsOfFile: self.anchors, encoding: .utf8) else { throw ValidationError("cannot read --trust-anchors-file '\(self.anchors)'") }
            let bundle = try TrustBundle(trustDomain: TrustBundle.trustDomain(ofRootsIn: text) ?? "public", pem: text, origin: self.anchors)
            let issuer = try ControlPlaneIssuer(address: self.address, anchors: bundle, token: "")
            return issuer.client()
        }

        func token() throws -> String {
            guard let token = ProcessInfo.processInfo.environment["MECHA_CONTROL_PLANE_TOKEN"], !token.isEmpty else {
                throw ValidationError("an administrator token is needed in $MECHA_CONTROL_PLANE_TOKEN (mecha control-plane token --admin)")
            }
            return token
        }

        func yamlFiles() throws -> [String] {
            var files: [String] = []
            for path in self.files {
                do {
                    files += try ResourceLoader.yamlFiles(at: path)
                } catch {
                    throw ValidationError("\(error)")
                }
            }
            return files
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "apply", abstract: "Store resources in the control plane, which pushes them to the sidecars whose scopes match.")
        @OptionGroup var remote: RemoteOptions

        func run() async throws {
            let client = try self.remote.client()
            let token = try self.remote.token()
            var failed = false
            for file in try self.remote.yamlFiles() {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read '\(file)'") }
                let name = (file as NSString).lastPathComponent.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "resources.yaml"
                let (status, body) = try await client.request(.PUT, "/v1/resources/\(name)", headers: [("authorization", "Bearer \(token)")], body: Array(text.utf8))
                let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
                if status == 200, let applied = object?["applied"] as? [String] {
                    for resource in applied { print("\(resource) applied (\(file))") }
                } else {
                    failed = true
                    FileHandle.standardError.write(Data("\(file): refused by the control plane (\(status)): \(object?["message"] as? String ?? String(decoding: body, as: UTF8.self))\n".utf8))
                }
            }
            if failed { throw ExitCode(1) }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Remove the resources the files define from the control plane.")
        @OptionGroup var remote: RemoteOptions

        func run() async throws {
            let client = try self.remote.client()
            let token = try self.remote.token()
            var failed = false
            for file in try self.remote.yamlFiles() {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read '\(file)'") }
                for document in ResourceLoader.splitDocuments(text) {
                    for (kind, name) in try ResourceLoader.load(text: document, file: file).distributedNames {
                        let escaped = name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? name
                        let (status, body) = try await client.request(.DELETE, "/v1/resources/\(kind)/\(escaped)", headers: [("authorization", "Bearer \(token)")])
                        if status == 204 {
                            print("\(kind)/\(name) deleted")
                        } else {
                            failed = true
                            FileHandle.standardError.write(Data("\(kind)/\(name): \(status) \(String(decoding: body, as: UTF8.self))\n".utf8))
                        }
                    }
                }
            }
            if failed { throw ExitCode(1) }
        }
    }

    struct TrustAnchors: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "trust-anchors", abstract: "Print the CA's root certificate (PEM), for the sidecars' --trust-anchors-file.")

        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            let store = try self.storeOptions.open()
            let roots: Result<[String], any Error>
            do {
                roots = .success(try await store.trustedRoots(trustDomain: self.storeOptions.trustDomain))
            } catch {
                roots = .failure(error)
            }
            await store.close()
            print(try roots.get().joined(separator: "\n"))
        }
    }

    /// A root rollover in three steps, both roots trusted during the overlap.
    struct Root: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "root",
            abstract: "Roll the CA's root over: prepare (a new root, trusted but not signing), activate (it signs; the old one stays trusted), retire (the old one is dropped).")

        @Argument(help: "prepare, activate or retire.") var step: String
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            guard ["prepare", "activate", "retire"].contains(self.step) else {
                throw ValidationError("unknown step '\(self.step)': use prepare, activate or retire")
            }
            let store = try self.storeOptions.open()
            let trustDomain = self.storeOptions.trustDomain
            let outcome: Result<String, any Error>
            do {
                switch self.step {
                case "prepare":
                    _ = try await store.prepareRoot(trustDomain: trustDomain)
                    outcome = .success(
                        "a new root is trusted (not signing yet); sidecars joined to a running control plane renew within seconds. "
                            + "Give sidecars started with --trust-anchors-file the output of trust-anchors, then run root activate.")
                case "activate":
                    try await store.activateRoot(trustDomain: trustDomain)
                    outcome = .success("the new root signs; the previous one stays trusted until root retire.")
                default:
                    try await store.retireRoot(trustDomain: trustDomain)
                    outcome = .success("the previous root is no longer trusted.")
                }
            } catch {
                outcome = .failure(error)
            }
            await store.close()
            do {
                print(try outcome.get())
            } catch {
                throw ValidationError("\(error)")
            }
        }
    }
}

