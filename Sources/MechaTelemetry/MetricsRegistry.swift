public import CoreMetrics
public import MechaCore
public import Prometheus
import Synchronization

/// The sidecar's metrics: a Prometheus registry fed through swift-metrics, one per sidecar (so
/// several sidecars in one process, as in tests, keep their own), with a series budget.
///
/// Every metric is a `MetricFamily` of fixed label names. A family keeps at most `seriesLimit`
/// label sets; past that, the values of its unbounded labels (paths, methods, topics, app ids…)
/// are recorded as `_other`, and `mecha_metrics_folded_total{metric}` counts each such record.
/// Memory and the scrape's size stay flat however many distinct values callers send.
public final class MetricsRegistry: Sendable {
    public let prometheus: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    public let seriesLimit: Int
    /// Label rewrites of `spec.metrics.rules`, by metric name.
    let rules: [String: [CompiledLabelRule]]
    private let folded: Mutex<[String: Prometheus.Counter]>
    /// Work done just before each scrape (process figures, gauges read from live state).
    private let collectors: Mutex<[@Sendable () -> Void]>
    /// Every histogram, flushed into the Prometheus registry before each scrape.
    private let histograms: Mutex<[LockFreeHistogram]>
    let defaultBuckets: [Double]
    let histogramBuckets: [String: [Double]]

    /// - Parameters:
    ///   - histogramBuckets: bucket bounds per histogram name (anything else gets `defaultBuckets`).
    public init(seriesLimit: Int = MetricsSpec.defaultSeriesLimit, rules: [MetricRule] = [], histogramBuckets: [String: [Double]] = [:], defaultBuckets: [Double] = DaprBuckets.latencyMilliseconds) {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultValueHistogramBuckets = defaultBuckets
        factory.valueHistogramBuckets = histogramBuckets
        self.prometheus = registry
        self.factory = factory
        self.seriesLimit = max(1, seriesLimit)
        var compiled: [String: [CompiledLabelRule]] = [:]
        for rule in rules {
            for label in rule.labels {
                let rewrites = label.rewrites.compactMap { rewrite in
                    (try? Regex(rewrite.pattern)).map { CompiledLabelRule.Rewrite(replacement: rewrite.replacement, regex: $0) }
                }
                compiled[rule.name, default: []].append(CompiledLabelRule(label: label.name, rewrites: rewrites))
            }
        }
        self.rules = compiled
        self.folded = Mutex([:])
        self.collectors = Mutex([])
        self.histograms = Mutex([])
        self.defaultBuckets = defaultBuckets
        self.histogramBuckets = histogramBuckets
    }

    /// A counter family (`name` exactly as Prometheus shows it). Its series are swift-prometheus
    /// counters held directly: an increment is one relaxed atomic add, with no existential or
    /// generic integer conversion in between (those showed in the request path's profile).
    public func counter(_ name: String, labels: [String], unbounded: Set<String> = []) -> MetricFamily<Prometheus.Counter> {
        MetricFamily(name: name, labels: labels, unbounded: unbounded, registry: self) { dimensions in
            self.prometheus.makeCounter(name: name, labels: dimensions)
        }
    }

    /// A histogram family; its buckets come from `histogramBuckets` or the default. Recording
    /// takes no lock (`LockFreeHistogram`); the Prometheus histograms are filled at scrape time.
    public func histogram(_ name: String, labels: [String], unbounded: Set<String> = []) -> MetricFamily<LockFreeHistogram> {
        MetricFamily(name: name, labels: labels, unbounded: unbounded, registry: self) { dimensions in
            let target = self.factory.makeRecorder(label: name, dimensions: dimensions, aggregate: true)
            let histogram = LockFreeHistogram(bounds: self.histogramBuckets[name] ?? self.defaultBuckets, target: target)
            self.histograms.withLock { $0.append(histogram) }
            return histogram
        }
    }

    /// A gauge family.
    public func gauge(_ name: String, labels: [String], unbounded: Set<String> = []) -> MetricFamily<CoreMetrics.Gauge> {
        MetricFamily(name: name, labels: labels, unbounded: unbounded, registry: self) { dimensions in
            CoreMetrics.Gauge(label: name, dimensions: dimensions, factory: self.factory)
        }
    }

