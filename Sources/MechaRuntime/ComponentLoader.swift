#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import Logging
public import MechaCore
import MechaResiliency

/// Why the sidecar cannot start with these components.
public struct ComponentInitError: Error, Sendable, CustomStringConvertible {
    public var errors: [String]
    public init(_ errors: [String]) { self.errors = errors }
    public var description: String { self.errors.joined(separator: "\n") }
}

/// Builds live components from resources: scopes, duplicate names, secret references, placeholders,
/// init timeouts and `ignoreErrors`, in Dapr's order (secret stores first, then file order).
public struct ComponentLoader: Sendable {
    public var registry: ComponentRegistry
    public var context: ComponentContext
    public var environment: [String: String]

    public init(registry: ComponentRegistry, context: ComponentContext, environment: [String: String]) {
        self.registry = registry
        self.context = context
        self.environment = environment
    }

    /// Initialises every in-scope component into `store`. Throws when a component without
    /// `ignoreErrors` fails; failed ones with `ignoreErrors` are recorded in the store as unhealthy.
    public func load(_ resources: [ComponentResource], into store: ComponentStore) async throws {
        let logger = self.context.logger
        var inScope: [ComponentResource] = []
        var seen: [String: ComponentResource] = [:]
        var errors: [String] = []
        for resource in resources {
            // Scopes first, as in Dapr: a same-named component meant for another app is no conflict.
            guard resource.isInScope(appID: self.context.appID) else {
                logger.debug("component not in scope of this app; skipped", metadata: ["component": "\(resource.name)"])
                continue
            }
            if let existing = seen[resource.name] {
                errors.append(
                    "\(resource.source): duplicate definition of Component name \(resource.name) (\(resource.type)/\(resource.version)) with existing \(existing.name) (\(existing.type)/\(existing.version)) from \(existing.source.file)"
                )
                continue
            }
            seen[resource.name] = resource
            // Unknown types are reported before anything is initialised, naming file and field.
            if case .failure(let lookup) = self.registry.factory(for: resource.type, version: resource.version) {
                let error = ResourceError(source: resource.source, field: "spec.type", reason: lookup.description)
                if resource.ignoreErrors {
                    logger.error("ignoring error processing component", metadata: ["error": "\(error)"])
                    store.markFailed(self.unresolvedSpec(resource), reason: lookup.description)
                } else {
                    errors.append(error.description)
                }
                continue
            }
            inScope.append(resource)
        }
        guard errors.isEmpty else { throw ComponentInitError(errors) }

        let ordered = inScope.filter { $0.type.category == .secretstores } + inScope.filter { $0.type.category != .secretstores }
        let pubsubNames = Set(inScope.filter { $0.type.category == .pubsub }.map(\.name))
        for resource in ordered {
            do {
                let spec = try await self.resolve(resource, secrets: store)
                if spec.type.category == .state { try self.validateOutbox(spec, pubsubs: pubsubNames) }
                let component = try await self.initialise(spec)
                store.add(component, spec: spec)
                logger.info("Component loaded: \(resource.name) (\(resource.type)/\(resource.version.isEmpty ? "v1" : resource.version))")
            } catch {
                let message: String
                if let resourceError = error as? ResourceError {
                    message = resourceError.description
                } else {
                    message = "\(resource.source): initialization error occurred for \(resource.name) (\(resource.type)/\(resource.version)): \(error)"
                }
                if resource.ignoreErrors {
                    logger.error("ignoring error processing component (ignoreErrors: true)", metadata: ["error": "\(message)"])
                    store.markFailed(self.unresolvedSpec(resource), reason: "\(error)")
                } else {
                    throw ComponentInitError([message])
                }
            }
        }
    }

    /// Builds a component that is not kept in a store (e.g. the name resolver): secret references
    /// resolved from `secrets`, init timeout applied.
    public func build(_ resource: ComponentResource, secrets: ComponentStore) async throws -> (any Component, ComponentSpec) {
        let spec = try await self.resolve(resource, secrets: secrets)
        return (try await self.initialise(spec), spec)
    }

    /// Builds one component for hot reload, as `load` would (secret references from `store`, the
    /// outbox checked against `pubsubs`), without touching the store. Errors name the file and field.
    public func buildForReload(_ resource: ComponentResource, store: ComponentStore, pubsubs: Set<String>) async throws -> (any Component, ComponentSpec) {
        if case .failure(let lookup) = self.registry.factory(for: resource.type, version: resource.version) {
            throw ResourceError(source: resource.source, field: "spec.type", reason: lookup.description)
        }
        let spec = try await self.resolve(resource, secrets: store)
        if spec.type.category == .state { try self.validateOutbox(spec, pubsubs: pubsubs) }
        return (try await self.initialise(spec), spec)
    }

