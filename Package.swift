// swift-tools-version:6.0
// FaceEmbed: face-recognition embeddings (MobileFaceNet, ResNet-IR ArcFace) in pure Swift.
// No dependencies and no unsafe build flags, so the package can be used as a versioned dependency (the one
// experimental feature, BuiltinModule, only gives Kernels/Prefetch.swift its prefetch instruction).
// Build for speed with: swift build -c release -Xswiftc -target-cpu -Xswiftc native
import PackageDescription

let package = Package(
    name: "FaceEmbed",
    platforms: [.macOS(.v15), .iOS(.v18)],
    products: [
        .library(name: "FaceEmbed", targets: ["FaceEmbed"]),
        .executable(name: "faceembed", targets: ["faceembed"]),
    ],
    targets: [
        .target(name: "FaceEmbed", swiftSettings: [.enableExperimentalFeature("BuiltinModule")],
                linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux]))]),
        .executableTarget(name: "faceembed", dependencies: ["FaceEmbed"]),
        .testTarget(name: "FaceEmbedTests", dependencies: ["FaceEmbed"], exclude: ["Fixtures"]),
    ]
)
