public import Logging
public import MechaCore
import MechaResiliency
public import MechaRuntime
import NIOCore
import Synchronization

/// The configuration building block (`/v1.0/configuration`, `GetConfiguration`,
/// `SubscribeConfiguration`, …) with daprd's checks, messages and codes.
///
/// A subscription is a pump task reading the component's update stream and handing each batch to
/// its `deliver` closure in order (HTTP: a POST to the app per key; gRPC: a message on the stream).
/// Unsubscribing cancels the pump, which releases the component's watch.
public final class ConfigurationAPI: Sendable {
    /// Where a subscription was made: daprd's gRPC `UnsubscribeConfiguration` only knows gRPC ones.
    public enum Origin: Sendable { case http, grpc }

    struct Subscription {
        var store: String
        var origin: Origin
        var pump: Task<Void, Never>
    }

    let components: ComponentStore
    let appChannel: (any AppChannel)?
    let logger: Logger
    private let subscriptions = Mutex<[String: Subscription]>([:])

    public init(components: ComponentStore, appChannel: (any AppChannel)?, logger: Logger) {
        self.components = components
        self.appChannel = appChannel
        self.logger = logger
    }

    func store(_ name: String) throws(APIError) -> any ConfigurationStore {
        guard self.components.count(in: .configuration) > 0 else { throw .configurationStoresNotConfigured }
        guard let store = self.components.configurationStore(named: name) else { throw .configurationStoreNotFound(name) }
        return store
    }

    public func get(storeName: String, keys: [String], metadata: [String: String] = [:]) async throws(APIError) -> [String: ConfigurationItem] {
        let store = try self.store(storeName)
        if let key = keys.first(where: { NULText.contains($0) }) { throw .containsNUL("configuration key", key) }
        do {
            return try await self.components.call(storeName, .configuration, "get") { try await store.get(keys: keys, metadata: metadata) }
        } catch {
            throw .configurationGet(keys: keys, store: storeName, "\(error)")
        }
    }

    /// Starts a subscription and returns its id. `deliver` receives every batch of changes, one
    /// call at a time; `ended` runs once when the subscription ends (unsubscribed, or the watch
    /// broke). Keys are sorted, as daprd does.
    public func subscribe(
        storeName: String,
        keys: [String],
        metadata: [String: String] = [:],
        origin: Origin,
        deliver: @escaping @Sendable (_ id: String, _ items: [String: ConfigurationItem]) async -> Void,
        ended: @escaping @Sendable () -> Void = {}
    ) async throws(APIError) -> String {
        let store = try self.store(storeName)
        if let key = keys.first(where: { NULText.contains($0) }) { throw .containsNUL("configuration key", key) }
        let keys = keys.sorted()
        let updates: ConfigurationUpdates
        do {
            updates = try await self.components.call(storeName, .configuration, "subscribe") { [keys] in try await store.subscribe(keys: keys, metadata: metadata) }
        } catch {
            throw .configurationSubscribe(keys: keys, store: storeName, "\(error)")
        }
        let id = RandomID.uuid()
        let logger = self.logger
        // The pump waits for its registration, so an unsubscribe can always find a live pump.
        let registered = StopSignal()
        let pump = Task {
            await registered.wait()
            do {
                for try await batch in updates {
                    if Task.isCancelled { break }
                    await deliver(id, batch)
                }
            } catch {
                logger.warning("configuration subscription \(id) on \(storeName) ended: \(error)")
            }
            self.subscriptions.withLock { _ = $0.removeValue(forKey: id) }
            ended()
        }
        self.subscriptions.withLock { $0[id] = Subscription(store: storeName, origin: origin, pump: pump) }
        registered.stop()
        return id
    }

    /// HTTP subscribe: changes are POSTed to the app at `/configuration/<store>/<key>`, once per
    /// changed key, each with the whole batch (`{"id":…,"items":{…}}`), as daprd does.
    public func subscribeForApp(storeName: String, keys: [String], metadata: [String: String] = [:]) async throws(APIError) -> String {
        _ = try self.store(storeName)
        guard let appChannel = self.appChannel else { throw .appChannelNil }
        let logger = self.logger
        return try await self.subscribe(storeName: storeName, keys: keys, metadata: metadata, origin: .http) { id, items in
            let body = ByteBuffer(bytes: Self.event(id: id, items: items).serialized)
            for key in items.keys.sorted() {
                let request = InvocationRequest(
                    method: "configuration/\(storeName)/\(key)",
                    httpVerb: "POST",
                    contentType: "application/json",
                    body: BodyStream(buffer: body)
                )
                do {
                    let status = try await appChannel.invoke(request) { response in
                        _ = try? await response.body.collect(upTo: 1 << 20)
                        return response.status
                    }
                    if status != 200 {
                        logger.warning("the app answered \(status) to configuration update \(id) for \(key)")
                    }
                } catch {
                    logger.warning("configuration update \(id) for \(key) could not reach the app: \(error)")
                }
            }
        }
    }

    /// Ends a subscription. `origin` limits the search (gRPC's unsubscribe knows only gRPC
    /// subscriptions); `storeName` must match when given. Throws `ERR_CONFIGURATION_UNSUBSCRIBE`.
    public func unsubscribe(storeName: String?, id: String, origin: Origin? = nil) async throws(APIError) {
        let pump: Task<Void, Never>? = self.subscriptions.withLock { subscriptions in
            guard let subscription = subscriptions[id],
                storeName.map({ $0 == subscription.store }) ?? true,
                origin.map({ $0 == subscription.origin }) ?? true
            else { return nil }
            subscriptions[id] = nil
            return subscription.pump
        }
        guard let pump else { throw .configurationUnsubscribe(id: id, "subscription does not exist") }
        pump.cancel()
        await pump.value
    }

    /// Ends every subscription (sidecar shutdown).
    public func unsubscribeAll() async {
        let pumps = self.subscriptions.withLock { subscriptions in
            defer { subscriptions = [:] }
            return subscriptions.values.map(\.pump)
        }
        for pump in pumps { pump.cancel() }
        for pump in pumps { await pump.value }
    }

    /// `{"id":…,"items":{key:{value,version,metadata}}}`, fields left out when empty (Go's omitempty).
    public static func event(id: String, items: [String: ConfigurationItem]) -> JSONValue {
        .object([("id", .string(id)), ("items", self.items(items))])
    }

    /// The items map as daprd writes it: empty fields left out.
    public static func items(_ items: [String: ConfigurationItem]) -> JSONValue {
        .object(sorted: items.mapValues { item in
            var members: [(String, JSONValue)] = []
            if !item.value.isEmpty { members.append(("value", .string(item.value))) }
            if !item.version.isEmpty { members.append(("version", .string(item.version))) }
            if !item.metadata.isEmpty { members.append(("metadata", .stringMap(item.metadata))) }
            return .object(members)
        })
    }
}
