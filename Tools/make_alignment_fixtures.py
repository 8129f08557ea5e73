#!/usr/bin/env python3
"""insightface's own five-point alignment, as the reference for FaceEmbed's: skimage's SimilarityTransform
(Umeyama) onto the ArcFace template, then cv2.warpAffine (bilinear, border 0), exactly as insightface's
face_align.norm_crop does it.

--commit writes Tests/FaceEmbedTests/Fixtures/alignment.json: each portrait's landmarks (from
  ../shared/images/portraits/landmarks.txt) and skimage's 2x3 transform (numbers only, no images).
--local writes Fixtures-local/aligned/NAME.ppm: insightface's crops of the six portraits from Pillow-decoded RGB.
"""
import argparse
import json
import os

import cv2
import skimage
import numpy as np
from PIL import Image
from skimage import transform as trans

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCFACE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
                   dtype=np.float32)


def landmarks(shared):
    out = {}
    for line in open(os.path.join(shared, "images", "portraits", "landmarks.txt")):
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split()
        out[parts[0]] = np.array([float(v) for v in parts[1:]], dtype=np.float32).reshape(5, 2)
    return out


def transform(lmk):
    t = trans.SimilarityTransform()
    t.estimate(lmk, ARCFACE)
    return t.params[0:2, :]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commit", action="store_true")
    ap.add_argument("--local", action="store_true")
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    a = ap.parse_args()
    lmks = landmarks(a.shared)
    if a.commit:
        rows = [{"image": k, "landmarks": v.flatten().tolist(), "transform": transform(v).flatten().tolist()}
                for k, v in sorted(lmks.items())]
        with open(os.path.join(ROOT, "Tests", "FaceEmbedTests", "Fixtures", "alignment.json"), "w") as f:
            json.dump({"source": "skimage %s SimilarityTransform.estimate onto the ArcFace template" % skimage.__version__,
                       "template": ARCFACE.tolist(), "portraits": rows}, f, indent=1)
        print("alignment.json: %d portraits" % len(rows))
    if a.local:
        out = os.path.join(ROOT, "Fixtures-local", "aligned")
        os.makedirs(out, exist_ok=True)
        for name, lmk in sorted(lmks.items()):
            rgb = np.array(Image.open(os.path.join(a.shared, "images", "portraits", name)).convert("RGB"))
            crop = cv2.warpAffine(rgb, transform(lmk), (112, 112), borderValue=0.0)
            with open(os.path.join(out, name[:-4] + ".ppm"), "wb") as f:
                f.write(b"P6\n112 112\n255\n" + np.ascontiguousarray(crop).tobytes())
        print("aligned: %d insightface crops in %s" % (len(lmks), out))


if __name__ == "__main__":
    main()
