#!/usr/bin/env python3
"""LFW 1:N identification through the faceembed CLI: embed --files-from, enroll, search --files-from.

Protocol (Tools/quant_study.py's identification, without its calibration hold-out): the people of the aligned LFW
folder (NAME/NAME_000N.jpg) in sorted order, each person's images sorted by name. Every person's first image is
enrolled: 5,749 gallery rows, the first images of the 1,680 people with two or more images plus the 4,069 people with
one, who are distractors. Every other image of a person with two or more is a probe (7,484). A probe is a hit at
rank k when a match among its top k is an image of the same person (the id's folder). Prints rank-1 and rank-5.

    python3 Tools/lfw_identification.py [--faceembed .build/release/faceembed] [--model Models/mobilefacenet.feb]
        [--images ../shared/lfw/lfw-112x112] [--work /tmp/lfw-id] [--int8] [--check]

--check also embeds the probes to JSON Lines and recomputes every probe's top-1 by brute force with numpy (float64),
which must name the same gallery image as `faceembed search`.
"""
import argparse
import json
import os
import subprocess
import sys
import time


def people_images(root):
    """{person: sorted image file names} for every person folder of `root`."""
    out = {}
    for person in sorted(os.listdir(root)):
        folder = os.path.join(root, person)
        if os.path.isdir(folder):
            files = sorted(f for f in os.listdir(folder) if f.lower().endswith((".jpg", ".jpeg", ".png", ".ppm")))
            if files:
                out[person] = files
    return out


def split(root, people):
    """The gallery paths (first image of every person) and the probe paths (the others)."""
    gallery, probes = [], []
    for person, files in people.items():
        paths = [os.path.join(root, person, f) for f in files]
        gallery.append(paths[0])
        probes += paths[1:]
    return gallery, probes


def person(path):
    return os.path.basename(os.path.dirname(path))


def run(cmd, stdout=None):
    t0 = time.time()
    r = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit("failed (%d): %s\n%s" % (r.returncode, " ".join(cmd), r.stderr))
    return time.time() - t0


def write_list(path, paths):
    with open(path, "w") as f:
        f.write("".join(p + "\n" for p in paths))


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def check(args, model, gallery_jsonl, probes_txt, answers):
    """Brute-force top-1 of every probe with numpy; returns the number of probes whose top-1 differs."""
    import numpy as np
    probes_jsonl = os.path.join(args.work, "probes.jsonl")
    with open(probes_jsonl, "w") as out:
        run([args.faceembed, "embed"] + model + ["--files-from", probes_txt], stdout=out)
    g = read_jsonl(gallery_jsonl)
    p = read_jsonl(probes_jsonl)
    gm = np.array([r["embedding"] for r in g], np.float64)
    pm = np.array([r["embedding"] for r in p], np.float64)
    best = np.argmax(pm @ gm.T, axis=1)
    return sum(g[b]["path"] != a["matches"][0]["id"] for b, a in zip(best, answers))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faceembed", default=".build/release/faceembed")
    ap.add_argument("--model", help="FaceEmbed weight file (default: faceembed's own lookup)")
    ap.add_argument("--images", default="../shared/lfw/lfw-112x112")
    ap.add_argument("--work", default="/tmp/lfw-identification")
    ap.add_argument("--int8", action="store_true", help="enroll with the int8 first-pass copy")
    ap.add_argument("--check", action="store_true", help="recompute every top-1 with numpy")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    model = ["--model", args.model] if args.model else []
    people = people_images(args.images)
    gallery, probes = split(args.images, people)
    gallery_txt, probes_txt = os.path.join(args.work, "gallery.txt"), os.path.join(args.work, "probes.txt")
    write_list(gallery_txt, gallery)
    write_list(probes_txt, probes)
    gallery_jsonl, feg = os.path.join(args.work, "gallery.jsonl"), os.path.join(args.work, "gallery.feg")
    with open(gallery_jsonl, "w") as out:
        t_embed = run([args.faceembed, "embed"] + model + ["--files-from", gallery_txt], stdout=out)
    t_enroll = run([args.faceembed, "enroll", "--gallery", feg, gallery_jsonl] + (["--int8"] if args.int8 else []))
    answers_jsonl = os.path.join(args.work, "answers.jsonl")
    with open(answers_jsonl, "w") as out:
        t_search = run([args.faceembed, "search", "--gallery", feg, "--top", "5", "--json"] + model
                       + ["--files-from", probes_txt], stdout=out)
    answers = read_jsonl(answers_jsonl)
    assert [a["path"] for a in answers] == probes, "search answered other probes than asked"
    hits1 = sum(person(a["matches"][0]["id"]) == person(a["path"]) for a in answers)
    hits5 = sum(any(person(m["id"]) == person(a["path"]) for m in a["matches"]) for a in answers)
    multi = sum(len(f) >= 2 for f in people.values())
    print("LFW 1:N identification: %d gallery rows (%d people with 2+ images, %d distractors), %d probes"
          % (len(gallery), multi, len(gallery) - multi, len(probes)))
    print("rank-1 %.2f %% (%d/%d), rank-5 %.2f %%" % (100 * hits1 / len(probes), hits1, len(probes),
                                                      100 * hits5 / len(probes)))
    print("times: embed gallery %.1f s, enroll %.1f s, search (embeds the probes) %.1f s%s"
          % (t_embed, t_enroll, t_search, ", int8 gallery" if args.int8 else ""))
    if args.check:
        differ = check(args, model, gallery_jsonl, probes_txt, answers)
        print("numpy brute-force top-1: %d of %d probes differ from faceembed search" % (differ, len(probes)))
        if differ:
            sys.exit(1)


if __name__ == "__main__":
    main()
