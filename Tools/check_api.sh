#!/usr/bin/env bash
# Fails if the public API of the products FaceEmbed and FaceEmbedImport breaks source or binary compatibility with
# a baseline (a commit; tags may be absent in CI's fresh clone): SwiftPM builds the baseline in a scratch checkout,
# dumps both APIs with swift-api-digester and lists every removed or changed declaration.
#   Tools/check_api.sh [BASELINE]      default: the commit in .ci/api-baseline (the last release)
# A deliberate break is either a new baseline after the release, or a line in .ci/api-breakage-allowlist holding
# the exact message to accept.
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=${1:-$(cat .ci/api-baseline)}
if ! git cat-file -e "$baseline^{commit}" 2>/dev/null; then
    # A shallow clone may lack the baseline commit: fetch just it.
    git fetch -q --depth=1 origin "$baseline"
fi
sha=$(git rev-parse "$baseline^{commit}")
allow=()
[ -f .ci/api-breakage-allowlist ] && allow=(--breakage-allowlist-path .ci/api-breakage-allowlist)
# SwiftPM keeps the baseline's API dump under .build-api/<commit> (git-ignored): only the first run builds the
# baseline (about 2.5 min on 2 cores), later ones build the working tree only.
swift package diagnose-api-breaking-changes "$sha" --products FaceEmbed FaceEmbedImport --baseline-dir .build-api \
    "${allow[@]}"
