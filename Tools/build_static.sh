#!/usr/bin/env bash
# One file to ship: builds `faceembed` with the Swift standard library, Foundation and Dispatch linked in
# (`--static-swift-stdlib`), then proves it needs nothing from the toolchain: `ldd` lists no Swift library, and a
# copy converts the committed tiny model and compares two faces under `env -i` in a mount namespace where /opt/swift
# (the toolchain) is an empty folder.
#   Tools/build_static.sh [--traits FMA | --disable-default-traits | ...]    extra `swift build` options
# Pin the kernels for the machines it will run on: the default traits take the build machine's best (AVX512 here).
# Output: .build-static/release/faceembed (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --static-swift-stdlib --product faceembed --scratch-path .build-static "$@" 2>&1 | tail -1
bin=.build-static/release/faceembed
echo "$bin: $(du -h "$bin" | cut -f1), needs:"
ldd "$bin" | sed 's/^/    /'
if ldd "$bin" | grep -qiE 'swift|Foundation|dispatch|BlocksRuntime'; then
    echo "static build still links a Swift library" >&2
    exit 1
fi

toolchain=$(cd "$(dirname "$(readlink -f "$(command -v swift)")")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fixtures=Tests/FaceEmbedTests/Fixtures/tiny-mobilefacenet
mkdir -p "$tmp/model" "$tmp/empty"
cp "$bin" "$tmp/faceembed"
cp "$fixtures/model-symbol.json" "$tmp/model/"
cp "$fixtures/model-0000.ndarray" "$tmp/model/model-0000.params"
cp "$fixtures/input0.ppm" "$fixtures/input1.ppm" "$tmp/"
cat > "$tmp/run.sh" <<'SH'
set -e
cd "$1"
./faceembed --version
./faceembed convert model -o tiny.feb
./faceembed compare input0.ppm input1.ppm --model tiny.feb
SH
cat > "$tmp/hidden.sh" <<'SH'
set -e
mount --bind "$2" "$1"
echo "$1 now holds $(ls -A "$1" | wc -l) files; environment emptied"
exec env -i PATH=/usr/bin:/bin sh "$3/run.sh" "$3"
SH
# A private mount namespace (as root, or as a user with user namespaces enabled) hides the toolchain from this
# process only.
for ns in "unshare -m" "unshare -rm"; do
    if $ns true 2>/dev/null; then
        $ns sh "$tmp/hidden.sh" "$toolchain" "$tmp/empty" "$tmp" | sed 's/^/    /'
        exit "${PIPESTATUS[0]}"
    fi
done
echo "no mount namespace here: running under env -i with the toolchain still on disk" >&2
env -i PATH=/usr/bin:/bin sh "$tmp/run.sh" "$tmp" | sed 's/^/    /'
