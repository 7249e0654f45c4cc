#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
public import Logging
public import MechaCore

/// `secretstores.local.env`: secrets are the sidecar's environment variables.
///
/// Metadata: `prefix` (optional, default empty, case-sensitive).
/// - `secret(named: n)` returns `{n: value of PREFIX+n}`. A missing variable is not an error: it
///   returns `{n: ""}`, as Dapr does.
/// - `bulkSecrets` returns `{NAME: {NAME: value}}` for every allowed variable that starts with the
///   prefix, with the prefix stripped from `NAME`.
/// - Forbidden names are never read and yield `""` (or are left out of bulk): `APP_API_TOKEN` and
///   anything starting with `DAPR_`, compared case-insensitively. Both the requested name and the
///   full variable name (prefix included) are checked, so a prefix cannot be used to reach them.
///
/// The environment is the process's (`getenv`/`environ`) unless one is injected (for tests).
public struct EnvSecretStore: SecretStore {
    public let prefix: String
    private let environment: [String: String]?
    private let logger: Logger

    /// - Parameter environment: the variables to serve; `nil` reads the process environment live.
    public init(
        prefix: String = "",
        environment: [String: String]? = nil,
        logger: Logger = Logger(label: "mecha.secretstores.local.env")
    ) {
        self.prefix = prefix
        self.environment = environment
        self.logger = logger
    }

    /// Whether `name` may never be served: `APP_API_TOKEN` and `DAPR_*`, case-insensitively.
    public static func isForbidden(_ name: String) -> Bool {
        let upper = name.uppercased()
        return upper == "APP_API_TOKEN" || upper.hasPrefix("DAPR_")
    }

    public func secret(named name: String, metadata: [String: String]) async throws -> [String: String] {
        let variable = self.prefix + name
        guard !Self.isForbidden(name), !Self.isForbidden(variable) else {
            self.logger.warning("Access to env var \(name) is forbidden")
            return [name: ""]
        }
        return [name: self.value(of: variable) ?? ""]
    }

    public func bulkSecrets(metadata: [String: String]) async throws -> [String: [String: String]] {
        var result: [String: [String: String]] = [:]
        for (variable, value) in self.allVariables() {
            guard variable.hasPrefix(self.prefix) else { continue }
            let name = String(variable.dropFirst(self.prefix.count))
            guard !name.isEmpty, !Self.isForbidden(name), !Self.isForbidden(variable) else { continue }
            result[name] = [name: value]
        }
        return result
    }

    private func value(of variable: String) -> String? {
        if let environment = self.environment { return environment[variable] }
        guard let pointer = getenv(variable) else { return nil }
        return String(cString: pointer)
    }

    private func allVariables() -> [(String, String)] {
        if let environment = self.environment { return environment.map { ($0.key, $0.value) } }
        var result: [(String, String)] = []
        var seen: Set<String> = []
        let start: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = environ
        guard var cursor = start else { return [] }
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                let name = String(text[..<equals])
                // The first definition is the one getenv returns.
                if seen.insert(name).inserted {
                    result.append((name, String(text[text.index(after: equals)...])))
                }
            }
            cursor += 1
        }
        return result
    }
}

/// Builds `secretstores.local.env` components from the optional `prefix` metadata.
public struct EnvSecretStoreFactory: ComponentFactory {
    public init() {}

    public var type: ComponentType { ComponentType(.secretstores, "local.env") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        EnvSecretStore(prefix: spec.metadata["prefix"] ?? "", logger: context.logger)
    }
}
