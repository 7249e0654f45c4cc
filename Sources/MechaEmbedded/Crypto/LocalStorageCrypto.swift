import Foundation
public import MechaCore
public import MechaCrypto

/// `crypto.dapr.localstorage`: keys are files in a folder, read on every use (so a replaced key
/// file takes effect at once, as in Dapr).
///
/// Metadata: `path` (required): the folder. A relative path resolves against the sidecar's
/// working directory. The key name is the file name (sub-folders allowed); names containing `..`
/// are refused, so no key escapes the folder. `*.json` files are JWKs, `*.pem` files PEM; any
/// other file is sniffed like Dapr's `ParseKey` (JWK, PEM, or raw — possibly base64 — symmetric
/// key bytes).
public struct LocalStorageCrypto: LocalKeyProvider {
    /// The folder, absolute and without trailing separators.
    public let folder: String

    /// Checks that `path` is an existing directory. Throws `ComponentConfigurationError` (key
    /// `path`) otherwise.
    public init(path: String, workingDirectory: String? = nil) throws(ComponentConfigurationError) {
        guard !path.isEmpty else { throw ComponentConfigurationError(key: "path", reason: "metadata property 'path' is required") }
        let absolute = path.hasPrefix("/") ? path : (workingDirectory ?? FileManager.default.currentDirectoryPath) + "/" + path
        let cleaned = URL(fileURLWithPath: absolute).standardizedFileURL.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: cleaned, isDirectory: &isDirectory) else {
            throw ComponentConfigurationError(key: "path", reason: "could not stat path '\(path)': no such file or directory")
        }
        guard isDirectory.boolValue else { throw ComponentConfigurationError(key: "path", reason: "path '\(path)' is not a directory") }
        self.folder = cleaned
    }

    public func retrieveKey(_ name: String) async throws -> CryptoKey {
        guard !name.contains("..") else { throw CryptoKeyError("invalid key path: cannot contain '..'") }
        let path = URL(fileURLWithPath: self.folder + "/" + name).standardizedFileURL.path
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "permission denied or not a file" : "no such file or directory"
            throw CryptoKeyError("failed to load key '\(name)': open \(path): \(reason)")
        }
        let contentType: String? = switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "json": "application/json"
        case "pem": "application/x-pem-file"
        default: nil
        }
        do {
            return try CryptoKey.parse(Array(data), contentType: contentType)
        } catch {
            throw CryptoKeyError("failed to parse key from secret: \(error)")
        }
    }
}

/// Builds `crypto.dapr.localstorage` components.
public struct LocalStorageCryptoFactory: ComponentFactory {
    public init() {}

    public var type: ComponentType { ComponentType(.crypto, "dapr.localstorage") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        try LocalStorageCrypto(path: try spec.metadata.require("path"))
    }
}
