public import MechaCore
import Testing

/// The output binding conformance suite (Dapr components-contrib's `tests/conformance/bindings`, output
/// side): the declared operations are the expected ones; `create`, `get`, `list` and `delete` work
/// together when declared; an operation that is not declared is refused with an error.
///
/// ```swift
/// try await OutputBindingConformance(
///     configuration: .init(expectedOperations: ["create", "get", "list", "delete"], requestMetadata: ["fileName": "conformance.json"]),
///     makeBinding: { try await factory.make(spec: spec, context: context) as! any OutputBinding }
/// ).run()
/// ```
public struct OutputBindingConformance: Sendable {
    public struct Configuration: Sendable {
        /// The operations the binding should declare (compared case-insensitively).
        public var expectedOperations: [String]
        /// Metadata sent with every `create`, `get` and `delete` (e.g. `fileName`).
        public var requestMetadata: [String: String]
        /// Metadata sent with `list`; `nil` sends `requestMetadata`.
        public var listMetadata: [String: String]?
        /// What `create` writes; `get` must return exactly these bytes.
        public var sampleData: [UInt8]
        /// What a second `create` writes over the first.
        public var replacementData: [UInt8]
        /// A name no binding supports.
        public var unsupportedOperation: String

        public init(
            expectedOperations: [String],
            requestMetadata: [String: String] = [:],
            listMetadata: [String: String]? = nil,
            sampleData: [UInt8] = Array(#"{"conformance":"output binding data","quote":"\"q\"","n":1}"#.utf8),
            replacementData: [UInt8] = Array(#"[{"conformance":"replaced"}]"#.utf8),
            unsupportedOperation: String = "conformance-unsupported-operation"
        ) {
            self.expectedOperations = expectedOperations
            self.requestMetadata = requestMetadata
            self.listMetadata = listMetadata
            self.sampleData = sampleData
            self.replacementData = replacementData
            self.unsupportedOperation = unsupportedOperation
        }
    }

    public enum Check: String, CaseIterable, Sendable, CustomStringConvertible {
        /// Declared operations equal the expected ones.
        case operations
        /// `create` then `get` returns the data; `list` works; after `delete`, `get` no longer returns it.
        case roundTrip
        /// Undeclared operations (standard ones included) are refused.
        case unsupportedOperations

        public var description: String { self.rawValue }
    }

    /// The operations Dapr's suite knows.
    static let standardOperations = ["create", "get", "list", "delete"]

    /// What this run expects of the component.
    public let configuration: Configuration
    let makeBinding: @Sendable () async throws -> any OutputBinding

    public init(configuration: Configuration, makeBinding: @escaping @Sendable () async throws -> any OutputBinding) {
        self.configuration = configuration
        self.makeBinding = makeBinding
    }

    public func run() async throws {
        for check in Check.allCases { try await self.run(check) }
    }

    /// Runs one check on a fresh binding. Throws only when the binding cannot be made.
    public func run(_ check: Check) async throws {
        let binding = try await self.makeBinding()
        try await LiveComponent.with(binding, label: "output binding", stopTimeout: .seconds(5)) {
            await Conformance.record("output binding", check.rawValue) {
                switch check {
                case .operations: self.checkOperations(binding)
                case .roundTrip: try await self.checkRoundTrip(binding)
                case .unsupportedOperations: await self.checkUnsupported(binding)
                }
            }
        }
    }

    func checkOperations(_ binding: any OutputBinding) {
        let declared = binding.operations.map { $0.lowercased() }
        let expected = Set(self.configuration.expectedOperations.map { $0.lowercased() })
        #expect(Set(declared) == expected, "declared operations \(declared.sorted()) differ from the expected \(expected.sorted())")
        #expect(Set(declared).count == declared.count, "operations are declared more than once: \(declared)")
    }

    private func supports(_ binding: any OutputBinding, _ operation: String) -> Bool {
        binding.operations.contains { $0.lowercased() == operation }
    }

    private func invoke(_ binding: any OutputBinding, _ operation: String, _ data: [UInt8] = []) async throws -> BindingInvokeResponse {
        let metadata = operation == "list" ? self.configuration.listMetadata ?? self.configuration.requestMetadata : self.configuration.requestMetadata
        return try await binding.invoke(BindingInvokeRequest(operation: operation, data: data, metadata: metadata))
    }

    func checkRoundTrip(_ binding: any OutputBinding) async throws {
        let sample = self.configuration.sampleData
        guard self.supports(binding, "create") else { return }
        _ = try await self.invoke(binding, "create", sample)
        if self.supports(binding, "get") {
            let response = try await self.invoke(binding, "get")
            let same = response.data == sample
            #expect(same, "get after create returned \(Conformance.show(response.data)), expected \(Conformance.show(sample))")
            _ = try await self.invoke(binding, "create", self.configuration.replacementData)
            let replaced = try await self.invoke(binding, "get")
            let replacedSame = replaced.data == self.configuration.replacementData
            #expect(replacedSame, "get after a second create returned \(Conformance.show(replaced.data)), expected \(Conformance.show(self.configuration.replacementData))")
        }
        if self.supports(binding, "list") {
            _ = try await self.invoke(binding, "list")
        }
        guard self.supports(binding, "delete") else { return }
        _ = try await self.invoke(binding, "delete")
        if self.supports(binding, "get") {
            // Dapr's suite accepts an empty answer; an error is as good.
            if let response = try? await self.invoke(binding, "get") {
                #expect(response.data.isEmpty, "get after delete still returned \(Conformance.show(response.data))")
            }
        }
    }

    func checkUnsupported(_ binding: any OutputBinding) async {
        var refused = [self.configuration.unsupportedOperation]
        refused += Self.standardOperations.filter { !self.supports(binding, $0) }
        for operation in refused {
            do {
                let response = try await self.invoke(binding, operation, self.configuration.sampleData)
                Issue.record("operation \(operation) is not declared but was accepted (answered \(Conformance.show(response.data)))")
            } catch {
                // Refused, as it must be.
            }
        }
    }
}
