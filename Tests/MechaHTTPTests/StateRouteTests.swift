import MechaCore
import MechaTesting
import NIOHTTP1
import Testing

/// The two built-in state stores; most behaviour must be the same on both.
enum StateStoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case inMemory = "state.in-memory"
    case sqlite = "state.sqlite"

    var testDescription: String { self.rawValue }

    func yaml(_ name: String = "statestore") -> String {
        switch self {
        case .inMemory: APIYAML.inMemory(name)
        case .sqlite: APIYAML.sqlite(name)
        }
    }
}

/// Runs `body` against a sidecar (app id `testapp`) with one store named `statestore`.
func withAPIStateSidecar<Output: Sendable>(
    _ kind: StateStoreKind = .inMemory,
    resources extra: [String: String] = [:],
    _ body: (_ port: Int, _ http: TestHTTP) async throws -> Output
) async throws -> Output {
    var resources = ["statestore.yaml": kind.yaml()]
    resources.merge(extra) { _, new in new }
    return try await InProcessSidecar.with(resources: resources) { sidecar in
        try await TestHTTP.with { http in try await body(sidecar.httpPort, http) }
    }
}

@Suite("HTTP state API")
struct StateRouteTests {
    // MARK: Save, get, delete

    @Test(arguments: StateStoreKind.allCases)
    func saveGetDeleteRoundTrip(kind: StateStoreKind) async throws {
        try await withAPIStateSidecar(kind) { port, http in
            let saved = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"k1","value":{"b":2,"a":[1,true,null]}}]"#)
            saved.expectNoContent()

            let read = try await http.get(port: port, "/v1.0/state/statestore/k1")
            #expect(read.status == 200)
            #expect(read.text == #"{"b":2,"a":[1,true,null]}"#)
            #expect(read.header("content-type") == "application/json")
            let etag = try #require(read.header("etag"))
            #expect(!etag.isEmpty)
            #expect(read.header("metadata.ttlExpireTime") == nil)

