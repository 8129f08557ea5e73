#!/usr/bin/env python3
"""MXNet 1.9.1's own LFW accuracy for a model, with insightface's protocol: the ground truth `faceembed eval-lfw`
is compared with. Run with the venv's python (`$(bash Tools/python_env.sh) Tools/lfw_mxnet.py`).

Protocol (insightface `verification.py`): 6000 view2 pairs in 10 folds of consecutive pairs (KFold without
shuffle); embedding = fc1(img) + fc1(hflip(img)), L2-normalised ("flip"), or fc1(img) normalised ("plain");
distance = squared L2; for each fold the threshold is the first best (numpy argmax) on the other 9 folds over
np.arange(0, 4, 0.01), predicting "same" when distance < threshold; accuracy on the held-out fold; mean ± std
(population std, numpy's default). Normalisation and distances are computed in float64 from MXNet's float32 fc1
(insightface stays in float32; float64 keeps the comparison about the model, not about rounding order).

Pixels: Pillow-decoded RGB (`Image.open(p).convert("RGB")`), fed as float32 NCHW in RGB order, as insightface's
lfw.bin pipeline does (mx.image.imdecode gives RGB); the symbol itself subtracts 127.5 and scales by 1/128.

Outputs:
  --out DIR        (default Fixtures-local/lfw-mxnet) summary.json and distances.tsv: one line per pair with both
                   variants' distances and decisions, the same format `faceembed eval-lfw --distances` writes
  --fixture        also write Tests/FaceEmbedTests/Fixtures/lfw-mxnet.json: the accuracies, fold thresholds, every
                   pair's decisions, and the first --fixture-pairs pairs' distances (for the Swift tests)
  --ppm DIR        write Pillow-decoded PPM copies of every image the pairs refer to (e.g.
                   Fixtures-local/lfw-pillow-ppm), so `faceembed eval-lfw --images DIR --ext ppm` sees Pillow's pixels
  --images DIR --ext ppm   evaluate MXNet on other pixels (e.g. PPMs written by another decoder)
  --compare TSV    compare `faceembed eval-lfw --distances TSV` with MXNet's OUT/distances.tsv (no MXNet run):
                   max distance difference and the number of pairs whose decisions differ, per variant

Usage: python Tools/lfw_mxnet.py [--shared ../shared] [--model PREFIX] [--pairs FILE] [--images DIR]
                                 [--batch 64] [--out DIR] [--fixture] [--ppm DIR] [--ppm-only]
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("MXNET_SUBGRAPH_BACKEND", "NONE")
os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "FaceEmbedTests", "Fixtures")
LOCAL = os.path.join(ROOT, "Fixtures-local")


def read_pairs(path):
    """View2 pairs: [(first, second, same)] with image paths 'name/name_000i' (no extension)."""
    lines = open(path).read().split("\n")
    folds, per = (int(x) for x in lines[0].split())
    pairs = []
    for n, line in enumerate(lines[1:], start=2):
        f = line.split()
        if not f:
            continue
        if len(f) == 3:
            pairs.append(("%s/%s_%04d" % (f[0], f[0], int(f[1])), "%s/%s_%04d" % (f[0], f[0], int(f[2])), True))
        elif len(f) == 4:
            pairs.append(("%s/%s_%04d" % (f[0], f[0], int(f[1])), "%s/%s_%04d" % (f[2], f[2], int(f[3])), False))
        else:
            sys.exit("%s:%d: expected 3 or 4 fields, got %d" % (path, n, len(f)))
    if len(pairs) != folds * per * 2:
        sys.exit("%s: header says %d folds x %d x 2 pairs, found %d" % (path, folds, per, len(pairs)))
    return folds, pairs


def fold_ranges(n, folds):
    """sklearn KFold(n_splits=folds, shuffle=False): the first n % folds folds get one extra item."""
    sizes = [n // folds + (1 if i < n % folds else 0) for i in range(folds)]
    out, start = [], 0
    for s in sizes:
        out.append((start, start + s))
        start += s
    return out


def evaluate(dist, same, folds):
    """insightface's calculate_roc accuracy part. Returns per-fold accuracies and thresholds."""
    thresholds = np.arange(0, 4, 0.01)
    same = np.asarray(same, dtype=bool)
    accs, ths = [], []
    for lo, hi in fold_ranges(len(dist), folds):
        train = np.ones(len(dist), dtype=bool)
        train[lo:hi] = False
        acc_train = np.array([np.mean(np.less(dist[train], t) == same[train]) for t in thresholds])
        best = int(np.argmax(acc_train))
        ths.append(float(thresholds[best]))
        accs.append(float(np.mean(np.less(dist[lo:hi], thresholds[best]) == same[lo:hi])))
    return accs, ths


def summary(accs, ths):
    a, t = np.array(accs), np.array(ths)
    return {"accuracy_mean": float(a.mean()), "accuracy_std": float(a.std()), "fold_accuracies": accs,
            "fold_thresholds": ths, "threshold_mean": float(t.mean()), "cosine_threshold_mean": float(1 - t.mean() / 2)}


