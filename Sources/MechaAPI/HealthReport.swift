public import MechaCore
public import MechaRuntime

/// `GET /v1.0/healthz?detail` (and Layotto's `/actuator/health/readiness`): why the sidecar is or
/// is not ready, and the health of every component and building block with reasons and times.
/// Readiness is the sidecar's own (`/v1.0/healthz`): a sick component shows here, under its block,
/// without making the sidecar or unrelated blocks unready.
public struct HealthReport: Sendable {
    public var ready: Bool
    public var document: JSONValue

    public init(api: DaprAPI) {
        self.init(readiness: api.readiness, components: api.metadata.components, health: api.health, appID: api.identity.appID)
    }

    public init(readiness: Readiness, components: ComponentStore, health: ComponentHealth, appID: String) {
        let notReady = readiness.notReadyTargets
        self.ready = notReady.isEmpty
        var blocks: [String: (healthy: Int, unhealthy: [String], failed: [String])] = [:]
        var entries: [JSONValue] = []
        for status in components.statuses {
            let block = status.type.category.rawValue
            var members: [(String, JSONValue)] = [
                ("name", .string(status.name)),
                ("type", .string(status.type.description)),
                ("version", .string(status.version)),
                ("block", .string(block)),
            ]
            var tally = blocks[block] ?? (0, [], [])
            switch status.health {
            case .failed(let reason):
                members += [("status", "failed"), ("reason", .string(reason))]
                tally.failed.append(status.name)
            case .ready:
                let record = health.record(of: status.name)
                if let since = record.unhealthySince {
                    members += [("status", "unhealthy"), ("since", .string(since.rfc3339Nano))]
                    if let error = record.lastError { members.append(("reason", .string(error))) }
                    tally.unhealthy.append(status.name)
                } else {
                    members.append(("status", "healthy"))
                    tally.healthy += 1
                }
                members.append(("consecutiveFailures", .number(String(record.consecutiveFailures))))
                if let time = record.lastSuccess { members.append(("lastSuccess", .string(time.rfc3339Nano))) }
                if let time = record.lastFailure { members.append(("lastFailure", .string(time.rfc3339Nano))) }
                if record.unhealthySince == nil, let error = record.lastError { members.append(("lastError", .string(error))) }
            }
            blocks[block] = tally
            entries.append(.object(members))
        }
        let blockList: [JSONValue] = blocks.keys.sorted().map { name in
            let tally = blocks[name]!
            let status = tally.unhealthy.isEmpty && tally.failed.isEmpty ? "healthy" : (tally.healthy > 0 ? "degraded" : "unhealthy")
            return .object([
                ("block", .string(name)),
                ("status", .string(status)),
                ("unhealthy", .array((tally.unhealthy + tally.failed).map { .string($0) })),
            ])
        }
        var members: [(String, JSONValue)] = [
            ("appID", .string(appID)),
            ("status", .string(notReady.isEmpty ? "ready" : "notReady")),
            ("notReady", .array(notReady.map { .string($0) })),
            ("app", .object([("checked", .bool(readiness.checksAppHealth)), ("healthy", .bool(readiness.isAppHealthy))])),
            ("blocks", .array(blockList)),
            ("components", .array(entries)),
        ]
        let lastKnown = health.lastKnownStateReasons
        if !lastKnown.isEmpty {
            members.append(("runningOnLastKnownState", .bool(true)))
            members.append(("lastKnownStateReasons", .array(lastKnown.map { .string($0) })))
        }
        if let reload = health.lastReload {
            members.append(
                ("lastReload", .object([
                    ("at", .string(reload.at.rfc3339Nano)),
                    ("status", .string(reload.failed.isEmpty ? "applied" : "failed")),
                    ("applied", .array(reload.applied.map { .string($0) })),
                    ("failed", .array(reload.failed.map { .string($0) })),
                ])))
        }
        members += health.extraDetails
        self.document = .object(members)
    }
}
