#if canImport(Glibc)
import Glibc
#endif
import HTTP1Client
import Logging
import MechaAPI
import MechaCore
import MechaGRPC
import MechaHTTP
import MechaIdentity
import MechaRuntime
import ServiceLifecycle

/// The running sidecar as one service. Startup and shutdown order live here:
/// listen → register → wait for the app → subscriptions and bindings → ready; on shutdown:
/// deregister, drain deliveries while servers finish their requests, then stop component work,
/// close the HTTP client and the components.
struct SidecarCore: Service {
    let options: SidecarOptions
    let identity: SidecarIdentity
    /// Virtual actors: hosting (after the app declared its types) and placement.
    let actors: ActorsAPI
    /// The actor metrics (nil: metrics are off).
    let actorObserver: (any ActorObserver)?
    let components: ComponentStore
    let resolver: any NameResolver
    let client: HTTP1Client
    let appChannel: (any AppChannel)?
    let readiness: Readiness
    let subscriptions: SubscriptionManager
    let inputBindings: InputBindingManager
    /// Watches the resource files (nil: embedded defaults, or hot reload turned off).
    let reloader: HotReloader?
    /// Configuration subscriptions end when shutdown starts (their gRPC streams close with OK).
    let configuration: ConfigurationAPI
    let servers: [any Service]
    let grpcPool: GRPCTransportPool
    /// The sidecar's mTLS identity (renewed while it runs); nil: mTLS is off.
    let meshTLS: MeshTLS?
    let ports: PortBook
    /// Starts the graceful shutdown of the whole sidecar (a listener could not start).
    let requestShutdown: @Sendable () -> Void
    let logger: Logger

