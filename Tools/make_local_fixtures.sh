#!/usr/bin/env bash
# Makes the git-ignored fixtures in Fixtures-local/ that tests use when ../shared is present: PPM copies of LFW
# images, Pillow's decodes of real JPEGs, and the seeded-random r34 and full-depth r100 models (261 MB) with
# MXNet's outputs. Needs Python 3.11 (the venv is made by Tools/python_env.sh). Takes about a minute.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${FACEEMBED_SHARED:-$root/../shared}
py=$("$root/Tools/python_env.sh")
export MXNET_SUBGRAPH_BACKEND=NONE
"$py" "$root/Tools/make_fixtures.py" --local --shared "$shared" 2>&1 | grep -v '^\[' || true
test -f "$root/Fixtures-local/r100/expected.json"
"$py" "$root/Tools/make_image_fixtures.py" --local "$root/Fixtures-local" --shared "$shared"