            let deleted = try await http.delete(port: port, "/v1.0/state/statestore/k1")
            deleted.expectNoContent()
            let gone = try await http.get(port: port, "/v1.0/state/statestore/k1")
            gone.expectNoContent()
            #expect(gone.header("etag") == nil)
            #expect(gone.header("content-type") == nil)
        }
    }

    /// The value's JSON text comes back verbatim, whatever its type; a missing value is `null`.
    @Test(arguments: StateStoreKind.allCases)
    func valuesOfEveryJSONType(kind: StateStoreKind) async throws {
        let values = [#""hello""#, "42", "-1.5e3", "true", "false", "null", "[1,2,3]", #"{"nested":{"x":"y"}}"#, #""with \"quotes\" and \\ and \u00e9""#]
        try await withAPIStateSidecar(kind) { port, http in
            for (index, value) in values.enumerated() {
                let saved = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"v\#(index)","value":\#(value)}]"#)
                saved.expectNoContent()
                let read = try await http.get(port: port, "/v1.0/state/statestore/v\(index)")
                #expect(read.status == 200)
                #expect(try read.parsedJSON == JSONValue(parsing: value), "value \(value) came back as \(read.text)")
            }
            let noValue = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"novalue"}]"#)
            noValue.expectNoContent()
            let read = try await http.get(port: port, "/v1.0/state/statestore/novalue")
            #expect(read.status == 200)
            #expect(read.text == "null")
        }
    }

    @Test func putSavesLikePostAndSeveralItemsAtOnce() async throws {
        try await withAPIStateSidecar { port, http in
            let saved = try await http.putJSON(port: port, "/v1.0/state/statestore", json: #"[{"key":"a","value":"A"},{"key":"b","value":"B"},{"KEY":"c","VALUE":"C"}]"#)
            saved.expectNoContent()
            for (key, value) in [("a", "A"), ("b", "B"), ("c", "C")] {
                let read = try await http.get(port: port, "/v1.0/state/statestore/\(key)")
                #expect(read.status == 200)
                #expect(read.text == "\"\(value)\"")
            }
        }
    }

    @Test func emptyArrayIsAccepted() async throws {
        try await withAPIStateSidecar { port, http in
            let saved = try await http.post(port: port, "/v1.0/state/statestore", json: "[]")
            saved.expectNoContent()
        }
    }

    @Test(arguments: StateStoreKind.allCases)
    func missingKeyAnswers204(kind: StateStoreKind) async throws {
        try await withAPIStateSidecar(kind) { port, http in
            let read = try await http.get(port: port, "/v1.0/state/statestore/never-saved")
            read.expectNoContent()
            // Deleting a key that does not exist is not an error.
            let deleted = try await http.delete(port: port, "/v1.0/state/statestore/never-saved")
            deleted.expectNoContent()
        }
    }

    /// Path parameters are unescaped like Go's QueryUnescape: `%2F` is a slash inside the key and
    /// `+` is a space.
    @Test func keysAreQueryUnescaped() async throws {
        try await withAPIStateSidecar { port, http in
            let saved = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"a b/c","value":1}]"#)
            saved.expectNoContent()
            let plus = try await http.get(port: port, "/v1.0/state/statestore/a+b%2Fc")
            #expect(plus.status == 200)
            #expect(plus.text == "1")
            let percent = try await http.get(port: port, "/v1.0/state/statestore/a%20b%2Fc")
            #expect(percent.status == 200)
        }
    }

    // MARK: Malformed save bodies

    @Test func saveBodyErrors() async throws {
        try await withAPIStateSidecar { port, http in
            // The decoder's own text, without a "failed deserializing" prefix, on this route.
            let empty = try await http.post(port: port, "/v1.0/state/statestore", body: [])
            try empty.expectError(400, "ERR_MALFORMED_REQUEST", "EOF")

            let object = try await http.post(port: port, "/v1.0/state/statestore", json: "{}")
            try object.expectError(400, "ERR_MALFORMED_REQUEST", "json: cannot unmarshal object into Go value of type []state.SetRequest")

            let numericETag = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"k","value":1,"etag":123}]"#)
            try numericETag.expectError(400, "ERR_MALFORMED_REQUEST", "json: cannot unmarshal number into Go struct field SetRequest.etag of type string")

            let noKey = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"value":1}]"#)
            try noKey.expectError(400, "ERR_MALFORMED_REQUEST", #""key" is a required field"#)

            let emptyKey = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"ok","value":1},{"key":"","value":2}]"#)
            try emptyKey.expectError(400, "ERR_MALFORMED_REQUEST", #""key" is a required field"#)
            // Validation happens before anything is written.
            let notWritten = try await http.get(port: port, "/v1.0/state/statestore/ok")
            notWritten.expectNoContent()

            for garbage in ["foobar", "[{\"key\":\"k\",}]", "[1,2"] {
                let response = try await http.post(port: port, "/v1.0/state/statestore", json: garbage)
                #expect(response.status == 400, "\(garbage)")
                let error = try response.daprError()
                #expect(error.errorCode == "ERR_MALFORMED_REQUEST")
                #expect(!error.message.hasPrefix("failed deserializing HTTP body"), "\(error.message)")
            }
        }
    }

    // MARK: Store lookup errors

    static let storeRoutes: [(HTTPMethod, String, String?)] = [
        (.GET, "/v1.0/state/nostore/k", nil),
        (.POST, "/v1.0/state/nostore", #"[{"key":"k","value":1}]"#),
        (.PUT, "/v1.0/state/nostore", "not even json"),
        (.DELETE, "/v1.0/state/nostore/k", nil),
        (.POST, "/v1.0/state/nostore/bulk", #"{"keys":["k"]}"#),
        (.PUT, "/v1.0/state/nostore/bulk", ""),
        (.POST, "/v1.0/state/nostore/transaction", #"{"operations":[]}"#),
        (.PUT, "/v1.0/state/nostore/transaction", "{"),
    ]

    /// Unknown store: 400 with the rich error (ErrorInfo only), checked before the body is read.
    @Test func unknownStoreOnEveryRoute() async throws {
        try await withAPIStateSidecar { port, http in
            for (method, path, body) in Self.storeRoutes {
                let response = try await http.request(method, port: port, path, body: body.map { Array($0.utf8) })
                #expect(response.status == 400, "\(method) \(path)")
                #expect(
                    response.text
                        == #"{"errorCode":"ERR_STATE_STORE_NOT_FOUND","message":"state store nostore is not found","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","domain":"dapr.io","metadata":{"appID":"testapp"},"reason":"DAPR_STATE_NOT_FOUND"}]}"#,
                    "\(method) \(path)"
                )
                #expect(response.header("content-type") == "application/json")
            }
        }
    }

    /// No state store at all: 500 ERR_STATE_STORE_NOT_CONFIGURED on every route.
    @Test func noStoresConfiguredOnEveryRoute() async throws {
        try await InProcessSidecar.with(resources: [:]) { sidecar in
            try await TestHTTP.with { http in
                for (method, path, body) in Self.storeRoutes {
                    let response = try await http.request(method, port: sidecar.httpPort, path, body: body.map { Array($0.utf8) })
                    #expect(response.status == 500, "\(method) \(path)")
                    #expect(
                        response.text
                            == #"{"errorCode":"ERR_STATE_STORE_NOT_CONFIGURED","message":"state store nostore is not configured","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","domain":"dapr.io","metadata":{"appID":"testapp"},"reason":"DAPR_STATE_NOT_CONFIGURED"}]}"#,
                        "\(method) \(path)"
                    )
                }
            }
        }
    }

    /// Routes that do not exist for a verb fall to the invoke handler.
    @Test func wrongVerbsFallThroughToInvoke() async throws {
        try await withAPIStateSidecar { port, http in
            let cases: [(HTTPMethod, String)] = [
                (.GET, "/v1.0/state/statestore"),
                (.PATCH, "/v1.0/state/statestore/k"),
                (.GET, "/v1.0/state/statestore/k/extra"),
                (.DELETE, "/v1.0/state/statestore"),
            ]
            for (method, path) in cases {
                let response = try await http.request(method, port: port, path)
                #expect(response.status == 404, "\(method) \(path)")
                #expect(response.text == apiNoAppIDBody, "\(method) \(path)")
            }
            // GET on .../bulk reads a key literally named "bulk".
            let bulkKey = try await http.get(port: port, "/v1.0/state/statestore/bulk")
            bulkKey.expectNoContent()
        }
    }

    // MARK: Invalid keys

    static func expectIllegalKey(_ response: TestHTTPResponse, key: String, field: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(response.status == 400, sourceLocation: sourceLocation)
        let error = try response.daprError(sourceLocation: sourceLocation)
        #expect(error.errorCode == "ERR_MALFORMED_REQUEST", sourceLocation: sourceLocation)
        let text = "input key/keyPrefix '\(key)' can't contain '||'"
        // daprd wraps the text once more ("api error: code = InvalidArgument desc = …"); SDKs match the end.
        #expect(error.message.hasSuffix(text), "\(error.message)", sourceLocation: sourceLocation)
        #expect(error.detailTypes == ["BadRequest", "ResourceInfo", "ErrorInfo"], sourceLocation: sourceLocation)
        let violation = try #require(error.detail("BadRequest")?["field_violations"]?.arrayValues?.first, sourceLocation: sourceLocation)
        #expect(violation["field"]?.stringValue == (field ?? key), sourceLocation: sourceLocation)
        #expect(violation["description"]?.stringValue?.hasSuffix(text) == true, sourceLocation: sourceLocation)
        #expect(
            error.detail("ResourceInfo")
                == [
                    "@type": "type.googleapis.com/google.rpc.ResourceInfo", "description": "", "owner": "", "resource_name": "statestore",
                    "resource_type": "state",
                ],
            sourceLocation: sourceLocation
        )
        #expect(
            error.detail("ErrorInfo")
                == ["@type": "type.googleapis.com/google.rpc.ErrorInfo", "domain": "dapr.io", "metadata": nil, "reason": "DAPR_STATE_ILLEGAL_KEY"],
            sourceLocation: sourceLocation
        )
    }

    @Test func keysContainingTheSeparatorAreRejectedEverywhere() async throws {
        try await withAPIStateSidecar { port, http in
            try Self.expectIllegalKey(try await http.get(port: port, "/v1.0/state/statestore/ke%7C%7Cy1"), key: "ke||y1")
            try Self.expectIllegalKey(try await http.delete(port: port, "/v1.0/state/statestore/ke%7C%7Cy1"), key: "ke||y1")
            try Self.expectIllegalKey(
                try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"good","value":1},{"key":"a||b","value":2}]"#),
                key: "a||b"
            )
            try Self.expectIllegalKey(try await http.post(port: port, "/v1.0/state/statestore/bulk", json: #"{"keys":["good","x||y"]}"#), key: "x||y")
            let transaction = try await http.post(
                port: port,
                "/v1.0/state/statestore/transaction",
                json: #"{"operations":[{"operation":"upsert","request":{"key":"good","value":1}},{"operation":"delete","request":{"key":"t||x"}}]}"#
            )
            #expect(transaction.status == 400)
            #expect(try transaction.daprError().message.hasSuffix("input key/keyPrefix 't||x' can't contain '||'"))
            // Nothing of a rejected save or transaction was written.
            let good = try await http.get(port: port, "/v1.0/state/statestore/good")
            good.expectNoContent()
        }
    }

    // MARK: ETags and concurrency

    @Test(arguments: StateStoreKind.allCases)
    func etagsGuardWrites(kind: StateStoreKind) async throws {
        try await withAPIStateSidecar(kind) { port, http in
            _ = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"e","value":"v1"}]"#)
            let first = try #require(try await http.get(port: port, "/v1.0/state/statestore/e").header("etag"))

            // The right ETag: accepted, and the ETag changes.
            let update = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"e","value":"v2","etag":\#(apiJSONString(first))}]"#)
            update.expectNoContent()
            let second = try #require(try await http.get(port: port, "/v1.0/state/statestore/e").header("etag"))
            #expect(second != first)

            // A stale ETag: 409, nothing written.
            let stale = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"e","value":"v3","etag":\#(apiJSONString(first))}]"#)
            #expect(stale.status == 409)
            let staleError = try stale.daprError()
            #expect(staleError.errorCode == "ERR_STATE_SAVE")
            #expect(staleError.message.hasPrefix("failed saving state in state store statestore: possible etag mismatch. error from state store: "))
            if kind == .inMemory {
                #expect(
                    staleError.message
                        == "failed saving state in state store statestore: possible etag mismatch. error from state store: state etag not match for key=testapp||e: current=\(second), expect=\(first)"
                )
            }
            #expect(try await http.get(port: port, "/v1.0/state/statestore/e").text == #""v2""#)

            // A malformed ETag is just another mismatch for these stores.
            let bogus = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"e","value":"v3","etag":"not-an-etag"}]"#)
            #expect(bogus.status == 409)
            #expect(try bogus.daprError().errorCode == "ERR_STATE_SAVE")

            // An ETag on a key that does not exist: mismatch too.
            let missing = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"nothere","value":1,"etag":"1"}]"#)
            #expect(missing.status == 409)
            let missingError = try missing.daprError()
            #expect(missingError.message.hasPrefix("failed saving state in state store statestore: possible etag mismatch. error from state store: "))
            if kind == .inMemory {
                #expect(missingError.message.hasSuffix("state not exist or expired for key=testapp||nothere"))
            }

            // Delete with a stale If-Match: 409 ERR_STATE_DELETE naming the app's key.
            let staleDelete = try await http.delete(port: port, "/v1.0/state/statestore/e", headers: [("If-Match", first)])
            #expect(staleDelete.status == 409)
            let deleteError = try staleDelete.daprError()
            #expect(deleteError.errorCode == "ERR_STATE_DELETE")
            #expect(deleteError.message.hasPrefix("failed deleting state with key e: possible etag mismatch. error from state store: "))
            #expect(try await http.get(port: port, "/v1.0/state/statestore/e").status == 200)

            // Delete with the current If-Match.
            let goodDelete = try await http.delete(port: port, "/v1.0/state/statestore/e", headers: [("If-Match", second)])
            goodDelete.expectNoContent()
            #expect(try await http.get(port: port, "/v1.0/state/statestore/e").status == 204)
        }
    }

    @Test(arguments: StateStoreKind.allCases)
    func firstWriteConcurrency(kind: StateStoreKind) async throws {
        try await withAPIStateSidecar(kind) { port, http in
            let item = #"[{"key":"fw","value":"one","options":{"concurrency":"first-write","consistency":"strong"}}]"#
            let created = try await http.post(port: port, "/v1.0/state/statestore", json: item)
            created.expectNoContent()

            let again = try await http.post(port: port, "/v1.0/state/statestore", json: item.replacing("one", with: "two"))
            #expect(again.status == 409)
            let error = try again.daprError()
            #expect(error.errorCode == "ERR_STATE_SAVE")
            #expect(error.message == "failed saving state in state store statestore: possible etag mismatch. error from state store: item already exists and no etag was passed")
            #expect(try await http.get(port: port, "/v1.0/state/statestore/fw").text == #""one""#)

            // With the current ETag, first-write succeeds.
            let etag = try #require(try await http.get(port: port, "/v1.0/state/statestore/fw").header("etag"))
            let withETag = try await http.post(
                port: port,
                "/v1.0/state/statestore",
                json: #"[{"key":"fw","value":"three","etag":\#(apiJSONString(etag)),"options":{"concurrency":"first-write"}}]"#
            )
            withETag.expectNoContent()
            #expect(try await http.get(port: port, "/v1.0/state/statestore/fw").text == #""three""#)

            // Last-write (the default) overwrites without an ETag.
            let lastWrite = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"fw","value":"four","options":{"concurrency":"last-write"}}]"#)
            lastWrite.expectNoContent()
            #expect(try await http.get(port: port, "/v1.0/state/statestore/fw").text == #""four""#)
        }
    }

    /// Unknown option values are refused by the store: ERR_STATE_SAVE / ERR_STATE_DELETE with 500.
    @Test func unknownOptionValues() async throws {
        try await withAPIStateSidecar { port, http in
            let concurrency = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"o","value":1,"options":{"concurrency":"sometimes"}}]"#)
            try concurrency.expectError(500, "ERR_STATE_SAVE", "failed saving state in state store statestore: unrecognized concurrency model 'sometimes'")

            let consistency = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"o","value":1,"options":{"consistency":"maybe"}}]"#)
            try consistency.expectError(500, "ERR_STATE_SAVE", "failed saving state in state store statestore: unrecognized consistency model 'maybe'")

            let delete = try await http.delete(port: port, "/v1.0/state/statestore/o?concurrency=sometimes")
            try delete.expectError(500, "ERR_STATE_DELETE", "failed deleting state with key o: unrecognized concurrency model 'sometimes'")
            #expect(try await http.get(port: port, "/v1.0/state/statestore/o").status == 204)
        }
    }

    /// Reads pass the consistency to the store, which ignores values it does not know.
    @Test(arguments: StateStoreKind.allCases)
    func getAcceptsAnyConsistency(kind: StateStoreKind) async throws {
        try await withAPIStateSidecar(kind) { port, http in
            _ = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"c","value":"v"}]"#)
            for query in ["consistency=strong", "consistency=eventual", "consistency=whatever", "metadata.contentType=text%2Fplain"] {
                let read = try await http.get(port: port, "/v1.0/state/statestore/c?" + query)
                #expect(read.status == 200, "\(query)")
                #expect(read.text == #""v""#, "\(query)")
            }
        }
    }

    // MARK: TTL

    static func expectExpiry(_ text: String?, withinSecondsFromNow range: ClosedRange<Int64>, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let text = try #require(text, "no ttlExpireTime", sourceLocation: sourceLocation)
        // RFC 3339 in UTC, whole seconds, as Go's time.RFC3339.
        #expect(text.count == 20 && text.hasSuffix("Z"), "\(text)", sourceLocation: sourceLocation)
        let expiry = try #require(Timestamp(rfc3339: text), sourceLocation: sourceLocation)
        let delta = expiry.seconds - WallClock.now().seconds
        #expect(range.contains(delta), "expiry \(text) is \(delta)s from now", sourceLocation: sourceLocation)
    }

    @Test(arguments: StateStoreKind.allCases)
    func ttlExpiresItems(kind: StateStoreKind) async throws {
        try await withAPIStateSidecar(kind) { port, http in
            // TTL in the item's metadata, and through the URL's metadata.* parameters. (10 s: the SQLite
            // store counts in whole seconds, so an item may expire up to a second early, as in Dapr; long
            // enough that a loaded machine reads it before then.)
            let body = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"t1","value":"x","metadata":{"ttlInSeconds":"10"}}]"#)
            body.expectNoContent()
            let url = try await http.post(port: port, "/v1.0/state/statestore?metadata.ttlInSeconds=10", json: #"[{"key":"t2","value":"y"}]"#)
            url.expectNoContent()
            let forever = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"t3","value":"z","metadata":{"ttlInSeconds":"-1"}}]"#)
            forever.expectNoContent()
            let long = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"t4","value":"w","metadata":{"ttlInSeconds":"3600"}}]"#)
            long.expectNoContent()

            let read = try await http.get(port: port, "/v1.0/state/statestore/t1")
            #expect(read.status == 200)
            try Self.expectExpiry(read.header("metadata.ttlExpireTime"), withinSecondsFromNow: 0...10)
            try Self.expectExpiry(try await http.get(port: port, "/v1.0/state/statestore/t2").header("metadata.ttlExpireTime"), withinSecondsFromNow: 0...10)
            #expect(try await http.get(port: port, "/v1.0/state/statestore/t3").header("metadata.ttlExpireTime") == nil)
            try Self.expectExpiry(try await http.get(port: port, "/v1.0/state/statestore/t4").header("metadata.ttlExpireTime"), withinSecondsFromNow: 3590...3601)

            // The bulk answer carries it in the item's metadata.
            let bulk = try await http.post(port: port, "/v1.0/state/statestore/bulk", json: #"{"keys":["t1","t3"]}"#)
            let items = try #require(try bulk.parsedJSON.arrayValues)
            try Self.expectExpiry(items.first?["metadata"]?["ttlExpireTime"]?.stringValue, withinSecondsFromNow: 0...10)
            #expect(items.last?["metadata"] == nil)

            try await Task.sleep(for: .milliseconds(10300))
            #expect(try await http.get(port: port, "/v1.0/state/statestore/t1").status == 204)
            #expect(try await http.get(port: port, "/v1.0/state/statestore/t2").status == 204)
            #expect(try await http.get(port: port, "/v1.0/state/statestore/t3").status == 200)
            #expect(try await http.get(port: port, "/v1.0/state/statestore/t4").status == 200)
            let after = try await http.post(port: port, "/v1.0/state/statestore/bulk", json: #"{"keys":["t1","t3"]}"#)
            #expect(try after.parsedJSON.arrayValues?.first == ["key": "t1"])

            // An expired key can be created again under first-write.
            let recreate = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"t1","value":"again","options":{"concurrency":"first-write"}}]"#)
            recreate.expectNoContent()
        }
    }

    @Test func invalidTTLIsRefused() async throws {
        try await withAPIStateSidecar { port, http in
            let response = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"bad","value":1,"metadata":{"ttlInSeconds":"soon"}}]"#)
            #expect(response.status == 500)
            let error = try response.daprError()
            #expect(error.errorCode == "ERR_STATE_SAVE")
            #expect(error.message.hasPrefix("failed saving state in state store statestore: "))
            #expect(error.message.contains("soon"))
            #expect(try await http.get(port: port, "/v1.0/state/statestore/bad").status == 204)
        }
    }

    /// Issue 9: a TTL near Int64.max seconds overflowed the expiry arithmetic (a trap). daprd caps
    /// ttlInSeconds at Int32.max seconds; past Int64 the value is refused as Go's ParseInt does.
    @Test func hugeTTLIsCappedAsInDapr() async throws {
        try await withAPIStateSidecar { port, http in
            for (key, ttl) in [("max", "9223372036854775807"), ("large", "9223372036854775")] {
                let saved = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"\#(key)","value":1,"metadata":{"ttlInSeconds":"\#(ttl)"}}]"#)
                saved.expectNoContent()
                let read = try await http.get(port: port, "/v1.0/state/statestore/\(key)")
                #expect(read.status == 200)
                let cap = Int64(Int32.max)
                try Self.expectExpiry(read.header("metadata.ttlExpireTime"), withinSecondsFromNow: (cap - 5)...(cap + 1))
            }
            let beyond = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"beyond","value":1,"metadata":{"ttlInSeconds":"99999999999999999999"}}]"#)
            #expect(beyond.status == 500)
            #expect(try beyond.daprError().message.contains("value out of range"))
        }
    }

    // MARK: Bulk get

    @Test(arguments: StateStoreKind.allCases)
    func bulkGetKeepsRequestOrderAndReportsMissingKeys(kind: StateStoreKind) async throws {
        try await withAPIStateSidecar(kind) { port, http in
            _ = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"a","value":"value-a"},{"key":"b","value":{"n":1}},{"key":"c","value":[1,2]}]"#)
            let etagA = try #require(try await http.get(port: port, "/v1.0/state/statestore/a").header("etag"))
            let etagB = try #require(try await http.get(port: port, "/v1.0/state/statestore/b").header("etag"))

            let response = try await http.post(port: port, "/v1.0/state/statestore/bulk", json: #"{"keys":["b","missing","a","c"],"parallelism":2}"#)
            #expect(response.status == 200)
            #expect(response.header("content-type") == "application/json")
            #expect(response.text.hasSuffix("]\n"))
            let items = try #require(try response.parsedJSON.arrayValues)
            #expect(items.map { $0["key"]?.stringValue } == ["b", "missing", "a", "c"])
            // Stored JSON is embedded as JSON (not base64, not re-quoted); a missing key has only its key.
            #expect(items[0] == ["key": "b", "data": ["n": 1], "etag": .string(etagB)])
            #expect(items[1] == ["key": "missing"])
            #expect(items[2] == ["key": "a", "data": "value-a", "etag": .string(etagA)])
            #expect(items[3]["data"] == [1, 2])

            // PUT works too, and URL metadata is accepted.
            let put = try await http.putJSON(port: port, "/v1.0/state/statestore/bulk?metadata.partitionKey=p", json: #"{"keys":["a"]}"#)
            #expect(put.status == 200)
            #expect(try put.parsedJSON.arrayValues?.count == 1)
        }
    }

    @Test func bulkGetEdgeCases() async throws {
        try await withAPIStateSidecar { port, http in
            let noKeys = try await http.post(port: port, "/v1.0/state/statestore/bulk", json: "{}")
            #expect(noKeys.status == 200)
            #expect(noKeys.text == "[]\n")
            let emptyKeys = try await http.post(port: port, "/v1.0/state/statestore/bulk", json: #"{"keys":[]}"#)
            #expect(emptyKeys.text == "[]\n")

            let empty = try await http.post(port: port, "/v1.0/state/statestore/bulk", body: [])
            try empty.expectError(400, "ERR_MALFORMED_REQUEST", "failed deserializing HTTP body: EOF")

            for bad in ["{", "[]", #"{"keys":"a"}"#, #"{"keys":[1]}"#, #"{"metadata":{"a":1}}"#] {
                let response = try await http.post(port: port, "/v1.0/state/statestore/bulk", json: bad)
                #expect(response.status == 400, "\(bad)")
                let error = try response.daprError()
                #expect(error.errorCode == "ERR_MALFORMED_REQUEST", "\(bad)")
                #expect(error.message.hasPrefix("failed deserializing HTTP body: "), "\(bad): \(error.message)")
            }
        }
    }

    // MARK: Transactions

    @Test(arguments: StateStoreKind.allCases)
    func transactionAppliesUpsertsAndDeletes(kind: StateStoreKind) async throws {
        try await withAPIStateSidecar(kind) { port, http in
            _ = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"old","value":"gone soon"}]"#)
            let response = try await http.post(
                port: port,
                "/v1.0/state/statestore/transaction",
                json: #"""
                    {"operations":[
                      {"operation":"upsert","request":{"key":"x","value":{"v":1}}},
                      {"operation":"upsert","request":{"key":"y","value":"why"}},
                      {"operation":"delete","request":{"key":"old"}},
                      {"operation":"upsert","request":{"key":"x","value":{"v":2}}}
                    ],"metadata":{"partitionKey":"p"}}
                    """#
            )
            response.expectNoContent()
            #expect(try await http.get(port: port, "/v1.0/state/statestore/x").text == #"{"v":2}"#)
            #expect(try await http.get(port: port, "/v1.0/state/statestore/y").text == #""why""#)
            #expect(try await http.get(port: port, "/v1.0/state/statestore/old").status == 204)

            // ETags inside a transaction; PUT is accepted.
            let etag = try #require(try await http.get(port: port, "/v1.0/state/statestore/y").header("etag"))
            let guarded = try await http.putJSON(
                port: port,
                "/v1.0/state/statestore/transaction",
                json: #"{"operations":[{"operation":"upsert","request":{"key":"y","value":"checked","etag":\#(apiJSONString(etag))}}]}"#
            )
            guarded.expectNoContent()
            #expect(try await http.get(port: port, "/v1.0/state/statestore/y").text == #""checked""#)
        }
    }

    /// One failing operation (a stale ETag) rolls the whole transaction back: 500 ERR_STATE_TRANSACTION.
    @Test(arguments: StateStoreKind.allCases)
    func transactionIsAllOrNothing(kind: StateStoreKind) async throws {
        try await withAPIStateSidecar(kind) { port, http in
            _ = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"keep","value":"original"},{"key":"guarded","value":"g"}]"#)
            let response = try await http.post(
                port: port,
                "/v1.0/state/statestore/transaction",
                json: #"""
                    {"operations":[
                      {"operation":"upsert","request":{"key":"new","value":"n"}},
                      {"operation":"delete","request":{"key":"keep"}},
                      {"operation":"upsert","request":{"key":"guarded","value":"changed","etag":"stale-etag"}}
                    ]}
                    """#
            )
            #expect(response.status == 500)
            let error = try response.daprError()
            #expect(error.errorCode == "ERR_STATE_TRANSACTION")
            #expect(error.message.hasPrefix("error while executing state transaction: possible etag mismatch. error from state store: "), "\(error.message)")
            #expect(error.details == nil)
            #expect(try await http.get(port: port, "/v1.0/state/statestore/new").status == 204)
            #expect(try await http.get(port: port, "/v1.0/state/statestore/keep").text == #""original""#)
            #expect(try await http.get(port: port, "/v1.0/state/statestore/guarded").text == #""g""#)

            // A stale ETag on a delete is the same.
            let staleDelete = try await http.post(
                port: port,
                "/v1.0/state/statestore/transaction",
                json: #"{"operations":[{"operation":"delete","request":{"key":"keep"}},{"operation":"delete","request":{"key":"guarded","etag":"stale"}}]}"#
            )
            #expect(staleDelete.status == 500)
            #expect(try staleDelete.daprError().errorCode == "ERR_STATE_TRANSACTION")
            #expect(try await http.get(port: port, "/v1.0/state/statestore/keep").status == 200)
        }
    }

    @Test func transactionRequestErrors() async throws {
        try await withAPIStateSidecar { port, http in
            let empty = try await http.post(port: port, "/v1.0/state/statestore/transaction", json: #"{"operations":[]}"#)
            empty.expectNoContent()
            let noOperations = try await http.post(port: port, "/v1.0/state/statestore/transaction", json: "{}")
            noOperations.expectNoContent()

            let unknown = try await http.post(
                port: port,
                "/v1.0/state/statestore/transaction",
                json: #"{"operations":[{"operation":"upsert","request":{"key":"u","value":1}},{"operation":"patch","request":{"key":"u"}}]}"#
            )
            try unknown.expectError(400, "ERR_NOT_SUPPORTED_STATE_OPERATION", "operation type patch not supported")
            #expect(try await http.get(port: port, "/v1.0/state/statestore/u").status == 204)

            // Operation names are case-sensitive.
            let upper = try await http.post(port: port, "/v1.0/state/statestore/transaction", json: #"{"operations":[{"operation":"UPSERT","request":{"key":"u","value":1}}]}"#)
            try upper.expectError(400, "ERR_NOT_SUPPORTED_STATE_OPERATION", "operation type UPSERT not supported")

            let missingOperation = try await http.post(port: port, "/v1.0/state/statestore/transaction", json: #"{"operations":[{"request":{"key":"u","value":1}}]}"#)
            try missingOperation.expectError(400, "ERR_NOT_SUPPORTED_STATE_OPERATION", "operation type  not supported")

            let emptyBody = try await http.post(port: port, "/v1.0/state/statestore/transaction", body: [])
            try emptyBody.expectError(400, "ERR_MALFORMED_REQUEST", "failed deserializing HTTP body: EOF")

            for bad in ["{", "[]", #"{"operations":[{"operation":"upsert","request":{"key":"u","etag":5}}]}"#, #"{"metadata":{"a":true},"operations":[]}"#] {
                let response = try await http.post(port: port, "/v1.0/state/statestore/transaction", json: bad)
                #expect(response.status == 400, "\(bad)")
                let error = try response.daprError()
                #expect(error.errorCode == "ERR_MALFORMED_REQUEST", "\(bad)")
                #expect(error.message.hasPrefix("failed deserializing HTTP body: "), "\(bad): \(error.message)")
            }
        }
    }

    /// TTL metadata on a transaction's upsert applies to that item.
    @Test func transactionUpsertWithTTL() async throws {
        try await withAPIStateSidecar { port, http in
            let response = try await http.post(
                port: port,
                "/v1.0/state/statestore/transaction",
                json: #"{"operations":[{"operation":"upsert","request":{"key":"tx-ttl","value":1,"metadata":{"ttlInSeconds":"100"}}}]}"#
            )
            response.expectNoContent()
            try Self.expectExpiry(try await http.get(port: port, "/v1.0/state/statestore/tx-ttl").header("metadata.ttlExpireTime"), withinSecondsFromNow: 98...101)
        }
    }

    /// The body's `metadata` belongs to the transaction as a whole; URL `metadata.*` parameters
    /// also reach every operation.
    @Test func transactionMetadataScopes() async throws {
        try await withAPIStateSidecar { port, http in
            let bodyLevel = try await http.post(
                port: port,
                "/v1.0/state/statestore/transaction",
                json: #"{"operations":[{"operation":"upsert","request":{"key":"body-level","value":1}}],"metadata":{"ttlInSeconds":"100"}}"#
            )
            bodyLevel.expectNoContent()
            let read = try await http.get(port: port, "/v1.0/state/statestore/body-level")
            #expect(read.status == 200)
            #expect(read.header("metadata.ttlExpireTime") == nil)

            let urlLevel = try await http.post(
                port: port,
                "/v1.0/state/statestore/transaction?metadata.ttlInSeconds=100",
                json: #"{"operations":[{"operation":"upsert","request":{"key":"url-level","value":1,"metadata":{"ttlInSeconds":"5000"}}}]}"#
            )
            urlLevel.expectNoContent()
            // The URL's value wins over the operation's.
            try Self.expectExpiry(try await http.get(port: port, "/v1.0/state/statestore/url-level").header("metadata.ttlExpireTime"), withinSecondsFromNow: 98...101)

            // A bad TTL inside a transaction fails the transaction.
            let bad = try await http.post(
                port: port,
                "/v1.0/state/statestore/transaction",
                json: #"{"operations":[{"operation":"upsert","request":{"key":"bad-ttl","value":1,"metadata":{"ttlInSeconds":"x"}}}]}"#
            )
            #expect(bad.status == 500)
            let error = try bad.daprError()
            #expect(error.errorCode == "ERR_STATE_TRANSACTION")
            #expect(error.message.hasPrefix("error while executing state transaction: "))
            #expect(try await http.get(port: port, "/v1.0/state/statestore/bad-ttl").status == 204)
        }
    }

    // MARK: Key prefixes

    /// Stores sharing one SQLite table see each other's keys exactly when their prefixes agree:
    /// `appid` → `testapp||k`, `name` → `<store>||k`, `none` → `k`, anything else → `<lower-cased value>||k`.
    @Test func keyPrefixStrategies() async throws {
        let resources = [
            "1.yaml": APIYAML.sqlite("byappid"),
            "2.yaml": APIYAML.sqlite("byappid2", keyPrefix: "appid"),
            "3.yaml": APIYAML.sqlite("byname", keyPrefix: "name"),
            "4.yaml": APIYAML.sqlite("none1", keyPrefix: "none"),
            "5.yaml": APIYAML.sqlite("none2", keyPrefix: "NONE"),
            "6.yaml": APIYAML.sqlite("custom", keyPrefix: "TestApp"),
            "7.yaml": APIYAML.sqlite("custom2", keyPrefix: "byname"),
        ]
        try await InProcessSidecar.with(resources: resources) { sidecar in
            try await TestHTTP.with { http in
                let port = sidecar.httpPort
                func save(_ store: String, _ key: String) async throws {
                    let response = try await http.post(port: port, "/v1.0/state/\(store)", json: #"[{"key":\#(apiJSONString(key)),"value":\#(apiJSONString(store))}]"#)
                    response.expectNoContent()
                }
                func visible(_ store: String, _ key: String) async throws -> String? {
                    let response = try await http.get(port: port, "/v1.0/state/\(store)/\(key)")
                    return response.status == 200 ? response.text : nil
                }
                try await save("byappid", "k1")
                #expect(try await visible("byappid2", "k1") == #""byappid""#)
                #expect(try await visible("custom", "k1") == #""byappid""#)
                #expect(try await visible("byname", "k1") == nil)
                #expect(try await visible("none1", "k1") == nil)

                try await save("byname", "k2")
                #expect(try await visible("custom2", "k2") == #""byname""#)
                #expect(try await visible("byappid", "k2") == nil)
                #expect(try await visible("none1", "k2") == nil)

                try await save("none1", "k3")
                #expect(try await visible("none2", "k3") == #""none1""#)
                #expect(try await visible("byappid", "k3") == nil)
                #expect(try await visible("byname", "k3") == nil)

                // Responses carry the app's key, never the stored one.
                let bulk = try await http.post(port: port, "/v1.0/state/custom2/bulk", json: #"{"keys":["k2"]}"#)
                #expect(try bulk.parsedJSON.arrayValues?.first?["key"] == "k2")
                #expect(try bulk.parsedJSON.arrayValues?.first?["data"] == "byname")
            }
        }
    }

    /// Two apps on one database: `appid` keeps them apart, `name` shares.
    @Test func keyPrefixSeparatesApps() async throws {
        try await withAPIScratchDirectory { directory in
            let database = directory + "/shared.db"
            let resources = [
                "private.yaml": APIYAML.sqlite("private", path: database),
                "shared.yaml": APIYAML.sqlite("shared", path: database, keyPrefix: "name"),
            ]
            try await InProcessSidecar.with(appID: "app-one", resources: resources) { one in
                try await InProcessSidecar.with(appID: "app-two", resources: resources) { two in
                    try await TestHTTP.with { http in
                        for store in ["private", "shared"] {
                            let saved = try await http.post(port: one.httpPort, "/v1.0/state/\(store)", json: #"[{"key":"k","value":"from one"}]"#)
                            saved.expectNoContent()
                        }
                        #expect(try await http.get(port: two.httpPort, "/v1.0/state/private/k").status == 204)
                        let shared = try await http.get(port: two.httpPort, "/v1.0/state/shared/k")
                        #expect(shared.status == 200)
                        #expect(shared.text == #""from one""#)
                        #expect(try await http.get(port: one.httpPort, "/v1.0/state/private/k").text == #""from one""#)
                    }
                }
            }
        }
    }
}