    /// Builds one component, bounded by its init timeout.
    func initialise(_ spec: ComponentSpec) async throws -> any Component {
        let factory = try self.registry.factory(for: spec.type, version: spec.version).get()
        let context = self.context
        do {
            return try await TimeoutPolicy(name: "initTimeout", timeout: spec.initTimeout).execute {
                try await factory.make(spec: spec, context: context)
            }
        } catch let error as ComponentConfigurationError {
            throw spec.error(error)
        } catch let error as ResiliencyError where error.code == .timeout {
            throw InitTimeout(description: "init timeout for component \(spec.name) (\(spec.type)/\(spec.version)) after \(GoDuration.format(spec.initTimeout))")
        }
    }

    /// A state store's transactional outbox settings must be complete, and name a pub/sub this app
    /// loads: daprd silently disables a half-configured outbox and fails every transaction of a
    /// store whose pub/sub is missing; Mecha refuses to start instead, naming the field.
    func validateOutbox(_ spec: ComponentSpec, pubsubs: Set<String>) throws(ResourceError) {
        let settings: StateOutboxSettings?
        do {
            settings = try StateOutboxSettings.parse(spec.metadata)
        } catch {
            throw spec.error(error)
        }
        guard let settings else { return }
        guard pubsubs.contains(settings.publishPubsub) else {
            throw spec.error(
                ComponentConfigurationError(
                    key: StateOutboxSettings.publishPubsubKey,
                    reason: "the transactional outbox publishes to pub/sub component '\(settings.publishPubsub)', which is not defined for app '\(self.context.appID)'"
                )
            )
        }
        if settings.outboxPubsub != settings.publishPubsub {
            self.context.logger.info(
                "state store \(spec.name): \(StateOutboxSettings.outboxPubsubKey) '\(settings.outboxPubsub)' is accepted but not used: Mecha publishes outbox messages to '\(settings.publishPubsub)' directly after the transaction commits, without an internal topic"
            )
        }
    }

    struct InitTimeout: Error, CustomStringConvertible {
        var description: String
    }

    /// Resolves secret references, environment references and placeholders into plain strings.
    func resolve(_ resource: ComponentResource, secrets: ComponentStore) async throws -> ComponentSpec {
        var metadata = ComponentMetadata()
        for item in resource.metadata {
            let field = item.field
            var value: String
            switch item.value {
            case .literal(let text):
                value = text
            case .envRef(let variable):
                guard let text = self.environment[variable] else {
                    throw ResourceError(source: resource.source, field: "\(field).envRef", reason: "environment variable \(variable) is not set")
                }
                value = text
            case .secretKeyRef(let name, let key):
                guard let storeName = resource.secretStore else {
                    throw ResourceError(
                        source: resource.source,
                        field: "\(field).secretKeyRef",
                        reason: "secretKeyRef needs auth.secretStore naming the secret store to read it from"
                    )
                }
                guard let store = secrets.secretStore(named: storeName) else {
                    throw ResourceError(source: resource.source, field: "auth.secretStore", reason: "secret store \(storeName) is not loaded")
                }
                let data: [String: String]
                do {
                    data = try await store.secret(named: name, metadata: [:])
                } catch {
                    throw ResourceError(source: resource.source, field: "\(field).secretKeyRef", reason: "cannot read secret \(name) from \(storeName): \(error)")
                }
                guard let secret = data[key] else {
                    throw ResourceError(source: resource.source, field: "\(field).secretKeyRef.key", reason: "secret \(name) in \(storeName) has no key \(key)")
                }
                value = secret
            }
            value = try self.substitutePlaceholders(value, resource: resource, field: field)
            metadata.set(item.name, value, field: "\(field).value")
        }
        // Pub/sub consumers default to one group per app id (competing consumers), as in Dapr.
        if resource.type.category == .pubsub, (metadata["consumerID"] ?? "").trimmingSpaces().isEmpty {
            metadata["consumerID"] = self.context.appID
        }
        return ComponentSpec(
            name: resource.name,
            namespace: resource.namespace,
            type: resource.type,
            version: resource.version,
            metadata: metadata,
            initTimeout: resource.initTimeout,
            ignoreErrors: resource.ignoreErrors,
            scopes: resource.scopes,
            source: resource.source
        )
    }

