#!/usr/bin/env python3
"""Makes FaceEmbed's test fixtures with MXNet 1.9.1, the ground truth. Nothing here is typed in by hand.

Committed fixtures (run with --commit; writes Tests/FaceEmbedTests/Fixtures/):
  ops.ndarray, ops.json         per-operator cases: inputs, parameters and MXNet's outputs
  dtypes.ndarray                one array saved as float16, float32 and float64
  tiny-mobilefacenet/           a seeded-random reduced MobileFaceNet (same block structure and node names as
                                insightface's y1, BNs without eps, an fc1 gamma far from 1) with MXNet's fc1 outputs
  tiny-iresnet/                 the same for a reduced LResNet-IR (units [1, 2, 1, 1], narrow)
  y1-lfw.json                   the real y1 weights' fc1 on 16 LFW images and two pairs (needs ../shared)

Local fixtures (run with --local; writes Fixtures-local/, git-ignored; CI runs this before the tests):
  lfw-ppm/NAME/NAME_000N.ppm    PPM copies (RGB and BGR) of the LFW images named in y1-lfw.json
  r100/                         the real r100 symbol with seeded-random weights as a genuine .params file (261 MB)
                                and MXNet's fc1 on a few inputs
  r34/                          an r34 IR built with the same builder (checked against the real r100 graph)

Usage: python Tools/make_fixtures.py --commit | --local [--shared ../shared] [--skip-r100]
"""
import argparse
import json
import os
import sys

# MXNet's plain operators, not its MKLDNN subgraph fusions: the reference semantics, unfused.
os.environ.setdefault("MXNET_SUBGRAPH_BACKEND", "NONE")
os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")

import numpy as np  # noqa: E402
import mxnet as mx  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "FaceEmbedTests", "Fixtures")
LOCAL = os.path.join(ROOT, "Fixtures-local")


# ---------------------------------------------------------------------------------------------- graph builders

def preprocess(data):
    return (data - 127.5) * 0.0078125


def conv_bn(x, name, filters, kernel, stride, pad, groups=1, act=True, bn_eps=None):
    x = mx.sym.Convolution(x, num_filter=filters, kernel=kernel, stride=stride, pad=pad, num_group=groups,
                           no_bias=True, name=name + "_conv2d")
    kw = {} if bn_eps is None else {"eps": bn_eps}
    x = mx.sym.BatchNorm(x, fix_gamma=False, momentum=0.9, name=name + "_batchnorm", **kw)
    if act:
        x = mx.sym.LeakyReLU(x, act_type="prelu", name=name + "_relu")
    return x


def dresidual(x, name, out, expand, stride):
    x = conv_bn(x, name + "_conv_sep", expand, (1, 1), (1, 1), (0, 0))
    x = conv_bn(x, name + "_conv_dw", expand, (3, 3), stride, (1, 1), groups=expand)
    return conv_bn(x, name + "_conv_proj", out, (1, 1), (1, 1), (0, 0), act=False)


def mobilefacenet(widths=(64, 64, 128, 128), expand=(128, 256, 512, 256), blocks=(4, 6, 2), emb=128):
    """insightface's MobileFaceNet y1 layout (node names as in the released symbol), parametrised for tests."""
    x = preprocess(mx.sym.Variable("data"))
    x = conv_bn(x, "conv_1", widths[0], (3, 3), (2, 2), (1, 1))
    x = conv_bn(x, "conv_2_dw", widths[0], (3, 3), (1, 1), (1, 1), groups=widths[0])
    stages = [("dconv_23", "res_3", widths[1], expand[0], blocks[0]), ("dconv_34", "res_4", widths[2], expand[1], blocks[1]),
              ("dconv_45", "res_5", widths[3], expand[2], blocks[2])]
    for i, (dname, rname, out, exp, n) in enumerate(stages):
        x = dresidual(x, dname, out, exp, (2, 2))
        for b in range(n):
            x = x + dresidual(x, "%s_block%d" % (rname, b), out, expand[3] if i == 2 else exp, (1, 1))
    x = conv_bn(x, "conv_6sep", widths[3] * 4, (1, 1), (1, 1), (0, 0))
    x = conv_bn(x, "conv_6dw7_7", widths[3] * 4, (7, 7), (1, 1), (0, 0), groups=widths[3] * 4, act=False)
    x = mx.sym.FullyConnected(x, weight=mx.sym.Variable("fc1_weight"), num_hidden=emb, name="pre_fc1")
    return mx.sym.BatchNorm(x, fix_gamma=True, eps=2e-5, momentum=0.9, name="fc1")


