/// An `http(s)://host[:port][/path]` endpoint taken apart: where to connect, the Host header and
/// the path prefix of every request.
struct HTTPEndpoint: Sendable, Hashable {
    var tls: Bool
    var host: String
    var port: Int
    var hostHeader: String
    /// Without a trailing slash (`/v1`, or empty).
    var path: String

    init?(_ text: String) {
        let lowered = text.lowercased()
        let rest: Substring
        if lowered.hasPrefix("http://") {
            self.tls = false
            rest = text.dropFirst(7)
        } else if lowered.hasPrefix("https://") {
            self.tls = true
            rest = text.dropFirst(8)
        } else {
            return nil
        }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var path = String(rest[authorityEnd...])
        while path.hasSuffix("/") { path.removeLast() }
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var host = Substring(authority)
        var port = self.tls ? 443 : 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":", let value = Int(after.dropFirst()), (1...65535).contains(value) else { return nil }
                port = value
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let value = Int(authority[authority.index(after: colon)...]), (1...65535).contains(value) else { return nil }
            port = value
        }
        guard !host.isEmpty else { return nil }
        self.host = String(host)
        self.port = port
        self.hostHeader = String(authority)
        self.path = path
    }
}
