import MechaAPI
import MechaCore
import MechaRuntime
import MechaTesting
import Synchronization
import Testing

@Suite("HTTP distributed lock API")
struct LockRouteTests {
    static func expectError(_ response: TestHTTPResponse, _ status: Int, _ code: String, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.status == status, sourceLocation: sourceLocation)
        #expect(response.text == #"{"errorCode":"\#(code)","message":"\#(message)"}"#, sourceLocation: sourceLocation)
    }

    @Test func theEmbeddedLockStoreLocksAndUnlocks() async throws {
        try await InProcessSidecar.with { sidecar in
            try await TestHTTP.with { http in
                let port = sidecar.httpPort
                let lock = #"{"resourceId":"order-1","lockOwner":"a","expiryInSeconds":30}"#
                let taken = try await http.post(port: port, "/v1.0-alpha1/lock/lockstore", json: lock)
                #expect(taken.status == 200)
                #expect(taken.header("content-type") == "application/json")
                #expect(taken.text == #"{"success":true}"#)
                // Another owner (proto field names, expiry as a string: protojson accepts both).
                let refused = try await http.post(port: port, "/v1.0-alpha1/lock/lockstore", json: #"{"resource_id":"order-1","lock_owner":"b","expiry_in_seconds":"30","extra":1}"#)
                #expect(refused.text == #"{"success":false}"#)
                #expect(try await http.post(port: port, "/v1.0-alpha1/unlock/lockstore", json: #"{"resourceId":"order-1","lockOwner":"b"}"#).text == #"{"status":2}"#)
                #expect(try await http.post(port: port, "/v1.0-alpha1/unlock/lockstore", json: #"{"resourceId":"order-1","lockOwner":"a"}"#).text == #"{"status":0}"#)
                #expect(try await http.post(port: port, "/v1.0-alpha1/unlock/lockstore", json: #"{"resourceId":"order-1","lockOwner":"a"}"#).text == #"{"status":1}"#)
                #expect(try await http.post(port: port, "/v1.0-alpha1/lock/lockstore", json: #"{"resourceId":"order-1","lockOwner":"b","expiryInSeconds":30}"#).text == #"{"success":true}"#)
            }
        }
    }

    @Test func badRequestsGetDaprdsErrors() async throws {
        try await InProcessSidecar.with { sidecar in
            try await TestHTTP.with { http in
                let port = sidecar.httpPort
                Self.expectError(
                    try await http.post(port: port, "/v1.0-alpha1/lock/lockstore", json: #"{"resourceId":"r","lockOwner":"a","expiryInSeconds":0}"#),
                    400, "ERR_MALFORMED_REQUEST", "ExpiryInSeconds is not positive in lock store lockstore"
                )
                Self.expectError(
                    try await http.post(port: port, "/v1.0-alpha1/lock/lockstore", json: #"{"lockOwner":"a","expiryInSeconds":10}"#),
                    400, "ERR_MALFORMED_REQUEST", "ResourceId is empty in lock store lockstore"
                )
                Self.expectError(
                    try await http.post(port: port, "/v1.0-alpha1/unlock/lockstore", json: #"{"resourceId":"r"}"#),
                    400, "ERR_MALFORMED_REQUEST", "LockOwner is empty in lock store lockstore"
                )
                // An empty body is an empty message: it fails validation like one.
                Self.expectError(
                    try await http.post(port: port, "/v1.0-alpha1/unlock/lockstore", body: []),
                    400, "ERR_MALFORMED_REQUEST", "ResourceId is empty in lock store lockstore"
                )
                Self.expectError(
                    try await http.post(port: port, "/v1.0-alpha1/lock/nope", json: #"{"resourceId":"r","lockOwner":"a","expiryInSeconds":10}"#),
                    400, "ERR_LOCK_STORE_NOT_FOUND", "lock store nope not found"
                )
                Self.expectError(
                    try await http.post(port: port, "/v1.0-alpha1/lock/lockstore", json: #"{"resourceId":"a||b","lockOwner":"a","expiryInSeconds":10}"#),
                    500, "ERR_TRY_LOCK", "failed to try acquiring lock: input key/keyPrefix 'a||b' can't contain '||'"
                )
                let malformed = try await http.post(port: port, "/v1.0-alpha1/lock/lockstore", json: #"{"resourceId":"#)
                #expect(malformed.status == 400)
                #expect(malformed.text.contains(#""errorCode":"ERR_MALFORMED_REQUEST""#))
                let wrongType = try await http.post(port: port, "/v1.0-alpha1/lock/lockstore", json: #"{"resourceId":"r","lockOwner":"a","expiryInSeconds":"soon"}"#)
                #expect(wrongType.status == 400)
                #expect(wrongType.text.contains(#""errorCode":"ERR_MALFORMED_REQUEST""#))
            }
        }
    }

    @Test func withoutLockStoresTheAPISaysSo() async throws {
        try await InProcessSidecar.with(resources: ["state.yaml": APIYAML.inMemory()]) { sidecar in
            try await TestHTTP.with { http in
                Self.expectError(
                    try await http.post(port: sidecar.httpPort, "/v1.0-alpha1/lock/lockstore", json: #"{"resourceId":"r","lockOwner":"a","expiryInSeconds":10}"#),
                    500, "ERR_LOCK_STORE_NOT_CONFIGURED", "lock store is not configured"
                )
            }
        }
    }

    /// A lock store that records the keys the API hands it.
    final class RecordingLockStore: LockStore {
        let keys = Mutex<[String]>([])
        func tryLock(resourceID: String, owner: String, expiry: Duration) async throws -> Bool {
            self.keys.withLock { $0.append(resourceID) }
            return true
        }
        func unlock(resourceID: String, owner: String) async throws -> UnlockStatus {
            self.keys.withLock { $0.append(resourceID) }
            return .success
        }
    }

    /// daprd's `keyPrefix` strategies, so Mecha and daprd sharing a Redis lock the same keys.
    @Test(arguments: [
        (nil, "lock||checkout||order-1"),
        ("appid", "lock||checkout||order-1"),
        ("AppID", "lock||checkout||order-1"),
        ("name", "lock||locks||order-1"),
        ("none", "lock||order-1"),
        ("Shared", "lock||shared||order-1"),
    ] as [(String?, String)])
    func keyPrefixStrategies(_ keyPrefix: String?, _ expected: String) async throws {
        let components = ComponentStore()
        let store = RecordingLockStore()
        let metadata = keyPrefix.map { ["keyPrefix": $0] } ?? [:]
        components.add(store, spec: ComponentSpec(name: "locks", type: ComponentType(.lock, "in-memory"), metadata: ComponentMetadata(metadata)))
        let api = LockAPI(components: components, identity: SidecarIdentity(appID: "checkout", instanceID: "i", runtimeVersion: "test"))
        #expect(try await api.tryLock(storeName: "locks", resourceID: "order-1", owner: "a", expiryInSeconds: 5))
        #expect(try await api.unlock(storeName: "locks", resourceID: "order-1", owner: "a") == .success)
        #expect(store.keys.withLock { $0 } == [expected, expected])
    }
}
