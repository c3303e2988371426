// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for Sextant (see README.md). Build only with the sanitizer flags, as run.sh does:
//   swift build -c debug --scratch-path .build/fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
// Each executable is a one-line LLVMFuzzerTestOneInput over a body in SextantTestSupport
// (FuzzTargets), which `swift test` in the main package also replays over Corpus/ and Regressions/.
let targets = ["FuzzFilterParser", "FuzzFileReaders", "FuzzRecordDecoders", "FuzzOperations"]

let package = Package(
    name: "SextantFuzz",
    dependencies: [
        .package(name: "Sextant", path: ".."),
    ],
    targets: [.target(name: "CFuzzDriver")] + targets.map { name in
        .executableTarget(
            name: name,
            dependencies: ["CFuzzDriver", .product(name: "SextantTestSupport", package: "Sextant")],
            path: "Sources/\(name)"
        )
    },
    swiftLanguageModes: [.v6]
)