    func run() async throws {
        let deliveryStop = StopSignal()
        let componentStop = StopSignal()
        let started = ContinuousClock.now
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { outer in
                outer.addTask { await self.client.run() }
                outer.addTask { await self.grpcPool.run() }
                if let meshTLS = self.meshTLS {
                    // Certificate renewal, until the components stop.
                    outer.addTask {
                        let logger = self.logger
                        await withTaskGroup(of: Void.self) { renewal in
                            renewal.addTask { await meshTLS.run { logger.info("\($0)") } }
                            renewal.addTask { await componentStop.wait() }
                            _ = await renewal.next()
                            renewal.cancelAll()
                        }
                    }
                }
                for entry in self.components.entries {
                    outer.addTask {
                        do {
                            // Until shutdown, or until hot reload replaces the component.
                            try await entry.component.run(until: StopSignal.either(componentStop, entry.retired))
                        } catch {
                            self.logger.error("component \(entry.spec.name) background work failed: \(error)")
                        }
                    }
                }
                outer.addTask { try? await self.resolver.run(until: componentStop) }
                if let reloader = self.reloader {
                    outer.addTask { await reloader.run(until: componentStop) }
                }
                if let appChannel = self.appChannel {
                    outer.addTask { await appChannel.run(until: componentStop) }
                }
                outer.addTask {
                    defer {
                        componentStop.stop()
                        self.client.shutdown()
                        self.grpcPool.shutdown()
                    }
                    try await withThrowingTaskGroup(of: Void.self) { inner in
                        for server in self.servers {
                            inner.addTask {
                                do {
                                    try await server.run()
                                } catch {
                                    // A listener that cannot start (its port is taken, …) ends the
                                    // sidecar: whoever waits for the ports learns why instead of
                                    // waiting forever.
                                    self.logger.error("\(error)")
                                    self.ports.fail(error)
                                    self.requestShutdown()
                                    throw error
                                }
                            }
                        }
                        inner.addTask { await self.startup(deliveryStop: deliveryStop, started: started) }
                        inner.addTask { await self.checkAppHealth(until: deliveryStop) }
                        try await inner.waitForAll()
                    }
                }
                try await outer.waitForAll()
            }
        } onGracefulShutdown: {
            self.logger.info("shutting down: draining in-flight deliveries")
            self.readiness.markShuttingDown()
            deliveryStop.stop()
            Task { await self.configuration.unsubscribeAll() }
        }
        for entry in self.components.entries.reversed() {
            do {
                try await entry.component.close()
            } catch {
                self.logger.warning("closing component \(entry.spec.name) failed: \(error)")
            }
        }
        try? await self.resolver.close()
        self.logger.info("dapr shutdown complete")
    }

    func startup(deliveryStop: StopSignal, started: ContinuousClock.Instant) async {
        guard let ports = try? await self.ports.waitUntilReady() else { return }
        let (httpPort, internalPort) = (ports.http, ports.internal)
        self.readiness.markOutboundReady()
        self.logger.info("HTTP API listening on \(self.options.listenAddresses.joined(separator: ", ")) port \(httpPort), gRPC API on port \(ports.grpc); sidecar-to-sidecar on port \(internalPort)")
        // The metrics endpoint binds beside the others; give it a moment so the registration
        // (which `mecha dashboard` reads) carries its port.
        if self.options.enableMetrics {
            for _ in 0..<25 where self.ports.metricsPort == 0 { try? await Task.sleep(for: .milliseconds(20)) }
        }
        let instance = AppInstance(
            appID: self.identity.appID,
            namespace: self.identity.namespace,
            host: self.options.internalListenAddress == "0.0.0.0" ? "127.0.0.1" : self.options.internalListenAddress,
            internalPort: internalPort,
            httpPort: httpPort,
            grpcInternalPort: ports.internalGRPC,
            instanceID: self.identity.instanceID,
            processID: getpid(),
            hostname: Self.hostname(),
            metricsPort: self.ports.metricsPort,
            mtls: self.meshTLS != nil
        )
        do {
            try await self.resolver.register(instance)
        } catch {
            self.logger.error("name resolution registration failed: \(error)")
        }
        if let appChannel = self.appChannel {
            await appChannel.waitUntilReachable(until: deliveryStop)
            if self.options.enableAppHealthCheck {
                while !self.readiness.isAppHealthy, !deliveryStop.isStopped {
                    _ = await deliveryStop.sleep(for: .milliseconds(100))
                }
            }
        }
        if !deliveryStop.isStopped {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.subscriptions.run(until: deliveryStop) }
                group.addTask { await self.inputBindings.run(until: deliveryStop) }
                group.addTask {
                    let host = ActorHost(
                        instanceID: self.identity.instanceID, appID: self.identity.appID, namespace: self.identity.namespace, host: instance.host,
                        internalPort: instance.internalPort, mtls: instance.mtls, types: [])
                    await self.actors.run(
                        appChannel: self.options.appProtocol == .grpc || self.options.appProtocol == .grpcs ? nil : self.appChannel, host: host, maxBodySize: self.options.maxBodySize, observer: self.actorObserver, until: deliveryStop)
                }
                group.addTask {
                    await self.subscriptions.waitUntilStarted()
                    self.readiness.markRuntimeReady()
                    let elapsed = ContinuousClock.now - started
                    self.logger.info("dapr initialized. Status: Running. Init Elapsed \(elapsed.milliseconds)ms")
                }
            }
        }
        await deliveryStop.wait()
        try? await self.resolver.deregister(instanceID: self.identity.instanceID)
    }

    /// `--enable-app-health-check`: probe every interval; unhealthy after `threshold` failures in a
    /// row, healthy again after one success.
    func checkAppHealth(until stop: StopSignal) async {
        guard self.options.enableAppHealthCheck, let appChannel = self.appChannel else { return }
        var failures = 0
        while !stop.isStopped {
            if await appChannel.probeHealth() {
                if !self.readiness.isAppHealthy { self.logger.info("App entered healthy status") }
                failures = 0
                self.readiness.setAppHealthy(true)
            } else {
                failures += 1
                if failures >= self.options.appHealthThreshold, self.readiness.isAppHealthy {
                    self.logger.warning("App entered un-healthy status")
                    self.readiness.setAppHealthy(false)
                }
            }
            if await stop.sleep(for: self.options.appHealthProbeInterval) { return }
        }
    }

    static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        return String(cString: buffer)
    }
}

extension SidecarCore: CustomStringConvertible {
    /// What service lifecycle logs for it: never the options (they hold the join token).
    var description: String { "SidecarCore(appID: \(self.identity.appID), namespace: \(self.identity.namespace), instance: \(self.identity.instanceID))" }
}