def iresnet(units=(3, 13, 30, 3), widths=(64, 64, 128, 256, 512), emb=512):
    """insightface's LResNet-IR ("E" head, improved residual units), node names as in model-r100-ii."""
    bn = dict(fix_gamma=False, eps=2e-5, momentum=0.9)
    x = mx.sym.identity(mx.sym.Variable("data"), name="id")
    x = preprocess(x)
    x = mx.sym.Convolution(x, num_filter=widths[0], kernel=(3, 3), stride=(1, 1), pad=(1, 1), no_bias=True, name="conv0")
    x = mx.sym.BatchNorm(x, name="bn0", **bn)
    x = mx.sym.LeakyReLU(x, act_type="prelu", name="relu0")
    for s, n in enumerate(units):
        for u in range(n):
            name = "stage%d_unit%d" % (s + 1, u + 1)
            f = widths[s + 1]
            stride = (2, 2) if u == 0 else (1, 1)
            y = mx.sym.BatchNorm(x, name=name + "_bn1", **bn)
            y = mx.sym.Convolution(y, num_filter=f, kernel=(3, 3), stride=(1, 1), pad=(1, 1), no_bias=True, name=name + "_conv1")
            y = mx.sym.BatchNorm(y, name=name + "_bn2", **bn)
            y = mx.sym.LeakyReLU(y, act_type="prelu", name=name + "_relu1")
            y = mx.sym.Convolution(y, num_filter=f, kernel=(3, 3), stride=stride, pad=(1, 1), no_bias=True, name=name + "_conv2")
            y = mx.sym.BatchNorm(y, name=name + "_bn3", **bn)
            if u == 0:
                sc = mx.sym.Convolution(x, num_filter=f, kernel=(1, 1), stride=stride, no_bias=True, name=name + "_conv1sc")
                sc = mx.sym.BatchNorm(sc, name=name + "_sc", **bn)
            else:
                sc = x
            x = y + sc
    x = mx.sym.BatchNorm(x, name="bn1", **bn)
    x = mx.sym.Dropout(x, p=0.4, name="dropout0")
    x = mx.sym.FullyConnected(x, num_hidden=emb, name="pre_fc1")
    return mx.sym.BatchNorm(x, fix_gamma=True, eps=2e-5, momentum=0.9, name="fc1")


def graph_signature(symbol_json):
    nodes = json.loads(symbol_json)["nodes"]
    keep = ("kernel", "stride", "pad", "num_filter", "num_group", "eps", "fix_gamma", "act_type", "num_hidden")
    return [(n["op"], n["name"], {k: v for k, v in n.get("attrs", {}).items() if k in keep}) for n in nodes]


# ---------------------------------------------------------------------------------------------- weights and runs

def random_params(sym, seed, residual_gain=1.0):
    """Seeded random weights for every parameter of `sym`, scaled so activations stay finite through 100 layers.
    Batch norms get random statistics; fc1's stored gamma is 3.7, which fix_gamma must ignore."""
    rng = np.random.RandomState(seed)
    arg_shapes, _, aux_shapes = sym.infer_shape(data=(1, 3, 112, 112))
    nodes = json.loads(sym.tojson())["nodes"]
    owner = {}
    for n in nodes:
        for i in n["inputs"]:
            owner.setdefault(nodes[i[0]]["name"], n)
    args, auxs = {}, {}
    for name, shape in zip(sym.list_arguments(), arg_shapes):
        if name == "data":
            continue
        op = owner[name]
        if name.endswith("_weight") and op["op"] == "Convolution":
            fan_in = int(np.prod(shape[1:]))
            v = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
        elif name.endswith("_weight"):
            v = rng.normal(0, 1.0 / np.sqrt(shape[1]), shape)
        elif name.endswith("_bias"):
            v = rng.normal(0, 0.1, shape)
        elif op["op"] == "LeakyReLU":
            v = rng.uniform(0.05, 0.4, shape)
        elif name.endswith("_gamma"):
            if op["name"] == "fc1":
                v = np.full(shape, 3.7)
            elif op["name"].endswith("_bn3") or op["name"].endswith("_conv_proj_batchnorm"):
                v = rng.uniform(0.1, 0.3, shape) * residual_gain
            else:
                v = rng.uniform(0.6, 1.4, shape)
        elif name.endswith("_beta"):
            v = rng.normal(0, 0.1, shape)
        else:
            raise SystemExit("no rule for parameter %s" % name)
        args[name] = mx.nd.array(v.astype(np.float32))
    for name, shape in zip(sym.list_auxiliary_states(), aux_shapes):
        if name.endswith("_moving_mean"):
            v = rng.normal(0, 0.2, shape)
        else:
            v = rng.uniform(0.5, 2.0, shape)
        auxs[name] = mx.nd.array(v.astype(np.float32))
    return args, auxs


