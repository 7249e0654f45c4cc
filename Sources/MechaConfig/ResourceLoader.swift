#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import MechaCore

/// Everything found in the resources paths.
public struct LoadedResources: Sendable {
    public var components: [ComponentResource] = []
    public var subscriptions: [SubscriptionSpec] = []
    public var configurations: [ConfigurationSpec] = []
    public var resiliencies: [ResiliencySpec] = []
    public var trafficPolicies: [TrafficPolicySpec] = []
    /// Mecha `AccessPolicy` resources (building-block authorization).
    public var accessPolicies: [AccessPolicySpec] = []
    /// Documents skipped on purpose (other kinds), for a log line each.
    public var skipped: [(source: ResourceSource, reason: String)] = []

    public init() {}

    /// Kind and name of every resource the control plane distributes (not Configurations).
    public var distributedNames: [(kind: String, name: String)] {
        self.components.map { ("Component", $0.name) } + self.subscriptions.map { ("Subscription", $0.name) }
            + self.resiliencies.map { ("Resiliency", $0.name) } + self.trafficPolicies.map { ("TrafficPolicy", $0.name) }
            + self.accessPolicies.map { ("AccessPolicy", $0.name) }
    }
}

/// Several configuration problems at once: the loader reports every bad document, not just the first.
public struct ResourceLoadError: Error, Sendable, CustomStringConvertible {
    public var errors: [ResourceError]

    public init(_ errors: [ResourceError]) {
        self.errors = errors
    }

    public var description: String {
        self.errors.map(\.description).joined(separator: "\n")
    }
}

/// Reads Dapr resource YAML (`Component`, `Configuration`, `Subscription`, `Resiliency`) and Mecha's
/// `TrafficPolicy` from files and directories, several documents per file, the way daprd's
/// `--resources-path` does.
public enum ResourceLoader {
    /// Kinds Mecha understands now; other `dapr.io` kinds are skipped with a note.
    static let handledKinds: Set<String> = ["Component", "Configuration", "Subscription", "Resiliency", "TrafficPolicy", "AccessPolicy"]

    /// Loads every `*.yaml` / `*.yml` file in each path (a path may also be a single file).
    /// Directories are read in name order, not recursively. A missing path is an error.
    public static func load(paths: [String]) throws(ResourceLoadError) -> LoadedResources {
        try self.load(paths: paths, extra: [])
    }

    /// The files under `paths`, plus resources given as text (from the control plane), each named
    /// by its `file` in errors.
    public static func load(paths: [String], extra: [(text: String, file: String)]) throws(ResourceLoadError) -> LoadedResources {
        var loaded = LoadedResources()
        var errors: [ResourceError] = []
        for (text, file) in extra {
            self.decode(text: text, file: file, into: &loaded, errors: &errors)
        }
        for path in paths {
            let files: [String]
            do throws(ResourceError) {
                files = try self.yamlFiles(at: path)
            } catch {
                errors.append(error)
                continue
            }
            for file in files {
                do throws(ResourceError) {
                    let text = try self.readText(file)
                    self.decode(text: text, file: file, into: &loaded, errors: &errors)
                } catch {
                    errors.append(error)
                }
            }
        }
        // Dapr merges every Resiliency resource, so policy names are checked across all of them.
        errors += ResiliencyValidation.referenceErrors(loaded.resiliencies)
        guard errors.isEmpty else { throw ResourceLoadError(errors) }
        return loaded
    }

