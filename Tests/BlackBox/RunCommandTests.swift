#if canImport(Glibc)
import Glibc
#endif
import MechaCore
import MechaTesting
import Testing

/// `mecha run`, `dapr run` and `daprd` as a user runs them.
@Suite(.serialized)
struct RunCommandTests {
    static let app = """
        import os, sys, urllib.request
        print("hello from the app", flush=True)
        print("env", os.environ["APP_ID"], os.environ["DAPR_HTTP_PORT"], os.environ["DAPR_GRPC_PORT"], os.environ.get("APP_PORT", "-"), flush=True)
        port = os.environ["DAPR_HTTP_PORT"]
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v1.0/state/statestore", data=b'[{"key":"from-run","value":7}]', method="POST")).read()
        print("saved", urllib.request.urlopen(f"http://127.0.0.1:{port}/v1.0/state/statestore/from-run").read().decode(), flush=True)
        print("to stderr", file=sys.stderr, flush=True)
        sys.exit(3)
        """

    @Test func runStartsSidecarAndAppAndExitsWithTheAppsCode() async throws {
        let home = TestEnvironment.temporaryDirectory("mecha-run")
        defer { TestEnvironment.remove(home) }
        try TestEnvironment.write(Self.app, to: home + "/app.py")
        let httpPort = TestEnvironment.freePort()
        let run = try TestProcess(
            try MechaBinaries.mecha,
            ["run", "--app-id", "runner", "--dapr-http-port", String(httpPort), "--dapr-grpc-port", String(TestEnvironment.freePort()), "--mecha-home", home, "--", "python3", home + "/app.py"],
            logPath: home + "/run.log"
        )
        let code = await run.waitForExit(timeout: .seconds(30))
        let output = run.output
        #expect(code == 3, "\(output)")
        #expect(output.contains("You're up and running! Both Dapr and your app logs will appear here."), "\(output)")
        #expect(output.contains("== APP == hello from the app"))
        #expect(output.contains("== APP == env runner \(httpPort) "))
        #expect(output.contains("== APP == saved 7"))
        #expect(output.contains("== APP == to stderr"))
        #expect(output.contains("The App process exited with error code: 3"))
        #expect(output.contains("Exited Dapr successfully"))
    }

    @Test func signalIsForwardedToTheAppAndSidecarStopsGracefully() async throws {
        let home = TestEnvironment.temporaryDirectory("mecha-run-signal")
        defer { TestEnvironment.remove(home) }
        try TestEnvironment.write(
            """
            import signal, sys, time
            def stop(*_):
                print("app got SIGTERM", flush=True)
                sys.exit(0)
            signal.signal(signal.SIGTERM, stop)
            print("app waiting", flush=True)
            while True:
                time.sleep(0.1)
            """,
            to: home + "/app.py"
        )
        let run = try TestProcess(
            try MechaBinaries.mecha,
            ["run", "--app-id", "waiter", "--dapr-http-port", String(TestEnvironment.freePort()), "--dapr-grpc-port", String(TestEnvironment.freePort()), "--mecha-home", home, "--", "python3", home + "/app.py"],
            logPath: home + "/run.log"
        )
        let deadline = ContinuousClock.now + .seconds(20)
        while !(run.output.contains("You're up and running") && run.output.contains("app waiting")), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(run.output.contains("== APP == app waiting"))
        run.signal(SIGTERM)
        let code = await run.waitForExit(timeout: .seconds(20))
        #expect(code == 0, "\(run.output)")
        #expect(run.output.contains("== APP == app got SIGTERM"))
        #expect(run.output.contains("Exited Dapr successfully"))
    }