def save_model(folder, sym, args, auxs, params_name="model-0000.params"):
    """Writes a checkpoint as MXNet does (save_checkpoint's layout). Committed test models use the name
    model-0000.ndarray: the same NDArray-list format, kept apart from real `.params` weights, which are never committed."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "model-symbol.json"), "w") as f:
        f.write(sym.tojson())
    mx.nd.save(os.path.join(folder, params_name),
               dict([("arg:" + k, v) for k, v in args.items()] + [("aux:" + k, v) for k, v in auxs.items()]))


def run_fc1(sym, args, auxs, images):
    """MXNet's fc1 output for RGB images of shape (N, 112, 112, 3), uint8."""
    out = []
    for img in images:
        data = mx.nd.array(img.transpose(2, 0, 1)[None].astype(np.float32))
        ex = sym.bind(mx.cpu(), dict(args, data=data), aux_states=auxs, grad_req="null")
        out.append(ex.forward(is_train=False)[0].asnumpy()[0])
    return np.array(out)


def synthetic_faces(seed, n):
    """Smooth gradients plus noise: deterministic 112x112 RGB test images."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:112, 0:112]
    imgs = []
    for i in range(n):
        base = np.stack([(xx * (1 + i) + yy * 2) % 256, (yy * 3 + 40 * i) % 256, (xx + yy) * (i + 1) % 256], axis=2)
        imgs.append(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))
    return imgs


def write_ppm(path, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (rgb.shape[1], rgb.shape[0]))
        f.write(np.ascontiguousarray(rgb).tobytes())


def read_rgb(path):
    from PIL import Image
    return np.array(Image.open(path).convert("RGB"))


def tiny_model(folder, sym, seed, n_images):
    args, auxs = random_params(sym, seed)
    save_model(folder, sym, args, auxs, "model-0000.ndarray")
    imgs = synthetic_faces(seed, n_images)
    for i, img in enumerate(imgs):
        write_ppm(os.path.join(folder, "input%d.ppm" % i), img)
    fc1 = run_fc1(sym, args, auxs, imgs)
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump({"images": ["input%d.ppm" % i for i in range(n_images)], "fc1": fc1.tolist(),
                   "source": "MXNet %s, Tools/make_fixtures.py, seed %d" % (mx.__version__, seed)}, f)
    print("%s: fc1 std %.4f, |fc1| max %.4f" % (folder, fc1.std(), abs(fc1).max()))


# ---------------------------------------------------------------------------------------------- operator cases

def op_cases():
    rng = np.random.RandomState(7)
    cases = []

    def arr(*shape):
        return rng.normal(0, 1, shape).astype(np.float32)

    def conv(name, c, h, w, oc, k, s, p, g, bias):
        x, wt = arr(1, c, h, w), arr(oc, c // g, k[0], k[1])
        b = arr(oc) if bias else None
        y = mx.nd.Convolution(mx.nd.array(x), mx.nd.array(wt), *([mx.nd.array(b)] if bias else []), kernel=k,
                              stride=s, pad=p, num_filter=oc, num_group=g, no_bias=not bias)
        arrays = {"x": x, "weight": wt, "y": y.asnumpy()}
        if bias:
            arrays["bias"] = b
        cases.append((name, "Convolution", {"kernel": k, "stride": s, "pad": p, "num_filter": oc, "num_group": g}, arrays))

    conv("conv3x3_s1_p1", 5, 9, 11, 7, (3, 3), (1, 1), (1, 1), 1, False)
    conv("conv3x3_s2_p1", 4, 13, 10, 6, (3, 3), (2, 2), (1, 1), 1, True)
    conv("conv1x1", 9, 7, 5, 13, (1, 1), (1, 1), (0, 0), 1, False)
    conv("conv1x1_s2", 6, 9, 9, 5, (1, 1), (2, 2), (0, 0), 1, False)
    conv("conv5x3_asym", 3, 12, 9, 4, (5, 3), (2, 1), (2, 0), 1, True)
    conv("depthwise3x3_s2", 8, 15, 14, 8, (3, 3), (2, 2), (1, 1), 8, False)
    conv("depthwise7x7_valid", 16, 7, 7, 16, (7, 7), (1, 1), (0, 0), 16, False)
    conv("grouped3x3", 6, 8, 8, 9, (3, 3), (1, 1), (1, 1), 3, True)

    for name, attrs in [("batchnorm_default_eps", {"fix_gamma": False}),
                        ("batchnorm_eps2e-5", {"fix_gamma": False, "eps": 2e-5}),
                        ("batchnorm_fix_gamma", {"fix_gamma": True, "eps": 2e-5})]:
        x = arr(2, 5, 4, 3)
        gamma, beta, mean = arr(5) + 2, arr(5), arr(5)
        var = rng.uniform(1e-4, 2, 5).astype(np.float32)
        y = mx.nd.BatchNorm(mx.nd.array(x), mx.nd.array(gamma), mx.nd.array(beta), mx.nd.array(mean),
                            mx.nd.array(var), use_global_stats=True, **attrs)
        cases.append((name, "BatchNorm", attrs, {"x": x, "gamma": gamma, "beta": beta, "mean": mean, "var": var,
                                                  "y": y.asnumpy()}))
    x, slope = arr(2, 6, 3, 5), rng.uniform(0, 0.5, 6).astype(np.float32)
    y = mx.nd.LeakyReLU(mx.nd.array(x), mx.nd.array(slope), act_type="prelu")
    cases.append(("prelu", "LeakyReLU", {"act_type": "prelu"}, {"x": x, "gamma": slope, "y": y.asnumpy()}))
    x, wt, b = arr(2, 4, 3, 5), arr(7, 60), arr(7)
    y = mx.nd.FullyConnected(mx.nd.array(x), mx.nd.array(wt), mx.nd.array(b), num_hidden=7)
    cases.append(("fully_connected_4d", "FullyConnected", {"num_hidden": 7}, {"x": x, "weight": wt, "bias": b, "y": y.asnumpy()}))
    a, b2 = arr(1, 3, 4, 4), arr(1, 3, 4, 4)
    cases.append(("add", "elemwise_add", {}, {"a": a, "b": b2, "y": (mx.nd.array(a) + mx.nd.array(b2)).asnumpy()}))
    x = rng.randint(0, 256, (1, 3, 5, 4)).astype(np.float32)
    y = (mx.nd.array(x) - 127.5) * 0.0078125
    cases.append(("input_scaling", "_minus_scalar+_mul_scalar", {"mean": 127.5, "scale": 0.0078125}, {"x": x, "y": y.asnumpy()}))

    arrays, meta = {}, []
    for name, op, attrs, arrs in cases:
        meta.append({"name": name, "op": op, "attrs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in attrs.items()},
                     "arrays": {k: list(v.shape) for k, v in arrs.items()}})
        for k, v in arrs.items():
            arrays["%s/%s" % (name, k)] = mx.nd.array(v)
    mx.nd.save(os.path.join(FIXTURES, "ops.ndarray"), arrays)
    # The same arrays in float16 and float64, for the params reader's dtype conversion.
    mx.nd.save(os.path.join(FIXTURES, "dtypes.ndarray"),
               {"f16": mx.nd.array(cases[0][3]["x"], dtype=np.float16), "f64": mx.nd.array(cases[0][3]["x"], dtype=np.float64),
                "f32": mx.nd.array(cases[0][3]["x"])})
    with open(os.path.join(FIXTURES, "ops.json"), "w") as f:
        json.dump({"source": "MXNet %s, Tools/make_fixtures.py" % mx.__version__, "cases": meta}, f, indent=1)
    print("ops: %d cases" % len(cases))


# ---------------------------------------------------------------------------------------------- real y1 on LFW

def lfw_selection(shared):
    root = os.path.join(shared, "lfw", "lfw-112x112")
    people = sorted(os.listdir(root))
    picks = []
    for name in people[::len(people) // 14][:14]:
        picks.append("%s/%s" % (name, sorted(os.listdir(os.path.join(root, name)))[0]))
    pairs = open(os.path.join(shared, "lfw", "pairs.txt")).read().split("\n")[1:]
    same = pairs[0].split()
    diff = next(p.split() for p in pairs if len(p.split()) == 4)
    same_pair = ["%s/%s_%04d.jpg" % (same[0], same[0], int(same[1])), "%s/%s_%04d.jpg" % (same[0], same[0], int(same[2]))]
    diff_pair = ["%s/%s_%04d.jpg" % (diff[0], diff[0], int(diff[1])), "%s/%s_%04d.jpg" % (diff[2], diff[2], int(diff[3]))]
    for p in same_pair + diff_pair:
        if p not in picks:
            picks.append(p)
    return picks, same_pair, diff_pair


def y1_lfw(shared):
    prefix = os.path.join(shared, "models", "mobilefacenet-arcface", "model")
    sym, args, auxs = mx.model.load_checkpoint(prefix, 0)
    picks, same_pair, diff_pair = lfw_selection(shared)
    imgs = [read_rgb(os.path.join(shared, "lfw", "lfw-112x112", p)) for p in picks]
    fc1 = run_fc1(sym, args, auxs, imgs)
    emb = {p: v for p, v in zip(picks, fc1)}

    def cos(a, b):
        return float(np.dot(emb[a], emb[b]) / np.linalg.norm(emb[a]) / np.linalg.norm(emb[b]))

    with open(os.path.join(FIXTURES, "y1-lfw.json"), "w") as f:
        json.dump({"source": "MXNet %s on ../shared/models/mobilefacenet-arcface, Pillow-decoded RGB" % mx.__version__,
                   "images": picks, "fc1": fc1.tolist(),
                   "pairs": [{"a": same_pair[0], "b": same_pair[1], "same": True, "cosine": cos(*same_pair)},
                             {"a": diff_pair[0], "b": diff_pair[1], "same": False, "cosine": cos(*diff_pair)}]}, f)
    print("y1-lfw: %d images, same-pair cosine %.4f, different-pair cosine %.4f" % (len(picks), cos(*same_pair), cos(*diff_pair)))


def lfw_ppm(shared):
    picks, _, _ = lfw_selection(shared)
    for p in picks:
        rgb = read_rgb(os.path.join(shared, "lfw", "lfw-112x112", p))
        write_ppm(os.path.join(LOCAL, "lfw-ppm", p[:-4] + ".ppm"), rgb)
        write_ppm(os.path.join(LOCAL, "lfw-ppm-bgr", p[:-4] + ".ppm"), rgb[:, :, ::-1])
    print("lfw-ppm: %d images (RGB and BGR)" % len(picks))


def deep_model(folder, sym, seed, shared, check_against=None):
    args, auxs = random_params(sym, seed)
    save_model(folder, sym, args, auxs)
    imgs = synthetic_faces(seed, 1)
    if shared:
        picks, _, _ = lfw_selection(shared)
        imgs += [read_rgb(os.path.join(shared, "lfw", "lfw-112x112", p)) for p in picks[:2]]
    for i, img in enumerate(imgs):
        write_ppm(os.path.join(folder, "input%d.ppm" % i), img)
    fc1 = run_fc1(sym, args, auxs, imgs)
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump({"images": ["input%d.ppm" % i for i in range(len(imgs))], "fc1": fc1.tolist(),
                   "source": "MXNet %s, Tools/make_fixtures.py, seed %d" % (mx.__version__, seed)}, f)
    print("%s: fc1 std %.4f, |fc1| max %.4f" % (folder, fc1.std(), abs(fc1).max()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commit", action="store_true", help="regenerate the committed fixtures")
    ap.add_argument("--local", action="store_true", help="generate the local (ignored) fixtures")
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    ap.add_argument("--skip-r100", action="store_true", help="with --local: do not write the 261 MB r100 file")
    a = ap.parse_args()
    if not (a.commit or a.local):
        ap.error("say --commit or --local")
    have_shared = os.path.isdir(os.path.join(a.shared, "models"))
    if a.commit:
        os.makedirs(FIXTURES, exist_ok=True)
        op_cases()
        tiny_model(os.path.join(FIXTURES, "tiny-mobilefacenet"),
                   mobilefacenet(widths=(16, 16, 24, 32), expand=(32, 48, 64, 48), blocks=(1, 2, 1), emb=128), 11, 2)
        tiny_model(os.path.join(FIXTURES, "tiny-iresnet"),
                   iresnet(units=(1, 2, 1, 1), widths=(8, 8, 16, 16, 24), emb=64), 12, 2)
        if not have_shared:
            sys.exit("y1-lfw.json needs %s" % a.shared)
        y1_lfw(a.shared)
    if a.local:
        os.makedirs(LOCAL, exist_ok=True)
        if have_shared:
            lfw_ppm(a.shared)
        real = os.path.join(a.shared, "models", "resnet100-arcface", "model-symbol.json")
        r100_built = iresnet()
        if have_shared:
            assert graph_signature(r100_built.tojson()) == graph_signature(open(real).read()), \
                "the IR builder no longer reproduces the real r100 graph"
            print("iresnet builder: reproduces the real r100 symbol node for node")
        deep_model(os.path.join(LOCAL, "r34"), iresnet(units=(3, 4, 6, 3)), 34, have_shared and a.shared)
        if not a.skip_r100:
            sym = mx.sym.load(real) if have_shared else r100_built
            deep_model(os.path.join(LOCAL, "r100"), sym, 100, have_shared and a.shared)


if __name__ == "__main__":
    main()
