#!/usr/bin/env python3
"""OpenVINO int8 from an ONNX face model with nncf's post-training quantization at its default settings, and what
the int8 costs in accuracy: the "openvino-int8" column of Tools/bench_compare.py.

    python3.11 -m venv .venv-nncf && .venv-nncf/bin/pip install -r Tools/requirements-nncf.txt
    .venv-nncf/bin/python Tools/nncf_quantize.py y1_b1.onnx -o y1_b1-int8.xml [--calibration 300] [--eval 400]

Input: an ONNX model as bench_compare's export_onnx writes it: one NCHW float32 input of 112x112 pixels in 0..255,
RGB order (the symbol subtracts 127.5 and scales by 1/128 itself), a fixed batch B. Calibration and evaluation
images are decoded as Tools/lfw_mxnet.py and Tools/make_fixtures.py feed y1 (Pillow, `convert("RGB")`, channels
first); the seeded-random r100 takes the same input.

Quantization: `nncf.quantize(model, nncf.Dataset(items))` with nothing but the calibration set and `subset_size`
(its number of items) given, so preset, target device, range estimators, bias correction and ignored layers are
nncf's defaults. The OpenVINO model nncf works on is read from the ONNX file; the IR is written with
`compress_to_fp16=False` so the layers nncf leaves unquantized keep the ONNX model's float32 constants.

Calibration rule: calibration images never include an image any evaluation uses. They are a seeded draw (numpy
default_rng(1)) of the 112x112 LFW images (../shared/lfw/lfw-112x112) of people who have exactly one image in LFW
and are in no view2 pair of pairs.txt (Tools/quant_study.py's rule), so none is in a verification pair or an
identification probe (probes are the second and later images of people with two or more). --calibration N images
(default 300, nncf's default subset size), fed in items of B images: ceil(N / B) items, the last filled up with
the first images when B does not divide N, in a list that reports its batch size B as a torch DataLoader would, so
nncf takes its default for batched data (per-image statistics when B > 1; without it a batch-8 model's int8
embeddings fell to cosine 0.92 median from the batch-1 model's 0.97).

Accuracy (--eval M, default 400; 0 skips it): M other LFW images, a seeded draw (default_rng(2)) from every image
not in the calibration set, embedded by the ONNX model compiled with INFERENCE_PRECISION_HINT=f32 (the reference)
and by the int8 IR compiled with OpenVINO's defaults (how bench_compare times it: on a CPU with AVX512_BF16 the
layers left unquantized run in bf16) and with the f32 hint (int8 layers only); prints the cosine of each image's
int8 embedding to its f32 one, median / 5th percentile / min. --json FILE also writes these figures.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfw_mxnet  # noqa: E402  (pairs.txt and Pillow decoding only; MXNet is not imported)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def lfw_split(shared, n_calibration, n_eval):
    """The calibration images (single-image people in no view2 pair) and the evaluation images (any others)."""
    root = os.path.join(shared, "lfw", "lfw-112x112")
    people = sorted(os.listdir(root))
    images = {p: sorted(os.listdir(os.path.join(root, p))) for p in people}
    _, pairs = lfw_mxnet.read_pairs(os.path.join(shared, "lfw", "pairs.txt"))
    in_pairs = {pair[k].split("/")[0] for pair in pairs for k in (0, 1)}
    singles = [p + "/" + images[p][0] for p in people if len(images[p]) == 1 and p not in in_pairs]
    if n_calibration > len(singles):
        sys.exit("only %d LFW images qualify for calibration, %d asked" % (len(singles), n_calibration))
    calibration = list(np.random.default_rng(1).choice(singles, n_calibration, replace=False))
    taken = set(calibration)
    rest = [p + "/" + f for p in people for f in images[p] if p + "/" + f not in taken]
    evaluation = list(np.random.default_rng(2).choice(rest, n_eval, replace=False)) if n_eval else []
    return root, calibration, evaluation


def load(root, names):
    return np.stack([lfw_mxnet.read_rgb(os.path.join(root, n)).transpose(2, 0, 1) for n in names]).astype(np.float32)


class Batches(list):
    """Calibration items with the batch size a torch DataLoader would report, from which nncf chooses (by default)
    statistics per image rather than per item when the model's batch is more than one."""

    def __init__(self, items, batch_size):
        super().__init__(items)
        self.batch_size = batch_size


