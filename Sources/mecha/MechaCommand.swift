import ArgumentParser
import MechaSidecar

/// `mecha`: the multi-runtime sidecar. Started as `daprd` it is `mecha sidecar`; as `dapr` it
/// accepts `dapr run …`.

struct Mecha: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mecha",
        abstract: "A multi-runtime sidecar that speaks the Dapr API.",
        version: Sidecar.version,
        subcommands: [
            SidecarCommand.self, RunCommand.self, ListCommand.self, StopCommand.self, InvokeCommand.self, DashboardCommand.self, ControlPlaneCommand.self,
        ]
    )

    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let invokedAs = CommandLine.arguments.first.map { String($0.split(separator: "/").last ?? "") } ?? "mecha"
        switch invokedAs {
        case "daprd":
            await self.main(["sidecar"] + ArgumentNormalizer.goStyle(arguments, booleans: ArgumentNormalizer.sidecarBooleans))
        case "dapr":
            guard let subcommand = arguments.first else {
                await self.main(["--help"])
                return
            }
            switch subcommand {
            case "run":
                await self.main(["run", "--dapr-cli-defaults"] + ArgumentNormalizer.goStyle(Array(arguments.dropFirst()), booleans: ArgumentNormalizer.runBooleans))
            case "list", "stop", "invoke":
                await self.main([subcommand] + ArgumentNormalizer.goStyle(Array(arguments.dropFirst()), booleans: ["kubernetes"]))
            case "--version", "-v", "version":
                print("CLI version: \(Sidecar.version) (mecha)\nRuntime version: \(Sidecar.version)")
            default:
                print("❌  dapr \(subcommand) is not supported by mecha; supported: dapr run, dapr list, dapr stop, dapr invoke")
                Foundationless.exit(1)
            }
        default:
            if arguments.first == "sidecar" {
                await self.main(["sidecar"] + ArgumentNormalizer.goStyle(Array(arguments.dropFirst()), booleans: ArgumentNormalizer.sidecarBooleans))
            } else if arguments.first == "run" {
                await self.main(["run"] + ArgumentNormalizer.goStyle(Array(arguments.dropFirst()), booleans: ArgumentNormalizer.runBooleans))
            } else {
                await self.main(arguments)
            }
        }
    }
}

/// Go/pflag command lines (`-app-id x`, `--flag=true`) turned into what ArgumentParser expects.
enum ArgumentNormalizer {
    static let sidecarBooleans: Set<String> = [
        "enable-app-health-check", "log-as-json", "enable-api-logging", "enable-metrics", "enable-profiling", "enable-mtls",
        "disable-builtin-k8s-secret-store", "app-ssl",
    ]
    static let runBooleans: Set<String> = ["enable-app-health-check", "log-as-json", "enable-api-logging", "app-ssl", "kubernetes"]

    static func goStyle(_ arguments: [String], booleans: Set<String>) -> [String] {
        var output: [String] = []
        var passthrough = false
        for argument in arguments {
            if passthrough || argument == "--" {
                passthrough = true
                output.append(argument)
                continue
            }
            var argument = argument
            // `--flag -1`: ArgumentParser would read -1 as a flag, so join it as `--flag=-1`.
            if argument.hasPrefix("-"), Int(argument) != nil, let previous = output.last, previous.hasPrefix("--"),
                !previous.contains("="), !booleans.contains(String(previous.dropFirst(2)))
            {
                output[output.count - 1] = previous + "=" + argument
                continue
            }
            // -app-id → --app-id (single-dash long flags, as Go's flag package allows)
            if argument.hasPrefix("-"), !argument.hasPrefix("--"), argument.count > 2, !(argument.dropFirst().first?.isNumber ?? false) {
                argument = "-" + argument
            }
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                let name = String(argument[argument.index(argument.startIndex, offsetBy: 2)..<equals])
                let value = String(argument[argument.index(after: equals)...])
                if booleans.contains(name) {
                    switch value.lowercased() {
                    case "true", "1", "t": output.append("--\(name)")
                    case "false", "0", "f": output.append("--no-\(name)")
                    default: output.append(argument)
                    }
                    continue
                }
            }
            output.append(argument)
        }
        return output
    }
}

#if canImport(Glibc)
import Glibc
#endif

enum Foundationless {
    static func exit(_ code: Int32) -> Never { Glibc.exit(code) }
}
