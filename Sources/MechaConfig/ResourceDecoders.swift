import MechaCore

/// Turns one YAML document into a typed resource. Every error names file, resource and field.
enum ResourceDecoders {
    static let componentAPIVersion = "dapr.io/v1alpha1"

    static func component(_ root: NodeReader) throws(ResourceError) -> ComponentResource {
        let apiVersion = try root.optional("apiVersion")?.string() ?? ""
        guard apiVersion == self.componentAPIVersion else {
            throw (try root.optional("apiVersion") ?? root).error("unsupported apiVersion '\(apiVersion)' for a Component; expected \(self.componentAPIVersion)")
        }
        let metadata = try root.required("metadata")
        let name = try metadata.required("name").nonEmptyString()
        let namespace = try metadata.optional("namespace")?.string() ?? ""
        let spec = try root.required("spec")
        let typeNode = try spec.required("type")
        let typeText = try typeNode.nonEmptyString()
        guard let type = ComponentType(parsing: typeText) else {
            let categories = ComponentCategory.allCases.map(\.rawValue).joined(separator: ", ")
            throw typeNode.error("'\(typeText)' is not a component type: expected <category>.<name> with category one of \(categories)")
        }
        let version = try spec.optional("version")?.string().trimmingSpaces() ?? ""
        let initTimeout = try spec.optional("initTimeout")?.duration() ?? .seconds(5)
        let ignoreErrors = try spec.optional("ignoreErrors")?.bool() ?? false

        var items: [MetadataItem] = []
        var seen: Set<String> = []
        for entry in try spec.optional("metadata")?.sequence() ?? [] {
            let itemName = try entry.required("name").nonEmptyString()
            guard seen.insert(itemName.lowercased()).inserted else {
                throw entry.error("metadata field '\(itemName)' is listed twice")
            }
            let value: MetadataItem.Value
            if let reference = try entry.optional("secretKeyRef") {
                let secretName = try reference.required("name").nonEmptyString()
                let key = try reference.optional("key")?.string() ?? secretName
                value = .secretKeyRef(name: secretName, key: key)
            } else if let reference = try entry.optional("envRef") {
                value = .envRef(try reference.nonEmptyString())
            } else if let literal = try entry.optional("value") {
                value = .literal(literal.metadataValue())
            } else {
                value = .literal("")
            }
            items.append(MetadataItem(name: itemName, value: value, field: entry.path))
        }
        let secretStore = try root.optional("auth")?.optional("secretStore")?.string()
        let scopes = try root.optional("scopes")?.strings() ?? []
        return ComponentResource(
            name: name,
            namespace: namespace,
            type: type,
            version: version,
            metadata: items,
            initTimeout: initTimeout,
            ignoreErrors: ignoreErrors,
            scopes: scopes,
            secretStore: secretStore?.isEmpty == true ? nil : secretStore,
            source: root.source
        )
    }

    static func configuration(_ root: NodeReader) throws(ResourceError) -> ConfigurationSpec {
        let apiVersion = try root.optional("apiVersion")?.string() ?? ""
        guard apiVersion == self.componentAPIVersion else {
            throw (try root.optional("apiVersion") ?? root).error("unsupported apiVersion '\(apiVersion)' for a Configuration; expected \(self.componentAPIVersion)")
        }
        let name = try root.optional("metadata")?.optional("name")?.string() ?? ""
        var spec = ConfigurationSpec(name: name, source: root.source)
        guard let specNode = try root.optional("spec") else { return spec }

        if let scopes = try specNode.optional("secrets")?.optional("scopes") {
            var seen: Set<String> = []
            for scope in try scopes.sequence() {
                let storeName = try scope.required("storeName").nonEmptyString()
                guard seen.insert(storeName).inserted else {
                    throw scope.error("\(storeName) storeName is repeated in secrets configuration")
                }
                var access = SecretScope.Access.allow
                if let accessNode = try scope.optional("defaultAccess") {
                    let text = try accessNode.string()
                    guard let parsed = SecretScope.Access(rawValue: text.lowercased()) else {
                        throw accessNode.error("defaultAccess \(text) can be either allow or deny")
                    }
                    access = parsed
                }
                spec.secretScopes.append(
                    SecretScope(
                        storeName: storeName,
                        defaultAccess: access,
                        allowedSecrets: try scope.optional("allowedSecrets")?.strings() ?? [],
                        deniedSecrets: try scope.optional("deniedSecrets")?.strings() ?? []
                    )
                )
            }
        }
        if let api = try specNode.optional("api") {
            if let allowed = try api.optional("allowed") {
                spec.apiAllowed = try allowed.sequence().map { (rule: NodeReader) throws(ResourceError) -> APIAccessRule in try self.apiRule(rule) }
            }
            if let denied = try api.optional("denied") {
                spec.apiDenied = try denied.sequence().map { (rule: NodeReader) throws(ResourceError) -> APIAccessRule in try self.apiRule(rule) }
            }
        }
        for feature in try specNode.optional("features")?.sequence() ?? [] {
            let featureName = try feature.required("name").nonEmptyString()
            spec.features[featureName] = try feature.optional("enabled")?.bool() ?? false
        }
        if let resolution = try specNode.optional("nameResolution") {
            spec.nameResolutionComponent = try resolution.optional("component")?.string()
            if let configuration = try resolution.optional("configuration") {
                for (key, value) in try configuration.mapping() {
                    spec.nameResolutionConfiguration[key] = value.metadataValue()
                }
            }
        }
        for handler in try specNode.optional("httpPipeline")?.optional("handlers")?.sequence() ?? [] {
            spec.httpPipeline.append(
                PipelineHandler(name: try handler.required("name").nonEmptyString(), type: try handler.required("type").nonEmptyString()))
        }
        if let metrics = try specNode.optional("metrics") { spec.metrics = try self.metrics(metrics) }
        if let logging = try specNode.optional("logging") { spec.apiLogging = try self.apiLogging(logging) }
        if let tracing = try specNode.optional("tracing") { spec.tracing = try self.tracing(tracing) }
        if let accessControl = try specNode.optional("accessControl") { spec.accessControl = try self.accessControl(accessControl) }
        if let mtls = try specNode.optional("mtls") { spec.mtls = try self.mtls(mtls) }
        return spec
    }

