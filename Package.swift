// swift-tools-version:6.1
// Mecha: a multi-runtime sidecar that speaks the Dapr API.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
]

let package = Package(
    name: "mecha",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mecha", targets: ["mecha"]),
        .library(name: "MechaCore", targets: ["MechaCore"]),
        .library(name: "MechaTesting", targets: ["MechaTesting"]),
        // The fuzz targets' entry points, for the fuzzing package in Fuzz/ (scripts/fuzz).
        .library(name: "MechaFuzzTargets", targets: ["MechaFuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // One function of bytes per fuzz target (Fuzz/, scripts/fuzz); the seed corpora in
        // Fuzz/corpus are replayed through them by MechaHTTPTests' corpus test on every run.
        .target(
            name: "MechaFuzzTargets",
            dependencies: ["MechaCore", "MechaConfig", "MechaCrypto", "MechaHTTP", "RESPWire", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        // Protocols and Sendable values only: resource specs, building-block contracts, errors.
        .target(
            name: "MechaCore",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // YAML resources → validated specs.
        .target(
            name: "MechaConfig",
            dependencies: ["MechaCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        // Timeout, retry, circuit breaker, rate limit, traffic routes: pure policies and state machines, and the outbound seam.
        .target(name: "MechaResiliency", dependencies: ["MechaCore", .product(name: "NIOCore", package: "swift-nio")], swiftSettings: swiftSettings),
        // Metrics with Dapr's names on swift-metrics and swift-prometheus (one registry per sidecar,
        // a series budget per metric); process figures; the recorders the seams call.
        .target(
            name: "MechaTelemetry",
            dependencies: [
                "MechaCore", "MechaResiliency",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        // A pooled, streaming HTTP/1.1 client on SwiftNIO (app channel, sidecar-to-sidecar, bindings.http).
        .target(
            name: "HTTP1Client",
            dependencies: nio + [
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // Component lifecycle, registry, live component store.
        .target(
            name: "MechaRuntime",
            dependencies: [
                "MechaCore", "MechaConfig", "MechaResiliency",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Dapr's encryption scheme v1 and key handling on swift-crypto: pure values, no IO.
        .target(
            name: "MechaCrypto",
            dependencies: [
                "MechaCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // Workload identity: SPIFFE ids, the certificate authority that issues X.509 SVIDs from
        // CSRs, trust bundles and peer verification (swift-certificates; no hand-written X.509).
        // `mecha control-plane`: the certificate authority endpoint and its store; the sidecar's
        // issuer that asks it for SVIDs.
        .target(
            name: "MechaControlPlane",
            dependencies: [
                "MechaCore", "MechaIdentity", "MechaEmbedded", "MechaConfig", "MechaPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MechaIdentity",
            dependencies: [
                "MechaCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // Each building block written once; both surfaces adapt to it.
        .target(
            name: "MechaAPI",
            dependencies: [
                "MechaCore", "MechaResiliency", "MechaRuntime", "MechaCrypto", "MechaTelemetry",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Hummingbird adapter for /v1.0/* and the HTTP app channel.
        .target(
            name: "MechaHTTP",
            dependencies: [
                "MechaAPI", "MechaCore", "MechaResiliency", "MechaTelemetry", "HTTP1Client", "MechaIdentity",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        // grpc-swift-2 adapter for dapr.proto.runtime.v1 and the gRPC app channel. Generated/ is
        // produced by scripts/generate-protos from Protos/ and committed.
        .target(
            name: "MechaGRPC",
            dependencies: [
                "MechaAPI", "MechaCore", "MechaRuntime", "MechaMesh", "MechaResiliency", "MechaTelemetry", "MechaIdentity",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        // Sidecar-to-sidecar transport and name resolution on the outbound path.
        .target(
            name: "MechaMesh",
            dependencies: ["MechaAPI", "MechaCore", "MechaResiliency", "MechaTelemetry", "HTTP1Client", "MechaIdentity"] + nio,
            swiftSettings: swiftSettings
        ),
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // Embedded components: in-memory, SQLite, local secrets, localstorage, cron, http bindings.
        .target(
            name: "MechaEmbedded",
            dependencies: [
                "MechaCore", "CSQLite", "HTTP1Client", "MechaCrypto",
                .product(name: "Logging", package: "swift-log"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        // PostgreSQL components on postgres-nio.
        .target(
            name: "MechaPostgres",
            dependencies: ["MechaCore", .product(name: "PostgresNIO", package: "postgres-nio")],
            swiftSettings: swiftSettings
        ),
        // Every built-in component family, registered in one place.
        .target(
            name: "MechaComponents",
            dependencies: ["MechaCore", "MechaRuntime", "MechaEmbedded", "MechaPostgres", "MechaRedis"],
            swiftSettings: swiftSettings
        ),
        // The assembled sidecar: options → services.
        .target(
            name: "MechaSidecar",
            dependencies: [
                "MechaCore", "MechaConfig", "MechaRuntime", "MechaAPI", "MechaHTTP", "MechaGRPC", "MechaMesh", "MechaResiliency", "MechaTelemetry", "HTTP1Client",
                "MechaIdentity", "MechaControlPlane",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        // Redis wire protocol: RESP2/RESP3 values, encoder, decoder, connection state machine (no IO).
        .target(
            name: "RESPWire",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        // Redis client: SwiftNIO shell around RESPWire, connection, pool, pub/sub, TLS.
        .target(
            name: "RESPClient",
            dependencies: [
                "RESPWire",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        // Redis components on our RESP client: state.redis, pubsub.redis.
        .target(
            name: "MechaRedis",
            dependencies: [
                "MechaCore", "RESPClient", "RESPWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Shipped test support: conformance suites, real-server harness, binary runner.
        .target(
            name: "MechaTesting",
            dependencies: ["MechaCore", "HTTP1Client", "RESPClient", .product(name: "NIOSSL", package: "swift-nio-ssl")] + nio,
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "mecha",
            dependencies: [
                "MechaSidecar", "MechaComponents", "MechaCore", "MechaConfig", "MechaRuntime", "HTTP1Client", "MechaIdentity", "MechaControlPlane",
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        // A small configurable HTTP app used by black-box tests.
        .executableTarget(
            name: "mecha-testapp",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Tests/Apps/mecha-testapp",
            swiftSettings: swiftSettings
        ),

        .testTarget(name: "MechaCoreTests", dependencies: ["MechaCore"], swiftSettings: swiftSettings),
        .testTarget(name: "MechaConfigTests", dependencies: ["MechaConfig", "MechaCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "MechaCryptoTests",
            dependencies: ["MechaCrypto", "MechaCore", .product(name: "Crypto", package: "swift-crypto"), .product(name: "_CryptoExtras", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "MechaTelemetryTests", dependencies: ["MechaTelemetry", "MechaCore", "MechaResiliency", .product(name: "CoreMetrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus")], swiftSettings: swiftSettings),
        .testTarget(
            name: "MechaIdentityTests",
            dependencies: [
                "MechaIdentity", .product(name: "Crypto", package: "swift-crypto"), .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MechaControlPlaneTests",
            dependencies: ["MechaControlPlane", "MechaIdentity", "MechaTesting", "MechaCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "MechaResiliencyTests", dependencies: ["MechaResiliency", "MechaCore"], swiftSettings: swiftSettings),
        .testTarget(name: "MechaMeshTests", dependencies: ["MechaMesh", "MechaResiliency", "MechaCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "RESPWireTests",
            dependencies: ["RESPWire", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOTestUtils", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RESPClientTests",
            dependencies: ["RESPClient", "RESPWire", "MechaTesting", .product(name: "Logging", package: "swift-log")] + nio,
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MechaRedisTests",
            dependencies: ["MechaRedis", "MechaCore", "MechaTesting", "RESPClient", "RESPWire", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HTTP1ClientTests",
            dependencies: [
                "HTTP1Client", "MechaTesting",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MechaEmbeddedTests",
            dependencies: [
                "MechaEmbedded", "MechaCore", "MechaTesting", "MechaCrypto",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MechaPostgresTests",
            dependencies: ["MechaPostgres", "MechaCore", "MechaTesting", .product(name: "PostgresNIO", package: "postgres-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MechaHTTPTests",
            dependencies: [
                "MechaHTTP", "MechaSidecar", "MechaComponents", "MechaEmbedded", "MechaAPI", "MechaCore", "MechaTesting", "MechaFuzzTargets", "MechaResiliency",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MechaRuntimeTests",
            dependencies: ["MechaRuntime", "MechaComponents", "MechaCore", "MechaConfig", "MechaResiliency"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MechaGRPCTests",
            dependencies: [
                "MechaGRPC", "MechaAPI", "MechaCore", "MechaSidecar", "MechaComponents", "MechaTesting",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BlackBoxTests",
            dependencies: ["MechaTesting", "MechaCore", "HTTP1Client"] + nio,
            path: "Tests/BlackBox",
            swiftSettings: swiftSettings
        ),
    ]
)