    /// The documents of a multi-document YAML text, split at `---` lines (for storing them one by one).
    public static func splitDocuments(_ text: String) -> [String] {
        var documents: [String] = []
        var current: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("---") && line.dropFirst(3).allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) {
                documents.append(current.joined(separator: "\n"))
                current = []
            } else {
                current.append(line)
            }
        }
        documents.append(current.joined(separator: "\n"))
        return documents.filter { document in
            !document.split(separator: "\n").allSatisfy { line in line.allSatisfy { $0 == " " || $0 == "\t" || $0 == "\r" } || line.hasPrefix("#") }
        }
    }

    /// Decodes YAML text as if read from `file`.
    public static func load(text: String, file: String) throws(ResourceLoadError) -> LoadedResources {
        var loaded = LoadedResources()
        var errors: [ResourceError] = []
        self.decode(text: text, file: file, into: &loaded, errors: &errors)
        errors += ResiliencyValidation.referenceErrors(loaded.resiliencies)
        guard errors.isEmpty else { throw ResourceLoadError(errors) }
        return loaded
    }

    /// Loads the `Configuration` named by `--config`. The file must contain one.
    public static func loadConfiguration(file: String) throws(ResourceLoadError) -> ConfigurationSpec {
        let text: String
        do throws(ResourceError) {
            text = try self.readText(file)
        } catch {
            throw ResourceLoadError([error])
        }
        let loaded = try self.load(text: text, file: file)
        guard let configuration = loaded.configurations.first else {
            throw ResourceLoadError([ResourceError(source: .init(file: file, resource: "Configuration"), field: nil, reason: "the file contains no Configuration resource")])
        }
        return configuration
    }

    static func decode(text: String, file: String, into loaded: inout LoadedResources, errors: inout [ResourceError]) {
        let documents: [YAMLNode]
        do throws(YAMLDocuments.SyntaxError) {
            documents = try YAMLDocuments.parse(text)
        } catch {
            errors.append(ResourceError(source: .init(file: file, resource: "document", line: error.line), field: nil, reason: error.message))
            return
        }
        for (index, document) in documents.enumerated() {
            if document.isNull { continue }  // empty document between separators
            let kind: String
            let name: String
            if case .mapping(let pairs, _) = document {
                kind = pairs.first { $0.key == "kind" }.flatMap { if case .scalar(let text, _, _) = $0.value { text } else { nil } } ?? ""
                let metadata = pairs.first { $0.key == "metadata" }?.value
                if case .mapping(let metadataPairs, _)? = metadata,
                    case .scalar(let text, _, _)? = metadataPairs.first(where: { $0.key == "name" })?.value
                {
                    name = text
                } else {
                    name = "#\(index + 1)"
                }
            } else {
                errors.append(ResourceError(source: .init(file: file, resource: "document #\(index + 1)", line: document.line), field: nil, reason: "a resource must be a mapping"))
                continue
            }
            let source = ResourceSource(file: file, resource: "\(kind.isEmpty ? "document" : kind)/\(name)", line: document.line)
            let reader = NodeReader(document, path: "", source: source)
            do throws(ResourceError) {
                switch kind {
                case "Component": loaded.components.append(try ResourceDecoders.component(reader))
                case "Configuration": loaded.configurations.append(try ResourceDecoders.configuration(reader))
                case "Subscription": loaded.subscriptions.append(try ResourceDecoders.subscription(reader))
                case "Resiliency": loaded.resiliencies.append(try ResourceDecoders.resiliency(reader))
                case "TrafficPolicy": loaded.trafficPolicies.append(try ResourceDecoders.trafficPolicy(reader))
                case "AccessPolicy": loaded.accessPolicies.append(try ResourceDecoders.accessPolicy(reader))
                case "":
                    throw ResourceError(source: source, field: "kind", reason: "required field is missing")
                default:
                    loaded.skipped.append((source, "kind \(kind) is not supported yet; skipped"))
                }
            } catch {
                errors.append(error)
            }
        }
    }

    public static func yamlFiles(at path: String) throws(ResourceError) -> [String] {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ResourceError(source: .init(file: path, resource: "resources path"), field: nil, reason: "no such file or directory")
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { return [path] }
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw ResourceError(source: .init(file: path, resource: "resources path"), field: nil, reason: "cannot read directory: \(error)")
        }
        return entries
            .filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && !$0.hasPrefix(".") }
            .sorted()
            .map { path.hasSuffix("/") ? path + $0 : path + "/" + $0 }
            .filter { file in
                // Only files (symlinks followed): a subdirectory named `x.yaml` is not a resource file.
                var entry = stat()
                return stat(file, &entry) != 0 || (entry.st_mode & S_IFMT) != S_IFDIR
            }
    }

    static func readText(_ file: String, limit: Int = YAMLLimits.standard.maxFileBytes) throws(ResourceError) -> String {
        // Read at most one byte past the limit: a huge file (or /dev/zero) is refused, not loaded.
        let descriptor = open(file, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ResourceError(source: .init(file: file, resource: "file"), field: nil, reason: "cannot read file")
        }
        defer { close(descriptor) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while data.count <= limit {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else {
                throw ResourceError(source: .init(file: file, resource: "file"), field: nil, reason: "cannot read file")
            }
            if count == 0 { break }
            data.append(contentsOf: chunk[0..<count])
        }
        guard data.count <= limit else {
            throw ResourceError(
                source: .init(file: file, resource: "file"), field: nil,
                reason: "the file is larger than \(limit >> 20) MiB, the limit for a resource file")
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw ResourceError(source: .init(file: file, resource: "file"), field: nil, reason: "file is not valid UTF-8")
        }
        return text
    }
}
