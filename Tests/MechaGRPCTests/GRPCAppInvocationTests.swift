import Foundation
import GRPCCore
import MechaAPI
import MechaCore
import MechaGRPC
import MechaSidecar
import MechaTesting
import NIOHTTP1
import SwiftProtobuf
import Testing

/// Service invocation of an app started with `--app-protocol grpc`: what `OnInvoke` receives
/// from HTTP and gRPC callers and how its answers (and errors) come back.
@Suite struct GRPCAppInvocationTests {
    @Test func httpCallerReachesOnInvokeWithVerbQueryContentTypeAndMetadata() async throws {
        try await FakeGRPCApp.with { app in
            app.configure {
                $0.invoke = { request in
                    var response = Dapr_Proto_Common_V1_InvokeResponse()
                    var data = Google_Protobuf_Any()
                    data.value = Data("pong for \(String(decoding: request.data.value, as: UTF8.self))".utf8)
                    response.data = data
                    response.contentType = "text/plain; charset=utf-8"
                    return response
                }
            }
            try await InProcessSidecar.with(appPort: app.port, environment: ["APP_API_TOKEN": "app-secret"]) { sidecar in
                try await TestHTTP.with { http in
                    let response = try await http.request(
                        .PUT,
                        port: sidecar.httpPort,
                        "/v1.0/invoke/testapp/method/orders/7?x=1&y=two",
                        headers: [
                            ("content-type", "text/plain"),
                            ("traceparent", Samples.traceParent),
                            ("x-custom", "custom value"),
                            ("accept", "text/plain"),
                            ("grpc-timeout", "1S"),
                        ],
                        body: Array("ping".utf8)
                    )
                    #expect(response.status == 200)
                    #expect(response.text == "pong for ping")
                    #expect(response.header("content-type") == "text/plain; charset=utf-8")
                    // The app's response metadata comes back as headers; nothing internal leaks.
                    #expect(response.header("x-app-header") == "from-app")
                    #expect(!response.headers.contains { $0.name.lowercased().hasPrefix("x-mecha-") })
                }
                let call = try #require(app.calls.invocations.first)
                #expect(call.message.method == "orders/7")
                #expect(call.message.httpExtension.verb == .put)
                #expect(call.message.httpExtension.querystring == "x=1&y=two")
                #expect(call.message.contentType == "text/plain")
                #expect(call.message.data.value == Data("ping".utf8))
                #expect(call.message.data.typeURL == "")
                #expect(call.metadata["traceparent"] == Samples.traceParent)
                #expect(call.metadata["dapr-caller-app-id"] == "testapp")
                #expect(call.metadata["dapr-callee-app-id"] == "testapp")
                #expect(call.metadata["x-custom"] == "custom value")
                #expect(call.metadata["dapr-api-token"] == "app-secret")
                // daprd's renaming of reserved names.
                #expect(call.metadata["dapr-accept"] == "text/plain")
                #expect(call.metadata["dapr-grpc-timeout"] == "1S")
                #expect(call.metadata["host"] == nil)
                #expect(call.metadata["content-length"] == nil)
            }
        }
    }

