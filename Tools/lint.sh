#!/usr/bin/env bash
# Style check with the toolchain's own swift-format and the committed .swift-format (120 columns, 4 spaces; rules
# that fight the kernels' dense style, such as one declaration per line, are off). Fails on any finding.
# `Tools/lint.sh --fix` rewrites the files in place first (then only what the formatter cannot fix is reported:
# missing doc comments on public symbols, end-of-line comments past 120 columns, forEach loops).
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(Sources Tests Fuzz Package.swift)
if [ "${1:-}" = "--fix" ]; then
    swift format format --in-place --recursive --parallel "${paths[@]}"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if swift format lint --strict --recursive --parallel "${paths[@]}" 2>"$log"; then
    echo "lint: clean"
else
    cat "$log" >&2
    files=$(cut -d: -f1 "$log" | sort -u | wc -l)
    grep -oE '\[[A-Za-z]+\]' "$log" | sort | uniq -c | sort -rn >&2
    echo "lint: $(grep -c 'error:' "$log") findings in $files files (Tools/lint.sh --fix formats them)" >&2
    exit 1
fi
