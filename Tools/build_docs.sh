#!/usr/bin/env bash
# Builds the FaceEmbed module's documentation (Sources/FaceEmbed/FaceEmbed.docc plus every public symbol's `///`
# comment) with the toolchain's own tools, no plugin: `swift build` of the module, `swift-symbolgraph-extract` of
# its public symbols, then `docc convert`. Every diagnostic is printed; any error or warning fails the build (an
# unresolved ``Symbol`` or <doc:Article> link, a topic naming a symbol that no longer exists, a documented parameter
# that does not exist), except an undocumented parameter or return value, which is only reported.
# (swift-symbolgraph-extract leaves out a type named <Module>Version, so FaceEmbedVersion has no page.)
#   Tools/build_docs.sh [OUTPUT]      default OUTPUT: .build-docs/FaceEmbed.doccarchive (git-ignored)
# Preview: `docc preview Sources/FaceEmbed/FaceEmbed.docc --additional-symbol-graph-dir .build-docs/symbol-graphs`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.build-docs/FaceEmbed.doccarchive}
graphs=.build-docs/symbol-graphs
diagnostics=.build-docs/diagnostics.json
swift build --target FaceEmbed 2>&1 | tail -1
rm -rf "$graphs" && mkdir -p "$graphs"
swift-symbolgraph-extract -module-name FaceEmbed -I "$(swift build --show-bin-path)/Modules" \
    -target "$(swift -print-target-info | sed -n 's/.*"triple": "\(.*\)".*/\1/p' | head -1)" \
    -minimum-access-level public -output-dir "$graphs"
docc convert Sources/FaceEmbed/FaceEmbed.docc --additional-symbol-graph-dir "$graphs" --output-path "$out" \
    --fallback-display-name FaceEmbed --fallback-bundle-identifier org.faceembed.FaceEmbed \
    --default-code-listing-language swift --diagnostics-file "$diagnostics" >/dev/null || status=$?
python3 - "$diagnostics" "${status:-0}" <<'PY'
import json, os, sys
failing = 0
for d in json.load(open(sys.argv[1]))["diagnostics"]:
    where = os.path.relpath(d.get("source", "").removeprefix("file://") or ".")
    if "range" in d:
        where += ":%d:%d" % (d["range"]["start"]["line"], d["range"]["start"]["column"])
    tolerated = d["severity"] == "warning" and d["summary"].endswith("is missing documentation")
    failing += d["severity"] in ("error", "warning") and not tolerated
    note = " (reported only)" if tolerated else ""
    print("%s: %s: %s%s" % (where, d["severity"], d["summary"], note), file=sys.stderr)
sys.exit(1 if failing or sys.argv[2] != "0" else 0)
PY
echo "docs: $out ($(find "$out/data/documentation" -name '*.json' | wc -l) pages)"
