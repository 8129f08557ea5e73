#!/usr/bin/env python3
"""FaceEmbed's exact 1:N gallery search against faiss IndexFlatIP on the same seeded random unit rows.

    python3 -m venv .venv-search && .venv-search/bin/pip install -r Tools/requirements-search.txt
    .venv-search/bin/python Tools/bench_gallery.py                       # 1,000,000 x 512, 100 queries, top 10
    .venv-search/bin/python Tools/bench_gallery.py --rows 100000 --work /tmp/gal

What it does:
  1. draws --rows gallery rows and --queries queries, standard normal float32 from numpy's default_rng(--seed)
     (rows first, then queries), each normalised to unit length, and writes them to <work>/rows.f32 and
     <work>/queries.f32: little-endian float32, row-major, no header; <work>/params.txt holds
     "rows dimension queries k singles seed" (files are rewritten only when it changes);
  2. faiss: IndexFlatIP over the rows, with faiss.omp_set_num_threads(1) and (2): one batched search of all
     queries and --singles searches of one query each (two rounds, the better kept);
  3. FaceEmbed: `swift test -c release -Xswiftc -enable-testing --filter GalleryBenchmark` with
     FACEEMBED_GALLERY_BENCH=<work>: the test writes <work>/gallery.feg with GalleryWriter (once; delete it after
     changing the rows), maps it, runs the same searches, and writes <work>/faceembed.txt;
  4. prints queries per second side by side, whether the top-k ids of every query are identical, and the load
     average (the machine may be shared).
"""
import argparse
import os
import subprocess
import sys
import time

import faiss
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def unit_rows(rng, n, d, chunk=100_000):
    out = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, chunk):
        x = rng.standard_normal((min(chunk, n - s), d), dtype=np.float32)
        out[s:s + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def prepare(args):
    os.makedirs(args.work, exist_ok=True)
    params = f"{args.rows} {args.dim} {args.queries} {args.k} {args.singles} {args.seed}\n"
    path = os.path.join(args.work, "params.txt")
    fresh = not os.path.exists(path) or open(path).read() != params
    rng = np.random.default_rng(args.seed)
    rows = unit_rows(rng, args.rows, args.dim)
    queries = unit_rows(rng, args.queries, args.dim)
    if fresh:
        rows.astype("<f4").tofile(os.path.join(args.work, "rows.f32"))
        queries.astype("<f4").tofile(os.path.join(args.work, "queries.f32"))
        with open(path, "w") as f:
            f.write(params)
        gallery = os.path.join(args.work, "gallery.feg")
        if os.path.exists(gallery):
            os.remove(gallery)
    return rows, queries


def bench_faiss(rows, queries, args):
    index = faiss.IndexFlatIP(rows.shape[1])
    index.add(rows)
    times, ids = {}, None
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        for mode in ("batch", "single"):
            best = 0.0
            for _ in range(2):
                start = time.perf_counter()
                if mode == "batch":
                    _, ids = index.search(queries, args.k)
                    qps = len(queries) / (time.perf_counter() - start)
                else:
                    for q in queries[:args.singles]:
                        index.search(q[None, :], args.k)
                    qps = args.singles / (time.perf_counter() - start)
                best = max(best, qps)
            times[(threads, mode)] = best
    return times, ids


def bench_faceembed(args):
    env = dict(os.environ, FACEEMBED_GALLERY_BENCH=os.path.abspath(args.work))
    cmd = ["swift", "test", "-c", "release", "-Xswiftc", "-enable-testing", "--filter", "GalleryBenchmark"]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"swift test failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
    times, ids, notes = {}, {}, []
    for line in open(os.path.join(args.work, "faceembed.txt")):
        f = line.split()
        if f[0] == "time":
            key = (int(f[1]), f[2])
            times[key] = max(times.get(key, 0.0), float(f[4]))
        elif f[0] == "ids":
            ids[int(f[1])] = [int(x) for x in f[2:]]
        elif f[0] == "candidates":
            notes.append(f"re-ranked {float(f[1]):.0f} candidate rows per query")
        else:
            notes.append(f"{f[0]} {float(f[1]):.2f} s")
    return times, ids, notes


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--singles", type=int, default=20, help="single-query searches timed per round")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=os.path.join(ROOT, ".build", "bench-gallery"))
    args = p.parse_args()

    rows, queries = prepare(args)
    ftimes, fids = bench_faiss(rows, queries, args)
    del rows
    etimes, eids, notes = bench_faceembed(args)
    same = sum(eids.get(q) == list(fids[q]) for q in range(len(queries)))

    print(f"{args.rows:,} rows x {args.dim}, top {args.k}, faiss-cpu {faiss.__version__}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"{'threads':>7} {'queries':>14} {'faiss q/s':>10} {'FaceEmbed q/s':>14} {'ratio':>6}")
    for threads in (1, 2):
        for mode, label in (("single", "one at a time"), ("batch", f"batch of {args.queries}")):
            f, e = ftimes[(threads, mode)], etimes[(threads, mode)]
            print(f"{threads:>7} {label:>14} {f:>10.1f} {e:>14.1f} {e / f:>5.2f}x")
    print(f"identical top-{args.k} ids: {same} of {len(queries)} queries; FaceEmbed {', '.join(notes)}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
