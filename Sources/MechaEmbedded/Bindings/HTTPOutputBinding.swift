#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import HTTP1Client
public import Logging
public import MechaCore
import NIOCore
import NIOHTTP1
import Synchronization

/// `bindings.http`: an output binding that sends each invocation as an HTTP request.
///
/// Metadata: `url` (required; `http://` or `https://`), `securityToken` + `securityTokenHeader`
/// (both needed; the header is sent on every request), `responseTimeout` (Go duration; default
/// none), `maxResponseBodySize` (bytes or a quantity such as `100Mi`, `20Ki`, `1Gi`; default `100Mi`;
/// `<= 0` means unlimited; a longer body is cut silently), `errorIfNot2XX` (default `true`).
///
/// TLS (for `https://`, TLS 1.2 or later; the server's certificate and name are always verified):
/// `MTLSRootCA` (the CA certificates to trust instead of the system roots), `MTLSClientCert` and
/// `MTLSClientKey` (a client certificate and its key, for mutual TLS; both or neither), each a
/// PEM-encoded value or the path of a PEM file, as in Dapr; `MTLSRenegotiation`
/// (`RenegotiateNever`, `RenegotiateOnceAsClient`, `RenegotiateFreelyAsClient`). Unreadable or
/// malformed material fails at init naming its key; a refused handshake fails the request
/// (`TLS handshake with host:443 failed: certificate verify failed`).
///
/// Operations: `create` (sent as POST), `get`, `head`, `post`, `put`, `patch`, `delete`, `options`,
/// `trace`. The request data is the body of POST, PUT and PATCH only. Request metadata:
/// - `path` is appended: `url` without trailing `/`, then `/`, then `path` without leading `/`
///   (a query string may follow);
/// - `errorIfNot2XX` overrides the component setting (truthy: `y`, `yes`, `true`, `t`, `on`, `1`);
/// - every key whose first character is an ASCII uppercase letter is sent as a header;
/// - `traceparent`, `tracestate` and `baggage` are always sent as headers, replacing user ones.
/// `Content-Type: application/json; charset=utf-8` is added when there is a body and no content
/// type, `Accept: application/json; charset=utf-8` when there is no `Accept`.
///
/// The response data is the body; metadata holds `statusCode` (`"200"`), `status` (`"200 OK"`) and
/// every response header under its canonical name (repeated values joined by `", "`). A non-2xx
/// status with `errorIfNot2XX` throws `BindingError("received status code <code>")`.
///
/// The binding owns its HTTP client: requests work while `run(until:)` is running (a request made
/// just before it starts waits up to 5 s for it); `close()` shuts the client down.
///
/// Differences from Dapr: on a non-2xx error the response metadata is not returned (the error
/// carries the message only); spaces and other characters not allowed in a request target are
/// percent-encoded in the path; a header value containing CR, LF or NUL is refused before sending;
/// only one of `MTLSClientCert` and `MTLSClientKey` is an error (Dapr ignores it); `SSL_CERT_FILE`
/// is not read.
public final class HTTPOutputBinding: OutputBinding {
    /// The component's settings, already parsed.
    public struct Options: Sendable, Hashable {
        public var url: String
        public var securityToken: String?
        public var securityTokenHeader: String?
        /// Limit for one whole exchange; `nil` (or `<= 0`) means none.
        public var responseTimeout: Duration?
        /// Bytes of response body kept; `<= 0` means unlimited.
        public var maxResponseBodySize: Int
        public var errorIfNot2XX: Bool
        /// `MTLSRootCA`: PEM text or a PEM file path; `nil` trusts the system roots.
        public var rootCA: String?
        /// `MTLSClientCert`: PEM text or a PEM file path.
        public var clientCertificate: String?
        /// `MTLSClientKey`: PEM text or a PEM file path.
        public var clientKey: String?
        public var renegotiation: Renegotiation

