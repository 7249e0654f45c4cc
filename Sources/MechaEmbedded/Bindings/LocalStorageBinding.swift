#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
public import MechaCore

/// `bindings.localstorage`: an output binding over the files under one root directory.
///
/// Metadata: `rootPath` (required). A relative root resolves against the current directory;
/// symlinks are resolved on its longest existing parent; the directory is created when missing.
/// `/proc`, `/sys`, `/boot`, `/var/run/secrets` and anything beneath are refused, as is a root that
/// is a file.
///
/// Operations (request metadata `fileName` names the file, relative to the root):
/// - `create`: writes the request data, creating parent directories; without `fileName` a random
///   UUID is used. A JSON string (`"hello"`, as the HTTP API sends it) is unquoted first; then, as in
///   Dapr, text that is valid standard base64 is decoded (so `"test"` writes three binary bytes).
///   Request metadata `decodeBase64: "false"` turns that decoding off. Objects are written as their
///   JSON. Answers `{"fileName":"<relative path>"}`.
/// - `get`: the raw file bytes; a missing file is `file not found: <absolute path>`.
/// - `list`: a JSON array of the absolute paths of the regular files under the root (or under the
///   `fileName` subdirectory), recursively, in walk order (names sorted byte-wise within each
///   directory); symlinks are not followed.
/// - `delete`: removes the file (or an empty directory); answers empty data.
///
/// Path safety: `fileName` is joined under the root component by component. `..` is resolved
/// lexically and clamped at the root (`../../etc/passwd` is `<root>/etc/passwd`) and an absolute
/// name is read relative to the root. Symlinks met on the way are followed only while they stay
/// inside the root; one that points outside is refused with an error (Dapr's secure join re-roots
/// such links instead).
///
/// Deliberate differences from Dapr: `list` of an empty directory answers `[]` (Dapr answers `null`,
/// a nil Go slice); a failed `delete` reads `error deleting file <abs>: <reason>` (without Go's
/// `remove <abs>:` prefix); `decodeBase64` is a Mecha extension.
public struct LocalStorageBinding: OutputBinding {
    /// The root directory: absolute, symlink-free.
    public let rootPath: String
    private let rootComponents: [String]

    public var operations: [String] { ["create", "get", "list", "delete"] }

    /// Validates, resolves and creates `rootPath`. Throws `ComponentConfigurationError` with key
    /// `rootPath`.
    public init(rootPath: String) throws(ComponentConfigurationError) {
        let root = try resolveRootPath(rootPath)
        self.rootPath = root
        self.rootComponents = pathComponents(root)
    }

    public func invoke(_ request: BindingInvokeRequest) async throws -> BindingInvokeResponse {
        switch request.operation.lowercased() {
        case "create": return try self.create(request)
        case "get": return try self.get(request)
        case "list": return try self.list(request)
        case "delete": return try self.delete(request)
        default: throw BindingError("unsupported operation \(request.operation)")
        }
    }

    // MARK: Operations

