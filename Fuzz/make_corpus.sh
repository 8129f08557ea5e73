#!/usr/bin/env bash
# Seed corpora for the fuzz targets, from the committed fixtures, into .build-fuzz/seeds/<target>/ (ignored).
#   bash Fuzz/make_corpus.sh
# The flat-file seeds are the tiny models converted by the CLI ($FACEEMBED_CLI, default: built into .build-hostile).
set -euo pipefail
cd "$(dirname "$0")/.."
F=Tests/FaceEmbedTests/Fixtures
S=.build-fuzz/seeds
rm -rf "$S"; mkdir -p "$S"/{ppm,jpeg,png,symbol,params,flatfile,onnx}

# Images: every committed JPEG/PNG, extra/ (progressive, CMYK/YCCK, EXIF) included; their .rgb siblings are not inputs.
cp "$F"/images/*.jpg "$S"/jpeg/
cp "$F"/images/*.png "$S"/png/
cp "$F"/images/extra/*.jpg "$S"/jpeg/
cp "$F"/images/extra/*.png "$S"/png/
# PPM: the committed inputs plus small hand-made files of every kind (binary/ASCII, RGB/gray, 8/16-bit, comments).
cp "$F"/tiny-mobilefacenet/input0.ppm "$S"/ppm/input0.ppm
printf 'P6\n2 2\n255\n\x00\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0' > "$S"/ppm/p6_2x2.ppm
printf 'P6\n# a comment\n1 2\n65535\n\x00\x01\x02\x03\x04\x05\xff\xfe\xfd\xfc\xfb\xfa' > "$S"/ppm/p6_16bit.ppm
printf 'P3\n2 1\n15\n0 1 2\n15 14 13\n' > "$S"/ppm/p3_2x1.ppm
printf 'P5\n3 1\n255\n\x00\x7f\xff' > "$S"/ppm/p5_3x1.pgm
printf 'P2 2 2 1000 0 250 500 1000\n' > "$S"/ppm/p2_2x2.pgm

# Symbols and params: the tiny models and the operator/dtype fixtures.
cp "$F"/tiny-mobilefacenet/model-symbol.json "$S"/symbol/mobilefacenet.json
cp "$F"/tiny-iresnet/model-symbol.json "$S"/symbol/iresnet.json
cp "$F"/tiny-mobilefacenet/model-0000.ndarray "$S"/params/mobilefacenet.params
cp "$F"/tiny-iresnet/model-0000.ndarray "$S"/params/iresnet.params
cp "$F"/dtypes.ndarray "$S"/params/dtypes.params
cp "$F"/ops.ndarray "$S"/params/ops.params

# ONNX: the committed quirk and refusal fixtures.
for f in "$F"/onnx/*.onnx.bin; do cp "$f" "$S/onnx/$(basename "$f" .bin)"; done

# Flat files: the tiny models converted by the CLI.
# Built every time (incrementally): a stale CLI would write seeds in an older format, which the loader refuses.
CLI=${FACEEMBED_CLI:-.build-hostile/debug/faceembed}
if [ -z "${FACEEMBED_CLI:-}" ]; then swift build --scratch-path .build-hostile --product faceembed >&2; fi
for m in mobilefacenet iresnet; do
  "$CLI" convert "$F/tiny-$m/model-symbol.json" "$F/tiny-$m/model-0000.ndarray" -o "$S/flatfile/$m.feb" >/dev/null
done
for d in "$S"/*; do echo "$(basename "$d"): $(ls "$d" | wc -l) seeds, largest $(ls -S "$d" | head -1 | xargs -I{} stat -c %s "$d/{}") bytes"; done
