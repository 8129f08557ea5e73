#!/usr/bin/env bash
# Proves FaceEmbed works as a versioned SwiftPM dependency: a throwaway package depends on a local git clone of
# this repository by tag (`from: "0.2.2"`), converts the committed tiny MobileFaceNet and embeds an image with it.
# SwiftPM refuses packages with unsafeFlags in this position, so this also guards Package.swift.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone -q "$root" "$tmp/FaceEmbed"
git -C "$tmp/FaceEmbed" tag -f 0.2.2 >/dev/null
mkdir -p "$tmp/Consumer/Sources/Consumer"
cat > "$tmp/Consumer/Package.swift" <<SWIFT
// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "Consumer",
    platforms: [.macOS(.v15), .iOS(.v18)],
    dependencies: [.package(url: "file://$tmp/FaceEmbed", from: "0.2.2")],
    targets: [.executableTarget(name: "Consumer", dependencies: [.product(name: "FaceEmbed", package: "FaceEmbed")])]
)
SWIFT
cat > "$tmp/Consumer/Sources/Consumer/main.swift" <<'SWIFT'
import FaceEmbed
let fixtures = CommandLine.arguments[1], out = CommandLine.arguments[2]
try ModelConverter.convertMXNet(symbol: fixtures + "/model-symbol.json", params: fixtures + "/model-0000.ndarray", to: out)
let model = try FaceModel(contentsOf: out)
let a = try model.embedding(for: try ImageDecoder.load(path: fixtures + "/input0.ppm"))
let b = try model.embedding(for: try ImageDecoder.load(path: fixtures + "/input1.ppm"))
print("consumer: \(model.name), \(a.values.count)-d, fc1[0] = \(a.values[0]), cosine(a, b) = \(a.cosineSimilarity(to: b))")
SWIFT
swift build -c release --package-path "$tmp/Consumer" 2>&1 | tail -1
"$tmp/Consumer/.build/release/Consumer" "$root/Tests/FaceEmbedTests/Fixtures/tiny-mobilefacenet" "$tmp/tiny.feb"
grep -q '"version" : "0.2.2"' "$tmp/Consumer/Package.resolved" && echo "consumer: resolved FaceEmbed 0.2.2 by tag"
