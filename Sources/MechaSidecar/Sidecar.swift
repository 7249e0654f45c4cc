#if canImport(Glibc)
import Glibc
#endif
import HTTP1Client
public import Logging
import MechaAPI
public import MechaConfig
public import MechaCore

import MechaGRPC
import MechaHTTP
import MechaControlPlane
import MechaIdentity
import MechaMesh
import MechaResiliency
import MechaTelemetry
public import MechaRuntime
import NIOCore
import NIOPosix
public import ServiceLifecycle
public import UnixSignals
import Foundation
import Synchronization

/// The data plane: loads resources, builds components and building blocks, serves the Dapr API and
/// the sidecar-to-sidecar listener, talks to the app, and shuts down gracefully (drain deliveries,
/// finish requests, close components) on a signal or `POST /v1.0/shutdown`.
public final class Sidecar: Sendable {
    public static let version = "0.1.0"

    public let options: SidecarOptions
    let registry: ComponentRegistry
    let environment: [String: String]
    let logger: Logger
    private let group = Mutex<ServiceGroup?>(nil)
    private let ports = PortBook()
    private let readiness = Mutex<Readiness?>(nil)

    public init(options: SidecarOptions, registry: ComponentRegistry, environment: [String: String], logger: Logger) {
        self.options = options
        self.registry = registry
        self.environment = environment
        self.logger = logger
    }

    /// The ports actually bound, once listening (useful with port 0). Throws the startup error when
    /// the sidecar fails before listening.
    public func listeningPorts() async throws -> SidecarPorts {
        try await self.ports.waitUntilReady()
    }

