import MechaCore
import MechaSidecar
import MechaTesting
import NIOHTTP1
import Testing

@Suite("HTTP metadata, health and shutdown APIs")
struct MetadataHealthTests {
    // MARK: GET /v1.0/metadata

    @Test func metadataDocumentDescribesTheSidecar() async throws {
        try await withAPIScratchDirectory { directory in
            let file = directory + "/secrets.json"
            try TestEnvironment.write(#"{"a":"b"}"#, to: file)
            let resources = [
                "1-state.yaml": APIYAML.inMemory(),
                "2-files.yaml": APIYAML.localStorage("files", root: directory + "/files"),
                "3-local.yaml": APIYAML.localFileSecrets("local", file: file),
                "4-multi.yaml": APIYAML.localFileSecrets("multi", file: file, multiValued: true),
            ]
            try await InProcessSidecar.with(appID: "meta-app", resources: resources) { sidecar in
                try await TestHTTP.with { http in
                    let response = try await http.get(port: sidecar.httpPort, "/v1.0/metadata")
                    #expect(response.status == 200)
                    #expect(response.header("content-type") == "application/json")
                    #expect(response.text.hasSuffix("}\n"))
                    let document = try response.parsedJSON
                    let keys = try #require(document.objectMembers).map(\.0)

                    #expect(document["id"] == "meta-app")
                    let version = try #require(document["runtimeVersion"]?.stringValue)
                    #expect(!version.isEmpty)
                    #expect(document["extended"] == ["daprRuntimeVersion": .string(version)])
                    #expect(document["actorRuntime"] == ["runtimeStatus": "DISABLED", "hostReady": false, "placement": "placement: disconnected"])
                    #expect(document["subscriptions"] == nil)
                    #expect(document["enabledFeatures"] == nil)

                    let components = try #require(document["components"]?.arrayValues)
                    var byName: [String: JSONValue] = [:]
                    for component in components { byName[component["name"]?.stringValue ?? ""] = component }
                    #expect(components.count == 4)
                    #expect(
                        byName["statestore"]
                            == ["name": "statestore", "type": "state.in-memory", "version": "v1", "capabilities": ["ETAG", "TRANSACTIONAL", "TTL", "ACTOR"]]
                    )
                    #expect(byName["files"] == ["name": "files", "type": "bindings.localstorage", "version": "v1", "capabilities": ["OUTPUT_BINDING"]])
                    // No capabilities: the field is left out.
                    #expect(byName["local"] == ["name": "local", "type": "secretstores.local.file", "version": "v1"])
                    #expect(
                        byName["multi"]
                            == ["name": "multi", "type": "secretstores.local.file", "version": "v1", "capabilities": ["MULTIPLE_KEY_VALUES_PER_SECRET"]]
                    )

                    // daprd's field order; no app means no app channel properties of interest.
                    #expect(keys.filter { $0 != "appConnectionProperties" } == ["id", "runtimeVersion", "components", "extended", "actorRuntime"])
                    #expect(document["appConnectionProperties"] == ["protocol": "http", "channelAddress": "127.0.0.1"])
                }
            }
        }
    }

    @Test func metadataReportsTheAppConnectionAndEnabledFeatures() async throws {
        let appPort = TestEnvironment.refusingPort()  // nothing listens: the sidecar keeps waiting for the app
        let configuration = APIYAML.configuration(spec: "features:\n- name: Zeta\n  enabled: true\n- name: Alpha\n  enabled: true\n- name: Off\n  enabled: false")
        try await InProcessSidecar.with(
            appPort: appPort,
            resources: [:],
            configuration: configuration,
            configure: { options in
                options.enableAppHealthCheck = true
                options.appHealthProbeInterval = .seconds(10)
                options.appHealthProbeTimeout = .milliseconds(500)
                options.appHealthThreshold = 3
                options.appMaxConcurrency = 10
            }
        ) { sidecar in
            try await TestHTTP.with { http in
                let document = try await http.get(port: sidecar.httpPort, "/v1.0/metadata").parsedJSON
                #expect(
                    document["appConnectionProperties"]
                        == [
                            "port": .int(appPort), "protocol": "http", "channelAddress": "127.0.0.1", "maxConcurrency": 10,
                            "health": ["healthCheckPath": "/healthz", "healthProbeInterval": "10s", "healthProbeTimeout": "500ms", "healthThreshold": 3],
                        ]
                )
                #expect(document["enabledFeatures"] == ["Alpha", "Zeta"])
                // No components: the field is left out.
                #expect(document["components"] == nil)
                #expect(try #require(document.objectMembers).map(\.0) == ["id", "runtimeVersion", "enabledFeatures", "extended", "appConnectionProperties", "actorRuntime"])
            }
        }
    }

    // MARK: PUT /v1.0/metadata/{key}

    @Test func extendedMetadataIsStoredVerbatim() async throws {
        try await InProcessSidecar.with(resources: [:]) { sidecar in
            try await TestHTTP.with { http in
                let port = sidecar.httpPort
                let set = try await http.putBytes(port: port, "/v1.0/metadata/myKey", body: Array("myValue".utf8), headers: [("content-type", "text/plain")])
                set.expectNoContent()
                let json = try await http.putJSON(port: port, "/v1.0/metadata/config", json: #"{"a": [1, 2]}"#)
                json.expectNoContent()
                let empty = try await http.putBytes(port: port, "/v1.0/metadata/empty", body: [])
                empty.expectNoContent()
                let escaped = try await http.putBytes(port: port, "/v1.0/metadata/my%20key", body: Array("spaced".utf8))
                escaped.expectNoContent()
                let overwrite = try await http.putBytes(port: port, "/v1.0/metadata/myKey", body: Array("second".utf8))
                overwrite.expectNoContent()

                let extended = try await http.get(port: port, "/v1.0/metadata").parsedJSON["extended"]
                #expect(extended?["myKey"] == "second")
                #expect(extended?["config"] == #"{"a": [1, 2]}"#)
                #expect(extended?["empty"] == "")
                #expect(extended?["my key"] == "spaced")
                #expect(extended?["daprRuntimeVersion"]?.stringValue?.isEmpty == false)
                // Keys come out sorted (a Go map).
                #expect(extended?.objectMembers?.map(\.0) == ["config", "daprRuntimeVersion", "empty", "my key", "myKey"])
            }
        }
    }

    @Test func metadataRoutesOnlyAnswerTheirVerbs() async throws {
        try await InProcessSidecar.with(resources: [:]) { sidecar in
            try await TestHTTP.with { http in
                let cases: [(HTTPMethod, String)] = [
                    (.POST, "/v1.0/metadata/key"),
                    (.DELETE, "/v1.0/metadata/key"),
                    (.GET, "/v1.0/metadata/key"),
                    (.PUT, "/v1.0/metadata"),
                    (.POST, "/v1.0/metadata"),
                    (.PUT, "/v1.0/metadata/a/b"),
                ]
                for (method, path) in cases {
                    let response = try await http.request(method, port: sidecar.httpPort, path, body: Array("x".utf8))
                    #expect(response.status == 404, "\(method) \(path)")
                    #expect(response.text == apiNoAppIDBody, "\(method) \(path)")
                }
            }
        }
    }

    // MARK: Health

    @Test func healthzWhenReady() async throws {
        try await InProcessSidecar.with(resources: [:]) { sidecar in
            #expect(await sidecar.sidecar.waitUntilHealthy(timeout: .seconds(10)))
            try await TestHTTP.with { http in
                let port = sidecar.httpPort
                let health = try await http.get(port: port, "/v1.0/healthz")
                health.expectNoContent()
                #expect(health.header("content-type") == nil)
                try await http.get(port: port, "/v1.0/healthz?appid=testapp").expectNoContent()
                try await http.get(port: port, "/v1.0/healthz/outbound").expectNoContent()
                // The outbound check ignores appid.
                try await http.get(port: port, "/v1.0/healthz/outbound?appid=other").expectNoContent()

                for query in ["appid=other", "appid=", "appid", "appid=TestApp"] {
                    let mismatch = try await http.get(port: port, "/v1.0/healthz?" + query)
                    #expect(mismatch.status == 500, "\(query)")
                    #expect(mismatch.text == #"{"errorCode":"ERR_HEALTH_APPID_NOT_MATCH","message":"dapr app-id does not match"}"#, "\(query)")
                }
                // Other query parameters are ignored.
                try await http.get(port: port, "/v1.0/healthz?foo=bar").expectNoContent()

                // GET only.
                for (method, path) in [(HTTPMethod.POST, "/v1.0/healthz"), (.PUT, "/v1.0/healthz/outbound"), (.GET, "/v1.0/healthz/inbound")] {
                    let response = try await http.request(method, port: port, path)
                    #expect(response.status == 404, "\(method) \(path)")
                    #expect(response.text == apiNoAppIDBody, "\(method) \(path)")
                }
                try await http.get(port: port, "/v1.0/healthz/").expectNoContent()
            }
        }
    }

    /// An app that never starts listening keeps the sidecar from becoming ready; outbound is ready
    /// as soon as the API serves.
    @Test func healthzWhileWaitingForTheApp() async throws {
        try await InProcessSidecar.with(appPort: TestEnvironment.refusingPort(), resources: [:]) { sidecar in
            try await TestHTTP.with { http in
                let port = sidecar.httpPort
                _ = try await http.waitFor(port: port, "/v1.0/healthz/outbound", timeout: .seconds(10))
                let notReady = #"{"errorCode":"ERR_HEALTH_NOT_READY","message":"dapr is not ready: [runtime]"}"#
                let health = try await http.get(port: port, "/v1.0/healthz")
                #expect(health.status == 500)
                #expect(health.header("content-type") == "application/json")
                #expect(health.text == notReady)
                // Readiness is checked before the app id.
                let other = try await http.get(port: port, "/v1.0/healthz?appid=other")
                #expect(other.status == 500)
                #expect(other.text == notReady)
            }
        }
    }

    // MARK: Shutdown

    @Test func shutdownAnswers204AndStopsTheSidecar() async throws {
        try await InProcessSidecar.with(resources: [:]) { sidecar in
            try await TestHTTP.with { http in
                let port = sidecar.httpPort
                for method in [HTTPMethod.GET, .PUT, .DELETE] {
                    let wrong = try await http.request(method, port: port, "/v1.0/shutdown")
                    #expect(wrong.status == 404, "\(method)")
                    #expect(wrong.text == apiNoAppIDBody)
                }

                let response = try await http.request(.POST, port: port, "/v1.0/shutdown")
                response.expectNoContent()

                // The listener goes away shortly after.
                let deadline = ContinuousClock.now + .seconds(15)
                var stopped = false
                while ContinuousClock.now < deadline {
                    do {
                        _ = try await http.get(port: port, "/v1.0/healthz")
                        try await Task.sleep(for: .milliseconds(100))
                    } catch {
                        stopped = true
                        break
                    }
                }
                #expect(stopped, "the sidecar still answers after POST /v1.0/shutdown")
            }
        }
    }
}