        public init(
            url: String,
            securityToken: String? = nil,
            securityTokenHeader: String? = nil,
            responseTimeout: Duration? = nil,
            maxResponseBodySize: Int = HTTPOutputBinding.defaultMaxResponseBodySize,
            errorIfNot2XX: Bool = true,
            rootCA: String? = nil,
            clientCertificate: String? = nil,
            clientKey: String? = nil,
            renegotiation: Renegotiation = .never
        ) {
            self.url = url
            self.securityToken = securityToken
            self.securityTokenHeader = securityTokenHeader
            self.responseTimeout = responseTimeout
            self.maxResponseBodySize = maxResponseBodySize
            self.errorIfNot2XX = errorIfNot2XX
            self.rootCA = rootCA
            self.clientCertificate = clientCertificate
            self.clientKey = clientKey
            self.renegotiation = renegotiation
        }
    }

    /// `MTLSRenegotiation`, with Dapr's values as raw values.
    public enum Renegotiation: String, Sendable, Hashable, CaseIterable {
        case never = "RenegotiateNever"
        case onceAsClient = "RenegotiateOnceAsClient"
        case freelyAsClient = "RenegotiateFreelyAsClient"
    }

    /// Dapr's metadata keys for TLS.
    public enum MetadataKey {
        public static let rootCA = "MTLSRootCA"
        public static let clientCertificate = "MTLSClientCert"
        public static let clientKey = "MTLSClientKey"
        public static let renegotiation = "MTLSRenegotiation"
    }

    /// `100Mi`.
    public static let defaultMaxResponseBodySize = 100 * 1024 * 1024

    public let options: Options
    public var operations: [String] { ["create", "get", "head", "post", "put", "patch", "delete", "options", "trace"] }

    private enum Phase { case idle, running, stopped }

    private let client: HTTP1Client
    private let phase = Mutex(Phase.idle)
    private let logger: Logger

    /// Validates `options.url` (scheme `http` or `https`, a host, a valid port) and reads the TLS
    /// material. Throws `ComponentConfigurationError` with key `url`, or the `MTLS*` key at fault.
    public init(options: Options, logger: Logger = Logger(label: "mecha.bindings.http")) throws(ComponentConfigurationError) {
        switch HTTPBindingURL.parse(options.url) {
        case .success: break
        case .failure(let problem): throw ComponentConfigurationError(key: "url", reason: problem.reason)
        }
        let tls = try Self.tlsConfiguration(options)
        self.options = options
        self.logger = logger
        self.client = HTTP1Client(configuration: .init(connectTimeout: .seconds(15), tls: tls))
    }

    /// The client's TLS settings from the `MTLS*` options, every file read and parsed now.
    private static func tlsConfiguration(_ options: Options) throws(ComponentConfigurationError) -> HTTP1TLSConfiguration {
        var tls = HTTP1TLSConfiguration()
        tls.renegotiation = switch options.renegotiation {
        case .never: .never
        case .onceAsClient: .once
        case .freelyAsClient: .freely
        }
        if let rootCA = options.rootCA {
            tls.trustRoots = try Self.pem(rootCA, key: MetadataKey.rootCA)
        }
        switch (options.clientCertificate, options.clientKey) {
        case (nil, nil):
            break
        case (let certificate?, let key?):
            tls.clientIdentity = .init(
                certificateChain: try Self.pem(certificate, key: MetadataKey.clientCertificate),
                privateKey: try Self.pem(key, key: MetadataKey.clientKey)
            )
        case (nil, _?):
            throw ComponentConfigurationError(key: MetadataKey.clientCertificate, reason: "\(MetadataKey.clientKey) is set but \(MetadataKey.clientCertificate) is not: mutual TLS needs both")
        case (_?, nil):
            throw ComponentConfigurationError(key: MetadataKey.clientKey, reason: "\(MetadataKey.clientCertificate) is set but \(MetadataKey.clientKey) is not: mutual TLS needs both")
        }
        do {
            try tls.validate()
        } catch {
            let key = switch error.field {
            case .trustRoots: MetadataKey.rootCA
            case .clientCertificate: MetadataKey.clientCertificate
            case .clientKey: MetadataKey.clientKey
            }
            throw ComponentConfigurationError(key: key, reason: error.reason)
        }
        return tls
    }

