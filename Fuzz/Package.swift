// swift-tools-version:6.1
// The libFuzzer driver for Mecha's fuzz targets (MechaFuzzTargets in the main package). Built by
// scripts/fuzz with AddressSanitizer and libFuzzer; not part of the main build.
import PackageDescription

let package = Package(
    name: "mecha-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "mecha", path: "..")],
    targets: [
        .target(name: "CFuzzerDriver", path: "Sources/CFuzzerDriver"),
        .executableTarget(
            name: "mecha-fuzz",
            dependencies: ["CFuzzerDriver", .product(name: "MechaFuzzTargets", package: "mecha")],
            path: "Sources/mecha-fuzz",
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
