#if canImport(Glibc)
import Glibc
#endif
import Logging
import MechaAPI
import MechaConfig
import MechaControlPlane
import MechaCore
import MechaRuntime
import MechaTelemetry
import Synchronization

/// Hot reload of the resource files (Dapr 1.18's HotReload, on by default here): the
/// `--resources-path` files are checked every `interval`; when one changed, was added or removed,
/// everything is read again and the differences applied while the sidecar serves:
///
/// - a Component that changed is built anew (secrets resolved, initialised under its init
///   timeout) and swapped in; only then is the old one retired (loops on it — subscriptions,
///   input bindings, its own background work — move to the new one) and, after `grace`, closed,
///   so calls that had already picked it finish. Other components are untouched.
/// - a new Component starts serving; a removed one (or one whose scopes now leave this app out)
///   stops.
/// - Subscriptions start and stop (`SubscriptionManager.reconcile`).
/// - AccessPolicies apply to the next call.
/// - Resiliency policies and TrafficPolicies are rebuilt and replace the old ones for new calls
///   (calls in flight finish under the old ones).
///
/// What fails to load leaves the previous version serving and is reported: an error log naming
/// the file, resource and field, `GET /v1.0/healthz?detail`'s `lastReload`, and
/// `mecha_hot_reloads_total{outcome="failed"}`.
///
/// The `--config` Configuration file is watched too: `spec.accessControl` and
/// `spec.secrets.scopes` apply to the next call; a change to any other part is reported as needing
/// a restart (log and `lastReload`), and a Configuration that fails to load keeps the previous one.
final class HotReloader: Sendable {
    let paths: [String]
    /// The `--config` file, if any.
    let configPath: String?
    /// Installs the parts of a new Configuration that apply while serving.
    let replaceConfiguration: @Sendable (ConfigurationSpec) -> Void
    /// Told, after each fetch from the control plane, the version of its trusted roots.
    let trustVersion: (@Sendable (String) async -> Void)?
    /// Resources from the control plane, polled every `interval` beside the files.
    let remote: RemoteResources?
    let appID: String
    let loader: ComponentLoader
    let components: ComponentStore
    let subscriptions: SubscriptionManager
    let inputBindings: InputBindingManager
    let health: ComponentHealth
    let metrics: DaprMetrics?
    /// Builds the policies of a set of Resiliency resources, and installs them.
    let replaceResiliency: @Sendable ([ResiliencySpec]) -> Void
    /// Installs a set of TrafficPolicies (mesh routes and balancing, component gates).
    let replaceTrafficPolicies: @Sendable ([TrafficPolicySpec]) -> Void
    /// Installs a set of AccessPolicies.
    let replaceAccessPolicies: @Sendable ([AccessPolicySpec]) -> Void
    let interval: Duration
    let grace: Duration
    let logger: Logger

    /// What was last applied: file stamps, in-scope components by name, and the other kinds'
    /// resources as loaded (for the "needs a restart" report).
    struct Applied: Sendable {
        var stamps: [String: FileStamp]
        var components: [String: ComponentResource]
        var resiliencies: [ResiliencySpec]
        var trafficPolicies: [TrafficPolicySpec]
        var accessPolicies: [AccessPolicySpec]
        var configStamps: [String: FileStamp] = [:]
        var configuration: ConfigurationSpec?
    }