    @Test func daprAndDaprdPersonalities() async throws {
        let home = TestEnvironment.temporaryDirectory("mecha-personality")
        defer { TestEnvironment.remove(home) }
        let bin = TestEnvironment.makeDirectory(home + "/bin")
        symlink(try MechaBinaries.mecha, bin + "/dapr")
        symlink(try MechaBinaries.mecha, bin + "/daprd")
        try TestEnvironment.write("print('dapr run works', flush=True)\n", to: home + "/app.py")

        // A port chosen free can be taken by a parallel test before the sidecar binds it: then the
        // run is tried again on other ports.
        var run: TestProcess
        var code: Int32?
        var attempt = 0
        repeat {
            attempt += 1
            run = try TestProcess(
                bin + "/dapr",
                ["run", "-a", "persona", "-H", String(TestEnvironment.freePort()), "-G", String(TestEnvironment.freePort()), "--mecha-home", home, "--", "python3", home + "/app.py"],
                logPath: home + "/dapr-run-\(attempt).log"
            )
            code = await run.waitForExit(timeout: .seconds(30))
        } while code != 0 && run.output.contains("Address already in use") && attempt < 3
        #expect(code == 0, "\(run.output)")
        #expect(run.output.contains("== APP == dapr run works"))

        // daprd with Go-style single-dash flags and --flag=value.
        let port = TestEnvironment.freePort()
        let daprd = try TestProcess(
            bin + "/daprd",
            ["-app-id", "plain", "--dapr-http-port=\(port)", "--dapr-grpc-port=\(TestEnvironment.freePort())", "-mecha-home", home, "--log-as-json=true", "--app-max-concurrency", "-1"],
            logPath: home + "/daprd.log"
        )
        try await TestHTTP.with { http in
            let metadata = try await http.waitFor(port: port, "/v1.0/metadata", timeout: .seconds(20))
            #expect(try JSONValue(parsing: metadata.body)["id"]?.stringValue == "plain")
        }
        #expect(await daprd.stop() == 0)
        #expect(daprd.output.contains("\"level\":\"info\""), "log lines are JSON")
    }

    @Test func badConfigurationFailsWithFileResourceAndField() async throws {
        let home = TestEnvironment.temporaryDirectory("mecha-badconfig")
        defer { TestEnvironment.remove(home) }
        let resources = TestEnvironment.makeDirectory(home + "/resources")
        try TestEnvironment.write(
            """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: cache
            spec:
              type: state.nosuchstore
              version: v1
            """,
            to: resources + "/cache.yaml"
        )
        let sidecar = try TestProcess(
            try MechaBinaries.mecha,
            ["sidecar", "--app-id", "bad", "--dapr-http-port", String(TestEnvironment.freePort()), "--dapr-grpc-port", String(TestEnvironment.freePort()), "--mecha-home", home, "--resources-path", resources],
            logPath: home + "/bad.log"
        )
        #expect(await sidecar.waitForExit(timeout: .seconds(20)) == 1)
        let output = sidecar.output
        #expect(output.contains("cache.yaml"), "\(output)")
        #expect(output.contains("Component/cache"))
        #expect(output.contains("spec.type"))
        #expect(output.contains("state.in-memory") && output.contains("state.sqlite"), "lists the known state types")
    }

    @Test func takenPortsStopTheSidecarWithAnError() async throws {
        // A port that is bound elsewhere: the sidecar cannot serve that API, says so and exits 1
        // (daprd does the same) instead of running half-started.
        let home = TestEnvironment.temporaryDirectory("mecha-taken-port")
        defer { TestEnvironment.remove(home) }
        for (flag, name) in [("--dapr-grpc-port", "gRPC"), ("--dapr-http-port", "HTTP")] {
            let taken = TestEnvironment.refusingPort()
            var arguments = ["sidecar", "--app-id", "taken", "--mecha-home", home, "--dapr-grpc-port", "0", "--dapr-http-port", String(TestEnvironment.freePort())]
            arguments += [flag, String(taken)]
            let sidecar = try TestProcess(try MechaBinaries.mecha, arguments, logPath: home + "/taken-\(name).log")
            #expect(await sidecar.waitForExit(timeout: .seconds(20)) == 1, "\(name): \(sidecar.output)")
            #expect(sidecar.output.contains("Address already in use"), "\(name): \(sidecar.output)")
        }
    }
}
