import Foundation
import HTTP1Client
import NIOCore
import NIOHTTP1
public import MechaCore
public import MechaCrypto
import Synchronization

/// `crypto.dapr.jwks`: keys from a JSON Web Key Set, looked up by `kid`.
///
/// Metadata: `jwks` (required) is one of an `http(s)://` URL (fetched at init within
/// `requestTimeout`, default 30s, then refreshed every `minRefreshInterval`, default 10m), the path
/// of a local file (re-read when it changes), or the JWKS JSON itself, optionally base64-encoded.
/// As in Dapr, a `requestTimeout` under 1ms or a `minRefreshInterval` under 1s means the default.
/// A JWKS document may also be a single JWK.
public final class JWKSCrypto: LocalKeyProvider {
    public enum Source: Sendable, Equatable {
        case url(String)
        case file(String)
        case inline
    }

    public let source: Source
    public let requestTimeout: Duration
    public let minRefreshInterval: Duration
    private let keys: Mutex<[String: CryptoKey]>
    private let fileStamp: Mutex<Date?>

    init(source: Source, keys: [String: CryptoKey], requestTimeout: Duration, minRefreshInterval: Duration, fileStamp: Date? = nil) {
        self.source = source
        self.keys = Mutex(keys)
        self.requestTimeout = requestTimeout
        self.minRefreshInterval = minRefreshInterval
        self.fileStamp = Mutex(fileStamp)
    }

