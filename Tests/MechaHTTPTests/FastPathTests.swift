import MechaAPI
import MechaCore
@testable import MechaHTTP
import Testing

/// The invocation fast paths must answer exactly what the general code answers.
struct FastPathTests {
    static let paths = [
        "/v1.0/invoke/app/method/orders", "/v1.0/invoke/app/method/orders/7", "/v1.0/invoke/app/method/",
        "/v1.0/invoke/app.ns/method/a/b/", "/v1.0/invoke/a%2Fb/method/x", "/v1.0/invoke/a+b/method/x",
        "/v1.0/invoke/a/b/method/x", "/v1.0/invoke/app/method/a/method/b", "/v1.0/invoke//app/method/x",
        "/v1.0/invoke/app//method/x", "/v1.0/invoke/app/method//x", "/v1.0/invoke/app/method",
        "/v1.0/invoke/app/methods/x", "/v1.0/invoke/%zz/method/x", "/v1.0/invoke/app/method/%2e%2e/x",
    ]

    @Test(arguments: Self.paths)
    func invokeFastPathAgreesWithTheRouter(_ path: String) {
        if let fast = DaprRoute.matchPlainInvoke(path) {
            #expect(fast == DaprRoute.matchExactly(method: "POST", path: path), "\(path)")
        }
    }

    @Test func theFastPathTakesTheCommonShape() {
        #expect(DaprRoute.matchPlainInvoke("/v1.0/invoke/app/method/orders/7") == .invoke(appID: "app", method: "orders/7"))
        #expect(DaprRoute.matchPlainInvoke("/v1.0/invoke/app//method/x") == nil)
    }

    static let methods = [
        "orders", "orders/7", "a/b/c", "a.b/c..d/...", ".", "..", "a/./b", "a/../b", "../a", "a/..", "a/.", "/a", "a/",
        "a//b", "", "a%2Fb", "a b", "a+b", "ä", "a:b@c", "x;y=z", "~user", "a/b/", "...", ".hidden", "a/.hidden/..x",
    ]

    @Test(arguments: Self.methods)
    func cleanMethodCheckAgreesWithNormalization(_ method: String) {
        if InvocationMethod.isClean(method) {
            let full = InvocationMethod.escapePath(InvocationMethod.clean(PercentDecoding.pathUnescape(method) ?? method))
            #expect(full == method, "\(method) is not left unchanged by normalization: \(full)")
        }
    }

    @Test func theCommonMethodsAreClean() {
        #expect(InvocationMethod.isClean("orders/7"))
        #expect(InvocationMethod.isClean("api/v1/items:batch"))
        #expect(!InvocationMethod.isClean("a/../b"))
        #expect(!InvocationMethod.isClean("a%2Fb"))
    }
}