def decisions(dist, ths, folds):
    out = np.zeros(len(dist), dtype=bool)
    for (lo, hi), t in zip(fold_ranges(len(dist), folds), ths):
        out[lo:hi] = dist[lo:hi] < t
    return out


def read_rgb(path):
    from PIL import Image
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def write_ppm(path, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (rgb.shape[1], rgb.shape[0]))
        f.write(np.ascontiguousarray(rgb).tobytes())


def read_tsv(path):
    rows = [line.rstrip("\n").split("\t") for line in open(path)]
    head = rows[0]
    return {k: [r[i] for r in rows[1:]] for i, k in enumerate(head)}


def compare(mxnet_tsv, other_tsv):
    """Per variant: max |distance difference| and decision disagreements between two distances.tsv files."""
    m, o = read_tsv(mxnet_tsv), read_tsv(other_tsv)
    if m["first"] != o["first"] or m["second"] != o["second"]:
        sys.exit("%s and %s list different pairs" % (mxnet_tsv, other_tsv))
    same = np.array(m["same"], dtype=int)
    for v in ("flip", "plain"):
        dm, do = np.array(m[v + "_distance"], dtype=float), np.array(o[v + "_distance"], dtype=float)
        cm, co = np.array(m[v + "_same"], dtype=int), np.array(o[v + "_same"], dtype=int)
        diff = np.abs(dm - do)
        print("%-5s: max |distance difference| %.2e (mean %.2e), decisions differ on %d of %d pairs; "
              "correct: MXNet %d, other %d" % (v, diff.max(), diff.mean(), int(np.sum(cm != co)), len(cm),
                                               int(np.sum(cm == same)), int(np.sum(co == same))))


def write_fixture(result, dist, dec, k):
    """Tests/FaceEmbedTests/Fixtures/lfw-mxnet.json: the summary, every pair's decisions, the first k distances."""
    k = k or len(dist["flip"])
    fixture = dict(result)
    fixture.pop("forward_passes_per_second", None)
    fixture.pop("images_per_second", None)
    lists = {}
    for v in ("flip", "plain"):
        lists[v] = "[" + ",".join("%.7f" % d for d in dist[v][:k]) + "]"  # one line, not one number a line
        fixture[v] = dict(result[v], decisions="".join("1" if d else "0" for d in dec[v]), distances="@" + v)
    fixture["distance_pairs"] = k
    text = json.dumps(fixture, indent=1)
    for v in lists:
        text = text.replace('"@%s"' % v, lists[v])
    path = os.path.join(FIXTURES, "lfw-mxnet.json")
    with open(path, "w") as f:
        f.write(text + "\n")
    print("wrote %s" % path, file=sys.stderr)


