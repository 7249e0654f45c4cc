import MechaCore

/// Decodes the app's `GET /dapr/subscribe` answer (keys matched case-insensitively, as Go does).
enum ProgrammaticSubscriptions {
    struct DecodingError: Error, CustomStringConvertible {
        var description: String
    }

    static func decode(_ bytes: [UInt8]) throws -> [SubscriptionSpec] {
        let json: JSONValue
        do {
            json = try JSONValue(parsing: bytes)
        } catch {
            throw DecodingError(description: "error getting topics from app: \(error)")
        }
        guard case .array(let items) = json else {
            if json.isNull { return [] }
            throw DecodingError(description: "error getting topics from app: expected a JSON array")
        }
        var result: [SubscriptionSpec] = []
        for item in items {
            guard case .object(let members) = item else { throw DecodingError(description: "error getting topics from app: expected objects") }
            func field(_ name: String) -> JSONValue? {
                members.last { $0.0.lowercased() == name.lowercased() }?.1
            }
            let pubsub = field("pubsubname")?.stringValue ?? ""
            let topic = field("topic")?.stringValue ?? ""
            var routes = SubscriptionRoutes()
            if let routesValue = field("routes"), case .object(let routeMembers) = routesValue {
                func routeField(_ name: String) -> JSONValue? { routeMembers.last { $0.0.lowercased() == name }?.1 }
                for rule in routeField("rules")?.arrayValues ?? [] {
                    guard case .object(let ruleMembers) = rule else { continue }
                    let match = ruleMembers.last { $0.0.lowercased() == "match" }?.1.stringValue ?? ""
                    let path = ruleMembers.last { $0.0.lowercased() == "path" }?.1.stringValue ?? ""
                    if !path.isEmpty { routes.rules.append(RouteRule(match: match, path: path)) }
                }
                if let defaultPath = routeField("default")?.stringValue, !defaultPath.isEmpty { routes.defaultPath = defaultPath }
            }
            if routes.defaultPath == nil, let route = field("route")?.stringValue, !route.isEmpty { routes.defaultPath = route }
            var metadata: [String: String] = [:]
            if let value = field("metadata") {
                guard let map = value.stringDictionary else {
                    throw DecodingError(description: "error getting topics from app: metadata values must be strings")
                }
                metadata = map
            }
            var bulk: BulkSubscribeOptions?
            if case .object(let bulkMembers)? = field("bulkSubscribe") {
                func bulkField(_ name: String) -> JSONValue? { bulkMembers.last { $0.0.lowercased() == name.lowercased() }?.1 }
                bulk = BulkSubscribeOptions(
                    enabled: bulkField("enabled")?.boolValue ?? false,
                    maxMessagesCount: bulkField("maxMessagesCount")?.intValue ?? 100,
                    maxAwaitDurationMs: bulkField("maxAwaitDurationMs")?.intValue ?? 1000
                )
            }
            let deadLetter = field("deadLetterTopic")?.stringValue
            guard !pubsub.isEmpty, !topic.isEmpty else { continue }
            result.append(
                SubscriptionSpec(
                    pubsubName: pubsub,
                    topic: topic,
                    routes: routes,
                    metadata: metadata,
                    deadLetterTopic: deadLetter?.isEmpty == true ? nil : deadLetter,
                    bulkSubscribe: bulk,
                    origin: .programmatic
                )
            )
        }
        return result
    }
}