    /// Loads the key set once. Throws `ComponentConfigurationError` (key `jwks`) when the value
    /// is none of the accepted forms, or the URL or file cannot be read.
    public static func load(
        jwks: String,
        requestTimeout: Duration = .seconds(30),
        minRefreshInterval: Duration = .seconds(600),
        workingDirectory: String? = nil
    ) async throws(ComponentConfigurationError) -> JWKSCrypto {
        if jwks.hasPrefix("https://") || jwks.hasPrefix("http://") {
            let keys: [String: CryptoKey]
            do {
                keys = try Self.parseSet(try await Self.fetch(jwks, timeout: requestTimeout))
            } catch {
                throw ComponentConfigurationError(key: "jwks", reason: "failed to init cache: failed to fetch JWKS: \(error)")
            }
            return JWKSCrypto(source: .url(jwks), keys: keys, requestTimeout: requestTimeout, minRefreshInterval: minRefreshInterval)
        }
        let path = jwks.hasPrefix("/") ? jwks : (workingDirectory ?? FileManager.default.currentDirectoryPath) + "/" + jwks
        var isDirectory: ObjCBool = false
        if !jwks.contains("\n"), FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
            do {
                let (keys, stamp) = try Self.readFile(path)
                return JWKSCrypto(source: .file(path), keys: keys, requestTimeout: requestTimeout, minRefreshInterval: minRefreshInterval, fileStamp: stamp)
            } catch {
                throw ComponentConfigurationError(key: "jwks", reason: "failed to init cache: \(error)")
            }
        }
        var text = Array(jwks.utf8)[...]
        while text.last == UInt8(ascii: "=") { text = text.dropLast() }
        let json = Base64Text.decodeStandardRaw(text) ?? Array(jwks.utf8)
        guard let keys = try? Self.parseSet(json) else {
            throw ComponentConfigurationError(
                key: "jwks",
                reason: "failed to init cache: failed to parse property 'location': not a URL, path to local file, or JSON value (optionally base64-encoded)"
            )
        }
        return JWKSCrypto(source: .inline, keys: keys, requestTimeout: requestTimeout, minRefreshInterval: minRefreshInterval)
    }

    public func retrieveKey(_ name: String) async throws -> CryptoKey {
        guard let key = self.keys.withLock({ $0[name] }) else { throw CryptoKeyError.keyNotFound }
        return key
    }

    /// Keeps the set fresh: a URL is re-fetched every `minRefreshInterval`, a file re-read when its
    /// modification time changes. A failed refresh keeps the previous keys.
    public func run(until stop: StopSignal) async throws {
        guard self.source != .inline else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await stop.wait() }
            group.addTask { await self.refreshLoop() }
            await group.next()
            group.cancelAll()
        }
    }

    private func refreshLoop() async {
        while !Task.isCancelled {
            switch self.source {
            case .url(let url):
                try? await Task.sleep(for: self.minRefreshInterval)
                guard !Task.isCancelled else { return }
                if let keys = try? Self.parseSet(try await Self.fetch(url, timeout: self.requestTimeout)) {
                    self.keys.withLock { $0 = keys }
                }
            case .file(let path):
                try? await Task.sleep(for: .seconds(1))
                guard !Task.isCancelled else { return }
                let stamp = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
                guard stamp != self.fileStamp.withLock({ $0 }), let (keys, newStamp) = try? Self.readFile(path) else { continue }
                self.keys.withLock { $0 = keys }
                self.fileStamp.withLock { $0 = newStamp }
            case .inline:
                return
            }
        }
    }

    static func readFile(_ path: String) throws -> ([String: CryptoKey], Date?) {
        let stamp = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return (try self.parseSet(Array(data)), stamp)
    }

    /// A JWKS (`{"keys": [...]}`) or a single JWK, by `kid`. Keys without a `kid` cannot be
    /// looked up, as in Dapr.
    static func parseSet(_ bytes: [UInt8]) throws -> [String: CryptoKey] {
        let json = try JSONValue(parsing: bytes)
        guard case .object(let members) = json else { throw CryptoKeyError("failed to parse JWKS: not a JSON object") }
        var entries: [[(String, JSONValue)]] = []
        if let keys = members.last(where: { $0.0 == "keys" })?.1 {
            guard case .array(let values) = keys else { throw CryptoKeyError("failed to parse JWKS: 'keys' is not an array") }
            for value in values {
                guard case .object(let entry) = value else { throw CryptoKeyError("failed to parse JWKS: a key is not an object") }
                entries.append(entry)
            }
        } else {
            entries = [members]
        }
        var keys: [String: CryptoKey] = [:]
        for entry in entries {
            let key = try CryptoKey.jwk(entry)
            if let id = key.keyID { keys[id] = key }
        }
        return keys
    }

    /// GETs the JWKS with the project's HTTP client (TLS verified against the system roots), a
    /// client of its own for the one request, all within `timeout`.
    static func fetch(_ url: String, timeout: Duration) async throws -> [UInt8] {
        guard let endpoint = HTTPEndpoint(url) else { throw CryptoKeyError("invalid URL \(url)") }
        let client = HTTP1Client(configuration: .init(maxConnectionsPerHost: 1, connectTimeout: timeout))
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: endpoint.hostHeader)
        headers.add(name: "Accept", value: "application/json")
        let request = HTTP1Request(
            target: HTTP1Target(host: endpoint.host, port: endpoint.port, tls: endpoint.tls),
            method: .GET, uri: endpoint.path.isEmpty ? "/" : endpoint.path, headers: headers)
        return try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            group.addTask {
                defer { client.shutdown() }
                return try await withThrowingTaskGroup(of: [UInt8].self) { race in
                    race.addTask {
                        try await client.execute(request) { response in
                            guard (200..<300).contains(response.status.code) else {
                                throw CryptoKeyError("failed to fetch JWKS from \(url): status \(response.status.code)")
                            }
                            return Array(try await response.collect(upTo: 4 << 20).readableBytesView)
                        }
                    }
                    race.addTask {
                        try await Task.sleep(for: timeout)
                        throw CryptoKeyError("failed to fetch JWKS from \(url): no answer within \(GoDuration.format(timeout))")
                    }
                    defer { race.cancelAll() }
                    return try await race.next()!
                }
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let bytes = result { return bytes }
            }
            throw CryptoKeyError("failed to fetch JWKS from \(url)")
        }
    }
}

/// Builds `crypto.dapr.jwks` components.
public struct JWKSCryptoFactory: ComponentFactory {
    public init() {}

    public var type: ComponentType { ComponentType(.crypto, "dapr.jwks") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let metadata = spec.metadata
        let jwks = try metadata.require("jwks")
        var timeout = try metadata.duration("requestTimeout", default: .seconds(30), integerUnit: .milliseconds(1))
        if timeout < .milliseconds(1) { timeout = .seconds(30) }
        var refresh = try metadata.duration("minRefreshInterval", default: .seconds(600), integerUnit: .milliseconds(1))
        if refresh < .seconds(1) { refresh = .seconds(600) }
        return try await JWKSCrypto.load(jwks: jwks, requestTimeout: timeout, minRefreshInterval: refresh)
    }
}
