#!/usr/bin/env bash
# Makes (once) the Python venv the fixture scripts run in, at .venv/ (git-ignored), and prints its python.
# MXNet 1.9.1 needs Python ≤ 3.11 and numpy < 1.24 (see Tools/requirements.txt).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
py=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c 'import mxnet, PIL' 2>/dev/null || [ "$root/Tools/requirements.txt" -nt "$venv/.installed" ]; then
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/Tools/requirements.txt" >&2
    touch "$venv/.installed"
fi
echo "$venv/bin/python"
