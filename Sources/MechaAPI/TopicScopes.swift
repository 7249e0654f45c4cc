public import MechaCore

/// Which topics an app may publish or subscribe to on one pub/sub component, from the component's
/// `publishingScopes`, `subscriptionScopes`, `allowedTopics` and `protectedTopics` metadata.
public struct TopicScopes: Sendable, Hashable {
    public var publishing: [String]?
    public var subscribing: [String]?
    public var allowedTopics: [String]
    public var protectedTopics: [String]

    public init(metadata: ComponentMetadata, appID: String) {
        self.publishing = Self.appScopes(metadata["publishingScopes"], appID: appID)
        self.subscribing = Self.appScopes(metadata["subscriptionScopes"], appID: appID)
        self.allowedTopics = Self.list(metadata["allowedTopics"])
        self.protectedTopics = Self.list(metadata["protectedTopics"])
    }

    public func mayPublish(_ topic: String) -> Bool { self.isAllowed(topic, scoped: self.publishing ?? []) }
    public func maySubscribe(_ topic: String) -> Bool { self.isAllowed(topic, scoped: self.subscribing ?? []) }

    /// Dapr's rule: outside `allowedTopics` (when set) is denied; an unprotected topic is allowed when
    /// the app has no list; otherwise only topics in the app's list are allowed.
    func isAllowed(_ topic: String, scoped: [String]) -> Bool {
        if !self.allowedTopics.isEmpty, !self.allowedTopics.contains(topic) { return false }
        if !self.protectedTopics.contains(topic), scoped.isEmpty { return true }
        return scoped.contains(topic)
    }

    static func list(_ raw: String?) -> [String] {
        guard let raw else { return [] }
        return raw.replacing(" ", with: "").split(separator: ",").map(String.init).filter { !$0.isEmpty }
    }

    /// `app1=t1,t2;app2=t3;app3=` → this app's topics (`[""]` when listed with nothing).
    static func appScopes(_ raw: String?, appID: String) -> [String]? {
        guard let raw else { return nil }
        var topics: [String]?
        for entry in raw.replacing(" ", with: "").split(separator: ";") {
            let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == appID else { continue }
            let listed = parts[1].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            topics = (topics ?? []) + listed
        }
        return topics
    }
}
