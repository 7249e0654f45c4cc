import MechaCore
import MechaResiliency
import MechaRuntime

/// A JSON array kept under one key of a state store and changed with ETag concurrency (read,
/// change, write with the read ETag, again on a concurrent change): the actor reminders of a
/// type and the placement membership share it.
struct ETaggedList: Sendable {
    let components: ComponentStore
    let storeName: String
    let key: String

    func store() throws -> any StateStore {
        guard let store = self.components.stateStore(named: self.storeName) else { throw ActorStoreMissing(name: self.storeName) }
        return store
    }

    /// The entries and the ETag they were read with.
    func read() async throws -> ([JSONValue], String?) {
        let store = try self.store()
        let key = self.key
        let item = try await self.components.call(self.storeName, .state, "get") { try await store.get(StateGetRequest(key: key, consistency: .strong)) }
        guard let item, !item.value.isEmpty else { return ([], item?.etag) }
        return (try JSONValue(parsing: item.value).arrayValues ?? [], item.etag)
    }

    /// Applies `change` to the decoded entries and writes them back (an empty list deletes the
    /// key when `deleteWhenEmpty`); returns the entries written and `change`'s output. Nothing is
    /// written when `change` leaves the entries equal.
    func update<Entry: Equatable, Output>(
        decode: (JSONValue) -> Entry?, encode: (Entry) -> JSONValue, deleteWhenEmpty: Bool,
        _ change: (inout [Entry]) throws -> Output
    ) async throws -> ([Entry], Output) {
        let store = try self.store()
        let key = self.key
        for attempt in 0..<50 {
            let (json, etag) = try await self.read()
            var entries = json.compactMap(decode)
            let before = entries
            let output = try change(&entries)
            if entries == before { return (entries, output) }
            let value = JSONValue.array(entries.map(encode)).serialized
            do {
                if entries.isEmpty && deleteWhenEmpty {
                    try await self.components.call(self.storeName, .state, "delete") {
                        try await store.delete(StateDeleteRequest(key: key, etag: etag, concurrency: .firstWrite))
                    }
                } else {
                    try await self.components.call(self.storeName, .state, "set") {
                        try await store.set(StateSetRequest(key: key, value: value, etag: etag, concurrency: .firstWrite, consistency: .strong))
                    }
                }
                return (entries, output)
            } catch let error as StateStoreError where error.code == .etagMismatch {
                try await Task.sleep(for: .milliseconds(Int64(1 + attempt % 7 * 3)))
            }
        }
        throw ActorStoreBusy(key: key)
    }
}

struct ActorStoreMissing: Error, CustomStringConvertible {
    var name: String
    var description: String { "the actor state store \(self.name) is not loaded" }
}

struct ActorStoreBusy: Error, CustomStringConvertible {
    var key: String
    var description: String { "\(self.key) in the actor state store changed concurrently too often" }
}
