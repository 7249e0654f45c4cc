#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import MechaConfig
import MechaCore

/// `dapr list` / `mecha list`: the apps `mecha run` started on this machine, as the Dapr CLI's
/// self-hosted `dapr list` shows them.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the apps started with `mecha run` / `dapr run`.")

    @Option(name: [.customShort("o"), .customLong("output")], help: "json, yaml or table (default).") var output: String = "table"
    @Option(name: .customLong("mecha-home"), help: .hidden) var mechaHome: String?
    @Flag(name: [.customShort("k"), .customLong("kubernetes")], help: .hidden) var kubernetes = false

    func run() throws {
        guard !self.kubernetes else {
            Console.failure("dapr list -k: Kubernetes is not supported by mecha")
            throw ExitCode(1)
        }
        let records = RunRegistry.list(home: RunRegistry.home(self.mechaHome, environment: ProcessEnvironment.current))
        let now = RunRegistry.now()
        let rows = records.map { record -> [(String, String)] in
            [
                ("APP ID", record.appId), ("HTTP PORT", String(record.httpPort)), ("GRPC PORT", String(record.grpcPort)),
                ("APP PORT", String(record.appPort)), ("COMMAND", record.command),
                ("AGE", RunRegistry.ageText(since: record.createdUnix, now: now)), ("CREATED", record.created),
                ("DAPRD PID", String(record.daprdPid)), ("CLI PID", String(record.cliPid)), ("APP PID", String(record.appPid)),
                ("RUN_TEMPLATE_PATH", record.runTemplatePath), ("APP_LOG_PATH", record.appLogPath), ("DAPRD_LOG_PATH", record.daprdLogPath),
            ]
        }
        switch self.output {
        case "json", "yaml":
            var objects: [[String: Any]] = []
            for record in records {
                objects.append([
                    "appId": record.appId, "httpPort": record.httpPort, "grpcPort": record.grpcPort, "appPort": record.appPort,
                    "metricsEnabled": record.metricsEnabled, "command": record.command,
                    "age": RunRegistry.ageText(since: record.createdUnix, now: now), "created": record.created,
                    "daprdPid": Int(record.daprdPid), "cliPid": Int(record.cliPid), "appPid": Int(record.appPid),
                    "maxRequestBodySize": record.maxRequestBodySize, "httpReadBufferSize": record.httpReadBufferSize,
                    "runTemplatePath": record.runTemplatePath, "appLogPath": record.appLogPath, "daprdLogPath": record.daprdLogPath,
                    "runTemplateName": record.runTemplateName,
                ])
            }
            if self.output == "json" {
                let data = try JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(Self.yaml(objects), terminator: "")
            }
        case "table", "":
            guard !rows.isEmpty else {
                print("No Dapr instances found.")
                return
            }
            let headers = rows[0].map(\.0)
            var widths = headers.map(\.count)
            for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.1.count) } }
            func line(_ cells: [String]) -> String {
                "  " + cells.enumerated().map { index, cell in cell.padding(toLength: widths[index], withPad: " ", startingAt: 0) }
                    .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
            }
            print(line(headers))
            for row in rows { print(line(row.map(\.1))) }
        default:
            Console.failure("An invalid output format was specified.")
            throw ExitCode(1)
        }
    }

    static func yaml(_ objects: [[String: Any]]) -> String {
        if objects.isEmpty { return "[]\n" }
        var text = ""
        for object in objects {
            var first = true
            for key in object.keys.sorted() {
                let value = object[key]!
                let rendered: String
                if let string = value as? String {
                    rendered = string.isEmpty ? "\"\"" : "\"" + string.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
                } else {
                    rendered = "\(value)"
                }
                text += (first ? "- " : "  ") + "\(key): \(rendered)\n"
                first = false
            }
        }
        return text
    }
}

/// `dapr stop --app-id <id>` / `dapr stop -f <dir|file>`: as the Dapr CLI does — an app whose
/// runner hosts only it stops through the runner (SIGTERM to the `mecha run` process); an app of a
/// multi-app run stops through its sidecar; `-f` stops the whole run started from that template.
struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop apps started with `mecha run` / `dapr run`.")

    @Option(name: [.customShort("a"), .customLong("app-id")], help: "The app id to stop.") var appID: String?
    @Option(name: [.customShort("f"), .customLong("run-file")], help: "Stop every app of this run template (a dapr.yaml or its folder).") var runFile: String?
    @Option(name: .customLong("mecha-home"), help: .hidden) var mechaHome: String?
    @Flag(name: [.customShort("k"), .customLong("kubernetes")], help: .hidden) var kubernetes = false
    @Argument(help: "More app ids.") var appIDs: [String] = []

    func run() throws {
        let records = RunRegistry.list(home: RunRegistry.home(self.mechaHome, environment: ProcessEnvironment.current))
        if let runFile = self.runFile {
            let file: String
            do throws(ResourceError) {
                file = RunTemplate.absolute(try RunTemplate.locate(runFile), base: FileManager.default.currentDirectoryPath)
            } catch {
                Console.failure("Failed to get run file path: \(error.reason): \(runFile)")
                throw ExitCode(1)
            }
            guard let record = records.first(where: { $0.runTemplatePath == file }) else {
                Console.failure("Failed to stop Dapr and app processes: couldn't find apps with run file \"\(file)\"")
                return
            }
            kill(record.cliPid, SIGTERM)
            Console.success("Dapr and app processes stopped successfully")
            return
        }
        let ids = (self.appID.map { [$0] } ?? []) + self.appIDs
        var appsPerRunner: [Int32: Int] = [:]
        for record in records { appsPerRunner[record.cliPid, default: 0] += 1 }
        for id in ids {
            guard let record = records.first(where: { $0.appId == id }) else {
                Console.failure("failed to stop app id \(id): couldn't find app id \(id)")
                continue
            }
            let pid = (appsPerRunner[record.cliPid] ?? 0) > 1 ? record.daprdPid : record.cliPid
            appsPerRunner[record.cliPid, default: 1] -= 1
            if kill(pid, SIGTERM) != 0 {
                Console.failure("failed to stop app id \(id): \(String(cString: strerror(errno)))")
            } else {
                Console.success("app stopped successfully: \(id)")
            }
        }
    }
}

