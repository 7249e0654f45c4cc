public import Foundation
public import MechaCore
public import MechaIdentity
import NIOHTTP1
import Synchronization

/// Name resolution through `mecha control-plane`'s registry, for sidecars on several hosts (or
/// several Mecha homes): the sidecar registers its instance and heartbeats every 2 s (an
/// instance unheard of for 10 s is no longer listed); resolution asks the registry, caching an
/// answer for 1 s. When the control plane cannot be reached, the last answer it gave for an app
/// keeps being used (self-healing: calls go on while it is away), and registration resumes when
/// it is back. The answers are kept on disk too (`LastKnownState`): a sidecar restarted while the
/// control plane is away resolves from them. While it is away, resolution asks it again at most
/// every `retryAway` (the heartbeat probes it meanwhile), so calls do not wait on it.
public final class ControlPlaneResolver: NameResolver {
    let client: ControlPlaneClient
    let heartbeat: Duration
    let cacheTTL: Duration
    let retryAway: Duration
    let lastKnown: LastKnownState?
    private let registered = Mutex<[String: AppInstance]>([:])
    private let cache = Mutex<[String: (instances: [AppInstance], at: ContinuousClock.Instant)]>([:])
    /// Whether the last exchange with the control plane failed (health detail).
    private let away = Atomic<Bool>(false)
    private let lastFailure = Mutex<ContinuousClock.Instant?>(nil)

    public init(
        client: ControlPlaneClient, heartbeat: Duration = .seconds(2), cacheTTL: Duration = .seconds(1), retryAway: Duration = .seconds(2),
        lastKnown: LastKnownState? = nil
    ) {
        self.client = client
        self.heartbeat = heartbeat
        self.cacheTTL = cacheTTL
        self.retryAway = retryAway
        self.lastKnown = lastKnown
        if let kept = lastKnown?.loadRegistry(), !kept.isEmpty {
            // Known, but stale: the control plane is asked first.
            let old = ContinuousClock.now - .seconds(3600)
            self.cache.withLock { cache in for (key, instances) in kept { cache[key] = (instances, old) } }
        }
    }

    private func noteAway(_ away: Bool) {
        self.away.store(away, ordering: .relaxed)
        self.lastFailure.withLock { $0 = away ? ContinuousClock.now : nil }
    }

    /// True while the control plane cannot be reached (resolution runs on last-known answers).
    public var runningOnLastKnownState: Bool { self.away.load(ordering: .relaxed) }

    public func register(_ instance: AppInstance) async throws {
        self.registered.withLock { $0[instance.instanceID] = instance }
        try await self.send(instance)
    }

    func send(_ instance: AppInstance) async throws {
        let body = try JSONSerialization.data(withJSONObject: Self.document(instance), options: [.sortedKeys])
        do {
            let (status, answer) = try await self.client.request(.POST, "/v1/instances", body: Array(body))
            guard status == 204 else {
                throw IdentityError.refusedRequest("the registry refused the registration (\(status)): \(String(decoding: answer, as: UTF8.self))")
            }
            self.noteAway(false)
        } catch {
            self.noteAway(true)
            throw error
        }
    }

    public func deregister(instanceID: String) async throws {
        self.registered.withLock { _ = $0.removeValue(forKey: instanceID) }
        let encoded = instanceID.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? instanceID
        _ = try await self.client.request(.DELETE, "/v1/instances/\(encoded)")
    }

    public func cachedInstances(appID: String, namespace: String) -> [AppInstance]? {
        guard let cached = self.cache.withLock({ $0["\(namespace)/\(appID)"] }), ContinuousClock.now - cached.at < self.cacheTTL, !cached.instances.isEmpty
        else { return nil }
        return cached.instances
    }

    public func resolve(appID: String, namespace: String) async throws -> [AppInstance] {
        let key = "\(namespace)/\(appID)"
        let now = ContinuousClock.now
        let cached = self.cache.withLock { $0[key] }
        if let cached, now - cached.at < self.cacheTTL { return cached.instances }
        if let cached, let failed = self.lastFailure.withLock({ $0 }), now - failed < self.retryAway { return cached.instances }
        let query = "appId=\(Self.escape(appID))&namespace=\(Self.escape(namespace))"
        do {
            let (status, answer) = try await self.client.request(.GET, "/v1/instances?\(query)")
            guard status == 200, let list = (try? JSONSerialization.jsonObject(with: Data(answer))) as? [[String: Any]] else {
                throw IdentityError.refusedRequest("the registry answered \(status): \(String(decoding: answer, as: UTF8.self))")
            }
            let instances = list.compactMap(Self.instance)
            self.noteAway(false)
            let snapshot = self.cache.withLock { cache -> [String: [AppInstance]]? in
                let changed = cache[key]?.instances != instances
                cache[key] = (instances, now)
                return changed ? cache.mapValues(\.instances) : nil
            }
            if let snapshot { try? self.lastKnown?.saveRegistry(snapshot) }
            return instances
        } catch {
            self.noteAway(true)
            // The control plane is away: the last answer it gave still holds.
            if let cached { return cached.instances }
            throw error
        }
    }

    /// Heartbeats until `stop`, then deregisters.
    public func run(until stop: StopSignal) async throws {
        while !(await stop.sleep(for: self.heartbeat)) {
            for instance in self.registered.withLock({ Array($0.values) }) {
                try? await self.send(instance)
            }
        }
        for id in self.registered.withLock({ Array($0.keys) }) {
            try? await self.deregister(instanceID: id)
        }
    }

    static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text
    }

    static func document(_ instance: AppInstance) -> [String: Any] {
        [
            "instanceId": instance.instanceID, "appId": instance.appID, "namespace": instance.namespace, "host": instance.host,
            "internalPort": instance.internalPort, "httpPort": instance.httpPort, "grpcInternalPort": instance.grpcInternalPort,
            "processId": Int(instance.processID), "hostname": instance.hostname, "metricsPort": instance.metricsPort, "mtls": instance.mtls,
        ]
    }

    static func instance(_ object: [String: Any]) -> AppInstance? {
        guard let instanceID = object["instanceId"] as? String, let appID = object["appId"] as? String, let host = object["host"] as? String,
            let internalPort = object["internalPort"] as? Int
        else { return nil }
        return AppInstance(
            appID: appID, namespace: object["namespace"] as? String ?? "default", host: host, internalPort: internalPort,
            httpPort: object["httpPort"] as? Int ?? 0, grpcInternalPort: object["grpcInternalPort"] as? Int ?? 0, instanceID: instanceID,
            processID: Int32(object["processId"] as? Int ?? 0), hostname: object["hostname"] as? String ?? "", metricsPort: object["metricsPort"] as? Int ?? 0,
            mtls: object["mtls"] as? Bool ?? true)
    }
}
