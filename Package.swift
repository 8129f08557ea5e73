// swift-tools-version:6.2
// FaceEmbed: face-recognition embeddings (MobileFaceNet, ResNet-IR ArcFace) in pure Swift, no dependencies.
//
// Modules, one way only (README "Layout"):
//   FaceEmbed            the run time an app ships: .feb files, plans, kernels, embeddings, images, alignment
//   FaceEmbedImport      MXNet and ONNX importers and the .feb writer (FaceEmbed's FORMAT.md is the contract)
//   FaceEmbedEvaluation  the LFW protocol (tools, not the product)
//   FaceEmbedTestSupport plain reference kernels on NCHW tensors, for the tests
//   faceembed            the command line, a thin layer over the libraries
//
// Kernel speed comes from package traits (SE-0450), which set the CPU target and the kernel condition together:
//   FMA     -target-cpu haswell     + FACEEMBED_FMA     AVX2 and fused multiply-add (x86-64 since 2013)
//   AVX512  -target-cpu cascadelake + FACEEMBED_AVX512  AVX-512 F/BW/DQ/VL and VNNI, 16-lane kernels
// By default an x86-64 Linux build takes the best trait its build machine supports (like a C compiler's
// -march=native); pin one for a binary that runs elsewhere (`swift build --traits FMA`, or `traits: ["FMA"]` on a
// dependency), or `--disable-default-traits` / `traits: []` for the portable kernels. arm64 always has FMA and
// needs no trait. The flags reach only Linux, so an Apple or cross build never sees an x86 flag.
import PackageDescription

#if os(Linux) && arch(x86_64)
import Foundation

/// The best kernel trait the build machine's CPU runs, from /proc/cpuinfo.
let hostTraits: Set<String> = {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
        let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
    else { return [] }
    let flags = Set(line.split(separator: " ").map(String.init))
    if ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni", "fma"].allSatisfy(flags.contains) {
        return ["AVX512"]
    }
    return ["avx2", "fma"].allSatisfy(flags.contains) ? ["FMA"] : []
}()
#else
let hostTraits: Set<String> = []
#endif

let linux: [Platform] = [.linux]

let package = Package(
    name: "FaceEmbed",
    platforms: [.macOS(.v15), .iOS(.v18)],
    products: [
        .library(name: "FaceEmbed", targets: ["FaceEmbed"]),
        .library(name: "FaceEmbedImport", targets: ["FaceEmbedImport"]),
        .executable(name: "faceembed", targets: ["faceembed"]),
    ],
    traits: [
        .trait(name: "FMA", description: "x86-64 Linux: AVX2 + FMA kernels (-target-cpu haswell)."),
        .trait(name: "AVX512", description: "x86-64 Linux: AVX-512 + VNNI kernels (-target-cpu cascadelake)."),
        .default(enabledTraits: hostTraits),
    ],
    targets: [
        .target(
            name: "FaceEmbed",
            swiftSettings: [
                .enableExperimentalFeature("BuiltinModule"),
                .define("FACEEMBED_FMA", .when(platforms: linux, traits: ["FMA"])),
                .unsafeFlags(["-target-cpu", "haswell"], .when(platforms: linux, traits: ["FMA"])),
                // Listed after FMA's, so that with both traits the later -target-cpu (the larger one) wins.
                .define("FACEEMBED_AVX512", .when(platforms: linux, traits: ["AVX512"])),
                .unsafeFlags(["-target-cpu", "cascadelake"], .when(platforms: linux, traits: ["AVX512"])),
            ],
            linkerSettings: [.linkedLibrary("m", .when(platforms: linux))]),
        .target(name: "FaceEmbedImport", dependencies: ["FaceEmbed"]),
        .target(name: "FaceEmbedEvaluation", dependencies: ["FaceEmbed"]),
        .target(name: "FaceEmbedTestSupport"),
        .executableTarget(name: "faceembed", dependencies: ["FaceEmbed", "FaceEmbedImport", "FaceEmbedEvaluation"]),
        .testTarget(
            name: "FaceEmbedTests",
            dependencies: ["FaceEmbed", "FaceEmbedImport", "FaceEmbedEvaluation", "FaceEmbedTestSupport"],
            exclude: ["Fixtures"]),
    ]
)