    private static func apiRule(_ node: NodeReader) throws(ResourceError) -> APIAccessRule {
        let name = try node.required("name").nonEmptyString()
        let version = try node.required("version").nonEmptyString()
        var apiProtocol: APIAccessRule.APIProtocol?
        if let protocolNode = try node.optional("protocol") {
            let text = try protocolNode.string()
            guard let parsed = APIAccessRule.APIProtocol(rawValue: text.lowercased()) else {
                throw protocolNode.error("protocol must be http or grpc, found '\(text)'")
            }
            apiProtocol = parsed
        }
        return APIAccessRule(name: name, version: version, apiProtocol: apiProtocol)
    }

    static func subscription(_ root: NodeReader) throws(ResourceError) -> SubscriptionSpec {
        let apiVersionNode = try root.optional("apiVersion")
        let apiVersion = try apiVersionNode?.string() ?? ""
        guard apiVersion == "dapr.io/v1alpha1" || apiVersion == "dapr.io/v2alpha1" else {
            throw (apiVersionNode ?? root).error("unsupported apiVersion '\(apiVersion)' for a Subscription; expected dapr.io/v1alpha1 or dapr.io/v2alpha1")
        }
        let name = try root.optional("metadata")?.optional("name")?.string() ?? ""
        let spec = try root.required("spec")
        let pubsubName = try spec.required("pubsubname").nonEmptyString()
        let topic = try spec.required("topic").nonEmptyString()

        var routes = SubscriptionRoutes()
        if apiVersion == "dapr.io/v1alpha1" {
            if let route = try spec.optional("route") {
                routes.defaultPath = try route.nonEmptyString()
            } else if try spec.optional("routes") != nil {
                routes = try self.routes(try spec.required("routes"))
            } else {
                throw spec.error("a v1alpha1 Subscription needs spec.route")
            }
        } else {
            if let routesNode = try spec.optional("routes") {
                routes = try self.routes(routesNode)
            } else if let route = try spec.optional("route") {
                routes.defaultPath = try route.nonEmptyString()
            } else {
                throw spec.error("a v2alpha1 Subscription needs spec.routes")
            }
        }
        // A v2alpha1 `routes` with neither rules nor a default is kept, as daprd keeps it: nothing
        // matches, so every message is dropped (or dead-lettered). The runtime warns about it.
        var bulk: BulkSubscribeOptions?
        if let bulkNode = try spec.optional("bulkSubscribe") {
            bulk = BulkSubscribeOptions(
                enabled: try bulkNode.optional("enabled")?.bool() ?? false,
                maxMessagesCount: try bulkNode.optional("maxMessagesCount")?.int() ?? 100,
                maxAwaitDurationMs: try bulkNode.optional("maxAwaitDurationMs")?.int() ?? 1000
            )
        }
        let deadLetter = try spec.optional("deadLetterTopic")?.string()
        return SubscriptionSpec(
            name: name,
            pubsubName: pubsubName,
            topic: topic,
            routes: routes,
            metadata: try spec.optional("metadata")?.stringMap() ?? [:],
            deadLetterTopic: deadLetter?.isEmpty == true ? nil : deadLetter,
            bulkSubscribe: bulk,
            scopes: try root.optional("scopes")?.strings() ?? [],
            origin: .declarative,
            source: root.source
        )
    }

    private static func routes(_ node: NodeReader) throws(ResourceError) -> SubscriptionRoutes {
        var routes = SubscriptionRoutes()
        routes.defaultPath = try node.optional("default")?.nonEmptyString()
        for rule in try node.optional("rules")?.sequence() ?? [] {
            let match = try rule.optional("match")?.string() ?? ""
            let path = try rule.required("path").nonEmptyString()
            routes.rules.append(RouteRule(match: match, path: path))
        }
        return routes
    }
}