    /// `{uuid}`, `{appID}`, `{namespace}` (as `<namespace>.<appID>`) and `{podName}`.
    func substitutePlaceholders(_ value: String, resource: ComponentResource, field: String) throws -> String {
        guard value.contains("{") else { return value }
        var result = value
        while let range = result.firstRange(of: "{uuid}") {
            result.replaceSubrange(range, with: UUID().uuidString.lowercased())
        }
        result = result.replacing("{appID}", with: self.context.appID)
        result = result.replacing("{namespace}", with: "\(self.context.namespace).\(self.context.appID)")
        if result.contains("{podName}") {
            guard let pod = self.environment["POD_NAME"], !pod.isEmpty else {
                throw ResourceError(source: resource.source, field: field, reason: "{podName} is used but POD_NAME is not set")
            }
            result = result.replacing("{podName}", with: pod)
        }
        return result
    }

    private func unresolvedSpec(_ resource: ComponentResource) -> ComponentSpec {
        ComponentSpec(name: resource.name, namespace: resource.namespace, type: resource.type, version: resource.version, source: resource.source)
    }
}

/// A state store's transactional outbox (component metadata `outboxPublishPubsub`,
/// `outboxPublishTopic`, `outboxPubsub`, `outboxDiscardWhenMissingState`, as in daprd's
/// `pkg/runtime/pubsub/outbox.go`). With both required keys set, every upsert of a successful
/// `ExecuteStateTransaction` is published as a CloudEvent to `outboxPublishTopic` on
/// `outboxPublishPubsub`.
public struct StateOutboxSettings: Sendable, Hashable {
    public static let publishPubsubKey = "outboxPublishPubsub"
    public static let publishTopicKey = "outboxPublishTopic"
    public static let outboxPubsubKey = "outboxPubsub"
    public static let discardWhenMissingStateKey = "outboxDiscardWhenMissingState"

    public var publishPubsub: String
    public var publishTopic: String
    /// daprd's pub/sub for its internal coordination topic (default: `publishPubsub`). Mecha has no
    /// internal topic: accepted, not used.
    public var outboxPubsub: String
    /// daprd drops an internal message whose transaction never committed instead of retrying it.
    /// Mecha never publishes for an uncommitted transaction, so it changes nothing.
    public var discardWhenMissingState: Bool

    public init(publishPubsub: String, publishTopic: String, outboxPubsub: String? = nil, discardWhenMissingState: Bool = false) {
        self.publishPubsub = publishPubsub
        self.publishTopic = publishTopic
        self.outboxPubsub = outboxPubsub.flatMap { $0.isEmpty ? nil : $0 } ?? publishPubsub
        self.discardWhenMissingState = discardWhenMissingState
    }

    /// The settings, or nil when neither required key is set (empty counts as unset, as in daprd).
    /// Throws naming the missing key when only one of the two is set.
    public static func parse(_ metadata: ComponentMetadata) throws(ComponentConfigurationError) -> StateOutboxSettings? {
        let pubsub = metadata[Self.publishPubsubKey]?.trimmingSpaces() ?? ""
        let topic = metadata[Self.publishTopicKey]?.trimmingSpaces() ?? ""
        switch (pubsub.isEmpty, topic.isEmpty) {
        case (true, true):
            return nil
        case (false, true):
            throw ComponentConfigurationError(
                key: Self.publishTopicKey,
                reason: "required by the transactional outbox: \(Self.publishPubsubKey) is set to '\(pubsub)' but \(Self.publishTopicKey) is missing"
            )
        case (true, false):
            throw ComponentConfigurationError(
                key: Self.publishPubsubKey,
                reason: "required by the transactional outbox: \(Self.publishTopicKey) is set to '\(topic)' but \(Self.publishPubsubKey) is missing"
            )
        case (false, false):
            let discard = (metadata[Self.discardWhenMissingStateKey] ?? "").trimmingSpaces().lowercased()
            return StateOutboxSettings(
                publishPubsub: pubsub,
                publishTopic: topic,
                outboxPubsub: metadata[Self.outboxPubsubKey]?.trimmingSpaces(),
                // daprd's kit `IsTruthy`: anything else is false.
                discardWhenMissingState: ["1", "t", "true", "y", "yes", "on"].contains(discard)
            )
        }
    }
}
