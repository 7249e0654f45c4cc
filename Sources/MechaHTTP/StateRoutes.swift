import HTTPTypes
import MechaAPI
import MechaCore

/// The state routes' wire format: JSON bodies in, JSON/raw bytes out, over `StateAPI`.
struct StateRoutes {
    let api: StateAPI

    func get(store: String, key: String, query: Substring) async throws(APIError) -> HTTPReply {
        let parameters = PercentDecoding.queryParameters(query)
        let consistency = parameters.first { $0.0 == "consistency" }?.1
        let metadata = PercentDecoding.metadata(from: query)
        guard let item = try await self.api.get(storeName: store, key: key, consistency: consistency, metadata: metadata) else {
            return .noContent()
        }
        var headers = HTTPFields()
        if let etag = item.etag { headers.add("ETag", etag) }
        for (name, value) in item.metadata.sorted(by: { $0.key < $1.key }) { headers.add("metadata.\(name)", value) }
        return .bytes(item.value, headers: headers)
    }

    func save(store: String, body: [UInt8], query: Substring) async throws(APIError) {
        let json: JSONValue
        do {
            json = try JSONValue(parsing: body)
        } catch {
            throw .malformedRequest(message: body.isEmpty ? "EOF" : "\(error)")
        }
        guard case .array(let elements) = json else {
            throw .malformedRequest(message: "json: cannot unmarshal \(json.typeName) into Go value of type []state.SetRequest")
        }
        let queryMetadata = PercentDecoding.metadata(from: query)
        var items: [SaveStateItem] = []
        for element in elements {
            items.append(try Self.saveItem(element, queryMetadata: queryMetadata))
        }
        try await self.api.save(storeName: store, items: items)
    }

    /// One `{key, value, etag, metadata, options}` object (field names case-insensitive, as Go decodes).
    static func saveItem(_ element: JSONValue, queryMetadata: [String: String]) throws(APIError) -> SaveStateItem {
        guard case .object(let members) = element else {
            throw .malformedRequest(message: "json: cannot unmarshal \(element.typeName) into Go value of type state.SetRequest")
        }
        func field(_ name: String) -> JSONValue? { members.last { $0.0.lowercased() == name }?.1 }
        let key: String
        switch field("key") {
        case .string(let text)?: key = text
        case nil, .null?: key = ""
        case let other?: throw .malformedRequest(message: "json: cannot unmarshal \(other.typeName) into Go struct field SetRequest.key of type string")
        }
        var etag: String?
        switch field("etag") {
        case .string(let text)?: etag = text
        case nil, .null?: etag = nil
        case let other?: throw .malformedRequest(message: "json: cannot unmarshal \(other.typeName) into Go struct field SetRequest.etag of type string")
        }
        var metadata = try Self.stringMap(field("metadata"), field: "metadata")
        metadata.merge(queryMetadata) { _, query in query }
        var concurrency: String?
        var consistency: String?
        if case .object(let options)? = field("options") {
            concurrency = options.last { $0.0.lowercased() == "concurrency" }?.1.stringValue
            consistency = options.last { $0.0.lowercased() == "consistency" }?.1.stringValue
        }
        let value = (field("value") ?? .null).serialized
        return SaveStateItem(
            key: key,
            value: value,
            etag: etag,
            metadata: metadata,
            concurrency: concurrency,
            consistency: consistency,
            contentType: field("contenttype")?.stringValue
        )
    }

    static func stringMap(_ value: JSONValue?, field: String) throws(APIError) -> [String: String] {
        guard let value, !value.isNull else { return [:] }
        guard case .object(let members) = value else {
            throw .malformedRequest(message: "json: cannot unmarshal \(value.typeName) into Go struct field .\(field) of type map[string]string")
        }
        var result: [String: String] = [:]
        for (key, entry) in members {
            guard case .string(let text) = entry else {
                throw .malformedRequest(message: "json: cannot unmarshal \(entry.typeName) into Go struct field .\(field) of type string")
            }
            result[key] = text
        }
        return result
    }

    func delete(store: String, key: String, etag: String?, query: Substring) async throws(APIError) {
        let parameters = PercentDecoding.queryParameters(query)
        try await self.api.delete(
            storeName: store,
            key: key,
            etag: etag,
            concurrency: parameters.first { $0.0 == "concurrency" }?.1,
            consistency: parameters.first { $0.0 == "consistency" }?.1,
            metadata: PercentDecoding.metadata(from: query)
        )
    }

