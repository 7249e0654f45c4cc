import MechaCore
import Testing

/// How the conformance suites hold a component while they exercise it: `run(until:)` runs beside the
/// checks, as the runtime runs it; afterwards the stop signal fires, `run` must return promptly, and
/// `close()` is called once.
enum LiveComponent {
    static func with<Output: Sendable>(
        _ component: any Component,
        label: String,
        stopTimeout: Duration,
        _ body: () async throws -> Output
    ) async throws -> Output {
        let stop = StopSignal()
        let returned = StopSignal()
        let result: Result<Output, any Error> = await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await component.run(until: stop)
                } catch {
                    Issue.record(error, "\(label): run(until:) threw")
                }
                returned.stop()
            }
            let result: Result<Output, any Error>
            do {
                result = .success(try await body())
            } catch {
                result = .failure(error)
            }
            stop.stop()
            if !(await returned.sleep(for: stopTimeout)) {
                Issue.record("\(label): run(until:) did not return within \(stopTimeout) of its stop signal")
                group.cancelAll()
            }
            return result
        }
        do {
            try await component.close()
        } catch {
            Issue.record(error, "\(label): close() threw")
        }
        return try result.get()
    }
}
