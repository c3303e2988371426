// swift-tools-version:6.1
import PackageDescription

// Layers, bottom to top: CLMDB/CLZ4 (system libraries); SextantCore (errors, schema, values,
// JSON) and SextantKernels (pure compute); SextantStorage (the only code that calls mdb_*),
// SextantFilter (predicates) and SextantFormats (file formats); Sextant (the engine);
// SextantDatasets (deterministic generators behind `sextant generate` and `sextant stress`);
// sextant (the CLI). SextantTestSupport holds the reference model and fuzz bodies for tests.
let package = Package(
    name: "Sextant",
    products: [
        .library(name: "Sextant", targets: ["Sextant"]),
        .executable(name: "sextant", targets: ["sextant"]),
        // The reference model, fuzz bodies and (re-exported) dataset generators, for
        // benchmarks and downstream tests; the CLI does not link it.
        .library(name: "SextantTestSupport", targets: ["SextantTestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Documentation only: adds `swift package generate-documentation` (no code is linked).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLMDB",
            path: "Sources/CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        .systemLibrary(
            name: "CLZ4",
            path: "Sources/CLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]
        ),
        // Small C kernels needing x86 intrinsics Swift cannot express (vpshufb), each behind a
        // runtime CPU check with a portable fallback.
        .target(name: "CSextantSIMD"),
        .target(name: "SextantKernels", dependencies: ["CSextantSIMD"]),
        .target(name: "SextantStorage", dependencies: ["CLMDB", "CLZ4", "SextantCore"]),
        .target(name: "SextantCore"),
        .target(name: "SextantFilter", dependencies: ["SextantCore"]),
        .target(name: "SextantFormats", dependencies: ["SextantCore"]),
        .target(
            name: "Sextant",
            dependencies: ["CSextantSIMD", "SextantKernels", "SextantStorage", "SextantCore", "SextantFilter", "SextantFormats"]
        ),
        .executableTarget(
            name: "sextant",
            dependencies: ["Sextant", "SextantFormats", "SextantDatasets", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(name: "SextantDatasets", dependencies: ["Sextant", "SextantKernels"]),
        .target(name: "SextantTestSupport", dependencies: ["Sextant", "SextantFormats", "SextantDatasets"]),
        .testTarget(name: "SextantKernelsTests", dependencies: ["SextantKernels", "SextantTestSupport"]),
        .testTarget(name: "SextantStorageTests", dependencies: ["SextantStorage", "CLMDB", "SextantTestSupport"]),
        .testTarget(name: "SextantFilterTests", dependencies: ["SextantFilter", "SextantCore", "SextantTestSupport"]),
        .testTarget(name: "SextantFormatsTests", dependencies: ["SextantFormats", "SextantCore", "SextantTestSupport"]),
        .testTarget(
            name: "SextantTests",
            dependencies: ["Sextant", "SextantTestSupport", "SextantStorage"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