/// `dapr invoke --app-id <id> --method <m> [--data …|--data-file …] [--verb …]`: calls the method
/// through the app's own sidecar, as the Dapr CLI does.
struct InvokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "invoke", abstract: "Invoke a method of an app started with `mecha run` / `dapr run`.")

    @Option(name: [.customShort("a"), .customLong("app-id")], help: "The app id to invoke.") var appID: String
    @Option(name: [.customShort("m"), .customLong("method")], help: "The method to invoke.") var method: String
    @Option(name: [.customShort("d"), .customLong("data")], help: "The request body (JSON).") var data: String = ""
    @Option(name: [.customShort("f"), .customLong("data-file")], help: "A file with the request body.") var dataFile: String = ""
    @Option(name: [.customShort("v"), .customLong("verb")], help: "The HTTP verb (default POST).") var verb: String = "POST"
    @Option(name: .customLong("mecha-home"), help: .hidden) var mechaHome: String?
    @Option(name: [.customShort("u"), .customLong("unix-domain-socket")], help: .hidden) var unixDomainSocket: String?

    func run() throws {
        guard self.data.isEmpty || self.dataFile.isEmpty else {
            Console.failure("Only one of --data and --data-file allowed in the same invoke command")
            throw ExitCode(1)
        }
        var body = Array(self.data.utf8)
        if !self.dataFile.isEmpty {
            guard let contents = FileManager.default.contents(atPath: self.dataFile) else {
                Console.failure("Error reading payload from '\(self.dataFile)'. Error: cannot read the file")
                throw ExitCode(1)
            }
            body = Array(contents)
        }
        let records = RunRegistry.list(home: RunRegistry.home(self.mechaHome, environment: ProcessEnvironment.current))
        guard let record = records.first(where: { $0.appId == self.appID }) else {
            Console.failure("error invoking app \(self.appID): app ID \(self.appID) not found")
            throw ExitCode(1)
        }
        let path = "/v1.0/invoke/\(record.appId)/method/\(self.method)"
        let response: LoopbackHTTP.Response
        do {
            response = try LoopbackHTTP.request(
                port: record.httpPort, method: self.verb.uppercased(), path: path, body: body,
                headers: [("Content-Type", "application/json")])
        } catch {
            Console.failure("error invoking app \(self.appID): \(error)")
            throw ExitCode(1)
        }
        guard (200..<400).contains(response.status) else {
            Console.failure("error invoking app \(self.appID): \(response.status) \(response.reason)")
            throw ExitCode(1)
        }
        if !response.body.isEmpty { print(String(decoding: response.body, as: UTF8.self)) }
        Console.success("App invoked successfully")
    }
}

/// A blocking HTTP/1.1 request to 127.0.0.1 for the CLI commands (one request, then close).
enum LoopbackHTTP {
    struct Response {
        var status: Int
        var reason: String
        var body: [UInt8]
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func request(port: Int, method: String, path: String, body: [UInt8], headers: [(String, String)], timeoutSeconds: Int = 60) throws -> Response {
        let exchanged = Loopback.withSocket(port: port) { fd, address, length -> Result<[UInt8], Failure> in
            var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            guard connect(fd, address, length) == 0 else { return .failure(Failure(description: "dial tcp 127.0.0.1:\(port): connection refused")) }
            var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
            for (name, value) in headers { head += "\(name): \(value)\r\n" }
            head += "\r\n"
            Loopback.writeAll(fd, Array(head.utf8) + body)
            var received: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 64 << 10)
            while true {
                let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else { return .failure(Failure(description: "no answer within \(timeoutSeconds) s")) }
                if count == 0 { break }
                received.append(contentsOf: chunk[0..<count])
            }
            return .success(received)
        }
        guard let exchanged else { throw Failure(description: "cannot create a socket") }
        let received = try exchanged.get()
        return try self.parse(received)
    }

    static func parse(_ bytes: [UInt8]) throws -> Response {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = bytes.firstRange(of: separator) else { throw Failure(description: "malformed HTTP response") }
        let head = String(decoding: bytes[..<end.lowerBound], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ", maxSplits: 2).map(String.init)
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure(description: "malformed HTTP status line") }
        var chunked = false
        for line in lines.dropFirst() {
            let lower = line.lowercased()
            if lower.hasPrefix("transfer-encoding:"), lower.contains("chunked") { chunked = true }
        }
        var body = Array(bytes[end.upperBound...])
        if chunked { body = self.dechunk(body) }
        return Response(status: status, reason: statusParts.count > 2 ? statusParts[2] : "", body: body)
    }

    static func dechunk(_ bytes: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        var index = 0
        while index < bytes.count {
            guard let lineEnd = bytes[index...].firstRange(of: [13, 10]) else { break }
            let sizeText = String(decoding: bytes[index..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size > 0 else { break }
            let start = lineEnd.upperBound
            guard start + size <= bytes.count else { break }
            output.append(contentsOf: bytes[start..<start + size])
            index = start + size + 2
        }
        return output
    }
}
