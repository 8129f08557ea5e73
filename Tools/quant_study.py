#!/usr/bin/env python3
"""Simulates FaceEmbed's planned int8 inference on y1 (MobileFaceNet) to choose each layer's activation width.

    MXNET_SUBGRAPH_BACKEND=NONE .venv/bin/python Tools/quant_study.py --eval 2000 --select 200
    .venv/bin/python Tools/quant_study.py --full float u8-mse-smooth      # LFW accuracy + 1:N identification too

The graph is the folded one FaceEmbed runs: every BatchNorm after a Convolution/FullyConnected is folded into its
weights and bias; PReLU, depthwise and the residual adds are run as they are, node by node with mx.nd operators.
Fake quantization (quantize, then dequantize in float32) is inserted where FaceEmbed's kernels quantize:
  weights: int8, symmetric, one scale per output channel (max |w| / 127);
  inputs of every Convolution and the FullyConnected, one scale per tensor (per image, as with batch 1):
    s16 = symmetric int16 (|q| <= 32767, the s16 x s16 VNNI kernel);
    u8  = uint8 with zero point 128, i.e. the symmetric int8 range [-128, 127] shifted (the u8 x s8 VNNI kernel);
    f   = left in float32.
Activation scales: "dynamic" (max |x| of the tensor at run time), "pct" (99.99th percentile of |x|, calibrated),
"mse" (the clipping value minimising the quantization MSE, calibrated). Calibration uses --calib images (default
100) from LFW people who are in no view2 pair and, for identification, are left out of the distractors.
"smooth" = per-channel equalization (SmoothQuant, alpha 0.5): where a layer's input comes only from the previous
convolution through its folded BatchNorm and PReLU (both commute with a positive per-channel scale), input channel c
is divided by s_c = sqrt(max|x_c| / max|W_c|) (folded into the previous convolution's output channel) and the
layer's weights of input channel c are multiplied by s_c before their int8 quantization.

Cosine is between the quantized and the float32 fc1 embeddings of the same image (plain, no flip).
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("MXNET_SUBGRAPH_BACKEND", "NONE")
import numpy as np  # noqa: E402
import mxnet as mx  # noqa: E402
from mxnet import nd  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
sys.path.insert(0, os.path.join(ROOT, "Tools"))
import lfw_mxnet  # noqa: E402

QMAX = {"u8": 127.0, "s16": 32767.0}
QMIN = {"u8": -128.0, "s16": -32767.0}


# ------------------------------------------------------------------------------------------------ folded graph

def attr_tuple(s):
    return tuple(int(v) for v in s.strip("()").split(",") if v.strip())


class Graph:
    """The y1 symbol with BatchNorms folded; `layers` lists the Convolution/FullyConnected nodes in order."""

    def __init__(self, prefix):
        self.nodes = json.load(open(prefix + "-symbol.json"))["nodes"]
        raw = nd.load(prefix + "-0000.params")
        self.params = {k.split(":", 1)[1]: v.asnumpy() for k, v in raw.items()}
        consumers = {}
        for i, n in enumerate(self.nodes):
            for j in n["inputs"]:
                consumers.setdefault(j[0], []).append(i)
        self.consumers = consumers
        self.folded = {}  # BatchNorm node -> folded into its input
        self.weights = {}  # layer node -> (W, b) float32 after folding
        for i, n in enumerate(self.nodes):
            if n["op"] in ("Convolution", "FullyConnected"):
                self.weights[i] = self.fold(i)
        self.layers = list(self.weights)
        self.macs = {i: self.layer_macs(i) for i in self.layers}

    def inp(self, i, k):
        return self.nodes[self.nodes[i]["inputs"][k][0]]["name"]

    def fold(self, i):
        n = self.nodes[i]
        w = self.params[self.inp(i, 1)].astype(np.float64)
        b = self.params[self.inp(i, 2)].astype(np.float64) if n.get("attrs", {}).get("no_bias", "False") != "True" \
            and len(n["inputs"]) > 2 else np.zeros(w.shape[0])
        cons = self.consumers.get(i, [])
        if len(cons) == 1 and self.nodes[cons[0]]["op"] == "BatchNorm":
            bn = cons[0]
            a = self.nodes[bn].get("attrs", {})
            gamma, beta, mean, var = (self.params[self.inp(bn, k)].astype(np.float64) for k in range(1, 5))
            if a.get("fix_gamma", "True") == "True":
                gamma = np.ones_like(gamma)
            g = gamma / np.sqrt(var + float(a.get("eps", "1e-3")))
            w = w * g.reshape((-1,) + (1,) * (w.ndim - 1))
            b = (b - mean) * g + beta
            self.folded[bn] = True
        return w.astype(np.float32), b.astype(np.float32)

    def layer_macs(self, i, side=112):
        """Multiply-accumulates per image, from the weights and the output size (stride 2 halves the side)."""
        w = self.weights[i][0]
        return int(np.prod(w.shape)) * self.out_side(i, side) ** 2

    def out_side(self, i, side):
        for n in self.nodes[:i + 1]:
            if n["op"] == "Convolution":
                k, s, p = (attr_tuple(n["attrs"].get(a, d)) for a, d in
                           (("kernel", "(1,1)"), ("stride", "(1,1)"), ("pad", "(0,0)")))
                side = (side + 2 * p[0] - k[0]) // s[0] + 1
        return side if self.nodes[i]["op"] == "Convolution" else 1

    def kind(self, i):
        n = self.nodes[i]
        if n["op"] == "FullyConnected":
            return "fc"
        if int(n["attrs"].get("num_group", "1")) > 1:
            return "gdc" if attr_tuple(n["attrs"]["kernel"])[0] == 7 else "dw"
        if i == self.layers[0]:
            return "first"
        return "pw" if attr_tuple(n["attrs"]["kernel"]) == (1, 1) else "conv"

    def smoothable(self, i):
        """True when the layer's input reaches back, through single-consumer PReLU / folded BatchNorm only, to a
        Convolution or FullyConnected (so a per-channel scale can be folded into that layer's output channels)."""
        j = self.nodes[i]["inputs"][0][0]
        while True:
            if len(self.consumers.get(j, [])) != 1:
                return False
            op = self.nodes[j]["op"]
            if op in ("Convolution", "FullyConnected"):
                return True
            if not (op == "LeakyReLU" or (op == "BatchNorm" and j in self.folded)):
                return False
            j = self.nodes[j]["inputs"][0][0]


# ------------------------------------------------------------------------------------------------ fake quantization

def quant_weights(w):
    s = np.abs(w.reshape(w.shape[0], -1)).max(1) / 127.0
    s = np.where(s == 0, 1.0, s).reshape((-1,) + (1,) * (w.ndim - 1))
    return (np.clip(np.round(w / s), -127, 127) * s).astype(np.float32)


def quant_act(x, width, clip=None):
    """Per-tensor symmetric fake quantization of a batch of images; clip=None: per image max |x| (run time)."""
    if width == "f":
        return x
    if clip is None:
        m = nd.max(nd.abs(x), axis=tuple(range(1, x.ndim)), keepdims=True)
        s = nd.maximum(m, 1e-12) / QMAX[width]
        return nd.broadcast_mul(nd.clip(nd.round(nd.broadcast_div(x, s)), QMIN[width], QMAX[width]), s)
    s = max(clip, 1e-12) / QMAX[width]
    return nd.clip(nd.round(x / s), QMIN[width], QMAX[width]) * s


def mse_clip(sample, width):
    """The clipping value (a fraction of max |x|) whose quantization of |x| samples has the least squared error."""
    m = float(sample.max())
    best, best_err = m, None
    for f in np.linspace(0.3, 1.0, 36):
        s = f * m / QMAX[width]
        err = float(np.mean((np.clip(np.round(sample / s), QMIN[width], QMAX[width]) * s - sample) ** 2))
        if best_err is None or err < best_err:
            best, best_err = f * m, err
    return best


# ------------------------------------------------------------------------------------------------ forward pass

class Config:
    """widths: layer -> 'f' | 's16' | 'u8' (int8 weights unless 'f'); scales: 'dynamic' | 'pct' | 'mse' (equalized
    inputs are always dynamic); smooth: equalize where the graph allows it."""

    def __init__(self, name, widths, scales="dynamic", smooth=False):
        self.name, self.widths, self.scales, self.smooth = name, widths, scales, smooth


def run_node(g, i, vals, x, hook):
    n = g.nodes[i]
    op, a = n["op"], n.get("attrs", {})
    arg = lambda k: vals[n["inputs"][k][0]]
    if op == "null":
        return x if n["name"] == "data" else None
    if op == "_minus_scalar":
        return arg(0) - float(a["scalar"])
    if op == "_mul_scalar":
        return arg(0) * float(a["scalar"])
    if op == "elemwise_add":
        return arg(0) + arg(1)
    if op == "BatchNorm":
        if i in g.folded:
            return arg(0)
        raise SystemExit("unfolded BatchNorm " + n["name"])
    if op == "LeakyReLU":
        gamma = nd.array(g.params[g.inp(i, 1)].reshape(1, -1, 1, 1))
        v = arg(0)
        return nd.maximum(v, 0) + nd.broadcast_mul(nd.minimum(v, 0), gamma)
    if op in ("Convolution", "FullyConnected"):
        return hook(i, arg(0))
    raise SystemExit("quant_study does not run %s (%s)" % (op, n["name"]))


def layer_call(g, i, v, w, b):
    n = g.nodes[i]
    a = n["attrs"]
    if n["op"] == "FullyConnected":
        return nd.FullyConnected(v.reshape((v.shape[0], -1)), nd.array(w), nd.array(b), num_hidden=w.shape[0])
    return nd.Convolution(v, nd.array(w), nd.array(b), kernel=attr_tuple(a["kernel"]),
                          stride=attr_tuple(a.get("stride", "(1,1)")), pad=attr_tuple(a.get("pad", "(0,0)")),
                          num_filter=w.shape[0], num_group=int(a.get("num_group", "1")))


class Simulator:
    """Runs the folded graph in float32 or fake-quantized; `calibrate` records each layer input's statistics."""

    def __init__(self, g):
        self.g = g
        self.stats = {}  # layer -> {"max": per-channel max |x|, "sample": |x| sample}
        self.prepared = {}

    def forward(self, x, cfg=None, record=False):
        vals, x = {}, nd.array(x)
        hook = (lambda i, v: self.record(i, v)) if record else \
            (lambda i, v: self.quantized(i, v, cfg) if cfg else layer_call(self.g, i, v, *self.g.weights[i]))
        for i in range(len(self.g.nodes)):
            vals[i] = run_node(self.g, i, vals, x, hook)
        return vals[len(self.g.nodes) - 1].asnumpy()

    def record(self, i, v):
        a = np.abs(v.asnumpy())
        ch = a.max(axis=tuple(k for k in range(a.ndim) if k != 1))
        st = self.stats.setdefault(i, {"max": np.zeros_like(ch), "sample": []})
        st["max"] = np.maximum(st["max"], ch)
        flat = a.reshape(-1)
        st["sample"].append(flat[::max(1, flat.size // 200000)])  # evenly strided: cheap, and covers every image
        return layer_call(self.g, i, v, *self.g.weights[i])

    def calibrate(self, x, batch=25):
        for k in range(0, len(x), batch):
            self.forward(x[k:k + batch], record=True)
        for st in self.stats.values():
            st["sample"] = np.concatenate(st["sample"])

    def smooth_scale(self, i):
        w = self.g.weights[i][0]
        xmax = np.maximum(self.stats[i]["max"], 1e-6)
        if self.g.kind(i) in ("dw", "gdc"):  # channel c's weights are their own output channel: any scale is free
            return xmax
        wmax = np.abs(w).max(axis=0 if w.ndim == 2 else (0, 2, 3))
        return np.sqrt(xmax / np.maximum(wmax, 1e-6))

    def prepare(self, i, cfg):
        """Per layer and config: (input channel divisor or None, fake-quantized weights, bias, clip or None)."""
        key = (i, cfg.widths[i], cfg.scales, cfg.smooth)
        if key in self.prepared:
            return self.prepared[key]
        w, b = self.g.weights[i]
        s = self.smooth_scale(i) if cfg.smooth and self.g.smoothable(i) else None
        if s is not None:
            w = w * (s.reshape(1, -1, 1, 1) if w.ndim == 4 and self.g.kind(i) not in ("dw", "gdc") else
                     s.reshape(-1, 1, 1, 1) if w.ndim == 4 else s.reshape(1, -1))
        clip = None  # equalized inputs take their range at run time: the recorded statistics are of x, not x / s
        if cfg.scales != "dynamic" and s is None:
            sample = self.stats[i]["sample"]
            clip = float(np.percentile(sample, 99.99)) if cfg.scales == "pct" else mse_clip(sample, cfg.widths[i])
        out = (None if s is None else nd.array(s.reshape(1, -1, 1, 1) if w.ndim == 4 else s.reshape(1, -1)),
               quant_weights(w), b, clip)
        self.prepared[key] = out
        return out

    def quantized(self, i, v, cfg):
        width = cfg.widths[i]
        if width == "f":
            return layer_call(self.g, i, v, *self.g.weights[i])
        s, wq, b, clip = self.prepare(i, cfg)
        if s is not None:
            v = nd.broadcast_div(v, s.reshape((1, -1) + (1,) * (v.ndim - 2)))
        return layer_call(self.g, i, quant_act(v, width, clip), wq, b)

    def embed(self, x, cfg=None, batch=50):
        return np.concatenate([self.forward(x[k:k + batch], cfg) for k in range(0, len(x), batch)])


# ------------------------------------------------------------------------------------------------ data

def lfw_lists(shared):
    root = os.path.join(shared, "lfw", "lfw-112x112")
    people = sorted(os.listdir(root))
    images = {p: sorted(f for f in os.listdir(os.path.join(root, p))) for p in people}
    _, pairs = lfw_mxnet.read_pairs(os.path.join(shared, "lfw", "pairs.txt"))
    in_pairs = {p[k].split("/")[0] for p in pairs for k in (0, 1)}
    return root, people, images, pairs, in_pairs


def load(root, names):
    return np.stack([lfw_mxnet.read_rgb(os.path.join(root, n)).transpose(2, 0, 1) for n in names]).astype(np.float32)


def split(shared, n_calib, n_select, n_eval):
    """Calibration: single-image people in no pair; selection (for the greedy search) and evaluation: disjoint
    random subsets of the remaining images (seeded)."""
    root, people, images, pairs, in_pairs = lfw_lists(shared)
    singles = [p + "/" + images[p][0] for p in people if len(images[p]) == 1 and p not in in_pairs]
    rng = np.random.default_rng(1)
    calib = list(rng.choice(singles, n_calib, replace=False))
    rest = [p + "/" + f for p in people for f in images[p] if p + "/" + f not in set(calib)]
    order = rng.permutation(len(rest))
    select = [rest[k] for k in order[:n_select]]
    evals = [rest[k] for k in order[n_select:n_select + n_eval]]
    return root, calib, select, evals


def cosine_stats(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    c = np.sum(a * b, axis=1)
    return {"median": float(np.median(c)), "p5": float(np.percentile(c, 5)), "min": float(c.min()), "n": len(c)}


# ------------------------------------------------------------------------------------------------ configurations

def configs(g):
    L = g.layers
    every = lambda w: {i: w for i in L}
    only_pw = {i: ("u8" if g.kind(i) == "pw" else "s16") for i in L}
    edges_float = {i: ("f" if g.kind(i) in ("first", "dw", "gdc", "fc") else "u8") for i in L}
    return [Config("s16-dynamic", every("s16")),
            Config("u8-dynamic", every("u8")),
            Config("u8-pct", every("u8"), "pct"),
            Config("u8-mse", every("u8"), "mse"),
            Config("u8-dynamic-smooth", every("u8"), "dynamic", True),
            Config("u8-pw-only-dynamic", only_pw),
            Config("u8-pw-only-dynamic-smooth", only_pw, "dynamic", True),
            Config("u8-edges-float-dynamic", edges_float),
            Config("u8-edges-float-dynamic-smooth", edges_float, "dynamic", True)]


def meets(st, margin):
    return st["median"] >= 0.995 + margin and st["p5"] >= 0.99 + margin


def greedy(sim, x, ref, scales, smooth, margin, log):
    """Sensitivity of each layer alone at u8 (the rest s16), then the 16-bit set with the best sensitivity per
    multiply-accumulate, as short a prefix of that order as meets the targets (binary search) on x."""
    g = sim.g
    sens = {}
    for i in g.layers:
        w = {j: "s16" for j in g.layers}
        w[i] = "u8"
        st = cosine_stats(ref, sim.embed(x, Config("one", w, scales, smooth)))
        sens[i] = 1.0 - st["median"] + (1.0 - st["p5"])
        log("  sensitivity %-36s %-5s macs %9d  median %.5f p5 %.5f" % (g.nodes[i]["name"], g.kind(i), g.macs[i],
                                                                      st["median"], st["p5"]))
    order = sorted(g.layers, key=lambda i: -sens[i] / g.macs[i])
    widths = lambda k: {i: ("s16" if i in order[:k] else "u8") for i in g.layers}
    lo, hi = 0, len(order)
    while lo < hi:
        mid = (lo + hi) // 2
        st = cosine_stats(ref, sim.embed(x, Config("g", widths(mid), scales, smooth)))
        log("  greedy: %d layers 16-bit: median %.5f p5 %.5f" % (mid, st["median"], st["p5"]))
        lo, hi = (lo, mid) if meets(st, margin) else (mid + 1, hi)
    return Config("greedy-%s%s" % (scales, "-smooth" if smooth else ""), widths(lo), scales, smooth), sens


# ------------------------------------------------------------------------------------------------ LFW protocols

def full_evaluation(sim, cfg, shared, calib, log):
    """LFW view2 accuracy (plain and flip-sum) and 1:N rank-1 identification over every image, calibration
    images left out of the distractors."""
    root, people, images, pairs, _ = lfw_lists(shared)
    names = [p + "/" + f for p in people for f in images[p]]
    index = {n: k for k, n in enumerate(names)}
    emb = np.zeros((len(names), 128), np.float32)
    flip = {}
    pair_names = sorted({p[k] for p in pairs for k in (0, 1)})
    pair_files = {n: n + ".jpg" if n + ".jpg" in index else n + ".png" for n in pair_names}
    t0 = time.time()
    for k in range(0, len(names), 200):
        chunk = names[k:k + 200]
        x = load(root, chunk)
        emb[k:k + len(chunk)] = sim.embed(x, cfg)
        need = [j for j, n in enumerate(chunk) if n.rsplit(".", 1)[0] in pair_files]
        if need:
            f = sim.embed(x[need][:, :, :, ::-1].copy(), cfg)
            for j, e in zip(need, f):
                flip[chunk[j]] = e
        log("  %s: %d/%d images, %.0f s" % (cfg.name if cfg else "float", k + len(chunk), len(names), time.time() - t0))
    out = {}
    norm = lambda v: v / np.linalg.norm(v)
    for variant in ("plain", "flip"):
        d = []
        for a, b, _ in pairs:
            fa, fb = pair_files[a], pair_files[b]
            ea, eb = emb[index[fa]].astype(np.float64), emb[index[fb]].astype(np.float64)
            if variant == "flip":
                ea, eb = ea + flip[fa], eb + flip[fb]
            d.append(float(np.sum((norm(ea) - norm(eb)) ** 2)))
        accs, _ = lfw_mxnet.evaluate(np.array(d), [p[2] for p in pairs], 10)
        out[variant] = float(np.mean(accs))
    out["rank1"], out["id_counts"] = identification(people, images, emb, index, set(calib))
    return out, emb


def identification(people, images, emb, index, calib):
    gallery, labels, probes, truth = [], [], [], []
    for p in people:
        files = [p + "/" + f for f in images[p]]
        if len(files) >= 2:
            gallery.append(index[files[0]])
            labels.append(p)
            probes += [index[f] for f in files[1:]]
            truth += [p] * (len(files) - 1)
        elif files[0] not in calib:
            gallery.append(index[files[0]])
            labels.append(p)
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    best = np.argmax(e[probes] @ e[gallery].T, axis=1)
    hits = sum(labels[b] == t for b, t in zip(best, truth))
    return float(hits / len(probes)), {"gallery": len(gallery), "probes": len(probes)}


# ------------------------------------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=SHARED)
    ap.add_argument("--calib", type=int, default=100)
    ap.add_argument("--select", type=int, default=200, help="images the greedy search checks its targets on")
    ap.add_argument("--eval", type=int, default=2000, help="held-out images the cosine table is measured on")
    ap.add_argument("--configs", help="comma-separated subset of the fixed configurations")
    ap.add_argument("--greedy", default="dynamic", help="scales for the greedy search ('' to skip), e.g. mse")
    ap.add_argument("--greedy-smooth", action="store_true")
    ap.add_argument("--margin", type=float, default=0.001, help="margin over the targets for the greedy search")
    ap.add_argument("--full", nargs="*", help="configurations to run LFW accuracy + identification on ('float')")
    ap.add_argument("--json", default="/tmp/quant-study.json")
    a = ap.parse_args()
    log = lambda *m: print(*m, file=sys.stderr, flush=True)

    g = Graph(os.path.join(a.shared, "models", "mobilefacenet-arcface", "model"))
    sim = Simulator(g)
    root, calib, select, evals = split(a.shared, a.calib, a.select, a.eval)
    chosen = [c for c in configs(g) if not a.configs or c.name in a.configs.split(",")]
    if any(c.scales != "dynamic" or c.smooth for c in chosen) or (a.greedy and (a.greedy != "dynamic" or
                                                                              a.greedy_smooth)):
        sim.calibrate(load(root, calib))  # only calibrated scales and equalization need the statistics
    xe, xs = load(root, evals), load(root, select)
    ref_e, ref_s = sim.embed(xe), sim.embed(xs)
    results = {}
    if a.greedy:
        gc, sens = greedy(sim, xs, ref_s, a.greedy, a.greedy_smooth, a.margin, log)
        chosen.append(gc)
        results["sensitivity"] = {g.nodes[i]["name"]: sens[i] for i in g.layers}
        results["greedy_16bit"] = [g.nodes[i]["name"] for i in g.layers if gc.widths[i] == "s16"]
    total = sum(g.macs.values())
    print("| configuration | 8-bit MAC share | 16-bit | float | cosine median | 5th pct | min | images |")
    print("|---|---|---|---|---|---|---|---|")
    for c in chosen:
        st = cosine_stats(ref_e, sim.embed(xe, c))
        share = lambda w: sum(g.macs[i] for i in g.layers if c.widths[i] == w) / total
        print("| %s | %.1f %% | %.1f %% | %.1f %% | %.5f | %.5f | %.5f | %d |" % (
            c.name, 100 * share("u8"), 100 * share("s16"), 100 * share("f"), st["median"], st["p5"], st["min"],
            st["n"]), flush=True)
        results[c.name] = dict(st, widths={g.nodes[i]["name"]: c.widths[i] for i in g.layers},
                               scales=c.scales, smooth=c.smooth)
    for name in a.full or []:
        cfg = None if name == "float" else next(c for c in chosen if c.name == name)
        r, _ = full_evaluation(sim, cfg, a.shared, calib, log)
        print("full %s: LFW plain %.2f %%, flip %.2f %%, rank-1 %.2f %% (%s)" % (
            name, 100 * r["plain"], 100 * r["flip"], 100 * r["rank1"], r["id_counts"]), flush=True)
        results.setdefault("full", {})[name] = r
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    json.dump(results, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