def batches(x, batch):
    """Items of `batch` images; the last is filled up with the first images when len(x) is not a multiple."""
    n = math.ceil(len(x) / batch) * batch
    x = np.concatenate([x, x[:n - len(x)]]) if n > len(x) else x
    return [x[k:k + batch] for k in range(0, n, batch)]


def embed(compiled, x, batch):
    req = compiled.create_infer_request()
    out = [np.array(req.infer([b])[0]).reshape(batch, -1) for b in batches(x, batch)]
    return np.concatenate(out)[:len(x)]


def cosines(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    c = np.sort(np.sum(a * b, axis=1))
    return {"median": float(np.median(c)), "p5": float(np.percentile(c, 5)), "min": float(c[0]), "count": len(c)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("onnx", help="the float32 ONNX model (bench_compare's export)")
    ap.add_argument("-o", "--output", required=True, help="the int8 IR to write (.xml, and .bin beside it)")
    ap.add_argument("--calibration", type=int, default=300, help="calibration images (default 300)")
    ap.add_argument("--eval", type=int, default=400, help="images for the int8 vs f32 cosine (default 400; 0: none)")
    ap.add_argument("--shared", default=SHARED, help="the shared data directory (default ../shared)")
    ap.add_argument("--json", help="also write the calibration rule's counts and the cosines here")
    a = ap.parse_args()

    import nncf
    import openvino as ov

    core = ov.Core()
    model = core.read_model(a.onnx)
    shape = model.inputs[0].get_partial_shape()
    if shape.is_dynamic or len(shape) != 4:
        sys.exit("%s: expected one static NCHW input, got %s" % (a.onnx, shape))
    batch = shape[0].get_length()
    root, calibration, evaluation = lfw_split(a.shared, a.calibration, a.eval)
    items = Batches(batches(load(root, calibration), batch), batch)
    log("nncf %s, OpenVINO %s: %d calibration images of single-image LFW people in no pair, %d items of %d"
        % (nncf.__version__, ov.__version__, len(calibration), len(items), batch))
    t0 = time.perf_counter()
    quantized = nncf.quantize(model, nncf.Dataset(items), subset_size=len(items))
    ov.save_model(quantized, a.output, compress_to_fp16=False)
    log("quantized in %.0f s: %s" % (time.perf_counter() - t0, a.output))

    report = {"nncf": nncf.__version__, "openvino": ov.__version__, "batch": batch,
              "calibration_images": len(calibration), "calibration_items": len(items)}
    if evaluation:
        x = load(root, evaluation)
        f32 = {"INFERENCE_PRECISION_HINT": "f32"}
        reference = embed(core.compile_model(core.read_model(a.onnx), "CPU", f32), x, batch)
        int8 = core.compile_model(core.read_model(a.output), "CPU")
        default = int8.get_property("INFERENCE_PRECISION_HINT").to_string()
        report["eval_images"] = len(evaluation)
        report["cosine_int8_default"] = cosines(embed(int8, x, batch), reference)
        report["default_precision_hint"] = default
        report["cosine_int8_f32"] = cosines(embed(core.compile_model(core.read_model(a.output), "CPU", f32), x,
                                                  batch), reference)
        for key, what in [("cosine_int8_default", "int8 IR at OpenVINO's defaults (other layers %s)" % default),
                          ("cosine_int8_f32", "int8 IR with INFERENCE_PRECISION_HINT=f32")]:
            c = report[key]
            print("%s vs the ONNX model in f32, cosine over %d other LFW images: median %.5f, 5th pct %.5f, min %.5f"
                  % (what, c["count"], c["median"], c["p5"], c["min"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