    func bulk(store: String, body: [UInt8], query: Substring) async throws(APIError) -> HTTPReply {
        let json: JSONValue
        do {
            json = try JSONValue(parsing: body)
        } catch {
            throw .malformedRequest(body.isEmpty ? "EOF" : "\(error)")
        }
        guard case .object(let members) = json else { throw .malformedRequest("expected a JSON object") }
        func field(_ name: String) -> JSONValue? { members.last { $0.0.lowercased() == name }?.1 }
        var keys: [String] = []
        if let keysValue = field("keys"), !keysValue.isNull {
            guard case .array(let values) = keysValue else { throw .malformedRequest("keys must be an array of strings") }
            for value in values {
                guard case .string(let key) = value else { throw .malformedRequest("keys must be an array of strings") }
                keys.append(key)
            }
        }
        var metadata = try Self.deserializing { () throws(APIError) in try Self.stringMap(field("metadata"), field: "metadata") }
        metadata.merge(PercentDecoding.metadata(from: query)) { _, query in query }
        let items = try await self.api.bulkGet(storeName: store, keys: keys, metadata: metadata)
        let rendered: [JSONValue] = items.map { result in
            var fields: [(String, JSONValue)] = [("key", .string(result.key))]
            if let error = result.error, !error.isEmpty {
                fields.append(("error", .string(error)))
            } else if let item = result.item {
                fields.append(("data", Self.embedded(item.value)))
                if let etag = item.etag { fields.append(("etag", .string(etag))) }
                if !item.metadata.isEmpty { fields.append(("metadata", .stringMap(item.metadata))) }
            }
            return .object(fields)
        }
        return .json(.array(rendered), trailingNewline: true)
    }

    /// Runs a decoding step for a route whose decode failures read `failed deserializing HTTP body: …`
    /// (bulk get, transactions, bindings; only the save route reports the decoder's text alone).
    static func deserializing<Value>(_ step: () throws(APIError) -> Value) throws(APIError) -> Value {
        do {
            return try step()
        } catch {
            let prefix = "failed deserializing HTTP body: "
            guard error.errorCode == "ERR_MALFORMED_REQUEST", error.details == nil, !error.message.hasPrefix(prefix) else { throw error }
            throw .malformedRequest(error.message)
        }
    }

    /// Stored bytes embedded in a JSON response: as JSON when they are JSON, else as a string.
    static func embedded(_ bytes: [UInt8]) -> JSONValue {
        if let json = try? JSONValue(parsing: bytes) { return json }
        return .string(String(decoding: bytes, as: UTF8.self))
    }

    func transaction(store: String, body: [UInt8], query: Substring) async throws(APIError) {
        let json: JSONValue
        do {
            json = try JSONValue(parsing: body)
        } catch {
            throw .malformedRequest(body.isEmpty ? "EOF" : "\(error)")
        }
        guard case .object(let members) = json else { throw .malformedRequest("expected a JSON object") }
        func field(_ name: String) -> JSONValue? { members.last { $0.0.lowercased() == name }?.1 }
        var requestMetadata = try Self.deserializing { () throws(APIError) in try Self.stringMap(field("metadata"), field: "metadata") }
        let queryMetadata = PercentDecoding.metadata(from: query)
        // URL metadata reaches both the transaction and each operation (it wins over the body's).
        requestMetadata.merge(queryMetadata) { _, query in query }
        var operations: [TransactionOperationRequest] = []
        for operation in field("operations")?.arrayValues ?? [] {
            guard case .object(let opMembers) = operation else { throw .malformedRequest("operations must be objects") }
            let kind = opMembers.last { $0.0.lowercased() == "operation" }?.1.stringValue ?? ""
            let request = opMembers.last { $0.0.lowercased() == "request" }?.1 ?? .null
            switch kind {
            case "upsert":
                operations.append(.upsert(try Self.deserializing { () throws(APIError) in try Self.saveItem(request, queryMetadata: queryMetadata) }))
            case "delete":
                let item = try Self.deserializing { () throws(APIError) in try Self.saveItem(request, queryMetadata: queryMetadata) }
                operations.append(.delete(key: item.key, etag: item.etag, metadata: item.metadata, concurrency: item.concurrency, consistency: item.consistency))
            default:
                throw .stateOperationNotSupported(kind)
            }
        }
        try await self.api.transact(storeName: store, operations: operations, metadata: requestMetadata)
    }
}

