public import MechaCore

/// `bindings.cron`: an input binding that triggers the app on a schedule (`schedule` metadata:
/// 5 or 6 cron fields, `@daily`-style descriptors, `@every <duration>`, optional `CRON_TZ=`).
/// Each firing posts an empty body with `timeZone` and `readTimeUTC` metadata, as Dapr does. A slow
/// or failing app does not delay later firings.
public final class CronBinding: InputBinding {
    let schedule: CronSchedule

    init(schedule: CronSchedule) {
        self.schedule = schedule
    }

    public func read(until stop: StopSignal, handler: @escaping @Sendable (BindingEvent) async throws -> Void) async throws {
        await withDiscardingTaskGroup { group in
            var next = self.firstFire()
            while let fireAt = next {
                let wait = Self.duration(until: fireAt)
                if wait > .zero, await stop.sleep(for: wait) { break }
                if stop.isStopped { break }
                let event = BindingEvent(data: [], metadata: ["timeZone": "Local", "readTimeUTC": Self.goTimeString(WallClock.now())])
                group.addTask { try? await handler(event) }
                next = self.nextFire(after: fireAt)
            }
        }
    }

    private func firstFire() -> Timestamp? {
        self.nextFire(after: WallClock.now())
    }

    private func nextFire(after instant: Timestamp) -> Timestamp? {
        switch self.schedule.kind {
        case .every(let interval):
            return instant.adding(max(interval, .milliseconds(1)))
        case .calendar:
            return self.schedule.nextFireTime(after: instant.seconds).map { Timestamp(seconds: $0) }
        }
    }

    static func duration(until instant: Timestamp) -> Duration {
        let now = WallClock.now()
        let nanos = (instant.seconds - now.seconds) * 1_000_000_000 + Int64(instant.nanoseconds - now.nanoseconds)
        return .nanoseconds(max(0, nanos))
    }

    /// Go's `time.Time.String()` in UTC: `2026-01-02 03:04:05.123456789 +0000 UTC`.
    static func goTimeString(_ time: Timestamp) -> String {
        let rfc = time.rfc3339Nano  // 2026-01-02T03:04:05.123456789Z
        return String(rfc.dropLast()).replacing("T", with: " ") + " +0000 UTC"
    }
}

/// Factory for `bindings.cron`. Metadata: `schedule` (required), `direction`.
public struct CronBindingFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.bindings, "cron") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        guard let text = spec.metadata.string("schedule") else {
            throw ComponentConfigurationError(key: "schedule", reason: "schedule not set")
        }
        do {
            return CronBinding(schedule: try CronSchedule(parsing: text))
        } catch {
            throw ComponentConfigurationError(key: "schedule", reason: error.description)
        }
    }
}
