import Synchronization

/// A thread-safe list for recording what policies did (delays, attempts, events).
final class Recorder<Element: Sendable>: Sendable {
    private let storage = Mutex<[Element]>([])

    init() {}

    func append(_ element: Element) { self.storage.withLock { $0.append(element) } }
    var values: [Element] { self.storage.withLock { $0 } }
    var count: Int { self.storage.withLock { $0.count } }
}

struct TestError: Error, Equatable {
    var attempt: Int
}