    private func create(_ request: BindingInvokeRequest) throws(BindingError) -> BindingInvokeResponse {
        let fileName = request.metadata["fileName"].flatMap { $0.isEmpty ? nil : $0 } ?? RandomID.uuid()
        var decodeBase64 = true
        if let raw = request.metadata["decodeBase64"], !raw.trimmingSpaces().isEmpty {
            guard let flag = ComponentMetadata.parseBool(raw.trimmingSpaces()) else {
                throw BindingError("invalid decodeBase64 value '\(raw)': expected true or false")
            }
            decodeBase64 = flag
        }
        let target = try self.resolve(fileName)
        let content = Self.content(of: request.data, decodeBase64: decodeBase64)

        let directory = parentDirectory(target.absolute)
        if let failure = makeDirectoryTree(directory) {
            throw BindingError("error creating directory \(directory): mkdir \(failure.path): \(errorText(failure.code))")
        }
        let descriptor = open(target.absolute, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o666)
        guard descriptor >= 0 else {
            throw BindingError("error creating file \(target.absolute): open \(target.absolute): \(errorText(errno))")
        }
        defer { closeDescriptor(descriptor) }
        var written = 0
        while written < content.count {
            let count = content.withUnsafeBytes { buffer in
                write(descriptor, buffer.baseAddress! + written, buffer.count - written)
            }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw BindingError("error writing to file \(target.absolute): write \(target.absolute): \(errorText(code))")
            }
            written += count
        }
        let body = JSONValue.object([("fileName", .string(target.relative))])
        return BindingInvokeResponse(data: body.serialized)
    }

    private func get(_ request: BindingInvokeRequest) throws(BindingError) -> BindingInvokeResponse {
        let target = try self.resolve(request.metadata["fileName"] ?? "")
        let descriptor = open(target.absolute, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else {
            let code = errno
            if code == ENOENT { throw BindingError("file not found: \(target.absolute)") }
            throw BindingError("error opening path \(target.absolute): open \(target.absolute): \(errorText(code))")
        }
        defer { closeDescriptor(descriptor) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw BindingError("error reading file \(target.absolute): read \(target.absolute): \(errorText(code))")
            }
            if count == 0 { break }
            result.append(contentsOf: chunk[0..<count])
        }
        return BindingInvokeResponse(data: result)
    }

    private func list(_ request: BindingInvokeRequest) throws(BindingError) -> BindingInvokeResponse {
        let target = try self.resolve(request.metadata["fileName"] ?? "")
        var info = stat()
        guard stat(target.absolute, &info) == 0 else {
            throw BindingError("error getting stats for path \(target.absolute): stat \(target.absolute): \(errorText(errno))")
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw BindingError("unable to list files as the file specified is not a directory: \(target.absolute)")
        }
        var files: [String] = []
        try Self.walk(target.absolute, into: &files)
        return BindingInvokeResponse(data: JSONValue.array(files.map { .string($0) }).serialized)
    }

    private func delete(_ request: BindingInvokeRequest) throws(BindingError) -> BindingInvokeResponse {
        let target = try self.resolve(request.metadata["fileName"] ?? "")
        // Like Go's os.Remove: a file, or else an empty directory.
        if unlink(target.absolute) == 0 { return .noResponse }
        var code = errno
        if rmdir(target.absolute) == 0 { return .noResponse }
        let directoryCode = errno
        if directoryCode != ENOTDIR { code = directoryCode }
        throw BindingError("error deleting file \(target.absolute): \(errorText(code))")
    }

    // MARK: Data

    /// The bytes `create` writes: a JSON string is unquoted, then valid standard base64 decoded.
    static func content(of data: [UInt8], decodeBase64: Bool) -> [UInt8] {
        var bytes = data
        if bytes.count >= 2, bytes.first == UInt8(ascii: "\""), bytes.last == UInt8(ascii: "\""),
            case .string(let text)? = try? JSONValue(parsing: bytes)
        {
            bytes = Array(text.utf8)
        }
        if decodeBase64 {
            // Go's decoder skips line breaks anywhere in the input.
            let text = String(decoding: bytes.filter { $0 != 0x0A && $0 != 0x0D }, as: UTF8.self)
            if let decoded = Base64.decode(text) { bytes = decoded }
        }
        return bytes
    }

    /// Regular files under `directory`, depth first, names sorted byte-wise in each directory, as
    /// Go's `filepath.Walk` visits them. Symlinks are listed neither as files nor followed.
    private static func walk(_ directory: String, into files: inout [String]) throws(BindingError) {
        guard let stream = opendir(directory) else {
            throw BindingError("error listing files in \(directory): open \(directory): \(errorText(errno))")
        }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(stream)
        names.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for name in names {
            let path = directory == "/" ? "/" + name : directory + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }  // vanished meanwhile
            switch info.st_mode & S_IFMT {
            case S_IFREG: files.append(path)
            case S_IFDIR: try self.walk(path, into: &files)
            default: continue
            }
        }
    }

    // MARK: Paths

    /// A request path resolved under the root: `absolute` contains no symlink and no `..`.
    struct ResolvedPath: Equatable {
        var absolute: String
        /// Relative to the root (`.` for the root itself).
        var relative: String
    }

    /// Joins `fileName` under the root without ever leaving it (see the type's documentation).
    func resolve(_ fileName: String) throws(BindingError) -> ResolvedPath {
        // File system calls take C strings, which end at a NUL: "a\0/../x" must not become "a".
        guard !NULText.contains(fileName) else {
            throw BindingError("error getting absolute path for file \(NULText.quoted(fileName)): the name contains a NUL character")
        }
        // A stack of components still to walk, the next one last; `fromLink` marks symlink targets.
        var pending: [(name: String, fromLink: Bool)] = pathComponents(fileName).reversed().map { ($0, false) }
        var resolved: [String] = []
        var links = 0
        while let next = pending.popLast() {
            let (name, fromLink) = next
            if name == ".." {
                if resolved.isEmpty {
                    if fromLink { throw self.escapeError(fileName) }
                    continue  // a request's `..` is clamped at the root
                }
                resolved.removeLast()
                continue
            }
            let candidate = joinPath(self.rootPath, resolved + [name])
            var info = stat()
            guard lstat(candidate, &info) == 0, info.st_mode & S_IFMT == S_IFLNK else {
                resolved.append(name)  // a directory, a file, or not there (yet)
                continue
            }
            links += 1
            guard links <= 40 else {
                throw BindingError("error getting absolute path for file \(fileName): too many levels of symbolic links")
            }
            guard let target = readLink(candidate) else {
                throw BindingError("error getting absolute path for file \(fileName): readlink \(candidate): \(errorText(errno))")
            }
            let targetComponents = pathComponents(target)
            if target.hasPrefix("/") {
                guard targetComponents.starts(with: self.rootComponents) else { throw self.escapeError(fileName) }
                resolved = []
                pending += targetComponents.dropFirst(self.rootComponents.count).reversed().map { ($0, true) }
            } else {
                pending += targetComponents.reversed().map { ($0, true) }
            }
        }
        return ResolvedPath(
            absolute: joinPath(self.rootPath, resolved),
            relative: resolved.isEmpty ? "." : resolved.joined(separator: "/")
        )
    }

    private func escapeError(_ fileName: String) -> BindingError {
        BindingError("error getting absolute path for file \(fileName): a symlink points outside rootPath \(self.rootPath)")
    }
}