    @Test func anyTypeURLMakesTheAnswerProtobuf() async throws {
        try await FakeGRPCApp.with { app in
            app.configure {
                $0.invoke = { _ in
                    var response = Dapr_Proto_Common_V1_InvokeResponse()
                    response.data = try Google_Protobuf_Any(message: Google_Protobuf_StringValue("hello"))
                    response.contentType = "text/plain"
                    return response
                }
            }
            try await InProcessSidecar.with(appPort: app.port) { sidecar in
                try await TestHTTP.with { http in
                    let response = try await http.get(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/typed")
                    #expect(response.status == 200)
                    #expect(response.header("content-type") == "application/x-protobuf")
                    #expect(response.body == (try Google_Protobuf_StringValue("hello").serializedBytes() as [UInt8]))
                    #expect(response.header(AnyTypeURL.header) == nil)
                }
                #expect(app.calls.invocations.first?.message.httpExtension.verb == .get)
            }
        }
    }

    @Test(arguments: [
        (RPCError.Code.notFound, 404),
        (.invalidArgument, 400),
        (.permissionDenied, 403),
        (.unimplemented, 501),
        (.unavailable, 503),
        (.internalError, 500),
        (.deadlineExceeded, 504),
        (.resourceExhausted, 429),
        (.unauthenticated, 401),
    ])
    func appErrorsBecomeMappedHTTPStatusesWithTheStatusAsJSON(code: RPCError.Code, status: Int) async throws {
        try await FakeGRPCApp.with { app in
            app.configure { $0.invoke = { _ in throw RPCError(code: code, message: "it \"failed\"") } }
            try await InProcessSidecar.with(appPort: app.port) { sidecar in
                try await TestHTTP.with { http in
                    let response = try await http.post(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/fail", json: "{}")
                    #expect(response.status == status)
                    #expect(response.header("content-type") == "application/json")
                    #expect(response.text == #"{"code":\#(code.rawValue),"message":"it \"failed\""}"#)
                    #expect(response.header(AppRPCStatus.header) == nil)
                }
            }
        }
    }

    @Test func appErrorDetailsAreRenderedAsProtoJSON() async throws {
        try await FakeGRPCApp.with { app in
            app.configure {
                $0.invoke = { _ in
                    var info = Google_Rpc_ErrorInfo()
                    info.reason = "OUT_OF_STOCK"
                    info.domain = "shop"
                    var status = Google_Rpc_Status()
                    status.code = 9
                    status.message = "no stock"
                    status.details = [try Google_Protobuf_Any(message: info)]
                    var metadata = Metadata()
                    metadata.addBinary(try status.serializedBytes(), forKey: "grpc-status-details-bin")
                    throw RPCError(code: .failedPrecondition, message: "no stock", metadata: metadata)
                }
            }
            try await InProcessSidecar.with(appPort: app.port) { sidecar in
                try await TestHTTP.with { http in
                    let response = try await http.post(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/buy", json: "{}")
                    #expect(response.status == 400)
                    let json = try JSONValue(parsing: response.body)
                    #expect(json["code"]?.intValue == 9)
                    #expect(json["message"] == "no stock")
                    let detail = try #require(json["details"]?.arrayValues?.first)
                    #expect(detail["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
                    #expect(detail["reason"] == "OUT_OF_STOCK")
                    #expect(detail["domain"] == "shop")
                }
            }
        }
    }

    @Test func unreachableAppAnswersUnavailable() async throws {
        // The app port accepts nothing: the call fails like daprd's (gRPC UNAVAILABLE → 503).
        let port = TestEnvironment.refusingPort()
        try await InProcessSidecar.with(appPort: port) { sidecar in
            try await TestHTTP.with { http in
                let response = try await http.post(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/x", json: "{}")
                #expect(response.status == 503 || response.status == 500)
                let json = try JSONValue(parsing: response.body)
                #expect(json["code"]?.intValue == 14 || json["errorCode"] != nil)
            }
        }
    }

    @Test func appMaxConcurrencyLimitsInvocations() async throws {
        try await FakeGRPCApp.with { app in
            app.configure {
                $0.invoke = { request in
                    try await Task.sleep(for: .milliseconds(200))
                    var response = Dapr_Proto_Common_V1_InvokeResponse()
                    response.data = request.data
                    return response
                }
            }
            try await InProcessSidecar.with(appPort: app.port, configure: { $0.appMaxConcurrency = 1 }) { sidecar in
                try await TestHTTP.with { http in
                    try await withThrowingTaskGroup(of: Int.self) { group in
                        for index in 0..<3 {
                            group.addTask { try await http.post(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/slow", json: "\(index)").status }
                        }
                        for try await status in group { #expect(status == 200) }
                    }
                }
            }
            #expect(app.calls.invocations.count == 3)
            #expect(app.calls.maxConcurrentInvocations == 1)
        }
    }

    // MARK: gRPC callers

    @Test func grpcCallerReachesGRPCApp() async throws {
        try await FakeGRPCApp.with { app in
            app.configure {
                $0.invoke = { request in
                    var response = Dapr_Proto_Common_V1_InvokeResponse()
                    if request.method == "typed" {
                        response.data = try Google_Protobuf_Any(message: Google_Protobuf_StringValue("typed answer"))
                    } else {
                        var data = Google_Protobuf_Any()
                        data.value = Data("echo:".utf8) + request.data.value
                        response.data = data
                        response.contentType = "text/plain"
                    }
                    return response
                }
            }
            try await InProcessSidecar.with(appPort: app.port) { sidecar in
                try await sidecar.withDaprClient { dapr in
                    var request = Dapr_Proto_Runtime_V1_InvokeServiceRequest()
                    request.id = "testapp"
                    request.message.method = "say"
                    request.message.data.value = Data("hi".utf8)
                    request.message.contentType = "text/plain"
                    request.message.httpExtension.verb = .post
                    request.message.httpExtension.querystring = "q=1"
                    var metadata = Metadata()
                    metadata.addString(Samples.traceParent, forKey: "traceparent")
                    metadata.addString("grpc caller", forKey: "x-caller")
                    let answer = try await dapr.invokeService(request, metadata: metadata)
                    #expect(answer.data.value == Data("echo:hi".utf8))
                    #expect(answer.contentType == "text/plain")

                    request.message.method = "typed"
                    let typed = try await dapr.invokeService(request)
                    #expect(typed.data.typeURL == "type.googleapis.com/google.protobuf.StringValue")
                    #expect(try Google_Protobuf_StringValue(unpackingAny: typed.data).value == "typed answer")

                    // The app's response metadata reaches gRPC callers as it is.
                    let headers = try await dapr.invokeService(request) { response in response.metadata }
                    #expect(headers.firstString("x-app-header") == "from-app")
                    #expect(headers.firstString("dapr-http-status") == nil)
                    #expect(!headers.contains { $0.key.hasPrefix("x-mecha-") })
                }
                let call = try #require(app.calls.invocations.first)
                #expect(call.message.method == "say")
                #expect(call.message.httpExtension.verb == .post)
                #expect(call.message.httpExtension.querystring == "q=1")
                #expect(call.message.contentType == "text/plain")
                #expect(call.metadata["traceparent"] == Samples.traceParent)
                #expect(call.metadata["x-caller"] == "grpc caller")
                #expect(call.metadata["dapr-caller-app-id"] == "testapp")
            }
        }
    }

    @Test func grpcCallerSeesTheGRPCAppsOwnErrorCode() async throws {
        try await FakeGRPCApp.with { app in
            app.configure { $0.invoke = { _ in throw RPCError(code: .notFound, message: "no such thing") } }
            try await InProcessSidecar.with(appPort: app.port) { sidecar in
                try await sidecar.withDaprClient { dapr in
                    var request = Dapr_Proto_Runtime_V1_InvokeServiceRequest()
                    request.id = "testapp"
                    request.message.method = "missing"
                    let error = await #expect(throws: RPCError.self) { try await dapr.invokeService(request) }
                    // daprd hands gRPC callers the app's own status.
                    #expect(error?.code == .notFound)
                    #expect(error?.message == "no such thing")
                }
            }
        }
    }

    @Test func grpcCallerReachesHTTPApp() async throws {
        let directory = TestEnvironment.temporaryDirectory("mecha-grpc-httpapp")
        defer { TestEnvironment.remove(directory) }
        let httpApp = try await TestAppHarness(directory: directory, name: "http")
        do {
            try await InProcessSidecar.with(appPort: httpApp.port, appProtocol: .http) { sidecar in
                try await sidecar.withDaprClient { dapr in
                    var request = Dapr_Proto_Runtime_V1_InvokeServiceRequest()
                    request.id = "testapp"
                    request.message.method = "echo/hello"
                    request.message.data.value = Data("hi there".utf8)
                    request.message.contentType = "text/plain"
                    request.message.httpExtension.verb = .put
                    request.message.httpExtension.querystring = "a=1"
                    let answer = try await dapr.invokeService(request)
                    #expect(answer.contentType == "application/json")
                    let echo = try JSONValue(parsing: [UInt8](answer.data.value))
                    #expect(echo["method"] == "PUT")
                    #expect(echo["path"] == "/echo/hello")
                    #expect(echo["query"] == "a=1")
                    #expect(echo["body"] == "hi there")
                    #expect(echo["headers"]?["content-type"] == "text/plain")

                    // The app's response headers reach the caller as response metadata, HTTP ones
                    // renamed as daprd does, with the app's status in dapr-http-status.
                    let headers = try await dapr.invokeService(request) { response in response.metadata }
                    #expect(headers.firstString("dapr-http-status") == "200")
                    #expect(headers.firstString("dapr-content-type") == "application/json")
                    #expect(!headers.contains { $0.key.hasPrefix("x-mecha-") })

                    // A non-2xx answer is daprd's error: code from its table, the status text,
                    // and an ErrorInfo with the HTTP code and the start of the body.
                    request.message.method = "status/404"
                    request.message.httpExtension.verb = .get
                    let error = await #expect(throws: RPCError.self) { try await dapr.invokeService(request) }
                    #expect(error?.code == .notFound)
                    #expect(error?.message == "Not Found")
                    let status = try #require(error?.metadata[binaryValues: "grpc-status-details-bin"].first(where: { _ in true }))
                    let decoded = try Google_Rpc_Status(serializedBytes: status)
                    let info = try Google_Rpc_ErrorInfo(unpackingAny: try #require(decoded.details.first))
                    #expect(info.reason == "Not Found")
                    #expect(info.domain == "dapr.io")
                    #expect(info.metadata == ["http.code": "404", "http.error_message": "status 404"])
                }
            }
            await httpApp.stop()
        } catch {
            await httpApp.stop()
            throw error
        }
    }

    // MARK: Through another sidecar

    @Test func remoteCallersReachTheGRPCAppThroughItsSidecar() async throws {
        let home = TestEnvironment.temporaryDirectory("mecha-grpc-mesh")
        defer { TestEnvironment.remove(home) }
        try await FakeGRPCApp.with { app in
            app.configure {
                $0.invoke = { request in
                    if request.method == "fail" { throw RPCError(code: .alreadyExists, message: "exists") }
                    var response = Dapr_Proto_Common_V1_InvokeResponse()
                    response.data = try Google_Protobuf_Any(message: Google_Protobuf_StringValue("remote"))
                    return response
                }
            }
            try await InProcessSidecar.with(appID: "beta", appPort: app.port, configure: { $0.mechaHome = home }) { beta in
                try await InProcessSidecar.with(appID: "alpha", configure: { $0.mechaHome = home }) { alpha in
                    try await TestHTTP.with { http in
                        var response = try await http.get(port: alpha.httpPort, "/v1.0/invoke/beta/method/typed")
                        let deadline = ContinuousClock.now + .seconds(10)
                        while response.status != 200, ContinuousClock.now < deadline {
                            try await Task.sleep(for: .milliseconds(50))
                            response = try await http.get(port: alpha.httpPort, "/v1.0/invoke/beta/method/typed")
                        }
                        #expect(response.status == 200)
                        #expect(response.header("content-type") == "application/x-protobuf")
                        #expect(response.body == (try Google_Protobuf_StringValue("remote").serializedBytes() as [UInt8]))
                        #expect(!response.headers.contains { $0.name.lowercased().hasPrefix("x-mecha-") })

                        let failed = try await http.post(port: alpha.httpPort, "/v1.0/invoke/beta/method/fail", json: "{}")
                        #expect(failed.status == 409)
                        #expect(failed.text == #"{"code":6,"message":"exists"}"#)
                        #expect(!failed.headers.contains { $0.name.lowercased().hasPrefix("x-mecha-") })
                    }
                    try await alpha.withDaprClient { dapr in
                        var request = Dapr_Proto_Runtime_V1_InvokeServiceRequest()
                        request.id = "beta"
                        request.message.method = "typed"
                        let answer = try await dapr.invokeService(request)
                        // The type URL crosses the sidecar-to-sidecar hop.
                        #expect(answer.data.typeURL == "type.googleapis.com/google.protobuf.StringValue")
                        #expect(try Google_Protobuf_StringValue(unpackingAny: answer.data).value == "remote")
                    }
                    let call = try #require(app.calls.invocations.first)
                    #expect(call.metadata["dapr-caller-app-id"] == "alpha")
                    #expect(call.metadata["dapr-callee-app-id"] == "beta")
                }
            }
        }
    }
}
