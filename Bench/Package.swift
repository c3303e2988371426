// swift-tools-version:6.1
import PackageDescription

// Sextant's benchmarks, in their own package so that the library never depends on
// package-benchmark. Run from this directory: `swift package benchmark` (see README.md).
// The plugin only finds benchmark targets in a folder named `Benchmarks`.

let benchmarkTarget = { (name: String, extra: [Target.Dependency]) -> Target in
    .executableTarget(
        name: name,
        dependencies: [
            "BenchSupport",
            .product(name: "Sextant", package: "Sextant"),
            .product(name: "Benchmark", package: "benchmark"),
        ] + extra,
        path: "Benchmarks/\(name)",
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
}

let package = Package(
    name: "SextantBench",
    platforms: [.macOS(.v13)],
    dependencies: [
        // The engine, by path: named explicitly so the manifest does not depend on the name
        // of the checkout's directory.
        .package(name: "Sextant", path: ".."),
        // ordo-one/package-benchmark, under its current repository name (the plugin warns about
        // the legacy `package-benchmark` identity). Only the MallocInterposer trait: the default
        // RuntimeInterposer trait pulls in swift-runtime-interposer, which is not available here.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        benchmarkTarget("ImportBenchmarks", [.product(name: "SextantTestSupport", package: "Sextant")]),
        benchmarkTarget("SearchBenchmarks", []),
        benchmarkTarget("KernelBenchmarks", []),
        benchmarkTarget("FilterBenchmarks", [.product(name: "SextantTestSupport", package: "Sextant")]),
        // Product-quantization figures on pypi-50k (training time, recall, scan rates).
        .executableTarget(name: "PQMeasure", dependencies: [.product(name: "Sextant", package: "Sextant")]),
        // HNSW build/recall/QPS measurements against hnswlib (peers/hnswlib_ref.py); a plain
        // executable so the timed loop is exactly one query at a time.
        .executableTarget(
            name: "HNSWMeasure",
            dependencies: [.product(name: "Sextant", package: "Sextant")]
        ),
        // Same-run kernel ratios (streaming bound, numpy tile peer, top-k); a plain executable
        // so both sides of each ratio run interleaved in one process. See README.md.
        .executableTarget(
            name: "KernelMeasure",
            dependencies: [.product(name: "Sextant", package: "Sextant")],
            path: "Sources/KernelMeasure"
        ),
        .target(
            name: "BenchSupport",
            dependencies: [
                .product(name: "SextantTestSupport", package: "Sextant"),
                .product(name: "Sextant", package: "Sextant"),
                .product(name: "Benchmark", package: "benchmark"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
