#!/usr/bin/env bash
# Makes (once) the venv of the Spark and Milvus tools at .venv-spark/ (git-ignored), installs
# Tools/requirements-spark.txt into it (again when that file changes) and prints its python. Separate from .venv/,
# whose MXNet needs numpy < 1.24. Java (17 or newer) is checked, not installed: apt-get install openjdk-17-jre-headless.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-spark"
requirements="$root/Tools/requirements-spark.txt"
py=${PYTHON:-$(command -v python3.11 || command -v python3)}
if ! java -version >/dev/null 2>&1; then
    echo "spark_env: no java on PATH (PySpark needs Java 17 or newer)" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c 'import pyspark, pyarrow, pymilvus, milvus_lite' 2>/dev/null \
    || [ "$requirements" -nt "$venv/.installed" ]; then
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2
    touch "$venv/.installed"
fi
echo "$venv/bin/python"
