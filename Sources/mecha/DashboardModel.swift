import MechaCore

/// One Prometheus sample: name, labels, value.
struct MetricSample: Sendable, Hashable {
    var name: String
    var labels: [String: String]
    var value: Double
}

/// Prometheus's text format, as much of it as the dashboard reads: `name{k="v",…} value` lines;
/// comments and malformed lines are skipped (a sidecar answering garbage shows as no data).
enum PrometheusText {
    static func parse(_ text: String) -> [MetricSample] {
        var samples: [MetricSample] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("#") { continue }
            guard let sample = Self.line(line) else { continue }
            samples.append(sample)
        }
        return samples
    }

    static func line(_ line: Substring) -> MetricSample? {
        var labels: [String: String] = [:]
        let name: Substring
        var rest: Substring
        if let brace = line.firstIndex(of: "{") {
            name = line[..<brace]
            guard let close = Self.labels(line[line.index(after: brace)...], into: &labels) else { return nil }
            rest = line[close...]
        } else {
            guard let space = line.firstIndex(of: " ") else { return nil }
            name = line[..<space]
            rest = line[space...]
        }
        rest = rest.drop { $0 == " " }
        let valueText = rest.prefix { $0 != " " }
        let value: Double? =
            switch valueText {
            case "+Inf": .infinity
            case "-Inf": -.infinity
            case "NaN": .nan
            default: Double(valueText)
            }
        guard !name.isEmpty, let value else { return nil }
        return MetricSample(name: String(name), labels: labels, value: value)
    }

    /// Reads `k="v",…}`; returns the index after `}`.
    static func labels(_ text: Substring, into labels: inout [String: String]) -> Substring.Index? {
        var index = text.startIndex
        while index < text.endIndex {
            if text[index] == "}" { return text.index(after: index) }
            if text[index] == "," || text[index] == " " {
                index = text.index(after: index)
                continue
            }
            guard let equals = text[index...].firstIndex(of: "="), text.index(after: equals) < text.endIndex, text[text.index(after: equals)] == "\"" else { return nil }
            let key = String(text[index..<equals])
            var value = ""
            var cursor = text.index(equals, offsetBy: 2)
            var closed = false
            while cursor < text.endIndex {
                let character = text[cursor]
                if character == "\\", text.index(after: cursor) < text.endIndex {
                    let next = text[text.index(after: cursor)]
                    value.append(next == "n" ? "\n" : next)
                    cursor = text.index(cursor, offsetBy: 2)
                    continue
                }
                if character == "\"" {
                    closed = true
                    cursor = text.index(after: cursor)
                    break
                }
                value.append(character)
                cursor = text.index(after: cursor)
            }
            guard closed else { return nil }
            labels[key] = value
            index = cursor
        }
        return nil
    }
}

/// What the dashboard learned about one sidecar in one round.
struct SidecarObservation: Sendable {
    var instance: AppInstance
    /// When the metrics were read (seconds, monotonic).
    var time: Double
    var samples: [MetricSample]?
    var health: JSONValue?
    var metadata: JSONValue?
    var traces: JSONValue?
}

/// The service graph from two rounds of observations: counters become rates over the interval,
/// histogram buckets become p50/p99 of the interval's observations. Pure: tested without IO.
enum ServiceGraph {
    struct Edge {
        var from: String
        var to: String
        var kind: String
        var count = 0.0
        var errors = 0.0
        var buckets: [Double: Double] = [:]
    }