    /// Dapr's rule: a value holding a PEM block is the material itself, anything else a file path.
    private static func pem(_ value: String, key: String) throws(ComponentConfigurationError) -> HTTP1TLSConfiguration.PEM {
        if value.contains("-----BEGIN ") { return .inline(value) }
        guard access(value, R_OK) == 0 else {
            // The value is not echoed: it may be a mangled key.
            throw ComponentConfigurationError(
                key: key,
                reason: "provided \"\(key)\" value is neither a valid file path nor a valid PEM-encoded string (\(String(cString: strerror(errno))))"
            )
        }
        return .file(value)
    }

    public func run(until stop: StopSignal) async throws {
        self.phase.withLock { if $0 == .idle { $0 = .running } }
        await withDiscardingTaskGroup { group in
            group.addTask { await self.client.run() }
            await stop.wait()
            self.client.shutdown()
        }
        self.phase.withLock { $0 = .stopped }
    }

    public func close() async throws {
        self.phase.withLock { $0 = .stopped }
        self.client.shutdown()
    }

    public func invoke(_ request: BindingInvokeRequest) async throws -> BindingInvokeResponse {
        let method: HTTPMethod
        switch request.operation.lowercased() {
        case "create", "post": method = .POST
        case "get": method = .GET
        case "head": method = .HEAD
        case "put": method = .PUT
        case "patch": method = .PATCH
        case "delete": method = .DELETE
        case "options": method = .OPTIONS
        case "trace": method = .TRACE
        default: throw BindingError("invalid operation: \(request.operation)")
        }
        let hasBody = method == .POST || method == .PUT || method == .PATCH

        var urlText = self.options.url
        if let path = request.metadata["path"] {
            urlText = String(urlText.droppingTrailing("/")) + "/" + String(path.droppingLeading("/"))
        }
        var errorIfNot2XX = self.options.errorIfNot2XX
        if let override = request.metadata["errorIfNot2XX"] {
            errorIfNot2XX = Self.isTruthy(override)
        }
        let url: HTTPBindingURL
        switch HTTPBindingURL.parse(urlText) {
        case .success(let parsed): url = parsed
        case .failure(let problem): throw BindingError("parse \"\(urlText)\": \(problem.reason)")
        }

        let headers = try self.headers(for: request.metadata, url: url, hasBody: hasBody)
        let httpRequest = HTTP1Request(
            target: HTTP1Target(host: url.host, port: url.port, tls: url.tls),
            method: method,
            uri: url.requestURI,
            headers: headers,
            body: hasBody ? .bytes(ByteBuffer(bytes: request.data)) : .empty
        )
        let limit = self.options.maxResponseBodySize
        let exchange: Exchange
        do {
            exchange = try await self.withResponseTimeout {
                try await self.executeWhenRunning(httpRequest) { response in
                    var body: [UInt8] = []
                    for try await chunk in response.body {
                        if limit > 0 {
                            body.append(contentsOf: chunk.readableBytesView.prefix(limit - body.count))
                            if body.count >= limit { break }  // cut silently, as Dapr does
                        } else {
                            body.append(contentsOf: chunk.readableBytesView)
                        }
                    }
                    return Exchange(status: response.status, headers: response.headers, body: body)
                }
            }
        } catch let error as BindingError {
            throw error
        } catch {
            throw BindingError("\(Self.goMethodName(method)) \"\(urlText)\": \(error)")
        }

        var metadata: [String: String] = [:]
        for (name, value) in exchange.headers {
            let key = Self.canonicalHeaderName(name)
            if let existing = metadata[key] {
                metadata[key] = existing + ", " + value
            } else {
                metadata[key] = value
            }
        }
        let code = Int(exchange.status.code)
        metadata["statusCode"] = String(code)
        metadata["status"] = "\(code) \(exchange.status.reasonPhrase)"
        if errorIfNot2XX && !(200..<300).contains(code) {
            throw BindingError("received status code \(code)")
        }
        return BindingInvokeResponse(data: exchange.body, metadata: metadata)
    }

    // MARK: Request building

