import MechaCore
import Synchronization
import Testing

/// A check could not go on (a precondition failed); the message says why. The suites record it as
/// one issue naming the check.
struct ConformanceFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Conformance {
    /// Polls `condition` until it holds or `timeout` passes; returns whether it held.
    static func eventually(
        within timeout: Duration,
        every interval: Duration = .milliseconds(20),
        _ condition: () async throws -> Bool
    ) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if try await condition() { return true }
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: interval)
        }
    }

    /// Runs one named check, recording a thrown error as an issue that names the suite and check
    /// (failed `#require`s are already recorded and are not recorded twice).
    static func record(_ suite: String, _ check: String, _ body: () async throws -> Void) async {
        do {
            try await body()
        } catch is ExpectationFailedError {
            // Already recorded by #require.
        } catch {
            Issue.record(error, "\(suite) conformance, check '\(check)'")
        }
    }

    /// A short unique id for keys, topics and groups of one run.
    static func runID() -> String {
        String(RandomID.uuid().filter { $0 != "-" }.prefix(12))
    }

    /// Bytes as text when they are UTF-8, else hex, for failure messages.
    static func show(_ bytes: [UInt8]) -> String {
        if bytes.count > 64 { return "\(bytes.count) bytes" }
        if let text = String(validating: bytes, as: UTF8.self), !text.contains(where: { $0.asciiValue.map { $0 < 32 } ?? false }) {
            return "\"\(text)\""
        }
        return "0x" + bytes.map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

/// A value shared between a check and the handlers it installs.
final class SharedValue<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    init(_ value: Value) { self.storage = Mutex(value) }
    var value: Value {
        get { self.storage.withLock { $0 } }
    }
    func set(_ value: Value) { self.storage.withLock { $0 = value } }
    /// Applies `change` and returns the new value.
    @discardableResult
    func update(_ change: @Sendable (inout Value) -> Void) -> Value {
        self.storage.withLock { value in
            change(&value)
            return value
        }
    }
}
