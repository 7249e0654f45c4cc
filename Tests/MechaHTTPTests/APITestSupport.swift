import MechaCore
import MechaTesting
import NIOHTTP1
import Testing

/// Resource YAML for the API tests.
enum APIYAML {
    /// A `Component` resource; metadata values are written as double-quoted YAML scalars.
    static func component(_ name: String, type: String, metadata: [(String, String)] = [], extra: String = "") -> String {
        var text = """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: \(name)
            spec:
              type: \(type)
              version: v1

            """
        if !metadata.isEmpty {
            text += "  metadata:\n"
            for (key, value) in metadata {
                text += "  - name: \(key)\n    value: \(Self.quoted(value))\n"
            }
        }
        return text + extra
    }

    static func inMemory(_ name: String = "statestore", keyPrefix: String? = nil) -> String {
        self.component(name, type: "state.in-memory", metadata: keyPrefix.map { [("keyPrefix", $0)] } ?? [])
    }

    /// `state.sqlite`; without a path it uses the sidecar's embedded database (shared by every
    /// sqlite store of that sidecar).
    static func sqlite(_ name: String = "statestore", path: String? = nil, keyPrefix: String? = nil) -> String {
        var metadata: [(String, String)] = []
        if let path { metadata.append(("connectionString", path)) }
        if let keyPrefix { metadata.append(("keyPrefix", keyPrefix)) }
        return self.component(name, type: "state.sqlite", metadata: metadata)
    }

    static func localFileSecrets(_ name: String, file: String, multiValued: Bool = false) -> String {
        self.component(name, type: "secretstores.local.file", metadata: [("secretsFile", file), ("multiValued", multiValued ? "true" : "false")])
    }

    static func localStorage(_ name: String, root: String, direction: String? = nil) -> String {
        var metadata = [("rootPath", root)]
        if let direction { metadata.append(("direction", direction)) }
        return self.component(name, type: "bindings.localstorage", metadata: metadata)
    }

    static func httpBinding(_ name: String, url: String) -> String {
        self.component(name, type: "bindings.http", metadata: [("url", url)])
    }

    /// A `Configuration` resource with `spec` given as YAML lines indented under `spec:`.
    static func configuration(spec: String) -> String {
        """
        apiVersion: dapr.io/v1alpha1
        kind: Configuration
        metadata:
          name: testconfig
        spec:
        \(spec.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n"))

        """
    }

    /// `spec.api` with `allowed` and/or `denied` rules (`name`, `version`, `protocol`).
    static func apiRules(allowed: [(String, String, String)]? = nil, denied: [(String, String, String)]? = nil) -> String {
        var lines = ["api:"]
        func rules(_ key: String, _ list: [(String, String, String)]) {
            lines.append("  \(key):")
            for (name, version, proto) in list {
                lines.append("  - name: \(name)")
                lines.append("    version: \(version)")
                if !proto.isEmpty { lines.append("    protocol: \(proto)") }
            }
        }
        if let allowed { rules("allowed", allowed) }
        if let denied { rules("denied", denied) }
        return self.configuration(spec: lines.joined(separator: "\n"))
    }

    static func quoted(_ value: String) -> String {
        "\"" + value.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
    }
}

/// A Dapr error body: `{"errorCode","message"[,"details"]}`.
struct DaprErrorBody {
    var errorCode: String
    var message: String
    var details: [JSONValue]?
    var json: JSONValue

    /// The detail of one `@type` (`ErrorInfo`, `ResourceInfo`, `BadRequest`, `Help`).
    func detail(_ kind: String) -> JSONValue? {
        self.details?.first { $0["@type"]?.stringValue == "type.googleapis.com/google.rpc.\(kind)" }
    }

    var detailTypes: [String] {
        (self.details ?? []).compactMap { $0["@type"]?.stringValue?.split(separator: ".").last.map(String.init) }
    }
}

extension TestHTTPResponse {
    var parsedJSON: JSONValue {
        get throws { try JSONValue(parsing: self.body) }
    }

    /// The body as a Dapr error; fails the test when it is not one or the content type is wrong.
    func daprError(sourceLocation: SourceLocation = #_sourceLocation) throws -> DaprErrorBody {
        #expect(self.header("content-type") == "application/json", "error content type", sourceLocation: sourceLocation)
        let json = try JSONValue(parsing: self.body)
        let members = try #require(json.objectMembers, "error body is not an object: \(self.text)", sourceLocation: sourceLocation)
        let keys = members.map(\.0)
        #expect(keys == ["errorCode", "message"] || keys == ["errorCode", "message", "details"], "error body keys \(keys)", sourceLocation: sourceLocation)
        return DaprErrorBody(
            errorCode: try #require(json["errorCode"]?.stringValue, sourceLocation: sourceLocation),
            message: try #require(json["message"]?.stringValue, sourceLocation: sourceLocation),
            details: json["details"]?.arrayValues,
            json: json
        )
    }

    /// Asserts a legacy Dapr error: exact status, code and message, and no `details`.
    func expectError(_ status: Int, _ code: String, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(self.status == status, "status for \(self.text)", sourceLocation: sourceLocation)
        let error = try self.daprError(sourceLocation: sourceLocation)
        #expect(error.errorCode == code, sourceLocation: sourceLocation)
        #expect(error.message == message, sourceLocation: sourceLocation)
        #expect(error.details == nil, "unexpected details: \(self.text)", sourceLocation: sourceLocation)
    }

    /// An empty 204 answer.
    func expectNoContent(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(self.status == 204, "expected 204, got \(self.status) \(self.text)", sourceLocation: sourceLocation)
        #expect(self.body.isEmpty, "204 with a body: \(self.text)", sourceLocation: sourceLocation)
    }
}

/// The fallback answer for routes that do not exist (or are not allowed): daprd's invoke handler
/// without a target.
let apiNoAppIDBody = #"{"errorCode":"ERR_DIRECT_INVOKE","message":"failed getting app id either from the URL path or the header dapr-app-id"}"#

extension TestHTTP {
    func putBytes(port: Int, _ path: String, body: [UInt8], headers: [(String, String)] = []) async throws -> TestHTTPResponse {
        try await self.request(.PUT, port: port, path, headers: headers, body: body)
    }

    func putJSON(port: Int, _ path: String, json: String, headers: [(String, String)] = []) async throws -> TestHTTPResponse {
        try await self.request(.PUT, port: port, path, headers: [("content-type", "application/json")] + headers, body: Array(json.utf8))
    }
}

/// A JSON string literal for `text` (for building request bodies).
func apiJSONString(_ text: String) -> String {
    JSONValue.string(text).jsonString
}

/// Files for a test, removed afterwards.
func withAPIScratchDirectory<Output: Sendable>(_ body: (String) async throws -> Output) async throws -> Output {
    let directory = TestEnvironment.temporaryDirectory("mecha-apitest")
    defer { TestEnvironment.remove(directory) }
    return try await body(directory)
}
