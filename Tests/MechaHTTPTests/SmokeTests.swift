import MechaCore
import MechaTesting
import Testing

@Suite struct SmokeTests {
    @Test func stateRoundTripInProcess() async throws {
        try await InProcessSidecar.with { sidecar in
            try await TestHTTP.with { http in
                let saved = try await http.post(port: sidecar.httpPort, "/v1.0/state/statestore", json: #"[{"key":"a","value":"hello"}]"#)
                #expect(saved.status == 204)
                let read = try await http.get(port: sidecar.httpPort, "/v1.0/state/statestore/a")
                #expect(read.status == 200)
                #expect(read.text == "\"hello\"")
            }
        }
    }
}