/// Builds `bindings.localstorage` components from `rootPath` (required).
public struct LocalStorageBindingFactory: ComponentFactory {
    public init() {}

    public var type: ComponentType { ComponentType(.bindings, "localstorage") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        try LocalStorageBinding(rootPath: try spec.metadata.require("rootPath"))
    }
}

// MARK: - File-system helpers

/// Roots a component may never use, with anything beneath them.
private let forbiddenRoots = ["/proc", "/sys", "/boot", "/var/run/secrets"]

/// `path` split on `/`, without empty and `.` components.
private func pathComponents(_ path: String) -> [String] {
    path.split(separator: "/", omittingEmptySubsequences: true).map(String.init).filter { $0 != "." }
}

private func joinPath(_ root: String, _ components: [String]) -> String {
    guard !components.isEmpty else { return root }
    return (root == "/" ? "" : root) + "/" + components.joined(separator: "/")
}

private func parentDirectory(_ path: String) -> String {
    let components = pathComponents(path).dropLast()
    return "/" + components.joined(separator: "/")
}

private func closeDescriptor(_ descriptor: Int32) {
    _ = close(descriptor)
}

/// Go-style error text: `strerror` with a lowercase first letter (`no such file or directory`).
private func errorText(_ code: Int32) -> String {
    let message = String(cString: strerror(code))
    return message.prefix(1).lowercased() + message.dropFirst()
}

/// `mkdir -p` (mode 0777 before the umask): creates the missing directories of `path`. Returns the
/// directory that could not be created and why, or `nil` on success.
private func makeDirectoryTree(_ path: String) -> (path: String, code: Int32)? {
    var info = stat()
    if stat(path, &info) == 0 {
        return info.st_mode & S_IFMT == S_IFDIR ? nil : (path, ENOTDIR)
    }
    let components = pathComponents(path)
    if components.count > 1, let failure = makeDirectoryTree(joinPath("/", Array(components.dropLast()))) {
        return failure
    }
    if mkdir(path, 0o777) != 0 {
        let code = errno
        if code != EEXIST { return (path, code) }
    }
    return nil
}

private func readLink(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = readlink(path, &buffer, buffer.count - 1)
    guard count >= 0 else { return nil }
    return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private func realPath(_ path: String) -> String? {
    guard let pointer = realpath(path, nil) else { return nil }
    defer { free(pointer) }
    return String(cString: pointer)
}

/// An absolute, lexically clean path whose longest existing parent has its symlinks resolved.
private func resolveExistingPrefix(_ components: [String]) -> String {
    for count in stride(from: components.count, through: 0, by: -1) {
        if let real = realPath(joinPath("/", Array(components[0..<count]))) {
            return joinPath(real, Array(components[count...]))
        }
    }
    return joinPath("/", components)
}

/// `components` with `..` applied lexically (never above `/`).
private func lexicallyCleaned(_ components: [String]) -> [String] {
    var result: [String] = []
    for component in components {
        if component == ".." {
            if !result.isEmpty { result.removeLast() }
        } else {
            result.append(component)
        }
    }
    return result
}

private func isForbidden(_ path: String) -> Bool {
    let candidates = forbiddenRoots + forbiddenRoots.map { resolveExistingPrefix(pathComponents($0)) }
    return candidates.contains { path == $0 || path.hasPrefix($0 + "/") }
}

/// Validates `rootPath`, resolves it to an absolute symlink-free path and creates it.
private func resolveRootPath(_ raw: String) throws(ComponentConfigurationError) -> String {
    func failure(_ reason: String) -> ComponentConfigurationError {
        ComponentConfigurationError(key: "rootPath", reason: reason)
    }
    guard !raw.isEmpty else { throw failure("property rootPath must not be empty") }
    var absolute = raw
    if !raw.hasPrefix("/") {
        guard let cwd = realPath(".") else {
            throw failure("cannot resolve relative rootPath \(raw): getcwd: \(errorText(errno))")
        }
        absolute = cwd + "/" + raw
    }
    let cleaned = lexicallyCleaned(pathComponents(absolute))
    let lexical = joinPath("/", cleaned)
    let resolved = resolveExistingPrefix(cleaned)
    guard !isForbidden(lexical), !isForbidden(resolved) else {
        throw failure("property rootPath points to a disallowed location")
    }
    var info = stat()
    if stat(resolved, &info) == 0 {
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw failure("property rootPath represents a file and not a directory")
        }
    } else if let failed = makeDirectoryTree(resolved) {
        throw failure("cannot create directory \(resolved): mkdir \(failed.path): \(errorText(failed.code))")
    }
    guard let real = realPath(resolved) else {
        throw failure("cannot resolve rootPath \(resolved): \(errorText(errno))")
    }
    guard !isForbidden(real) else { throw failure("property rootPath points to a disallowed location") }
    return real
}