def run_mxnet(mx, prefix, pixels, count, b):
    """MXNet's fc1 for the images and their mirror images, batched; returns ({False: fc1, True: fc1 of flips}, s)."""
    sym, args, auxs = mx.model.load_checkpoint(prefix, 0)
    mod = mx.mod.Module(symbol=sym, context=mx.cpu(), label_names=None)
    mod.bind(data_shapes=[("data", (b, 3, 112, 112))], for_training=False)
    mod.set_params(args, auxs, allow_missing=False)
    fc1 = {}
    t0 = time.time()
    for flip in (False, True):
        out = []
        for s in range(0, count, b):
            chunk = pixels[s:s + b]
            if flip:
                chunk = chunk[:, :, ::-1, :]
            n = len(chunk)
            data = np.zeros((b, 3, 112, 112), dtype=np.float32)
            data[:n] = chunk.transpose(0, 3, 1, 2)
            mod.forward(mx.io.DataBatch(data=[mx.nd.array(data)]), is_train=False)
            out.append(mod.get_outputs()[0].asnumpy()[:n].copy())
            if (s // b) % 20 == 0:
                print("  %d/%d forward passes" % (s + n + (count if flip else 0), 2 * count), file=sys.stderr)
        fc1[flip] = np.concatenate(out).astype(np.float32)
    return fc1, time.time() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    p.add_argument("--model", help="checkpoint prefix (default SHARED/models/mobilefacenet-arcface/model)")
    p.add_argument("--pairs", help="default SHARED/lfw/pairs.txt")
    p.add_argument("--images", help="default SHARED/lfw/lfw-112x112")
    p.add_argument("--ext", default="jpg")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out", default=os.path.join(LOCAL, "lfw-mxnet"))
    p.add_argument("--fixture", action="store_true")
    p.add_argument("--fixture-pairs", type=int, default=0, help="distances to keep in the fixture (default 0: all)")
    p.add_argument("--compare", metavar="TSV", help="compare a faceembed eval-lfw --distances file with OUT/distances.tsv")
    p.add_argument("--fixture-only", action="store_true",
                   help="write the fixture from an earlier run's OUT/summary.json and distances.tsv, without MXNet")
    p.add_argument("--reuse", action="store_true", help="reuse OUT/fc1.npz from an earlier run of the same images")
    p.add_argument("--ppm", help="write Pillow-decoded PPM copies of the images here")
    p.add_argument("--ppm-only", action="store_true", help="only write the PPM copies")
    a = p.parse_args()
    prefix = a.model or os.path.join(a.shared, "models", "mobilefacenet-arcface", "model")
    pairs_path = a.pairs or os.path.join(a.shared, "lfw", "pairs.txt")
    images = a.images or os.path.join(a.shared, "lfw", "lfw-112x112")

    if a.compare:
        return compare(os.path.join(a.out, "distances.tsv"), a.compare)
    if a.fixture_only:
        result = json.load(open(os.path.join(a.out, "summary.json")))
        t = read_tsv(os.path.join(a.out, "distances.tsv"))
        dist = {v: np.array(t[v + "_distance"], dtype=float) for v in ("flip", "plain")}
        dec = {v: np.array(t[v + "_same"], dtype=int) == 1 for v in ("flip", "plain")}
        return write_fixture(result, dist, dec, a.fixture_pairs)
    folds, pairs = read_pairs(pairs_path)
    names = sorted({x for pr in pairs for x in pr[:2]})
    index = {n: i for i, n in enumerate(names)}
    t0 = time.time()
    pixels = np.stack([read_rgb(os.path.join(images, n + "." + a.ext)) for n in names])
    print("decoded %d images with Pillow in %.1f s" % (len(names), time.time() - t0), file=sys.stderr)
    if a.ppm:
        for n, rgb in zip(names, pixels):
            write_ppm(os.path.join(a.ppm, n + ".ppm"), rgb)
        print("wrote %d PPM copies under %s" % (len(names), a.ppm), file=sys.stderr)
        if a.ppm_only:
            return

    import mxnet as mx
    cache = os.path.join(a.out, "fc1.npz")
    if a.reuse and os.path.exists(cache):
        z = np.load(cache)
        if list(z["names"]) != names:
            sys.exit("%s holds other images; run without --reuse" % cache)
        fc1, seconds = {False: z["plain"], True: z["flipped"]}, float(z["seconds"])
        print("reusing MXNet's fc1 from %s" % cache, file=sys.stderr)
    else:
        fc1, seconds = run_mxnet(mx, prefix, pixels, len(names), a.batch)
        os.makedirs(a.out, exist_ok=True)
        np.savez(cache, names=np.array(names), plain=fc1[False], flipped=fc1[True], seconds=seconds)
    print("MXNet %s: %d forward passes in %.1f s (%.1f passes/s)" % (mx.__version__, 2 * len(names), seconds,
                                                                     2 * len(names) / seconds), file=sys.stderr)

    def unit(e):
        e = e.astype(np.float64)
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    emb = {"flip": unit(fc1[False] + fc1[True]), "plain": unit(fc1[False])}
    ia = np.array([index[x[0]] for x in pairs])
    ib = np.array([index[x[1]] for x in pairs])
    same = np.array([x[2] for x in pairs])
    result = {"source": "MXNet %s, %s, Pillow %s-decoded %s/*.%s, %s" % (
        mx.__version__, os.path.relpath(prefix, a.shared) if prefix.startswith(a.shared) else prefix,
        __import__("PIL").__version__, os.path.basename(images.rstrip("/")), a.ext, "Tools/lfw_mxnet.py"),
        "pairs": len(pairs), "folds": folds, "images": len(names), "forward_passes_per_second": 2 * len(names) / seconds}
    dist, dec = {}, {}
    for v, e in emb.items():
        dist[v] = np.sum((e[ia] - e[ib]) ** 2, axis=1)
        accs, ths = evaluate(dist[v], same, folds)
        result[v] = summary(accs, ths)
        dec[v] = decisions(dist[v], ths, folds)
        print("MXNet %-5s accuracy %.2f%% ± %.2f%%  threshold %.3f (cosine %.4f)" % (
            v, 100 * result[v]["accuracy_mean"], 100 * result[v]["accuracy_std"], result[v]["threshold_mean"],
            result[v]["cosine_threshold_mean"]))

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(a.out, "distances.tsv"), "w") as f:
        f.write("pair\tfold\tfirst\tsecond\tsame\tflip_distance\tflip_same\tplain_distance\tplain_same\n")
        ranges = fold_ranges(len(pairs), folds)
        for i, (x, y, s) in enumerate(pairs):
            fold = next(k for k, (lo, hi) in enumerate(ranges) if lo <= i < hi)
            f.write("%d\t%d\t%s\t%s\t%d\t%.7f\t%d\t%.7f\t%d\n" % (i, fold, x, y, s, dist["flip"][i], dec["flip"][i],
                                                                 dist["plain"][i], dec["plain"][i]))
    print("wrote %s/summary.json and distances.tsv" % a.out, file=sys.stderr)

    if a.fixture:
        write_fixture(result, dist, dec, a.fixture_pairs)


if __name__ == "__main__":
    main()
