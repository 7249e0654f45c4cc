import MechaCore
import MechaResiliency
import Testing

@Suite("TrafficRouter")
struct TrafficRouterTests {
    static let noDraws = RouteDraws(split: 0, mirror: 0, delay: 0, abort: 0)

    static func route(_ routes: [TrafficRoute], path: String = "/orders", verb: String = "GET", operation: String? = nil, headers: [String: String] = [:], draws: RouteDraws = noDraws) -> RouteDecision {
        TrafficRouter.route(routes, path: path, verb: verb, operation: operation, draws: draws) { headers[$0] }
    }

    @Test func splitByWeight() {
        let routes = [TrafficRoute(split: [WeightedTarget(appID: "v1", weight: 90), WeightedTarget(appID: "v2", weight: 10)])]
        var rng = SplitMix64(seed: 11)
        var v1 = 0
        for _ in 0..<10_000 {
            let decision = TrafficRouter.route(routes, path: "/x", verb: "POST", random: &rng) { _ in nil }
            #expect(decision.routeIndex == 0)
            if decision.target == "v1" { v1 += 1 } else { #expect(decision.target == "v2") }
        }
        #expect((8_900...9_100).contains(v1), "\(v1)")
        // The bands, exactly.
        #expect(TrafficRouter.splitTarget(routes[0].split, draw: 0) == "v1")
        #expect(TrafficRouter.splitTarget(routes[0].split, draw: 0.8999) == "v1")
        #expect(TrafficRouter.splitTarget(routes[0].split, draw: 0.9) == "v2")
        #expect(TrafficRouter.splitTarget(routes[0].split, draw: 0.9999) == "v2")
    }

    @Test func splitEdgeCases() {
        #expect(TrafficRouter.splitTarget([], draw: 0.5) == nil)
        #expect(TrafficRouter.splitTarget([WeightedTarget(appID: "a", weight: 0)], draw: 0.5) == nil)
        let uneven = [WeightedTarget(appID: "a", weight: 0), WeightedTarget(appID: "b", weight: 1), WeightedTarget(appID: "c", weight: 3)]
        #expect(TrafficRouter.splitTarget(uneven, draw: 0.2) == "b")
        #expect(TrafficRouter.splitTarget(uneven, draw: 0.25) == "c")
        #expect(Self.route([TrafficRoute()]).target == nil)
    }

    @Test func firstMatchingRouteWins() {
        let routes = [
            TrafficRoute(match: RouteMatch(pathPrefix: "/admin"), split: [WeightedTarget(appID: "admin", weight: 100)]),
            TrafficRoute(match: RouteMatch(path: "/orders", method: "post"), split: [WeightedTarget(appID: "writer", weight: 100)]),
            TrafficRoute(match: RouteMatch(headers: ["x-canary": "1"]), split: [WeightedTarget(appID: "canary", weight: 100)]),
            TrafficRoute(match: RouteMatch(operation: "publish"), split: [WeightedTarget(appID: "pub", weight: 100)]),
            TrafficRoute(split: [WeightedTarget(appID: "default", weight: 100)]),
        ]
        #expect(Self.route(routes, path: "/admin/users").target == "admin")
        #expect(Self.route(routes, path: "/administrators", verb: "POST").target == "admin")
        #expect(Self.route(routes, path: "/orders", verb: "POST").target == "writer")
        #expect(Self.route(routes, path: "/orders", verb: "Post").routeIndex == 1)
        #expect(Self.route(routes, path: "/orders/1", verb: "POST").target == "default")
        #expect(Self.route(routes, path: "/orders", verb: "GET", headers: ["x-canary": "1"]).target == "canary")
        #expect(Self.route(routes, path: "/orders", verb: "GET", headers: ["x-canary": "2"]).target == "default")
        #expect(Self.route(routes, path: "", verb: "GET", operation: "PUBLISH").target == "pub")
        #expect(Self.route(routes, path: "/orders", verb: "GET").routeIndex == 4)
    }

    @Test func everyFieldOfAMatchMustFit() {
        let routes = [TrafficRoute(match: RouteMatch(pathPrefix: "/v2/", method: "GET", headers: ["x-user": "bob", "x-tier": "gold"]))]
        let headers = ["x-user": "bob", "x-tier": "gold"]
        #expect(Self.route(routes, path: "/v2/items", verb: "get", headers: headers).routeIndex == 0)
        #expect(Self.route(routes, path: "/v2/items", verb: "GET", headers: ["x-user": "bob"]) == .unmatched)
        #expect(Self.route(routes, path: "/v2/items", verb: "PUT", headers: headers) == .unmatched)
        #expect(Self.route(routes, path: "/v1/items", verb: "GET", headers: headers) == .unmatched)
        // An operation match never fits a call without an operation.
        #expect(Self.route([TrafficRoute(match: RouteMatch(operation: "get"))], operation: nil) == .unmatched)
        #expect(Self.route([]) == .unmatched)
    }

    @Test func faultsFireByTheirOwnPercentages() {
        let fault = FaultSpec(delay: .init(fixed: .milliseconds(200), percent: 50), abort: .init(httpStatus: 503, percent: 10))
        let routes = [TrafficRoute(mirror: MirrorSpec(appID: "shadow", percent: 25), fault: fault)]
        var rng = SplitMix64(seed: 5)
        var delayed = 0
        var aborted = 0
        var mirrored = 0
        for _ in 0..<10_000 {
            let decision = TrafficRouter.route(routes, path: "/x", verb: "GET", random: &rng) { _ in nil }
            if let delay = decision.delay {
                #expect(delay == .milliseconds(200))
                delayed += 1
            }
            if let status = decision.abortStatus {
                #expect(status == 503)
                #expect(decision.mirror == nil)
                aborted += 1
            }
            if decision.mirror != nil { mirrored += 1 }
        }
        #expect((4_800...5_200).contains(delayed), "\(delayed)")
        #expect((900...1_100).contains(aborted), "\(aborted)")
        // 25 % of the 90 % not aborted.
        #expect((2_100...2_400).contains(mirrored), "\(mirrored)")
    }

    @Test func percentageBoundaries() {
        let always = [TrafficRoute(mirror: MirrorSpec(appID: "m"), fault: FaultSpec(delay: .init(fixed: .seconds(1))))]
        let last = RouteDraws(split: 0.999_999, mirror: 0.999_999, delay: 0.999_999, abort: 0.999_999)
        #expect(Self.route(always, draws: last) == RouteDecision(routeIndex: 0, mirror: "m", delay: .seconds(1)))
        let never = [TrafficRoute(mirror: MirrorSpec(appID: "m", percent: 0), fault: FaultSpec(abort: .init(httpStatus: 500, percent: 0)))]
        #expect(Self.route(never, draws: Self.noDraws) == RouteDecision(routeIndex: 0))
        let abort = [TrafficRoute(mirror: MirrorSpec(appID: "m"), fault: FaultSpec(abort: .init(httpStatus: 429)))]
        #expect(Self.route(abort) == RouteDecision(routeIndex: 0, abortStatus: 429))
    }
}