    static func build(previous: [String: SidecarObservation], current: [SidecarObservation], now: String) -> JSONValue {
        var edges: [String: Edge] = [:]
        var nodes: [String: (kind: String, label: String, health: String, extra: [(String, JSONValue)])] = [:]
        var appInstances: [String: Int] = [:]
        var appRates: [String: Double] = [:]

        func node(_ id: String, kind: String, label: String, health: String = "unknown", extra: [(String, JSONValue)] = []) {
            if let existing = nodes[id], existing.health != "unknown", health == "unknown" { return }
            nodes[id] = (kind, label, health, extra)
        }

        for observation in current {
            let app = observation.instance.appID
            appInstances[app, default: 0] += 1
            node("app:\(app)", kind: "app", label: app, health: Self.appHealth(observation))
            for component in observation.health?["components"]?.arrayValues ?? [] {
                guard let name = component["name"]?.stringValue else { continue }
                let status = component["status"]?.stringValue ?? "unknown"
                node(
                    "component:\(app)/\(name)", kind: "component", label: name,
                    health: status == "healthy" ? "healthy" : (status == "unknown" ? "unknown" : "unhealthy"),
                    extra: [("type", .string(component["type"]?.stringValue ?? ""))])
            }
            for subscription in observation.metadata?["subscriptions"]?.arrayValues ?? [] {
                guard let pubsub = subscription["pubsubname"]?.stringValue, let topic = subscription["topic"]?.stringValue else { continue }
                node("topic:\(pubsub)/\(topic)", kind: "topic", label: "\(pubsub)/\(topic)", health: "healthy")
                let key = "deliver|topic:\(pubsub)/\(topic)|app:\(app)"
                if edges[key] == nil { edges[key] = Edge(from: "topic:\(pubsub)/\(topic)", to: "app:\(app)", kind: "deliver") }
            }
            guard let samples = observation.samples else { continue }
            let before = previous[observation.instance.instanceID]
            let elapsed = before.map { observation.time - $0.time }
            var old: [String: Double] = [:]
            if let previousSamples = before?.samples {
                for sample in previousSamples { old[Self.key(sample)] = sample.value }
            }
            func delta(_ sample: MetricSample) -> Double {
                guard elapsed != nil else { return 0 }
                let was = old[Self.key(sample)] ?? 0
                return sample.value >= was ? sample.value - was : sample.value
            }
            for sample in samples {
                let labels = sample.labels
                let change = delta(sample)
                switch sample.name {
                case "dapr_http_server_request_count", "dapr_grpc_io_server_completed_rpcs":
                    appRates[app, default: 0] += change
                case "dapr_runtime_service_invocation_res_recv_total":
                    guard let target = labels["src_app_id"] else { continue }
                    node("app:\(target)", kind: "app", label: target)
                    Self.add(&edges, from: "app:\(app)", to: "app:\(target)", kind: "invoke", count: change, failed: !Self.isSuccessStatus(labels["status"]))
                case "dapr_runtime_service_invocation_res_recv_latency_ms_bucket":
                    guard let target = labels["src_app_id"], let le = labels["le"].flatMap(Self.bound) else { continue }
                    Self.bucket(&edges, key: "invoke|app:\(app)|app:\(target)", le: le, count: change)
                case "dapr_component_pubsub_egress_count":
                    guard let pubsub = labels["component"], let topic = labels["topic"] else { continue }
                    node("topic:\(pubsub)/\(topic)", kind: "topic", label: "\(pubsub)/\(topic)", health: "healthy")
                    Self.add(&edges, from: "app:\(app)", to: "topic:\(pubsub)/\(topic)", kind: "publish", count: change, failed: labels["success"] == "false")
                case "dapr_component_pubsub_egress_latencies_bucket":
                    guard let pubsub = labels["component"], let topic = labels["topic"], let le = labels["le"].flatMap(Self.bound) else { continue }
                    Self.bucket(&edges, key: "publish|app:\(app)|topic:\(pubsub)/\(topic)", le: le, count: change)
                case "dapr_component_pubsub_ingress_count":
                    guard let pubsub = labels["component"], let topic = labels["topic"] else { continue }
                    node("topic:\(pubsub)/\(topic)", kind: "topic", label: "\(pubsub)/\(topic)", health: "healthy")
                    Self.add(&edges, from: "topic:\(pubsub)/\(topic)", to: "app:\(app)", kind: "deliver", count: change, failed: labels["process_status"] != "success")
                case "dapr_component_pubsub_ingress_latencies_bucket":
                    guard let pubsub = labels["component"], let topic = labels["topic"], let le = labels["le"].flatMap(Self.bound) else { continue }
                    Self.bucket(&edges, key: "deliver|topic:\(pubsub)/\(topic)|app:\(app)", le: le, count: change)
                default:
                    guard sample.name.hasPrefix("dapr_component_"), let component = labels["component"] else { continue }
                    if sample.name.hasSuffix("_count"), !sample.name.contains("pubsub") {
                        node("component:\(app)/\(component)", kind: "component", label: component)
                        Self.add(&edges, from: "app:\(app)", to: "component:\(app)/\(component)", kind: "component", count: change, failed: labels["success"] == "false")
                    } else if sample.name.hasSuffix("_latencies_bucket"), !sample.name.contains("pubsub"), let le = labels["le"].flatMap(Self.bound) {
                        Self.bucket(&edges, key: "component|app:\(app)|component:\(app)/\(component)", le: le, count: change)
                    }
                }
            }
        }
        // Rates: every instance contributes its own interval; the common interval is the round's.
        let interval = Self.interval(previous: previous, current: current)
        var edgeList: [JSONValue] = []
        for key in edges.keys.sorted() {
            let edge = edges[key]!
            let rps = interval.map { edge.count / $0 } ?? 0
            let errorRate = edge.count > 0 ? edge.errors / edge.count : 0
            let health = rps <= 0 ? "idle" : (errorRate > 0.05 ? "failing" : (errorRate > 0 ? "warning" : "healthy"))
            edgeList.append(
                .object([
                    ("from", .string(edge.from)), ("to", .string(edge.to)), ("kind", .string(edge.kind)),
                    ("rps", .number(Self.format(rps))),
                    ("p50", Self.quantile(0.5, edge.buckets).map { .number(Self.format($0)) } ?? .null),
                    ("p99", Self.quantile(0.99, edge.buckets).map { .number(Self.format($0)) } ?? .null),
                    ("errorRate", .number(Self.format(errorRate))), ("health", .string(health)),
                ]))
        }
        let nodeList: [JSONValue] = nodes.keys.sorted().map { id in
            let node = nodes[id]!
            var members: [(String, JSONValue)] = [("id", .string(id)), ("kind", .string(node.kind)), ("label", .string(node.label)), ("health", .string(node.health))]
            if node.kind == "app" {
                members.append(("instances", .number(String(appInstances[node.label] ?? 0))))
                members.append(("rps", .number(Self.format(interval.map { (appRates[node.label] ?? 0) / $0 } ?? 0))))
            }
            return .object(members + node.extra)
        }
        return .object([("generated", .string(now)), ("nodes", .array(nodeList)), ("edges", .array(edgeList))])
    }