    struct FileStamp: Sendable, Hashable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modified: Int64
        var modifiedNanoseconds: Int64
    }

    private let applied: Mutex<Applied>
    /// Set by the control plane watch when its documents changed; taken by the next tick.
    private let remoteChanged = Atomic<Bool>(false)

    init(
        paths: [String], remote: RemoteResources? = nil, appID: String, loader: ComponentLoader, components: ComponentStore, subscriptions: SubscriptionManager,
        inputBindings: InputBindingManager, health: ComponentHealth, metrics: DaprMetrics?, initial: LoadedResources,
        replaceResiliency: @escaping @Sendable ([ResiliencySpec]) -> Void,
        replaceTrafficPolicies: @escaping @Sendable ([TrafficPolicySpec]) -> Void,
        replaceAccessPolicies: @escaping @Sendable ([AccessPolicySpec]) -> Void,
        configPath: String? = nil, initialConfiguration: ConfigurationSpec? = nil,
        replaceConfiguration: @escaping @Sendable (ConfigurationSpec) -> Void = { _ in },
        trustVersion: (@Sendable (String) async -> Void)? = nil,
        interval: Duration = .seconds(1), grace: Duration = .seconds(5), logger: Logger
    ) {
        self.trustVersion = trustVersion
        self.configPath = configPath
        self.replaceConfiguration = replaceConfiguration
        self.paths = paths
        self.remote = remote
        self.appID = appID
        self.loader = loader
        self.components = components
        self.subscriptions = subscriptions
        self.inputBindings = inputBindings
        self.health = health
        self.metrics = metrics
        self.replaceResiliency = replaceResiliency
        self.replaceTrafficPolicies = replaceTrafficPolicies
        self.replaceAccessPolicies = replaceAccessPolicies
        self.interval = interval
        self.grace = grace
        self.logger = logger
        var inScope: [String: ComponentResource] = [:]
        for resource in initial.components where resource.isInScope(appID: appID) && inScope[resource.name] == nil {
            inScope[resource.name] = resource
        }
        self.applied = Mutex(
            Applied(
                stamps: Self.stamps(paths), components: inScope, resiliencies: initial.resiliencies, trafficPolicies: initial.trafficPolicies,
                accessPolicies: initial.accessPolicies, configStamps: Self.stamps(configPath.map { [$0] } ?? []),
                configuration: initialConfiguration))
    }

    /// The modification stamps of every resource file under `paths` (an unreadable path has none).
    static func stamps(_ paths: [String]) -> [String: FileStamp] {
        var stamps: [String: FileStamp] = [:]
        for path in paths {
            guard let files = try? ResourceLoader.yamlFiles(at: path) else { continue }
            for file in files {
                var info = stat()
                guard stat(file, &info) == 0 else { continue }
                stamps[file] = FileStamp(
                    device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size), modified: Int64(info.st_mtim.tv_sec),
                    modifiedNanoseconds: Int64(info.st_mtim.tv_nsec))
            }
        }
        return stamps
    }

    /// Checks the files every `interval` until `stop`; hosts the background work of components
    /// it loads and the closing of those it retires.
    func run(until stop: StopSignal) async {
        let sources = self.paths + (self.configPath.map { ["\($0) (Configuration)"] } ?? []) + (self.remote == nil ? [] : ["the control plane"])
        self.logger.info("hot reload: watching \(sources.joined(separator: ", ")) every \(GoDuration.format(self.interval))")
        await withDiscardingTaskGroup { group in
            if let remote = self.remote {
                group.addTask { await self.watch(remote, until: stop) }
            }
            while !(await stop.sleep(for: self.interval)) {
                let stamps = Self.stamps(self.paths)
                // The control plane's documents changed (an unreachable one changes nothing).
                let remoteChanged = self.remoteChanged.exchange(false, ordering: .acquiringAndReleasing)
                let configStamps = Self.stamps(self.configPath.map { [$0] } ?? [])
                if configStamps != self.applied.withLock({ $0.configStamps }) {
                    if await stop.sleep(for: .milliseconds(100)) { break }
                    self.reloadConfiguration(stamps: Self.stamps(self.configPath.map { [$0] } ?? []))
                }
                guard remoteChanged || stamps != self.applied.withLock({ $0.stamps }) else { continue }
                // A file being written may still change: wait for it to settle for one more tick.
                if await stop.sleep(for: .milliseconds(100)) { break }
                let settled = Self.stamps(self.paths)
                for work in await self.reload(stamps: settled, stop: stop) {
                    group.addTask { await work() }
                }
            }
        }
    }

    /// Watches the control plane's resources (long polls) until `stop`: a change is picked up by
    /// the next tick; a change of its trusted roots is passed on at once. An unreachable control
    /// plane is asked again every second.
    func watch(_ remote: RemoteResources, until stop: StopSignal) async {
        while !stop.isStopped {
            let outcome = await withTaskGroup(of: Bool?.self) { group -> Bool? in
                group.addTask { (try? await remote.watch()) }
                group.addTask {
                    _ = await stop.sleep(for: .seconds(3600))
                    return nil
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                return first
            }
            if stop.isStopped { return }
            guard let changed = outcome else {
                if await stop.sleep(for: self.interval) { return }
                continue
            }
            if changed { self.remoteChanged.store(true, ordering: .releasing) }
            if let version = remote.trustBundleFingerprint, let trustVersion = self.trustVersion { await trustVersion(version) }
        }
    }

    /// Reads every file again and applies what changed; returns the background work to host
    /// (new components' `run`, retired components' close).
    func reload(stamps: [String: FileStamp], stop: StopSignal) async -> [@Sendable () async -> Void] {
        let previous = self.applied.withLock { applied -> Applied in
            let previous = applied
            applied.stamps = stamps
            return previous
        }
        let loaded: LoadedResources
        do {
            loaded = try ResourceLoader.load(paths: self.paths, extra: self.remote?.documents ?? [])
        } catch {
            self.logger.error("hot reload: the resources cannot be read; everything keeps its previous version:\n\(error)")
            let problems = error.errors.map(\.description)
            self.metrics?.hotReload(resource: "files", outcome: "failed")
            self.health.reloaded(applied: [], failed: problems)
            return []
        }
        var work: [@Sendable () async -> Void] = []
        var appliedNames: [String] = []
        var failed: [String] = []
        var wanted: [String: ComponentResource] = [:]
        for resource in loaded.components where resource.isInScope(appID: self.appID) {
            if let existing = wanted[resource.name] {
                failed.append("\(resource.source): duplicate definition of Component name \(resource.name) (also in \(existing.source.file))")
                continue
            }
            wanted[resource.name] = resource
        }
        var kept = previous.components
        // Removed (or now out of scope).
        for name in previous.components.keys.sorted() where wanted[name] == nil {
            kept[name] = nil
            if let old = self.components.remove(name) {
                work.append(self.retire(old, stop: stop))
                self.logger.info("hot reload: Component/\(name) removed")
                appliedNames.append("Component/\(name) removed")
                self.metrics?.hotReload(resource: "Component/\(name)", outcome: "removed")
            }
        }
        // Added or changed: build first, swap only once the new one works.
        let pubsubs = Set(wanted.values.filter { $0.type.category == .pubsub }.map(\.name))
        for name in wanted.keys.sorted() {
            guard let resource = wanted[name], previous.components[name] != resource else { continue }
            let change = previous.components[name] == nil ? "added" : "changed"
            do {
                let (component, spec) = try await self.loader.buildForReload(resource, store: self.components, pubsubs: pubsubs)
                let old = self.components.add(component, spec: spec)
                if let entry = self.components.entry(named: name) {
                    let retired = entry.retired
                    work.append { @Sendable in
                        do {
                            try await component.run(until: StopSignal.either(stop, retired))
                        } catch {
                            self.logger.error("component \(name) background work failed: \(error)")
                        }
                    }
                }
                if let old { work.append(self.retire(old, stop: stop)) }
                kept[name] = resource
                self.logger.info("hot reload: Component/\(name) \(change) (\(resource.type)/\(resource.version.isEmpty ? "v1" : resource.version)), from \(resource.source.file)")
                appliedNames.append("Component/\(name) \(change)")
                self.metrics?.hotReload(resource: "Component/\(name)", outcome: change)
            } catch {
                let message: String
                if let resourceError = error as? ResourceError {
                    message = resourceError.description
                } else {
                    message = "\(resource.source): initialization error occurred for \(resource.name) (\(resource.type)/\(resource.version)): \(error)"
                }
                self.logger.error("hot reload: \(message); \(change == "added" ? "not loaded" : "the previous version keeps serving")")
                failed.append(message)
                self.metrics?.hotReload(resource: "Component/\(name)", outcome: "failed")
            }
        }
        self.applied.withLock { applied in
            applied.components = kept
            applied.resiliencies = loaded.resiliencies
            applied.trafficPolicies = loaded.trafficPolicies
            applied.accessPolicies = loaded.accessPolicies
        }
        // Subscriptions follow (and those whose pubsub just arrived start); so do input bindings.
        self.subscriptions.reconcile(declarative: loaded.subscriptions)
        self.inputBindings.reconcile()
        if loaded.resiliencies != previous.resiliencies {
            self.replaceResiliency(loaded.resiliencies)
            let names = loaded.resiliencies.filter { $0.applies(to: self.appID) }.map(\.name).sorted()
            self.logger.info("hot reload: Resiliency policies replaced (\(names.isEmpty ? "none" : names.joined(separator: ", "))); they apply to new calls")
            appliedNames.append("Resiliency")
            self.metrics?.hotReload(resource: "Resiliency", outcome: "changed")
        }
        if loaded.accessPolicies != previous.accessPolicies {
            self.replaceAccessPolicies(loaded.accessPolicies)
            self.logger.info("hot reload: AccessPolicies replaced (\(loaded.accessPolicies.isEmpty ? "none" : loaded.accessPolicies.map(\.name).joined(separator: ", ")))")
            appliedNames.append("AccessPolicy")
            self.metrics?.hotReload(resource: "AccessPolicy", outcome: "changed")
        }
        // A shared rate limit needs its state store, as at startup.
        var trafficProblems: [String] = []
        for policy in loaded.trafficPolicies where policy.applies(to: self.appID) {
            for (index, route) in policy.routes.enumerated() {
                guard let global = route.globalRateLimit, self.components.stateStore(named: global.store) == nil else { continue }
                trafficProblems.append(
                    ResourceError(source: policy.source, field: "spec.routes[\(index)].globalRateLimit.store", reason: "no state store named '\(global.store)' is loaded")
                        .description)
            }
        }
        if !trafficProblems.isEmpty, loaded.trafficPolicies != previous.trafficPolicies {
            self.logger.error("hot reload: \(trafficProblems.joined(separator: "; ")); the previous TrafficPolicies keep applying")
            failed += trafficProblems
            self.metrics?.hotReload(resource: "TrafficPolicy", outcome: "failed")
            self.applied.withLock { $0.trafficPolicies = previous.trafficPolicies }
        } else if loaded.trafficPolicies != previous.trafficPolicies {
            self.replaceTrafficPolicies(loaded.trafficPolicies)
            let names = loaded.trafficPolicies.filter { $0.applies(to: self.appID) }.map(\.name).sorted()
            self.logger.info("hot reload: TrafficPolicies replaced (\(names.isEmpty ? "none" : names.joined(separator: ", "))); they apply to new calls")
            appliedNames.append("TrafficPolicy")
            self.metrics?.hotReload(resource: "TrafficPolicy", outcome: "changed")
        }
        self.health.reloaded(applied: appliedNames, failed: failed)
        return work
    }

    /// Reads the `--config` file again: access control and secret scopes are replaced for the next
    /// call; other changes are reported as needing a restart; a file that fails keeps the previous
    /// Configuration.
    func reloadConfiguration(stamps: [String: FileStamp]) {
        guard let path = self.configPath else { return }
        let previous = self.applied.withLock { applied -> ConfigurationSpec? in
            applied.configStamps = stamps
            return applied.configuration
        }
        let loaded: ConfigurationSpec
        do {
            loaded = try ResourceLoader.loadConfiguration(file: path)
        } catch {
            self.logger.error("hot reload: the Configuration cannot be read; the previous one stays in force:\n\(error)")
            self.metrics?.hotReload(resource: "Configuration", outcome: "failed")
            self.health.reloaded(applied: [], failed: ["\(error)"])
            return
        }
        guard loaded != previous else { return }
        self.applied.withLock { $0.configuration = loaded }
        var applied: [String] = []
        if loaded.accessControl != previous?.accessControl || loaded.secretScopes != previous?.secretScopes {
            self.replaceConfiguration(loaded)
            var parts: [String] = []
            if loaded.accessControl != previous?.accessControl { parts.append("spec.accessControl") }
            if loaded.secretScopes != previous?.secretScopes { parts.append("spec.secrets.scopes") }
            self.logger.info("hot reload: Configuration/\(loaded.name): \(parts.joined(separator: " and ")) replaced; they apply to new calls")
            applied.append("Configuration/\(loaded.name) \(parts.joined(separator: ", "))")
            self.metrics?.hotReload(resource: "Configuration/\(loaded.name)", outcome: "changed")
        }
        let restart = Self.restartOnlyChanges(previous, loaded)
        if !restart.isEmpty {
            self.logger.warning("hot reload: Configuration/\(loaded.name): \(restart.joined(separator: ", ")) changed; these apply after a restart")
            applied.append("Configuration/\(loaded.name) \(restart.joined(separator: ", ")) (applies after a restart)")
        }
        self.health.reloaded(applied: applied, failed: [])
    }

    /// The parts of a Configuration that changed and only apply when the sidecar starts.
    static func restartOnlyChanges(_ old: ConfigurationSpec?, _ new: ConfigurationSpec) -> [String] {
        let old = old ?? ConfigurationSpec(name: new.name, source: new.source)
        var changed: [String] = []
        if old.apiAllowed != new.apiAllowed || old.apiDenied != new.apiDenied { changed.append("spec.api") }
        if old.features != new.features { changed.append("spec.features") }
        if old.nameResolutionComponent != new.nameResolutionComponent || old.nameResolutionConfiguration != new.nameResolutionConfiguration {
            changed.append("spec.nameResolution")
        }
        if old.httpPipeline != new.httpPipeline { changed.append("spec.httpPipeline") }
        if old.metrics != new.metrics { changed.append("spec.metrics") }
        if old.apiLogging != new.apiLogging { changed.append("spec.logging") }
        if old.tracing != new.tracing { changed.append("spec.tracing") }
        if old.mtls != new.mtls { changed.append("spec.mtls") }
        return changed
    }

    /// Fires `old.retired` (loops on it move to its replacement or end) and closes its component
    /// after `grace`, once calls that had already picked it are done.
    func retire(_ old: ComponentStore.Entry, stop: StopSignal) -> @Sendable () async -> Void {
        old.retired.stop()
        let grace = self.grace
        let logger = self.logger
        return { @Sendable in
            _ = await stop.sleep(for: grace)
            do {
                try await old.component.close()
            } catch {
                logger.warning("closing the previous version of component \(old.spec.name) failed: \(error)")
            }
        }
    }
}
