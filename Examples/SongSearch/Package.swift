// swift-tools-version:6.1
import PackageDescription

// An application using Sextant the way a real one does: Codable records, async calls,
// progress, filtered queries, cancellation. Depends on the Sextant package by path.
let package = Package(
    name: "SongSearch",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "Sextant", path: "../.."),
    ],
    targets: [
        .executableTarget(name: "SongSearch", dependencies: [.product(name: "Sextant", package: "Sextant")]),
    ],
    swiftLanguageModes: [.v6]
)
