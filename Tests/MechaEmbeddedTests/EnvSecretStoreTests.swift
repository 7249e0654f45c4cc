#if canImport(Glibc)
import Glibc
#endif
import MechaCore
import Testing

@testable import MechaEmbedded

@Suite("secretstores.local.env")
struct EnvSecretStoreTests {
    private static let environment = [
        "PLAIN": "value",
        "MYAPP_DB_PASSWORD": "s3cret",
        "MYAPP_TOKEN": "t",
        "APP_API_TOKEN": "app-token",
        "DAPR_API_TOKEN": "dapr-token",
        "dapr_lower": "x",
        "MYAPP_DAPR_HTTP_PORT": "3500",
        "EMPTY": "",
    ]

    @Test func factoryReadsPrefix() async throws {
        let factory = EnvSecretStoreFactory()
        #expect(factory.type == ComponentType(.secretstores, "local.env"))
        let spec = ComponentSpec(
            name: "env",
            type: factory.type,
            metadata: ComponentMetadata(["prefix": "MYAPP_"])
        )
        let component = try await factory.make(
            spec: spec,
            context: ComponentContext(appID: "test", dataDirectory: "/tmp", instanceID: "test")
        )
        #expect((component as? EnvSecretStore)?.prefix == "MYAPP_")

        let bare = try await factory.make(
            spec: ComponentSpec(name: "env", type: factory.type),
            context: ComponentContext(appID: "test", dataDirectory: "/tmp", instanceID: "test")
        )
        #expect((bare as? EnvSecretStore)?.prefix == "")
    }

    @Test func getReturnsTheVariable() async throws {
        let store = EnvSecretStore(environment: Self.environment)
        #expect(try await store.secret(named: "PLAIN", metadata: [:]) == ["PLAIN": "value"])
        #expect(try await store.secret(named: "EMPTY", metadata: [:]) == ["EMPTY": ""])
    }

    @Test func missingVariableIsEmptyNotAnError() async throws {
        let store = EnvSecretStore(environment: Self.environment)
        #expect(try await store.secret(named: "NOT_THERE", metadata: [:]) == ["NOT_THERE": ""])
    }

    @Test func prefixIsPrependedAndCaseSensitive() async throws {
        let store = EnvSecretStore(prefix: "MYAPP_", environment: Self.environment)
        #expect(try await store.secret(named: "DB_PASSWORD", metadata: [:]) == ["DB_PASSWORD": "s3cret"])
        #expect(try await store.secret(named: "PLAIN", metadata: [:]) == ["PLAIN": ""])
        let lower = EnvSecretStore(prefix: "myapp_", environment: Self.environment)
        #expect(try await lower.secret(named: "DB_PASSWORD", metadata: [:]) == ["DB_PASSWORD": ""])
    }

    @Test func forbiddenNamesAreNeverRead() async throws {
        let store = EnvSecretStore(environment: Self.environment)
        for name in ["APP_API_TOKEN", "app_api_token", "DAPR_API_TOKEN", "Dapr_Api_Token", "dapr_lower"] {
            #expect(try await store.secret(named: name, metadata: [:]) == [name: ""])
        }
        #expect(EnvSecretStore.isForbidden("DAPR_"))
        #expect(EnvSecretStore.isForbidden("dapr_anything"))
        #expect(!EnvSecretStore.isForbidden("MY_DAPR_THING"))
        #expect(!EnvSecretStore.isForbidden("APP_API_TOKEN_2"))
    }

    @Test func prefixCannotReachForbiddenVariables() async throws {
        let store = EnvSecretStore(prefix: "DAPR_", environment: Self.environment)
        #expect(try await store.secret(named: "API_TOKEN", metadata: [:]) == ["API_TOKEN": ""])
        #expect(try await store.bulkSecrets(metadata: [:]).isEmpty)
        // A forbidden-looking name under a harmless prefix is refused too.
        let prefixed = EnvSecretStore(prefix: "MYAPP_", environment: Self.environment)
        #expect(try await prefixed.secret(named: "DAPR_HTTP_PORT", metadata: [:]) == ["DAPR_HTTP_PORT": ""])
    }

    @Test func bulkReturnsAllowedVariables() async throws {
        let store = EnvSecretStore(environment: Self.environment)
        let bulk = try await store.bulkSecrets(metadata: [:])
        #expect(bulk["PLAIN"] == ["PLAIN": "value"])
        #expect(bulk["MYAPP_TOKEN"] == ["MYAPP_TOKEN": "t"])
        #expect(bulk["EMPTY"] == ["EMPTY": ""])
        #expect(bulk["APP_API_TOKEN"] == nil)
        #expect(bulk["DAPR_API_TOKEN"] == nil)
        #expect(bulk["dapr_lower"] == nil)
        #expect(bulk.count == 5)
    }

    @Test func bulkFiltersAndStripsThePrefix() async throws {
        let store = EnvSecretStore(prefix: "MYAPP_", environment: Self.environment)
        let bulk = try await store.bulkSecrets(metadata: [:])
        #expect(bulk == ["DB_PASSWORD": ["DB_PASSWORD": "s3cret"], "TOKEN": ["TOKEN": "t"]])
    }

    /// One test for everything that touches the real environment: `setenv` while another thread walks
    /// `environ` is not safe, so these checks must not run in parallel with each other.
    @Test func readsTheProcessEnvironment() async throws {
        let name = "MECHA_ENV_TEST_" + RandomID.uuid().replacing("-", with: "_").uppercased()
        setenv(name, "from-process", 1)
        setenv("DAPR_MECHA_ENV_TEST", "hidden", 1)
        defer {
            unsetenv(name)
            unsetenv("DAPR_MECHA_ENV_TEST")
        }

        let store = EnvSecretStore()
        #expect(try await store.secret(named: name, metadata: [:]) == [name: "from-process"])
        let bulk = try await store.bulkSecrets(metadata: [:])
        #expect(bulk[name] == [name: "from-process"])
        #expect(bulk.keys.allSatisfy { !EnvSecretStore.isForbidden($0) })
        #expect(try await store.secret(named: "DAPR_MECHA_ENV_TEST", metadata: [:]) == ["DAPR_MECHA_ENV_TEST": ""])

        let prefixed = EnvSecretStore(prefix: "MECHA_ENV_TEST_")
        let stripped = String(name.dropFirst("MECHA_ENV_TEST_".count))
        #expect(try await prefixed.secret(named: stripped, metadata: [:]) == [stripped: "from-process"])
        #expect(try await prefixed.bulkSecrets(metadata: [:])[stripped] == [stripped: "from-process"])
    }
}
