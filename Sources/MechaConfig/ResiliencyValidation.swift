public import MechaCore

/// Checks that hold only across every loaded `Resiliency` resource: Dapr merges them, so a target in
/// one resource may use a policy defined in another.
public enum ResiliencyValidation {
    /// Fails when a target names a timeout, retry or circuit breaker that no resource defines, or
    /// when two resources define a policy of the same kind under the same name (the second is
    /// reported). Every problem is reported, each naming the file, the resource and the field
    /// (`spec.targets.apps.appB.retry`).
    public static func validateReferences(_ specs: [ResiliencySpec]) throws(ResourceLoadError) {
        let errors = self.referenceErrors(specs)
        guard errors.isEmpty else { throw ResourceLoadError(errors) }
    }

    /// The problems `validateReferences` reports, in resource order then field order.
    static func referenceErrors(_ specs: [ResiliencySpec]) -> [ResourceError] {
        var errors: [ResourceError] = []
        var timeouts: [String: ResourceSource] = [:]
        var retries: [String: ResourceSource] = [:]
        var breakers: [String: ResourceSource] = [:]
        func define(_ names: some Collection<String>, kind: String, field: String, in spec: ResiliencySpec, into owners: inout [String: ResourceSource]) {
            for name in names.sorted() {
                if let first = owners[name] {
                    errors.append(
                        ResourceError(
                            source: spec.source, field: "spec.policies.\(field).\(name)",
                            reason: "\(kind) policy '\(name)' is already defined by \(first.resource) in \(first.file)"))
                } else {
                    owners[name] = spec.source
                }
            }
        }
        for spec in specs {
            define(spec.timeouts.keys, kind: "timeout", field: "timeouts", in: spec, into: &timeouts)
            define(spec.retries.keys, kind: "retry", field: "retries", in: spec, into: &retries)
            define(spec.circuitBreakers.keys, kind: "circuit breaker", field: "circuitBreakers", in: spec, into: &breakers)
        }

        func check(_ names: TargetPolicyNames, at field: String, in spec: ResiliencySpec) {
            let references: [(String?, String, String, [String: ResourceSource])] = [
                (names.timeout, "timeout", "timeout", timeouts),
                (names.retry, "retry", "retry", retries),
                (names.circuitBreaker, "circuitBreaker", "circuit breaker", breakers),
            ]
            for (name, key, kind, defined) in references {
                guard let name, defined[name] == nil else { continue }
                errors.append(ResourceError(source: spec.source, field: "\(field).\(key)", reason: "unknown \(kind) policy '\(name)'"))
            }
        }
        for spec in specs {
            for (appID, names) in spec.apps.sorted(by: { $0.key < $1.key }) {
                check(names, at: "spec.targets.apps.\(appID)", in: spec)
            }
            for (actorType, names) in spec.actors.sorted(by: { $0.key < $1.key }) {
                check(names, at: "spec.targets.actors.\(actorType)", in: spec)
            }
            for (component, policies) in spec.components.sorted(by: { $0.key < $1.key }) {
                if let outbound = policies.outbound { check(outbound, at: "spec.targets.components.\(component).outbound", in: spec) }
                if let inbound = policies.inbound { check(inbound, at: "spec.targets.components.\(component).inbound", in: spec) }
            }
        }
        return errors
    }
}