    private func headers(for metadata: [String: String], url: HTTPBindingURL, hasBody: Bool) throws(BindingError) -> HTTPHeaders {
        var headers = HTTPHeaders()
        func set(_ name: String, _ value: String) throws(BindingError) {
            guard Self.isToken(name) else { throw BindingError("invalid header field name \"\(name)\"") }
            guard !value.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D || $0 == 0x00 }) else {
                throw BindingError("invalid header field value for \"\(name)\"")
            }
            headers.replaceOrAdd(name: name, value: value)
        }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            guard let first = key.utf8.first, first >= UInt8(ascii: "A"), first <= UInt8(ascii: "Z") else { continue }
            try set(key, value)
        }
        if let token = self.options.securityToken, !token.isEmpty,
            let header = self.options.securityTokenHeader, !header.isEmpty
        {
            try set(header, token)
        }
        for name in ["traceparent", "tracestate", "baggage"] {
            guard let value = metadata[name] else { continue }
            if headers.contains(name: name) {
                self.logger.warning("bindings.http: the \(name) header set in metadata is replaced by the tracing value")
            }
            try set(name, value)
        }
        if hasBody && !headers.contains(name: "Content-Type") {
            headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        }
        if !headers.contains(name: "Accept") {
            headers.add(name: "Accept", value: "application/json; charset=utf-8")
        }
        if let credentials = url.basicCredentials, !headers.contains(name: "Authorization") {
            headers.add(name: "Authorization", value: "Basic " + Base64.encode(Array(credentials.utf8)))
        }
        // The host always comes from the URL (Go ignores a `Host` header on client requests).
        headers.replaceOrAdd(name: "Host", value: url.hostHeader)
        return headers
    }

    // MARK: Exchange

    private struct Exchange: Sendable {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    /// Runs `operation` within `responseTimeout` (when set).
    private func withResponseTimeout<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let timeout = self.options.responseTimeout, timeout > .zero else { return try await operation() }
        return try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw DeadlineExceeded()
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    private struct DeadlineExceeded: Error, CustomStringConvertible {
        var description: String { "context deadline exceeded" }
    }

    /// `execute`, tolerating the moment between the component being built and its client running.
    private func executeWhenRunning<T: Sendable>(
        _ request: HTTP1Request,
        _ handler: (HTTP1Response) async throws -> T
    ) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            do {
                return try await self.client.execute(request, handler)
            } catch let error as HTTP1ClientError where error == .shutDown {
                let phase = self.phase.withLock { $0 }
                guard phase != .stopped else { throw BindingError("bindings.http is closed") }
                guard ContinuousClock.now < deadline else {
                    throw BindingError("bindings.http is not running (its run(until:) was not started)")
                }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    // MARK: Helpers

    /// Dapr's `IsTruthy`: `y`, `yes`, `true`, `t`, `on`, `1` (any case, trimmed); anything else is false.
    static func isTruthy(_ value: String) -> Bool {
        switch value.trimmingSpaces().lowercased() {
        case "y", "yes", "true", "t", "on", "1": true
        default: false
        }
    }

    /// Go's canonical MIME header key: `content-type` → `Content-Type`. Names that are not tokens are
    /// returned unchanged.
    static func canonicalHeaderName(_ name: String) -> String {
        guard self.isToken(name) else { return name }
        var upper = true
        var bytes: [UInt8] = []
        bytes.reserveCapacity(name.utf8.count)
        for byte in name.utf8 {
            var out = byte
            if upper, byte >= UInt8(ascii: "a"), byte <= UInt8(ascii: "z") {
                out = byte - 32
            } else if !upper, byte >= UInt8(ascii: "A"), byte <= UInt8(ascii: "Z") {
                out = byte + 32
            }
            bytes.append(out)
            upper = byte == UInt8(ascii: "-")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// An RFC 9110 token (valid header name).
    static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            default:
                "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
        }
    }

    /// The method as Go's client errors spell it: `Get`, `Post`, ….
    static func goMethodName(_ method: HTTPMethod) -> String {
        let name = method.rawValue
        return name.prefix(1) + name.dropFirst().lowercased()
    }

    /// Parses a byte count: an integer or a Kubernetes quantity (`100Mi`, `20Ki`, `1Gi`, `1M`, `1.5k`,
    /// `1e6`). Fractions round up. `nil` on bad syntax or overflow.
    public static func parseByteQuantity(_ text: String) -> Int? {
        var rest = Substring(text.trimmingSpaces())
        var sign = 1.0
        if rest.first == "+" || rest.first == "-" {
            sign = rest.first == "-" ? -1 : 1
            rest = rest.dropFirst()
        }
        let numberEnd = rest.firstIndex { !($0.isASCII && ($0.isNumber || $0 == ".")) } ?? rest.endIndex
        let numberText = rest[..<numberEnd]
        guard !numberText.isEmpty, numberText != ".", numberText.filter({ $0 == "." }).count <= 1,
            let number = Double(numberText)
        else { return nil }
        let suffix = rest[numberEnd...]
        let multiplier: Double
        switch suffix {
        case "": multiplier = 1
        case "Ki": multiplier = 1024
        case "Mi": multiplier = 1024 * 1024
        case "Gi": multiplier = 1024 * 1024 * 1024
        case "Ti": multiplier = 1_099_511_627_776
        case "Pi": multiplier = 1_125_899_906_842_624
        case "Ei": multiplier = 1_152_921_504_606_846_976
        case "n": multiplier = 1e-9
        case "u": multiplier = 1e-6
        case "m": multiplier = 1e-3
        case "k": multiplier = 1e3
        case "M": multiplier = 1e6
        case "G": multiplier = 1e9
        case "T": multiplier = 1e12
        case "P": multiplier = 1e15
        case "E": multiplier = 1e18
        default:
            guard let first = suffix.first, first == "e" || first == "E", let exponent = Int(suffix.dropFirst()),
                (-30...30).contains(exponent)
            else { return nil }
            var value = 1.0
            for _ in 0..<abs(exponent) { value *= 10 }
            multiplier = exponent < 0 ? 1 / value : value
        }
        let value = (sign * number * multiplier).rounded(.up)
        guard value.isFinite, abs(value) < 9.2e18 else { return nil }
        return Int(value)
    }
}

/// Builds `bindings.http` components: parses `url`, `securityToken`, `securityTokenHeader`,
/// `responseTimeout`, `maxResponseBodySize`, `errorIfNot2XX` and the `MTLS*` keys with the typed
/// readers.
public struct HTTPOutputBindingFactory: ComponentFactory {
    public init() {}

    public var type: ComponentType { ComponentType(.bindings, "http") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let metadata = spec.metadata
        let url = try metadata.require("url")
        var timeout: Duration?
        if metadata.string("responseTimeout") != nil {
            timeout = try metadata.duration("responseTimeout", default: .zero)
        }
        var maxBody = HTTPOutputBinding.defaultMaxResponseBodySize
        if let raw = metadata.string("maxResponseBodySize") {
            guard let parsed = HTTPOutputBinding.parseByteQuantity(raw) else {
                throw ComponentConfigurationError(
                    key: "maxResponseBodySize",
                    reason: "cannot parse '\(raw)' as a size (bytes, or a quantity such as 100Mi, 20Ki, 1Gi)"
                )
            }
            maxBody = parsed
        }
        var renegotiation = HTTPOutputBinding.Renegotiation.never
        if let raw = metadata.string(HTTPOutputBinding.MetadataKey.renegotiation) {
            guard let value = HTTPOutputBinding.Renegotiation(rawValue: raw) else {
                let allowed = HTTPOutputBinding.Renegotiation.allCases.map(\.rawValue).joined(separator: ", ")
                throw ComponentConfigurationError(
                    key: HTTPOutputBinding.MetadataKey.renegotiation,
                    reason: "invalid renegotiation value: \(raw) (expected one of \(allowed))"
                )
            }
            renegotiation = value
        }
        let options = HTTPOutputBinding.Options(
            url: url,
            securityToken: metadata.string("securityToken"),
            securityTokenHeader: metadata.string("securityTokenHeader"),
            responseTimeout: timeout,
            maxResponseBodySize: maxBody,
            errorIfNot2XX: try metadata.bool("errorIfNot2XX", default: true),
            rootCA: metadata.string(HTTPOutputBinding.MetadataKey.rootCA),
            clientCertificate: metadata.string(HTTPOutputBinding.MetadataKey.clientCertificate),
            clientKey: metadata.string(HTTPOutputBinding.MetadataKey.clientKey),
            renegotiation: renegotiation
        )
        return try HTTPOutputBinding(options: options, logger: context.logger)
    }
}

// MARK: - URL

/// An `http://` or `https://` URL taken apart: where to connect and what to put on the request line.
struct HTTPBindingURL: Sendable, Hashable {
    /// `https`.
    var tls: Bool
    /// Without brackets for IPv6.
    var host: String
    var port: Int
    /// As written in the URL (`host:port`, `[::1]:8080`), for the `Host` header.
    var hostHeader: String
    /// Path and query, percent-encoded where needed; at least `/`.
    var requestURI: String
    /// `user:password` from the URL's user info, percent-decoded.
    var basicCredentials: String?

    struct Problem: Error, Hashable {
        var reason: String
    }

    static func parse(_ text: String) -> Result<HTTPBindingURL, Problem> {
        guard let schemeEnd = text.firstRange(of: "://") else {
            return .failure(Problem(reason: "invalid url '\(text)': expected http(s)://host[:port][/path]"))
        }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        let tls: Bool
        switch scheme {
        case "http": tls = false
        case "https": tls = true
        default:
            return .failure(Problem(reason: "unsupported url scheme '\(scheme)' in '\(text)': expected http:// or https://"))
        }
        var rest = text[schemeEnd.upperBound...]
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        let pathAndQuery = rest[authorityEnd...]

        var credentials: String?
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            var parts = userInfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            if parts.count == 1 { parts.append("") }
            guard let user = PercentDecoding.pathUnescape(parts[0]), let password = PercentDecoding.pathUnescape(parts[1]) else {
                return .failure(Problem(reason: "invalid user info in url '\(text)'"))
            }
            credentials = user + ":" + password
        }

        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                return .failure(Problem(reason: "missing ']' in host of url '\(text)'"))
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { return .failure(Problem(reason: "invalid port in url '\(text)'")) }
                portText = after.dropFirst()
            }
        } else if let colon = authority.firstIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { return .failure(Problem(reason: "missing host in url '\(text)'")) }
        guard host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "%") }) else {
            return .failure(Problem(reason: "invalid host in url '\(text)'"))
        }
        var port = tls ? 443 : 80
        if let portText, !portText.isEmpty {
            guard portText.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                let value = Int(portText), (1...65535).contains(value)
            else { return .failure(Problem(reason: "invalid port '\(portText)' in url '\(text)'")) }
            port = value
        }

        var uri: [UInt8] = []
        if !pathAndQuery.hasPrefix("/") { uri.append(UInt8(ascii: "/")) }
        for byte in pathAndQuery.utf8 {
            if byte < 0x20 || byte == 0x7F {
                return .failure(Problem(reason: "invalid control character in url '\(text)'"))
            }
            if byte == 0x20 || byte > 0x7F || "\"<>\\^`{|}".utf8.contains(byte) {
                let hex = Array("0123456789ABCDEF".utf8)
                uri += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            } else {
                uri.append(byte)
            }
        }
        return .success(
            HTTPBindingURL(
                tls: tls,
                host: String(host),
                port: port,
                hostHeader: String(authority),
                requestURI: String(decoding: uri, as: UTF8.self),
                basicCredentials: credentials
            )
        )
    }
}

extension StringProtocol {
    /// Without every trailing `character` (Go's `strings.TrimRight` with a one-character cutset).
    fileprivate func droppingTrailing(_ character: Character) -> SubSequence {
        var end = self.endIndex
        while end > self.startIndex, self[self.index(before: end)] == character { end = self.index(before: end) }
        return self[self.startIndex..<end]
    }

    /// Without every leading `character` (Go's `strings.TrimLeft` with a one-character cutset).
    fileprivate func droppingLeading(_ character: Character) -> SubSequence {
        var start = self.startIndex
        while start < self.endIndex, self[start] == character { start = self.index(after: start) }
        return self[start..<self.endIndex]
    }
}
