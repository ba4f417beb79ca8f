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
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
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
        // The audit log's algorithms: entry encoding, Merkle tree and proofs, signed checkpoints, sealing, export checks. Pure.
        .target(
            name: "MusterAudit",
            dependencies: ["MusterCore", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // Durable storage: the Store protocol, SQLite (GRDB) and PostgreSQL (PostgresNIO), migrations.
        .target(
            name: "MusterStore",
            dependencies: [
                "MusterCore", "MusterAudit",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Notifications: the pipeline (render, de-duplicate, rate-limit, circuit breaker, send), the Channel
        // protocol and one folder per channel (webhook, email over SMTP, Twilio SMS and voice, Slack, Teams).
        .target(
            name: "MusterNotify",
            dependencies: [
                "MusterCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The message templates, one per form (subject, text, html, sms, speech).
            resources: [.copy("Templates")]
        ),
        // Intake, group commit, and the timer and delivery workers; wires the store and the channels.
        .target(
            name: "MusterRuntime",
            dependencies: [
                "MusterCore", "MusterPlaybooks", "MusterStore", "MusterNotify", "MusterAudit",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The service: JSON API, integrations, access control, metrics and health, on Hummingbird.
        .target(
            name: "MusterHTTP",
            dependencies: [
                "MusterCore", "MusterPlaybooks", "MusterRuntime", "MusterNotify", "MusterAudit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            // The OpenAPI 3.1 document of the API, served at /api/v1/openapi.json; the web pages' templates and style sheet.
            resources: [.copy("openapi.json"), .copy("Web/Templates"), .copy("Web/Assets")]
        ),
        .executableTarget(
            name: "muster",
            dependencies: [
                "MusterHTTP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                "MusterCore",
                "MusterPlaybooks",
                "MusterStore",
                "MusterRuntime",
                "MusterNotify",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Configuration", package: "swift-configuration"),
            ]
        ),
        // Release-mode benchmarks: `swift run -c release muster-bench`.
        .executableTarget(
            name: "muster-bench",
            dependencies: [
                "MusterCore", "MusterPlaybooks", "MusterStore", "MusterRuntime", "MusterNotify", "MusterAudit", "MusterHTTP",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/MusterBench"
        ),
        // What several test targets share: the stores under test and fresh databases for them, the
        // shipped playbooks, the test instants.
        .target(
            name: "MusterTestSupport",
            dependencies: [
                "MusterCore", "MusterPlaybooks", "MusterStore", "MusterAudit",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/MusterTestSupport"
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
            name: "MusterAuditTests",
            dependencies: ["MusterCore", "MusterAudit"]
        ),
        .testTarget(
            name: "MusterStoreTests",
            dependencies: [
                "MusterTestSupport",
                "MusterCore", "MusterPlaybooks", "MusterStore", "MusterAudit", "MusterRuntime",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .testTarget(
            name: "MusterRuntimeTests",
            dependencies: [
                "MusterTestSupport",
                "MusterCore", "MusterPlaybooks", "MusterStore", "MusterRuntime", "MusterNotify", "MusterAudit", "muster",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .testTarget(
            name: "MusterPlaybooksTests",
            dependencies: ["MusterCore", "MusterPlaybooks"]
        ),
        // The service tested as its clients use it: live HTTP on 127.0.0.1, both stores.
        .testTarget(
            name: "MusterHTTPTests",
            dependencies: [
                "MusterTestSupport",
                "MusterCore", "MusterPlaybooks", "MusterStore", "MusterRuntime", "MusterNotify", "MusterHTTP", "MusterAudit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        // The channels against real servers on 127.0.0.1 (SMTP, webhook, Slack, Teams, Twilio-compatible).
        .testTarget(
            name: "MusterNotifyTests",
            dependencies: [
                "MusterTestSupport",
                "MusterCore", "MusterNotify", "MusterRuntime", "MusterStore", "MusterPlaybooks", "MusterAudit",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            exclude: ["Support/smtp_sink.py"]
        ),
        // Runs the built `muster` executable as a user would.
        .testTarget(
            name: "MusterCLITests",
            dependencies: ["muster"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
