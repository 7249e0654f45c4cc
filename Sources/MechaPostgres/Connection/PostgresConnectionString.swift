import MechaCore

/// A PostgreSQL connection string, in either of the forms libpq and pgx (Dapr's driver) accept:
///
/// - keyword/value: `host=localhost port=5432 user=postgres password='it''s' dbname=app sslmode=disable`
///   (values may be single-quoted with `\'` and `\\` escapes; `database` is accepted for `dbname`)
/// - URL: `postgres://user:pass@host:5432/app?sslmode=disable` (also `postgresql://`; percent-escapes decoded)
///
/// Understood: `host` (a name, an address, or a directory holding the Unix socket), `hostaddr`, `port`,
/// `user`, `password`, `dbname`/`database`, `sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
/// `connect_timeout` (seconds), `application_name`, `pool_max_conns`. Other `pool_*` and driver-only
/// keywords of pgx are accepted and ignored; any other keyword is sent to the server as a run-time
/// parameter (as pgx does), so a misspelt one is refused by the server rather than silently dropped.
struct PostgresConnectionString: Sendable, Hashable {
    enum SSLMode: String, Sendable, Hashable, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    var host = "localhost"
    var port = 5432
    var user: String?
    var password: String?
    var database: String?
    /// libpq's default is `prefer`: TLS when the server offers it.
    var sslMode = SSLMode.prefer
    var sslRootCert: String?
    var sslCert: String?
    var sslKey: String?
    var connectTimeout: Duration?
    var maxConnections: Int?
    /// Run-time parameters sent in the startup message (`application_name`, `search_path`, …).
    var parameters: [(String, String)] = []