    /// Runs `collect` before every scrape.
    public func onScrape(_ collect: @escaping @Sendable () -> Void) {
        self.collectors.withLock { $0.append(collect) }
    }

    /// The exposition in Prometheus's text format (0.0.4).
    public func scrape() -> [UInt8] {
        for collect in self.collectors.withLock({ $0 }) { collect() }
        for histogram in self.histograms.withLock({ $0 }) { histogram.flush() }
        return self.prometheus.emitToBuffer()
    }

    /// Counts a record whose labels were folded into `_other`.
    func noteFolded(_ metric: String) {
        let counter = self.folded.withLock { counters in
            if let counter = counters[metric] { return counter }
            let counter = self.prometheus.makeCounter(name: "mecha_metrics_folded_total", labels: [("metric", metric)])
            counters[metric] = counter
            return counter
        }
        counter.increment()
    }
}

/// One `spec.metrics.rules` label rewrite, compiled.
struct CompiledLabelRule: @unchecked Sendable {
    struct Rewrite {
        var replacement: String
        var regex: Regex<AnyRegexOutput>
    }

    var label: String
    var rewrites: [Rewrite]

    /// daprd's `ReplaceAllString`: every match of each expression, in order, becomes its replacement.
    func apply(_ value: String) -> String {
        var value = value
        for rewrite in self.rewrites where value.contains(rewrite.regex) {
            value = value.replacing(rewrite.regex, with: rewrite.replacement)
        }
        return value
    }
}

/// The series of one metric, by label values, within the registry's budget.
public final class MetricFamily<Handle: Sendable>: @unchecked Sendable {
    public let name: String
    public let labels: [String]
    /// Indexes of the labels folded into `_other` past the budget.
    private let unboundedIndexes: [Int]
    /// Rewrites per label index.
    private let rewrites: [(index: Int, rule: CompiledLabelRule)]
    private let registry: MetricsRegistry
    private let make: @Sendable ([(String, String)]) -> Handle
    private let series = Mutex<[[String]: Handle]>([:])
    private let limit: Int

    public static var other: String { "_other" }

    init(name: String, labels: [String], unbounded: Set<String>, registry: MetricsRegistry, make: @escaping @Sendable ([(String, String)]) -> Handle) {
        self.name = name
        self.labels = labels
        self.unboundedIndexes = labels.indices.filter { unbounded.contains(labels[$0]) }
        self.rewrites = (registry.rules[name] ?? []).compactMap { rule in labels.firstIndex(of: rule.label).map { ($0, rule) } }
        self.registry = registry
        self.make = make
        self.limit = registry.seriesLimit
    }

    /// The series for these label values (in `labels` order), created on first use.
    public func callAsFunction(_ values: [String]) -> Handle {
        var values = values
        for (index, rule) in self.rewrites where index < values.count { values[index] = rule.apply(values[index]) }
        let found: Found = self.series.withLock { series in
            if let handle = series[values] { return .handle(handle) }
            if series.count < self.limit || self.unboundedIndexes.isEmpty {
                let handle = self.make(self.dimensions(values))
                series[values] = handle
                return .handle(handle)
            }
            return .fold
        }
        switch found {
        case .handle(let handle):
            return handle
        case .fold:
            self.registry.noteFolded(self.name)
            for index in self.unboundedIndexes where index < values.count { values[index] = Self.other }
            // The folded set varies only in bounded labels (status, success…): few series.
            return self.series.withLock { series in
                if let handle = series[values] { return handle }
                let handle = self.make(self.dimensions(values))
                series[values] = handle
                return handle
            }
        }
    }

    private enum Found {
        case handle(Handle)
        case fold
    }

    /// How many label sets this metric holds.
    public var seriesCount: Int { self.series.withLock { $0.count } }

    private func dimensions(_ values: [String]) -> [(String, String)] {
        zip(self.labels, values).map { ($0, $1) }
    }
}
