public import MechaCore

/// What an mDNS name resolver knows, as a pure value: the instances this sidecar announces and the
/// ones it heard of, with their expiry. It turns instances into DNS-SD records and records back
/// into instances; the network shell (`MDNSNameResolver`) only moves the messages.
///
/// Names follow Dapr's mDNS resolver: the service is the app id in the `local.` domain
/// (`<app id>.local.`), an instance is `<instance id>.<app id>.local.` — a PTR from the service to
/// the instance, an SRV to its host and sidecar-to-sidecar port, a TXT with the rest (namespace,
/// ports, mTLS), an A record for the host (`mecha-<instance id>.local.`).
public struct MDNSDirectory: Sendable {
    public struct Heard: Sendable, Equatable {
        public var instance: AppInstance
        public var expires: ContinuousClock.Instant
    }

    /// Seconds a record stays valid without being announced again.
    public var ttl: UInt32
    public private(set) var own: [String: AppInstance] = [:]
    /// By instance name, lowercased.
    public private(set) var heard: [String: Heard] = [:]

    public init(ttl: UInt32) {
        self.ttl = ttl
    }

    public static func serviceName(appID: String) -> String { "\(appID).local." }
    public static func instanceName(_ instance: AppInstance) -> String { "\(instance.instanceID).\(instance.appID).local." }
    static func hostName(_ instance: AppInstance) -> String { "mecha-\(instance.instanceID).local." }

    /// The four bytes of a dotted IPv4 address, or nil.
    public static func ipv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { UInt8($0) }
        return bytes.count == 4 ? bytes : nil
    }

    public mutating func add(_ instance: AppInstance) { self.own[instance.instanceID] = instance }

    @discardableResult
    public mutating func remove(instanceID: String) -> AppInstance? { self.own.removeValue(forKey: instanceID) }

    /// The records announcing `instance` (TTL 0: its goodbye).
    func records(_ instance: AppInstance, ttl: UInt32) -> (answer: DNSMessage.Record, extra: [DNSMessage.Record]) {
        let name = Self.instanceName(instance)
        let host = Self.hostName(instance)
        let txt = [
            "mecha=1", "app=\(instance.appID)", "ns=\(instance.namespace)", "id=\(instance.instanceID)", "http=\(instance.httpPort)",
            "grpc=\(instance.grpcInternalPort)", "metrics=\(instance.metricsPort)", "mtls=\(instance.mtls ? 1 : 0)", "pid=\(instance.processID)",
            "hostname=\(instance.hostname)",
        ]
        return (
            DNSMessage.Record(name: Self.serviceName(appID: instance.appID), ttl: ttl, data: .ptr(name)),
            [
                DNSMessage.Record(name: name, ttl: ttl, cacheFlush: true, data: .srv(priority: 0, weight: 0, port: UInt16(clamping: instance.internalPort), target: host)),
                DNSMessage.Record(name: name, ttl: ttl, cacheFlush: true, data: .txt(txt)),
                DNSMessage.Record(name: host, ttl: ttl, cacheFlush: true, data: .a(Self.ipv4(instance.host) ?? [127, 0, 0, 1])),
            ]
        )
    }

    /// An unsolicited response with every own instance (`goodbye`: TTL 0, they are leaving).
    public func announcement(goodbye: Bool = false, only: [AppInstance]? = nil) -> DNSMessage? {
        let instances = only ?? Array(self.own.values)
        guard !instances.isEmpty else { return nil }
        var message = DNSMessage(isResponse: true, authoritative: true)
        for instance in instances.sorted(by: { $0.instanceID < $1.instanceID }) {
            let (answer, extra) = self.records(instance, ttl: goodbye ? 0 : self.ttl)
            message.answers.append(answer)
            message.additionals += extra
        }
        return message
    }

    /// The answer to a query, when it asks about an own service or instance.
    public func answer(_ query: DNSMessage) -> DNSMessage? {
        guard !query.isResponse else { return nil }
        let matching = self.own.values.filter { instance in
            query.questions.contains { question in
                let name = question.name.lowercased()
                let types: Set<UInt16> = [DNSMessage.RecordType.any, DNSMessage.RecordType.ptr, DNSMessage.RecordType.srv, DNSMessage.RecordType.txt]
                return types.contains(question.type)
                    && (name == Self.serviceName(appID: instance.appID).lowercased() || name == Self.instanceName(instance).lowercased())
            }
        }
        return self.announcement(only: matching.isEmpty ? [] : matching)
    }

    /// A query for the instances of `appID`.
    public static func query(appID: String) -> DNSMessage {
        DNSMessage(questions: [DNSMessage.Question(name: Self.serviceName(appID: appID), type: DNSMessage.RecordType.ptr)])
    }

    /// Learns the Mecha instances a response describes; a TTL of 0 forgets them.
    public mutating func learn(_ message: DNSMessage, now: ContinuousClock.Instant) {
        guard message.isResponse else { return }
        let records = message.answers + message.additionals
        var addresses: [String: [UInt8]] = [:]
        var texts: [String: [String: String]] = [:]
        for record in records {
            switch record.data {
            case .a(let bytes): addresses[record.name.lowercased()] = bytes
            case .txt(let strings):
                var pairs: [String: String] = [:]
                for string in strings {
                    let parts = string.split(separator: "=", maxSplits: 1)
                    pairs[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
                }
                texts[record.name.lowercased()] = pairs
            default: break
            }
        }
        for record in records {
            guard case .srv(_, _, let port, let target) = record.data else { continue }
            let key = record.name.lowercased()
            if record.ttl == 0 {
                self.heard.removeValue(forKey: key)
                continue
            }
            guard let text = texts[key], text["mecha"] == "1", let appID = text["app"], let instanceID = text["id"],
                let address = addresses[target.lowercased()], address.count == 4, port > 0
            else { continue }
            let instance = AppInstance(
                appID: appID, namespace: text["ns"] ?? "default", host: address.map(String.init).joined(separator: "."), internalPort: Int(port),
                httpPort: Int(text["http"] ?? "") ?? 0, grpcInternalPort: Int(text["grpc"] ?? "") ?? 0, instanceID: instanceID,
                processID: Int32(text["pid"] ?? "") ?? 0, hostname: text["hostname"] ?? "", metricsPort: Int(text["metrics"] ?? "") ?? 0,
                mtls: text["mtls"] == "1")
            self.heard[key] = Heard(instance: instance, expires: now + .seconds(Int64(record.ttl)))
        }
    }

    /// The live instances of `appID` in `namespace`, by instance id.
    public func instances(appID: String, namespace: String, now: ContinuousClock.Instant) -> [AppInstance] {
        self.heard.values.filter { $0.expires > now && $0.instance.appID == appID && $0.instance.namespace == namespace }
            .map(\.instance).sorted { $0.instanceID < $1.instanceID }
    }

    public func all(now: ContinuousClock.Instant) -> [AppInstance] {
        self.heard.values.filter { $0.expires > now }.map(\.instance).sorted { ($0.appID, $0.instanceID) < ($1.appID, $1.instanceID) }
    }

    /// Forgets what expired.
    public mutating func expire(now: ContinuousClock.Instant) {
        self.heard = self.heard.filter { $0.value.expires > now }
    }
}