    /// The Unix socket path when `host` is a directory, as in libpq.
    var unixSocketPath: String? {
        self.host.hasPrefix("/") ? "\(self.host)/.s.PGSQL.\(self.port)" : nil
    }

    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.host == rhs.host && lhs.port == rhs.port && lhs.user == rhs.user && lhs.password == rhs.password
            && lhs.database == rhs.database && lhs.sslMode == rhs.sslMode && lhs.sslRootCert == rhs.sslRootCert
            && lhs.sslCert == rhs.sslCert && lhs.sslKey == rhs.sslKey && lhs.connectTimeout == rhs.connectTimeout
            && lhs.maxConnections == rhs.maxConnections
            && lhs.parameters.map { [$0.0, $0.1] } == rhs.parameters.map { [$0.0, $0.1] }
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(self.host)
        hasher.combine(self.port)
        hasher.combine(self.database)
    }

    /// pgx keywords that configure the Go driver itself; nothing to do for us.
    private static let driverOnlyKeywords: Set<String> = [
        "statement_cache_capacity", "description_cache_capacity", "default_query_exec_mode", "target_session_attrs",
        "sslpassword", "sslsni", "sslnegotiation", "service", "servicefile", "passfile", "krbsrvname", "krbspn",
        "min_read_buffer_size", "prefer_simple_protocol",
    ]

    /// Parses either form. The error's reason never contains the password.
    init(parsing text: String) throws(ComponentConfigurationErrorReason) {
        let trimmed = text.trimmed(of: " \t\r\n")
        guard !trimmed.isEmpty else { throw ComponentConfigurationErrorReason("the connection string is empty") }
        let pairs: [(String, String)]
        if trimmed.hasPrefix("postgres://") || trimmed.hasPrefix("postgresql://") {
            pairs = try Self.urlPairs(trimmed)
        } else if trimmed.contains("://") {
            throw ComponentConfigurationErrorReason("unsupported URL scheme (use postgres:// or postgresql://)")
        } else {
            pairs = try Self.keywordPairs(trimmed)
        }
        for (key, value) in pairs { try self.apply(key, value) }
    }

    private mutating func apply(_ key: String, _ value: String) throws(ComponentConfigurationErrorReason) {
        switch key {
        case "host", "hostaddr":
            guard !value.contains(",") else {
                throw ComponentConfigurationErrorReason("several hosts are not supported (\(key)=\(value))")
            }
            if !value.isEmpty { self.host = value }
        case "port":
            guard let port = Int(value), (1...65535).contains(port) else {
                throw ComponentConfigurationErrorReason("invalid port '\(value)'")
            }
            self.port = port
        case "user": self.user = value.isEmpty ? nil : value
        case "password": self.password = value
        case "dbname", "database": self.database = value.isEmpty ? nil : value
        case "sslmode":
            guard let mode = SSLMode(rawValue: value.lowercased()) else {
                let modes = SSLMode.allCases.map(\.rawValue).joined(separator: ", ")
                throw ComponentConfigurationErrorReason("invalid sslmode '\(value)' (use one of \(modes))")
            }
            self.sslMode = mode
        case "sslrootcert": self.sslRootCert = value
        case "sslcert": self.sslCert = value
        case "sslkey": self.sslKey = value
        case "connect_timeout":
            guard let seconds = Int64(value), seconds >= 0 else {
                throw ComponentConfigurationErrorReason("invalid connect_timeout '\(value)' (whole seconds)")
            }
            self.connectTimeout = seconds == 0 ? nil : .seconds(seconds)
        case "pool_max_conns":
            guard let count = Int(value), count >= 1 else {
                throw ComponentConfigurationErrorReason("invalid pool_max_conns '\(value)'")
            }
            self.maxConnections = count
        default:
            if key.hasPrefix("pool_") || Self.driverOnlyKeywords.contains(key) { return }
            guard !key.isEmpty else { throw ComponentConfigurationErrorReason("a parameter has no name") }
            self.parameters.append((key, value))
        }
    }

    /// `key=value key2 = 'quoted \' value'`.
    private static func keywordPairs(_ text: String) throws(ComponentConfigurationErrorReason) -> [(String, String)] {
        var pairs: [(String, String)] = []
        var characters = Array(text)[...]
        func skipSpaces() { while let first = characters.first, first.isWhitespace { characters = characters.dropFirst() } }
        while true {
            skipSpaces()
            guard !characters.isEmpty else { break }
            var key = ""
            while let first = characters.first, first != "=", !first.isWhitespace {
                key.append(first)
                characters = characters.dropFirst()
            }
            skipSpaces()
            guard characters.first == "=" else {
                throw ComponentConfigurationErrorReason("expected '=' after '\(key)' (use key=value pairs or a postgres:// URL)")
            }
            characters = characters.dropFirst()
            skipSpaces()
            var value = ""
            if characters.first == "'" {
                characters = characters.dropFirst()
                var closed = false
                while let first = characters.first {
                    characters = characters.dropFirst()
                    if first == "\\", let next = characters.first {
                        value.append(next)
                        characters = characters.dropFirst()
                    } else if first == "'" {
                        closed = true
                        break
                    } else {
                        value.append(first)
                    }
                }
                guard closed else { throw ComponentConfigurationErrorReason("unterminated quoted value for '\(key)'") }
            } else {
                while let first = characters.first, !first.isWhitespace {
                    characters = characters.dropFirst()
                    if first == "\\", let next = characters.first {
                        value.append(next)
                        characters = characters.dropFirst()
                    } else {
                        value.append(first)
                    }
                }
            }
            pairs.append((key.lowercased(), value))
        }
        return pairs
    }

    /// `postgres://user:pass@host:port/db?key=value`.
    private static func urlPairs(_ text: String) throws(ComponentConfigurationErrorReason) -> [(String, String)] {
        var rest = Substring(text.drop(while: { $0 != ":" }).dropFirst(3))
        var pairs: [(String, String)] = []
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                pairs.append(("user", try self.percentDecoded(credentials[..<colon], "user")))
                pairs.append(("password", try self.percentDecoded(credentials[credentials.index(after: colon)...], "password")))
            } else {
                pairs.append(("user", try self.percentDecoded(credentials, "user")))
            }
        }
        // Host and port; an IPv6 address is bracketed.
        var host = rest
        var port: Substring?
        if rest.first == "[" {
            guard let close = rest.firstIndex(of: "]") else { throw ComponentConfigurationErrorReason("unterminated [ in the URL's host") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.first == ":" { port = after.dropFirst() }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            port = rest[rest.index(after: colon)...]
        }
        if !host.isEmpty { pairs.append(("host", try self.percentDecoded(host, "host"))) }
        if let port, !port.isEmpty { pairs.append(("port", String(port))) }
        if !path.isEmpty { pairs.append(("dbname", try self.percentDecoded(path, "database"))) }
        for item in query.split(separator: "&") where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = try self.percentDecoded(parts[0], "query parameter")
            let value = parts.count > 1 ? try self.percentDecoded(parts[1], key) : ""
            pairs.append((key.lowercased(), value))
        }
        return pairs
    }

    private static func percentDecoded(_ text: Substring, _ what: String) throws(ComponentConfigurationErrorReason) -> String {
        guard let bytes = PercentDecoding.pathUnescapeBytes(text) else {
            throw ComponentConfigurationErrorReason("invalid percent-escape in the URL's \(what)")
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw ComponentConfigurationErrorReason("the URL's \(what) is not UTF-8 once decoded")
        }
        return decoded
    }
}

/// Why a connection string or other value was refused; the factory attaches the metadata key.
struct ComponentConfigurationErrorReason: Error, Sendable, Hashable {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

extension String {
    /// Drops leading and trailing characters found in `set` (no Foundation).
    func trimmed(of set: String) -> String {
        let characters = Set(set)
        var view = Substring(self)
        while let first = view.first, characters.contains(first) { view = view.dropFirst() }
        while let last = view.last, characters.contains(last) { view = view.dropLast() }
        return String(view)
    }
}
