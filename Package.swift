// swift-tools-version:6.1
// Muster: crisis-intervention alerting and escalation for schools and districts.
import PackageDescription

let package = Package(
    name: "Muster",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "muster", targets: ["muster"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
    ],
    targets: [
        // The pure core: domain, playbook model, schedules, escalation engine, simulator.
        .target(name: "MusterCore"),
        // Playbook and directory YAML: strict loading, validation and diagnostics.
        .target(
            name: "MusterPlaybooks",
            dependencies: [
                "MusterCore",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "muster",
            dependencies: [
                "MusterCore",
                "MusterPlaybooks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Release-mode benchmarks: `swift run -c release muster-bench`.
        .executableTarget(
            name: "muster-bench",
            dependencies: ["MusterCore", "MusterPlaybooks"],
            path: "Benchmarks/MusterBench"
        ),
        .testTarget(
            name: "MusterCoreTests",
            dependencies: [
                "MusterCore",
                "MusterPlaybooks",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "MusterPlaybooksTests",
            dependencies: ["MusterCore", "MusterPlaybooks"]
        ),
        // Runs the built `muster` executable as a user would.
        .testTarget(
            name: "MusterCLITests",
            dependencies: ["muster"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