/// Bulk publish wire format.
struct PubSubRoutes {
    let api: PubSubAPI

    func bulkPublish(pubsub: String, topic: String, body: [UInt8], query: Substring, traceParent: String) async throws(APIError) -> HTTPReply {
        let metadata = PercentDecoding.metadata(from: query)
        _ = try self.api.pubsub(pubsub, metadata: metadata)
        guard !topic.isEmpty else { throw .pubsubTopicEmpty(pubsub, metadata: metadata) }
        let json: JSONValue
        do {
            json = try JSONValue(parsing: body)
        } catch {
            throw .pubsubUnmarshalEvents(topic: topic, pubsub: pubsub, "\(error)", metadata: metadata)
        }
        guard case .array(let elements) = json else {
            throw .pubsubUnmarshalEvents(
                topic: topic,
                pubsub: pubsub,
                "json: cannot unmarshal \(json.typeName) into Go value of type []http.bulkPublishMessageEntry",
                metadata: metadata
            )
        }
        var entries: [BulkPublishRequestEntry] = []
        for element in elements {
            guard case .object(let members) = element else {
                throw .pubsubUnmarshalEvents(topic: topic, pubsub: pubsub, "entries must be objects", metadata: metadata)
            }
            func field(_ name: String) -> JSONValue? { members.last { $0.0.lowercased() == name.lowercased() }?.1 }
            var entryMetadata: [String: String]?
            if let value = field("metadata"), !value.isNull {
                guard let map = value.stringDictionary else {
                    throw .pubsubUnmarshalEvents(topic: topic, pubsub: pubsub, "entry metadata must map strings to strings", metadata: metadata)
                }
                entryMetadata = map
            }
            entries.append(
                BulkPublishRequestEntry(
                    entryID: field("entryId")?.stringValue ?? "",
                    event: .json(field("event") ?? .null),
                    contentType: field("contentType")?.stringValue ?? "",
                    metadata: entryMetadata
                )
            )
        }
        let failed = try await self.api.bulkPublish(pubsubName: pubsub, topic: topic, entries: entries, metadata: metadata, traceParent: traceParent)
        guard !failed.isEmpty else { return .noContent() }
        let document: JSONValue = .object([
            ("failedEntries", .array(failed.map { .object([("entryId", .string($0.entryID)), ("error", .string($0.error))]) })),
            ("errorCode", "ERR_PUBSUB_PUBLISH_MESSAGE"),
        ])
        var headers = HTTPFields()
        headers.add("metadata.responseData", document.jsonString)
        return .json(document, status: 500, headers: headers)
    }
}

/// Output binding wire format.
struct BindingRoutes {
    let api: BindingsAPI

    func invoke(name: String, body: [UInt8]) async throws(APIError) -> HTTPReply {
        let json: JSONValue
        do {
            json = try JSONValue(parsing: body)
        } catch {
            throw .malformedRequest(body.isEmpty ? "EOF" : "\(error)")
        }
        guard case .object(let members) = json else { throw .malformedRequest("expected a JSON object") }
        func field(_ name: String) -> JSONValue? { members.last { $0.0.lowercased() == name }?.1 }
        let metadata = try StateRoutes.deserializing { () throws(APIError) in try StateRoutes.stringMap(field("metadata"), field: "metadata") }
        let operation: String
        switch field("operation") {
        case .string(let text)?: operation = text
        case nil, .null?: operation = ""
        case let other?: throw .malformedRequest("json: cannot unmarshal \(other.typeName) into Go struct field OutputBindingRequest.operation of type string")
        }
        let data = (field("data") ?? .null).serialized
        let response = try await self.api.invoke(name: name, request: BindingInvokeRequest(operation: operation, data: data, metadata: metadata))
        var headers = HTTPFields()
        for (key, value) in response.metadata.sorted(by: { $0.key < $1.key }) { headers.add("metadata.\(key)", value) }
        // daprd answers 204 only when the binding returned no response at all; an empty answer is a 200.
        if !response.hasResponse { return .noContent(headers) }
        return .bytes(response.data, headers: headers)
    }
}
