#!/usr/bin/env bash
# Proves FaceEmbed works as a versioned SwiftPM dependency, under each choice of its package traits.
#
# A local clone of this repository is tagged with the version in Sources/FaceEmbed/Support/Version.swift, and four
# throwaway packages depend on it by that tag (`from:`): with the default traits, with `traits: ["FMA"]`, with
# `traits: ["AVX512"]` and with `traits: []`. The first converts the committed tiny MobileFaceNet (FaceEmbedImport,
# whose code no trait changes); each embeds two images with it (FaceEmbed), checks the result against MXNet's
# (expected.json) and times it. Which kernels a build
# selected is read from its machine code: AVX-512 kernels use zmm registers, FMA and AVX-512 ones fused
# multiply-adds (vfmadd), the portable ones neither; the default must equal the build machine's best trait, as
# Package.swift promises. SwiftPM refuses unsafeFlags in a versioned dependency unless a trait guards them, so this
# also guards Package.swift.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/.*static let string = "\(.*\)".*/\1/p' "$root/Sources/FaceEmbed/Support/Version.swift")
[ -n "$version" ] || { echo "no version in Sources/FaceEmbed/Support/Version.swift" >&2; exit 1; }
fixtures="$root/Tests/FaceEmbedTests/Fixtures/tiny-mobilefacenet"
objdump=$(dirname "$(readlink -f "$(command -v swift)")")/llvm-objdump
command -v "$objdump" >/dev/null || objdump=objdump
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone -q "$root" "$tmp/FaceEmbed"     # the committed HEAD
git -C "$tmp/FaceEmbed" tag -f "$version" >/dev/null

# The trait the build machine's best, as Package.swift decides it.
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { for f in "$@"; do [[ " $flags " == *" $f "* ]] || return 1; done; }
host=portable
has avx2 fma && host=FMA
has avx512f avx512bw avx512dq avx512vl avx512_vnni fma && host=AVX512
[ "$(uname -m)" = x86_64 ] || host=portable

cat > "$tmp/convert.swift" <<'SWIFT'
import FaceEmbedImport

let tiny = CommandLine.arguments[1]
try ModelConverter.convertMXNet(
    symbol: tiny + "/model-symbol.json", params: tiny + "/model-0000.ndarray", to: "tiny.feb")
SWIFT
cat > "$tmp/main.swift" <<'SWIFT'
import Foundation
import FaceEmbed

let fixtures = CommandLine.arguments[1], out = CommandLine.arguments[2]
let model = try FaceModel(contentsOf: out)
let a = try model.embedding(for: ImageDecoder.load(path: fixtures + "/input0.ppm"))
let b = try model.embedding(for: ImageDecoder.load(path: fixtures + "/input1.ppm"))
let json = try Data(contentsOf: URL(fileURLWithPath: fixtures + "/expected.json"))
let fc1 = ((try JSONSerialization.jsonObject(with: json) as! [String: Any])["fc1"] as! [[Double]])[0]
let error = zip(a.values, fc1).map { abs(Double($0) - $1) }.max()!
let start = ContinuousClock.now
for _ in 0..<200 { _ = try model.embedding(for: ImageDecoder.load(path: fixtures + "/input0.ppm")) }
let ms = (ContinuousClock.now - start) / .milliseconds(1) / 200
print("FaceEmbed \(FaceEmbedVersion.string), \(model.name) \(a.values.count)-d: max |fc1 - MXNet| = \(error),",
      "cosine(a, b) = \(a.cosineSimilarity(to: b)), \(String(format: "%.3f", ms)) ms/image")
guard error < 1e-4 else { print("does not match MXNet"); exit(1) }
SWIFT

# consumer NAME TRAITS-ARGUMENT EXPECTED-KERNELS [convert]
consumer() {
    local name=$1 traits=$2 expect=$3 dir="$tmp/$1" import=""
    mkdir -p "$dir/Sources/Consumer"
    cp "$tmp/main.swift" "$dir/Sources/Consumer/main.swift"
    if [ "${4:-}" = convert ]; then
        mkdir -p "$dir/Sources/Convert"
        cp "$tmp/convert.swift" "$dir/Sources/Convert/main.swift"
        import='
        .executableTarget(name: "Convert", dependencies: [.product(name: "FaceEmbedImport", package: "FaceEmbed")]),'
    fi
    cat > "$dir/Package.swift" <<SWIFT
// swift-tools-version:6.2
import PackageDescription
let package = Package(
    name: "Consumer",
    platforms: [.macOS(.v15), .iOS(.v18)],
    dependencies: [.package(url: "file://$tmp/FaceEmbed", from: "$version"$traits)],
    targets: [
        .executableTarget(name: "Consumer", dependencies: [.product(name: "FaceEmbed", package: "FaceEmbed")]),$import
    ]
)
SWIFT
    local start=$SECONDS
    swift build -c release --package-path "$dir" 2>&1 | tail -1
    grep -q "\"version\" : \"$version\"" "$dir/Package.resolved" ||
        { echo "$name: FaceEmbed $version not resolved by tag" >&2; exit 1; }
    [ -z "$import" ] || (cd "$tmp" && "$dir/.build/release/Convert" "$fixtures")
    local bin="$dir/.build/release/Consumer" zmm fma kernels
    zmm=$("$objdump" -d --no-show-raw-insn "$bin" | grep -c zmm || true)
    fma=$("$objdump" -d --no-show-raw-insn "$bin" | grep -cE 'vfn?m(add|sub)' || true)
    kernels=portable
    [ "$fma" -gt 0 ] && kernels=FMA
    [ "$zmm" -gt 0 ] && kernels=AVX512
    echo "$name: FaceEmbed $version by tag, built in $((SECONDS - start)) s;" \
        "machine code: $zmm zmm, $fma fused multiply-adds -> $kernels kernels"
    [ "$kernels" = "$expect" ] || { echo "$name: expected $expect kernels, found $kernels" >&2; exit 1; }
    if { [ "$expect" = AVX512 ] && [ "$host" != AVX512 ]; } || { [ "$expect" = FMA ] && [ "$host" = portable ]; }; then
        echo "$name: this machine cannot run $expect code; not run"
    else
        echo -n "$name: " && "$bin" "$fixtures" "$tmp/tiny.feb"
    fi
}

echo "this machine's best trait: $host"
consumer default-traits "" "$host" convert
consumer FMA ', traits: ["FMA"]' FMA
consumer AVX512 ', traits: ["AVX512"]' AVX512
consumer no-traits ', traits: []' portable