    static func interval(previous: [String: SidecarObservation], current: [SidecarObservation]) -> Double? {
        let intervals = current.compactMap { observation in previous[observation.instance.instanceID].map { observation.time - $0.time } }.filter { $0 > 0 }
        guard !intervals.isEmpty else { return nil }
        return intervals.reduce(0, +) / Double(intervals.count)
    }

    static func add(_ edges: inout [String: Edge], from: String, to: String, kind: String, count: Double, failed: Bool) {
        let key = "\(kind)|\(from)|\(to)"
        var edge = edges[key] ?? Edge(from: from, to: to, kind: kind)
        edge.count += count
        if failed { edge.errors += count }
        edges[key] = edge
    }

    static func bucket(_ edges: inout [String: Edge], key: String, le: Double, count: Double) {
        guard var edge = edges[key] else { return }
        edge.buckets[le, default: 0] += count
        edges[key] = edge
    }

    /// Prometheus's `histogram_quantile` over cumulative buckets: linear within the bucket.
    static func quantile(_ q: Double, _ buckets: [Double: Double]) -> Double? {
        let sorted = buckets.sorted { $0.key < $1.key }
        guard let total = sorted.last?.value, total > 0 else { return nil }
        let rank = q * total
        var lowerBound = 0.0
        var lowerCount = 0.0
        for (bound, count) in sorted {
            if count >= rank {
                if bound.isInfinite { return lowerBound }
                let width = count - lowerCount
                return width > 0 ? lowerBound + (bound - lowerBound) * (rank - lowerCount) / width : bound
            }
            lowerBound = bound
            lowerCount = count
        }
        return lowerBound
    }

    static func bound(_ text: String) -> Double? { text == "+Inf" ? .infinity : Double(text) }

    static func isSuccessStatus(_ status: String?) -> Bool {
        guard let status, let code = Int(status) else { return status == "OK" }
        return (200..<400).contains(code)
    }

    static func appHealth(_ observation: SidecarObservation) -> String {
        guard let health = observation.health else { return observation.samples == nil ? "unhealthy" : "unknown" }
        if health["status"]?.stringValue != "ready" { return "unhealthy" }
        let degraded = (health["blocks"]?.arrayValues ?? []).contains { $0["status"]?.stringValue != "healthy" }
        return degraded ? "degraded" : "healthy"
    }

    static func key(_ sample: MetricSample) -> String {
        sample.name + "{" + sample.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + "}"
    }

    static func format(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        let rounded = (value * 1000).rounded() / 1000
        return rounded == rounded.rounded() ? String(Int64(rounded)) : String(rounded)
    }
}
