#!/usr/bin/env bash
# The tests of the tools beyond one machine (Tools/test_distributed.py: Spark local-cluster equality, executor kill,
# Milvus Lite top-1 against faceembed search), from the repository root after `swift build -c release`:
#     bash Tools/test_distributed.sh [test_distributed.py options]
# Needs Java 17+, the PyPI packages of Tools/requirements-spark.txt (installed into .venv-spark/ by
# Tools/spark_env.sh), ../shared/lfw and the default model. When one is missing it says so and skips (exit 0), or,
# with FACEEMBED_REQUIRE_SHARED=1 (CI), fails (exit 1). Takes a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${FACEEMBED:-.build/release/faceembed}
model=${FACEEMBED_MODEL:-Models/w600k_mbf.feb}
lfw=../shared/lfw/lfw-112x112
missing() {
    if [ "${FACEEMBED_REQUIRE_SHARED:-}" = 1 ]; then
        echo "test_distributed: FAILED: $1 (FACEEMBED_REQUIRE_SHARED=1)" >&2
        exit 1
    fi
    echo "test_distributed: SKIPPED: $1" >&2
    exit 0
}
[ -x "$binary" ] || missing "no $binary (swift build -c release first)"
[ -f "$model" ] || missing "no model $model"
[ -d "$lfw" ] || missing "no aligned LFW at $lfw"
java -version >/dev/null 2>&1 || missing "no java on PATH (apt-get install openjdk-17-jre-headless)"
python=$(bash Tools/spark_env.sh) || missing "could not install Tools/requirements-spark.txt into .venv-spark"
exec timeout 1500 "$python" Tools/test_distributed.py --faceembed "$binary" --model "$model" --lfw "$lfw" "$@"