    /// Waits until `/v1.0/healthz` would answer 2xx; false after `timeout`.
    public func waitUntilHealthy(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let readiness = self.readiness.withLock({ $0 }), readiness.notReadyTargets.isEmpty { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// Starts a graceful shutdown.
    public func shutdown() async {
        let group = self.group.withLock { $0 }
        await group?.triggerGracefulShutdown()
    }

    /// Runs until shut down. Configuration errors throw before anything listens.
    public func run(gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint]) async throws {
        do {
            try await self.runGroup(gracefulShutdownSignals: gracefulShutdownSignals)
        } catch {
            self.ports.fail(error)
            throw error
        }
        self.ports.fail(SidecarError("the sidecar stopped"))
    }

    private func runGroup(gracefulShutdownSignals: [UnixSignal]) async throws {
        let core = try await self.prepare()
        var configuration = ServiceGroupConfiguration(
            services: [.init(service: core, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: gracefulShutdownSignals,
            logger: self.logger
        )
        configuration.maximumGracefulShutdownDuration = self.options.gracefulShutdownTimeout + .seconds(5)
        configuration.logging.keys.serviceKey = "service"
        let serviceGroup = ServiceGroup(configuration: configuration)
        self.group.withLock { $0 = serviceGroup }
        try await serviceGroup.run()
    }

    // MARK: Assembly

    /// Everything that can fail on bad configuration happens here, before any port opens.
    func prepare() async throws -> SidecarCore {
        let options = self.options
        let instanceID = RandomID.uuid()
        let identity = SidecarIdentity(appID: options.appID, namespace: options.namespace, instanceID: instanceID, runtimeVersion: Self.version)

        var configuration: ConfigurationSpec?
        if let path = options.configPath {
            configuration = try ResourceLoader.loadConfiguration(file: path)
        }
        let resourcePaths = self.resourcePaths()
        // The mesh identity comes first: with a control plane, it fetches the resources with it.
        let meshTLS = try await self.meshIdentity(configuration)
        var remote: RemoteResources?
        if let address = options.controlPlaneAddress, let meshTLS, let issuer = self.controlPlaneIssuer(address, meshTLS) {
            let fetched = RemoteResources(client: issuer.client(identity: meshTLS), lastKnown: self.lastKnownState())
            do {
                try await fetched.fetch()
                self.logger.info("resources from the control plane: \(fetched.documents.count) document(s)")
            } catch {
                self.logger.warning(
                    "cannot read resources from the control plane at \(address) (\(error)); serving the \(fetched.documents.count) document(s) it last gave; hot reload keeps asking")
            }
            remote = fetched
        }
        let resources = try self.loadResources(resourcePaths, remote: remote?.documents ?? [])
        for skipped in resources.skipped { self.logger.info("\(skipped.source): \(skipped.reason)") }

        let componentLogger = Logger(label: "mecha.component", factory: { _ in self.logger.handler })
        let context = ComponentContext(
            appID: options.appID,
            namespace: options.namespace,
            dataDirectory: options.mechaHome,
            instanceID: instanceID,
            logger: componentLogger
        )
        let loader = ComponentLoader(registry: self.registry, context: context, environment: self.environment)
        // The outbound seam: every call to a component, to the app or to another sidecar runs its
        // target's Resiliency policies here.
        // Metrics attach at the seams: the outbound seam (components, the app), the policies, the
        // surfaces' observers.
        let metrics: DaprMetrics? =
            options.enableMetrics && configuration?.metrics.enabled != false
            ? DaprMetrics(appID: options.appID, namespace: options.namespace, spec: configuration?.metrics ?? MetricsSpec()) : nil
        let policies = ResiliencyPolicies(specs: resources.resiliencies, appID: options.appID, observer: metrics)
        if !policies.isEmpty {
            self.logger.info("resiliency: \(policies.policyCount) policies loaded from \(resources.resiliencies.filter { $0.applies(to: options.appID) }.count) resources")
        }
        let outbound = OutboundSeam(policies, trafficPolicies: resources.trafficPolicies, appID: options.appID)
        if let metrics { outbound.observe(with: metrics) }
        let componentHealth = ComponentHealth()
        outbound.observe(with: componentHealth)
        // Tracing (`spec.tracing`): spans start at the surfaces and the outbound seam.
        let tracer = configuration?.tracing.map { SidecarTracer(appID: options.appID, samplingRate: $0.samplingRate) }
        if let tracer { outbound.trace(with: tracer) }
        let traceExport = try configuration?.tracing.flatMap { spec in
            try tracer.flatMap { try TraceExportService.make(spec: spec, tracer: $0, metrics: metrics, logger: self.logger) }
        }
        let components = ComponentStore(outbound: outbound)
        try await loader.load(resources.components, into: components)
        if let metrics {
            for entry in components.entries { metrics.componentInitialized(type: entry.spec.type.description) }
            for status in components.statuses {
                if case .failed = status.health { metrics.componentFailed(type: status.type.description, name: status.name, reason: "init") }
            }
            for resiliency in resources.resiliencies where resiliency.applies(to: options.appID) { metrics.resiliencyLoaded(name: resiliency.name) }
        }

        if let meshTLS {
            componentHealth.addDetail("mtls") {
                let svid = meshTLS.svid
                let bundle = meshTLS.bundle
                return .object([
                    ("spiffeID", .string(svid.id.description)),
                    ("notAfter", .string(Timestamp(seconds: Int64(svid.notAfter.timeIntervalSince1970)).rfc3339Nano)),
                    ("trustedRoots", .array(bundle.roots.compactMap { try? TrustBundle(trustDomain: bundle.trustDomain, roots: [$0]).fingerprint }.map { .string($0) })),
                    ("issuingRoot", bundle.issuingRootFingerprint(of: svid.leaf).map { .string($0) } ?? .null),
                ])
            }
        }
        if let meshTLS, let metrics {
            metrics.mtlsFigures(refused: { meshTLS.refusedHandshakes }, renewalFailures: { meshTLS.renewalFailures })
        }
        let resolverResource = EmbeddedDefaults.nameResolver(configuration, mechaHome: options.mechaHome)
        let resolver: any NameResolver
        if let address = options.controlPlaneAddress, configuration?.nameResolutionComponent == nil, let meshTLS, let issuer = self.controlPlaneIssuer(address, meshTLS) {
            // With a control plane, its registry is the name resolution (across hosts and homes).
            let registry = ControlPlaneResolver(client: issuer.client(identity: meshTLS), lastKnown: self.lastKnownState())
            resolver = registry
            self.logger.info("name resolution: the control plane's registry at \(address)")
            componentHealth.addLastKnownStateCondition {
                registry.runningOnLastKnownState
                    ? "the control plane at \(address) is unreachable: name resolution answers from the registry's last view" : nil
            }
            if let remote {
                componentHealth.addLastKnownStateCondition {
                    remote.runningOnLastKnownState
                        ? "the control plane at \(address) is unreachable: serving the resources it last gave" : nil
                }
            }
            componentHealth.addLastKnownStateCondition {
                meshTLS.renewalOverdue
                    ? "the workload certificate could not be renewed yet: serving on the one valid until \(meshTLS.svid.notAfter)" : nil
            }
        } else {
        do {
            let (component, _) = try await loader.build(resolverResource, secrets: components)
            guard let built = component as? any NameResolver else { throw ComponentInitError(["\(resolverResource.type) is not a name resolver"]) }
            resolver = built
        } catch let error as ResourceError {
            throw error
        } catch {
            throw ComponentInitError(["name resolution \(resolverResource.type): \(error)"])
        }
        }

        // A shared rate limit needs its state store, checked before anything listens.
        var limitErrors: [ResourceError] = []
        for policy in resources.trafficPolicies where policy.applies(to: options.appID) {
            for (index, route) in policy.routes.enumerated() {
                guard let global = route.globalRateLimit, components.stateStore(named: global.store) == nil else { continue }
                limitErrors.append(
                    ResourceError(source: policy.source, field: "spec.routes[\(index)].globalRateLimit.store", reason: "no state store named '\(global.store)' is loaded")
                )
            }
        }
        if !limitErrors.isEmpty { throw ResourceLoadError(limitErrors) }
        // One mesh stack (resolve → route → balance → eject) for every sidecar-to-sidecar path.
        let mesh = Mesh(resolver: resolver, trafficPolicies: resources.trafficPolicies, appID: options.appID, hostname: SidecarCore.hostname())
        let peerToken = try PeerTokenFile.loadOrCreate(home: options.mechaHome)
        // Its `https` targets are other sidecars' mTLS listeners (the app channel is plain HTTP).
        let client = HTTP1Client(configuration: .init(tlsHandlerProvider: meshTLS.map { tls in { @Sendable peer in try tls.makeClientHandler(expecting: peer) } }))
        var appChannel: (any AppChannel)?
        if let port = options.appPort, port > 0 {
            let appAPIToken = self.environment["APP_API_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            let maxConcurrency = options.appMaxConcurrency.flatMap { $0 > 0 ? $0 : nil }
            switch options.appProtocol {
            case .http:
                appChannel = HTTPAppChannel(
                    configuration: .init(
                        host: options.appChannelAddress,
                        port: port,
                        appID: options.appID,
                        apiToken: appAPIToken,
                        healthCheckPath: options.appHealthCheckPath,
                        healthProbeTimeout: options.appHealthProbeTimeout,
                        maxConcurrency: maxConcurrency
                    ),
                    client: client,
                    logger: self.logger,
                    outbound: outbound
                )
            case .grpc:
                appChannel = try GRPCAppChannel(
                    configuration: .init(
                        host: options.appChannelAddress,
                        port: port,
                        appID: options.appID,
                        apiToken: appAPIToken,
                        healthProbeTimeout: options.appHealthProbeTimeout,
                        maxConcurrency: maxConcurrency,
                        maxBodySize: options.maxBodySize
                    ),
                    logger: self.logger
                )
            default:
                throw SidecarError("--app-protocol \(options.appProtocol.rawValue) is not supported yet; use http or grpc")
            }
        }

        let readiness = Readiness()
        self.readiness.withLock { $0 = readiness }
        if options.enableAppHealthCheck && appChannel != nil { readiness.enableAppHealthChecks() }
        let now: @Sendable () -> Timestamp = { WallClock.now() }
        // Mecha AccessPolicies: what this app may do with state keys, topics and secrets.
        let blockAccess = BlockAccess(
            caller: CallerIdentity(
                trustDomain: configuration?.accessControl?.trustDomain ?? AccessControlSpec.defaultTrustDomain, namespace: options.namespace,
                appID: options.appID),
            policies: resources.accessPolicies)
        if !resources.accessPolicies.isEmpty {
            self.logger.info("access policies: \(resources.accessPolicies.map(\.name).joined(separator: ", "))")
        }
        let subscriptions = SubscriptionManager(
            components: components,
            identity: identity,
            appChannel: appChannel,
            readiness: readiness,
            declarative: resources.subscriptions,
            logger: self.logger,
            now: now,
            access: blockAccess
        )
        // daprd reports the protocol and address even without an app port.
        let appConnection = AppConnectionProperties(
            port: options.appPort ?? 0,
            protocol: options.appProtocol.rawValue,
            channelAddress: options.appChannelAddress,
            maxConcurrency: options.appMaxConcurrency ?? -1,
            healthCheckPath: options.enableAppHealthCheck ? options.appHealthCheckPath : nil,
            healthProbeInterval: options.enableAppHealthCheck ? options.appHealthProbeInterval : nil,
            healthProbeTimeout: options.enableAppHealthCheck ? options.appHealthProbeTimeout : nil,
            healthThreshold: options.enableAppHealthCheck ? options.appHealthThreshold : nil
        )
        let pubsubAPI = PubSubAPI(components: components, identity: identity, now: now, access: blockAccess)
        let invoker = SidecarInvoker(
            mesh: mesh,
            client: client,
            peerToken: peerToken,
            tls: meshTLS,
            logger: self.logger,
            hostAddress: options.internalListenAddress == "0.0.0.0" ? "127.0.0.1" : options.internalListenAddress,
            hostname: SidecarCore.hostname(),
            globalLimiter: GlobalRateLimiter(components: components)
        )
        let actors = try await self.actorsAPI(identity: identity, components: components, forwarder: invoker)
        let api = DaprAPI(
            identity: identity,
            state: StateAPI(components: components, identity: identity, pubsub: pubsubAPI, access: blockAccess),
            pubsub: pubsubAPI,
            invoke: InvokeAPI(
                identity: identity,
                appChannel: appChannel,
                remote: invoker,
                readiness: readiness,
                outbound: outbound,
                accessControl: configuration?.accessControl.map {
                    AccessControl(spec: $0, appProtocolIsHTTP: options.appProtocol != .grpc && options.appProtocol != .grpcs)
                }
            ),
            bindings: BindingsAPI(components: components),
            secrets: SecretsAPI(components: components, scopes: configuration?.secretScopes ?? [], access: blockAccess),
            lock: LockAPI(components: components, identity: identity),
            conversation: ConversationAPI(components: components),
            configuration: ConfigurationAPI(components: components, appChannel: appChannel, logger: self.logger),
            metadata: MetadataAPI(
                identity: identity,
                components: components,
                subscriptions: subscriptions,
                enabledFeatures: configuration?.enabledFeatures ?? [],
                appConnection: appConnection
            ),
            readiness: readiness,
            health: componentHealth,
            actors: actors,
            shutdown: { [weak self] in
                guard let self else { return }
                Task { await self.shutdown() }
            }
        )
        let apiToken = self.environment["DAPR_API_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        // One inbound chain for both surfaces: token, spec.httpPipeline rate limits, spec.api lists.
        let inbound = InboundChain(
            apiToken: apiToken, configuration: configuration, components: components,
            observers: (metrics.map { [MetricsObserver(metrics: $0)] } ?? []) + self.apiLogObservers(configuration)
        )
        let httpServer = DaprHTTPServer(
            api: api,
            configuration: .init(
                addresses: options.listenAddresses,
                port: options.httpPort,
                maxBodySize: options.maxBodySize,
                fastInvoke: self.environment["MECHA_FAST_INVOKE"] != "0",
                timeouts: options.connectionTimeouts,
                inbound: inbound,
                tracer: tracer,
                meshTLS: meshTLS
            ),
            logger: self.logger
        )
        let internalServer = InternalInvokeServer(
            api: api,
            peerToken: peerToken,
            tls: meshTLS,
            host: options.internalListenAddress,
            port: options.internalPort,
            maxBodySize: options.maxBodySize,
            fastInvoke: self.environment["MECHA_FAST_INVOKE"] != "0",
            timeouts: options.connectionTimeouts,
            observe: Self.invocationObserver(metrics),
            tracer: tracer,
            logger: self.logger
        )
        let grpcPool = GRPCTransportPool(maxMessageSize: options.maxBodySize, tls: meshTLS)
        let proxy = GRPCProxyRouter(
            identity: identity,
            mesh: mesh,
            outbound: outbound,
            pool: grpcPool,
            appAddress: options.appProtocol == .grpc ? options.appPort.map { (options.appChannelAddress, $0) } : nil,
            appAPIToken: self.environment["APP_API_TOKEN"].flatMap { $0.isEmpty ? nil : $0 },
            peerToken: peerToken,
            tls: meshTLS,
            invoke: api.invoke,
            logger: self.logger
        )
        var grpcConfiguration = DaprGRPCServer.Configuration(
            addresses: options.listenAddresses,
            port: options.grpcPort,
            maxMessageSize: options.maxBodySize,
            timeouts: options.connectionTimeouts,
            inbound: inbound,
            tracer: tracer
        )
        grpcConfiguration.actorStreamAllowed = options.appPort == nil || options.appProtocol == .grpc || options.appProtocol == .grpcs
        let grpcServer = DaprGRPCServer(
            api: api,
            subscriptions: subscriptions,
            configuration: grpcConfiguration,
            proxy: proxy,
            logger: self.logger
        )
        self.ports.expect(httpListeners: options.listenAddresses.count, grpcListeners: options.listenAddresses.count)
        let metricsServers: [any Service] = try metrics.map { metrics in
            [
                try MetricsServer(
                    registry: metrics.registry, host: options.metricsListenAddress, port: options.metricsPort, logger: self.logger,
                    traces: Self.recentTraces(tracer))
                    .makeService { port in self.ports.metricsListening(port) }
            ]
        } ?? []
        let servers = try httpServer.makeServices { port in self.ports.httpListening(port) }
            + grpcServer.makeServices { port in self.ports.grpcListening(port) }
            + [try internalServer.makeService { port in self.ports.internalListening(port) }]
            + [
                DaprGRPCServer.internalListener(
                    host: options.internalListenAddress,
                    port: 0,
                    maxMessageSize: options.maxBodySize,
                    timeouts: options.connectionTimeouts,
                    proxy: proxy,
                    logger: self.logger
                ) { port in self.ports.internalGRPCListening(port) }
            ] + metricsServers + (traceExport.map { [$0] } ?? [])
        let inputBindings = InputBindingManager(
            components: components,
            appChannel: appChannel,
            readiness: readiness,
            state: api.state,
            bindings: api.bindings,
            logger: self.logger
        )
        // Hot reload (on unless MECHA_HOT_RELOAD=0 or the Configuration's feature HotReload is
        // disabled), for resources read from files.
        var reloader: HotReloader?
        if resourcePaths != nil || remote != nil || options.configPath != nil, self.environment["MECHA_HOT_RELOAD"] != "0",
            configuration?.features["HotReload"] != false
        {
            reloader = HotReloader(
                paths: resourcePaths ?? [], remote: remote, appID: options.appID, loader: loader, components: components, subscriptions: subscriptions,
                inputBindings: inputBindings, health: componentHealth, metrics: metrics, initial: resources,
                replaceResiliency: { [appID = options.appID] specs in
                    outbound.replace(ResiliencyPolicies(specs: specs, appID: appID, observer: metrics))
                },
                replaceTrafficPolicies: { specs in
                    mesh.replace(trafficPolicies: specs)
                    outbound.replace(trafficPolicies: specs)
                },
                replaceAccessPolicies: { specs in blockAccess.replace(specs) },
                configPath: options.configPath, initialConfiguration: configuration,
                replaceConfiguration: { [appProtocol = options.appProtocol] spec in
                    api.invoke.replaceAccessControl(
                        spec.accessControl.map { AccessControl(spec: $0, appProtocolIsHTTP: appProtocol != .grpc && appProtocol != .grpcs) })
                    api.secrets.replaceScopes(spec.secretScopes)
                },
                trustVersion: meshTLS.map { tls in self.rolloverFollower(tls) },
                logger: self.logger)
        }
        api.metadata.attach(actors: actors)
        return SidecarCore(
            options: options,
            identity: identity,
            actors: actors,
            actorObserver: metrics,
            components: components,
            resolver: resolver,
            client: client,
            appChannel: appChannel,
            readiness: readiness,
            subscriptions: subscriptions,
            inputBindings: inputBindings,
            reloader: reloader,
            configuration: api.configuration,
            servers: servers,
            grpcPool: grpcPool,
            meshTLS: meshTLS,
            ports: self.ports,
            requestShutdown: { [self] in Task { await self.shutdown() } },
            logger: self.logger
        )
    }

    /// Actors: on when a state store is marked `actorStateStore: "true"`; placement membership in
    /// the Mecha home's embedded database (every sidecar of the machine shares it).
    func actorsAPI(identity: SidecarIdentity, components: ComponentStore, forwarder: any ActorForwarder) async throws -> ActorsAPI {
        let storeName = ActorsAPI.actorStateStoreName(in: components)
        var placement: ActorPlacement?
        if let storeName, let entry = components.entry(named: storeName) {
            // Membership lives where the actor state lives: a store of this machine (SQLite, in
            // memory) → the Mecha home's database; a shared one (Redis, PostgreSQL) → that store,
            // so sidecars on every host that share the actor state share the table.
            let local = ["sqlite", "in-memory"].contains(entry.spec.type.name)
            if !local {
                placement = ActorPlacement(store: StateStoreActorMembership(components: components, storeName: storeName, namespace: identity.namespace))
                self.logger.info("actors: placement membership in the state store \(storeName) (shared across hosts)")
            } else if let open = self.registry.actorMembership {
                let path = self.options.mechaHome + "/mecha.db"
                do {
                    placement = ActorPlacement(store: try await open(path))
                } catch {
                    throw SidecarError("actors: cannot open the placement membership in \(path): \(error)")
                }
            }
        }
        let logger = Logger(label: "mecha.actors", factory: { _ in self.logger.handler })
        return ActorsAPI(identity: identity, components: components, stateStoreName: storeName, placement: placement, forwarder: forwarder, logger: logger)
    }

    /// The sidecar's mTLS identity, unless mTLS is off (`--enable-mtls=false` or Configuration
    /// `spec.mtls.enabled: false`): an SVID `spiffe://<trust domain>/ns/<namespace>/<app id>`
    /// issued by the CA of the Mecha home (`<home>/ca/<trust domain>`, created on first use and
    /// shared by the home's sidecars), with `spec.mtls`'s lifetime and clock skew. The trust domain
    /// is `spec.accessControl.trustDomain` (default `public`, as daprd).
    func meshIdentity(_ configuration: ConfigurationSpec?) async throws -> MeshTLS? {
        let spec = configuration?.mtls ?? MTLSSpec()
        let explicit = self.options.enableMTLS != nil || configuration?.mtls != nil
        guard self.options.enableMTLS ?? spec.enabled else {
            self.logger.info("mTLS is off: sidecar-to-sidecar calls are plaintext, authenticated by the home's peer token")
            return nil
        }
        let trustDomain = configuration?.accessControl?.trustDomain ?? SPIFFEID.defaultTrustDomain
        let id: SPIFFEID
        do {
            id = try SPIFFEID(trustDomain: trustDomain, namespace: self.options.namespace, appID: self.options.appID)
        } catch {
            // On by default: an app id that cannot be a SPIFFE id keeps the plaintext transport;
            // asked for explicitly, it is an error.
            guard explicit else {
                self.logger.warning("mTLS is off: \(error) (app ids for mTLS use letters, digits, '.', '-' and '_')")
                return nil
            }
            throw SidecarError("cannot enable mTLS: \(error)")
        }
        if let address = self.options.controlPlaneAddress {
            return try await self.controlPlaneIdentity(id, address: address, spec: spec)
        }
        let directory = self.options.mechaHome + "/ca/" + trustDomain
        do {
            let ca = try WorkloadCA.loadOrCreate(directory: directory, trustDomain: trustDomain)
            let tls = try await MeshTLS.start(id: id, issuer: LocalIssuer(ca: ca, skew: spec.allowedClockSkew), ttl: spec.workloadCertTTL)
            self.logger.info("mTLS is on: workload identity \(id), certificate valid until \(tls.svid.notAfter), CA in \(directory)")
            return tls
        } catch {
            throw SidecarError("cannot set up mTLS with the CA in \(directory): \(error)")
        }
    }

    /// The control plane client settings (address, anchors) the sidecar was started with.
    func controlPlaneIssuer(_ address: String, _ tls: MeshTLS) -> ControlPlaneIssuer? {
        guard let (pem, origin) = self.options.trustAnchors, let token = self.options.controlPlaneToken,
            let anchors = try? TrustBundle(trustDomain: tls.id.trustDomain, pem: pem, origin: origin)
        else { return nil }
        return try? ControlPlaneIssuer(address: address, anchors: anchors, token: token)
    }

    /// The SVID from `mecha control-plane`, asked for with the join token; the control plane is
    /// retried for 10 s at startup (it may be starting too), then the sidecar stops with the reason.
    func controlPlaneIdentity(_ id: SPIFFEID, address: String, spec: MTLSSpec) async throws -> MeshTLS {
        guard let (pem, origin) = self.options.trustAnchors, let token = self.options.controlPlaneToken else {
            throw SidecarError("--control-plane-address needs trust anchors and a join token")
        }
        let issuer: ControlPlaneIssuer
        do {
            issuer = try ControlPlaneIssuer(address: address, anchors: TrustBundle(trustDomain: id.trustDomain, pem: pem, origin: origin), token: token)
        } catch {
            throw SidecarError("cannot use the control plane at \(address): \(error)")
        }
        // With a certificate kept from an earlier run, the control plane gets 3 s before the
        // sidecar starts on it; without one, 10 s before the sidecar gives up.
        let lastKnown = self.lastKnownState()
        let kept = await lastKnown?.loadSVID(id: id, anchors: issuer.anchors)
        let deadline = ContinuousClock.now + .seconds(kept == nil ? 10 : 3)
        var tls: MeshTLS
        while true {
            do {
                tls = try await MeshTLS.start(id: id, issuer: issuer, ttl: spec.workloadCertTTL)
                self.logger.info("mTLS is on: workload identity \(id) from the control plane at \(address), certificate valid until \(tls.svid.notAfter)")
                try? lastKnown?.saveSVID(tls.svid, bundle: tls.bundle)
                break
            } catch let refused as ControlPlaneIssuer.Refused {
                throw SidecarError("the control plane at \(address) refused a certificate for \(id): \(refused.message)")
            } catch {
                guard ContinuousClock.now < deadline else {
                    guard let kept else { throw SidecarError("cannot get a certificate from the control plane at \(address): \(error)") }
                    tls = try MeshTLS.resume(id: id, issuer: issuer, ttl: spec.workloadCertTTL, svid: kept.svid, bundle: kept.bundle)
                    self.logger.warning(
                        "the control plane at \(address) is unreachable (\(error)): mTLS is on with the certificate kept in \(lastKnown?.directory ?? ""), valid until \(kept.svid.notAfter); renewing when it is back")
                    break
                }
                self.logger.warning("control plane at \(address) not reachable yet (\(error)); retrying")
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        if let lastKnown { tls.onRenewal { svid, bundle in try? lastKnown.saveSVID(svid, bundle: bundle) } }
        return tls
    }

    /// Renews the SVID when the control plane's trusted roots change (a root rollover step), so
    /// the new bundle and a certificate of the signing root reach this sidecar within seconds.
    func rolloverFollower(_ tls: MeshTLS) -> @Sendable (String) async -> Void {
        let lastFailure = Mutex<ContinuousClock.Instant?>(nil)
        let logger = self.logger
        return { version in
            // The control plane's version is "<signing root>:<trusted roots>", fingerprints this
            // sidecar can compute for the certificate and bundle it holds.
            let bundle = tls.bundle
            let held = (bundle.issuingRootFingerprint(of: tls.svid.leaf) ?? "") + ":" + bundle.fingerprint
            guard held != version else { return }
            if let failed = lastFailure.withLock({ $0 }), ContinuousClock.now - failed < .seconds(5) { return }
            do {
                try await tls.renew()
                lastFailure.withLock { $0 = nil }
                logger.info("the control plane's trusted roots changed: renewed the workload certificate (\(tls.bundle.roots.count) trusted root(s))")
            } catch {
                lastFailure.withLock { $0 = .now }
                logger.warning("the control plane's trusted roots changed but the certificate could not be renewed yet: \(error)")
            }
        }
    }

    /// Where what the control plane last gave is kept (certificate, resources, registry answers).
    func lastKnownState() -> LastKnownState? {
        try? LastKnownState(directory: LastKnownState.directory(home: self.options.mechaHome, namespace: self.options.namespace, appID: self.options.appID))
    }

    /// `--enable-api-logging` (when given) or `spec.logging.apiLogging.enabled`: one log line per
    /// API call, on daprd's `dapr.runtime.http-info` / `dapr.runtime.grpc-info` scopes.
    func apiLogObservers(_ configuration: ConfigurationSpec?) -> [any InboundObserver] {
        let spec = configuration?.apiLogging ?? APILoggingSpec()
        guard self.options.enableAPILogging ?? spec.enabled ?? false else { return [] }
        var http = Logger(label: "dapr.runtime.http-info")
        var grpc = Logger(label: "dapr.runtime.grpc-info")
        http.logLevel = self.logger.logLevel
        grpc.logLevel = self.logger.logLevel
        return [APILogObserver(http: http, grpc: grpc, obfuscateURLs: spec.obfuscateURLs, omitHealthChecks: spec.omitHealthChecks)]
    }

    /// The tracer's recent failed or slow spans, for the metrics port's `/debug/traces`.
    static func recentTraces(_ tracer: SidecarTracer?) -> (@Sendable () -> JSONValue)? {
        guard let tracer else { return nil }
        return { @Sendable in tracer.recentProblems() }
    }

    /// The callee's service invocation metrics, fed by the sidecar-to-sidecar listener.
    static func invocationObserver(_ metrics: DaprMetrics?) -> (@Sendable (InboundExchange) -> Void)? {
        guard let metrics else { return nil }
        return { @Sendable exchange in metrics.invocationReceived(from: exchange.caller ?? "", status: exchange.status) }
    }

    /// Where resources come from: `--resources-path`; without any, `<mecha home>/components` if it
    /// exists; nil: the embedded defaults.
    func resourcePaths() -> [String]? {
        if !self.options.resourcesPaths.isEmpty { return self.options.resourcesPaths }
        let home = self.options.mechaHome + "/components"
        var info = stat()
        if stat(home, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { return [home] }
        return nil
    }

    /// `--resources-path` directories; without any, `<mecha home>/components` if it exists, else the
    /// embedded defaults.
    func loadResources(_ paths: [String]?, remote: [(text: String, file: String)] = []) throws -> LoadedResources {
        if let paths {
            if self.options.resourcesPaths.isEmpty { self.logger.info("loading resources from \(paths.joined(separator: ", "))") }
            return try ResourceLoader.load(paths: paths, extra: remote)
        }
        // The control plane's resources replace the embedded defaults.
        if !remote.isEmpty { return try ResourceLoader.load(paths: [], extra: remote) }
        var defaults = LoadedResources()
        defaults.components = EmbeddedDefaults.components(mechaHome: self.options.mechaHome)
        self.logger.info("no resources path given: using the embedded defaults (statestore, pubsub, lockstore) in \(self.options.mechaHome)/mecha.db")
        return defaults
    }
}

/// A startup problem that is not a resource error.
public struct SidecarError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The ports a running sidecar bound (useful when configured with port 0).
public struct SidecarPorts: Sendable, Hashable {
    public var http: Int
    public var grpc: Int
    public var `internal`: Int
    /// The sidecar-to-sidecar gRPC (proxy) listener.
    public var internalGRPC: Int
}

/// Ports the listeners actually bound, and who waits for them.
final class PortBook: Sendable {
    private struct State {
        var expectedHTTP = 1
        var expectedGRPC = 1
        var http: [Int] = []
        var grpc: [Int] = []
        var internalPort: Int?
        var internalGRPCPort: Int?
        /// The metrics endpoint's port once bound (not part of readiness: it may fail to bind).
        var metricsPort: Int?
        var waiters: [CheckedContinuation<SidecarPorts, any Error>] = []
        var failure: (any Error)?

        var ready: SidecarPorts? {
            guard self.http.count >= self.expectedHTTP, self.grpc.count >= self.expectedGRPC, let internalPort = self.internalPort,
                let internalGRPCPort = self.internalGRPCPort
            else { return nil }
            return SidecarPorts(http: self.http[0], grpc: self.grpc.first ?? 0, internal: internalPort, internalGRPC: internalGRPCPort)
        }
    }

    private let state = Mutex(State())

    func expect(httpListeners: Int, grpcListeners: Int) {
        self.state.withLock {
            $0.expectedHTTP = max(1, httpListeners)
            $0.expectedGRPC = max(0, grpcListeners)
        }
    }

    func httpListening(_ port: Int) { self.update { $0.http.append(port) } }
    func grpcListening(_ port: Int) { self.update { $0.grpc.append(port) } }
    func internalListening(_ port: Int) { self.update { $0.internalPort = port } }
    func internalGRPCListening(_ port: Int) { self.update { $0.internalGRPCPort = port } }
    func metricsListening(_ port: Int) { self.update { $0.metricsPort = port } }
    /// The metrics endpoint's bound port, 0 when it is not listening (yet).
    var metricsPort: Int { self.state.withLock { $0.metricsPort ?? 0 } }

    /// The sidecar stopped or failed: waiters that never saw ports get `error`.
    func fail(_ error: any Error) {
        let waiters = self.state.withLock { state -> [CheckedContinuation<SidecarPorts, any Error>] in
            if state.failure == nil { state.failure = error }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    private func update(_ change: (inout State) -> Void) {
        let (waiters, ports) = self.state.withLock { state -> ([CheckedContinuation<SidecarPorts, any Error>], SidecarPorts?) in
            change(&state)
            guard let ready = state.ready else { return ([], nil) }
            defer { state.waiters = [] }
            return (state.waiters, ready)
        }
        if let ports { for waiter in waiters { waiter.resume(returning: ports) } }
    }

    func waitUntilReady() async throws -> SidecarPorts {
        try await withCheckedThrowingContinuation { continuation in
            let ready = self.state.withLock { state -> Result<SidecarPorts, any Error>? in
                if let ready = state.ready { return .success(ready) }
                if let failure = state.failure { return .failure(failure) }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
