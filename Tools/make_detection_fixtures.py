#!/usr/bin/env python3
"""Face-detection fixtures: insightface's SCRFD-500M (scrfd_500m_bnkps.onnx) run by onnxruntime, with insightface's
`SCRFD.detect` post-processing re-implemented below in numpy + OpenCV (the steps and constants: Models/SCRFD.md).

Committed (writes Tests/FaceEmbedTests/Fixtures/detection/expected.json):
  per photo: its sha256 and size, and per run (det_size [w, h], threshold 0.5, NMS IoU 0.4, optional max_num): the
  resize scale and size, the sha256 and sum of the 1x3xHxW float32 input tensor, and the faces (box x1,y1,x2,y2, score,
  five landmarks), all in the photo's pixel coordinates, best score first (or in max_num's order).
  It also checks that opencv_linear_resize, OpenCV's uint8 bilinear resize in integers, equals cv2.resize.

Local (Fixtures-local/detection/t1-640/, git-ignored): t1.jpg's input tensor and the nine raw output tensors at 640x640
  as little-endian float32 files NAME.f32, described (shape, sha256) in tensors.json. `--local` writes only these
  (Tools/make_local_fixtures.sh, CI) and checks that run against the committed expected.json instead of rewriting it.

Needs the photos (Tools/fetch_detection_photos.sh) and the model (Models/fetch_default_model.sh, fetched here if
missing); Python packages pinned in Tools/requirements-detection.txt (the project's .venv has them). Usage:
  python Tools/make_detection_fixtures.py              write the fixtures
  python Tools/make_detection_fixtures.py --local      write t1's tensors only; expected.json is read, not written
  python Tools/make_detection_fixtures.py --timing     onnxruntime's time on the 640x640 input, 1 and 2 threads
  python Tools/make_detection_fixtures.py --validate   compare with the real insightface package instead; run it
      from a separate venv:  python3.11 -m venv /tmp/if && /tmp/if/bin/pip install insightface==2.1 numpy==1.23.5 \\
                                 onnx==1.14.1 onnxruntime==1.32.0 opencv-python==4.8.0.76 scikit-image==0.21.0
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPECTED = os.path.join(ROOT, "Tests", "FaceEmbedTests", "Fixtures", "detection", "expected.json")
LOCAL = os.path.join(ROOT, "Fixtures-local", "detection")
MODEL = os.path.join(ROOT, "Models", "scrfd_500m_bnkps.onnx")
MODEL_SHA256 = "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad"

STRIDES = (8, 16, 32)
ANCHORS_PER_LOCATION = 2
MEAN, STD = 127.5, 128.0
SCORE_THRESHOLD = 0.5
NMS_IOU = 0.4

# Every photo runs at 640x640; these add other det sizes (width, height) and max_num selections (0 = all faces).
EXTRA_RUNS = {
    "t1.jpg": [((320, 320), 0), ((640, 480), 0), ((640, 640), 2)],
    "players.jpg": [((320, 320), 0), ((640, 640), 5)],
    "gdp.jpg": [((320, 320), 0), ((640, 640), 3)],
    "obama3.jpg": [((480, 640), 0)],
    "person_a_1.jpg": [((320, 320), 0)],
    "hopper.jpg": [((320, 320), 0), ((128, 128), 0)],
    "Tom_Hanks_54745.png": [((320, 320), 0), ((128, 128), 0)],
}


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def letterbox(image, size):
    """Resizes keeping the aspect ratio so the photo fills `size` (w, h) along one side, top-left aligned on black.
    Returns the canvas (uint8 BGR), the scale (resized height / photo height) and the resized (w, h)."""
    width, height = size
    ratio = image.shape[0] / image.shape[1]
    if ratio > height / width:
        new_h, new_w = height, int(height / ratio)
    else:
        new_w, new_h = width, int(width * ratio)
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return canvas, new_h / image.shape[0], (new_w, new_h)


def resize_weights(n_out, n_in, clamp):
    """OpenCV's linear taps along one axis: source index, its neighbour, and 11-bit weights rounded separately from a
    float32 fraction (so they need not sum to 2048). Columns clamp the tap and its fraction at the edges; rows keep
    the fraction and clamp only the row index."""
    position = ((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5).astype(np.float32)
    index = np.floor(position).astype(np.int64)
    fraction = position - index.astype(np.float32)
    if clamp:
        fraction[(index < 0) | (index >= n_in - 1)] = 0
    weights = [np.rint(w * np.float32(2048)).astype(np.int64) for w in (np.float32(1) - fraction, fraction)]
    return np.clip(index, 0, n_in - 1), np.clip(index + 1, 0, n_in - 1), *weights


def opencv_linear_resize(image, new_w, new_h):
    """cv2.resize(INTER_LINEAR) of uint8 in OpenCV 4.8's integer arithmetic (its SIMD path), written out so that a
    port can follow it: a horizontal pass to 2048x-scaled ints, then each vertical tap shifted right by 4, multiplied
    by its 11-bit weight keeping the high 16 bits, summed and rounded with (+2) >> 2. make() checks it is bit-exact."""
    x0, x1, a0, a1 = resize_weights(new_w, image.shape[1], clamp=True)
    y0, y1, b0, b1 = resize_weights(new_h, image.shape[0], clamp=False)
    pixels = image.astype(np.int64)
    rows = pixels[:, x0] * a0[None, :, None] + pixels[:, x1] * a1[None, :, None]
    top = ((rows[y0] >> 4) * b0[:, None, None]) >> 16
    bottom = ((rows[y1] >> 4) * b1[:, None, None]) >> 16
    return np.clip((top + bottom + 2) >> 2, 0, 255).astype(np.uint8)


def input_tensor(canvas):
    """1x3xHxW float32, RGB, (x - 127.5) / 128 (what cv2.dnn.blobFromImage(swapRB=True) computes)."""
    rgb = canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32)
    return (rgb - np.float32(MEAN)) / np.float32(STD)


def anchor_centres(height, width, stride):
    """(x, y) of every anchor in row-major order, each location repeated once per anchor, in input pixels."""
    ys, xs = np.mgrid[:height // stride, :width // stride]
    centres = np.stack([xs, ys], axis=-1).astype(np.float32).reshape(-1, 2) * np.float32(stride)
    return np.repeat(centres, ANCHORS_PER_LOCATION, axis=0)


def decode(outputs, height, width, threshold):
    """Candidates over the threshold from the nine outputs (score_8/16/32, bbox_*, kps_*), in input pixels."""
    scores, boxes, points = [], [], []
    for level, stride in enumerate(STRIDES):
        score = outputs[level][0, :, 0]
        distance = outputs[3 + level][0] * np.float32(stride)
        offsets = outputs[6 + level][0].reshape(-1, 5, 2) * np.float32(stride)
        centres = anchor_centres(height, width, stride)
        keep = score >= threshold
        scores.append(score[keep])
        boxes.append(np.concatenate([centres - distance[:, :2], centres + distance[:, 2:]], axis=1)[keep])
        points.append((centres[:, None, :] + offsets)[keep])
    return np.concatenate(scores), np.concatenate(boxes), np.concatenate(points)


def nms(boxes, scores, iou):
    """Greedy NMS, best score first (stable on ties), areas counted inclusively (+1) as insightface does."""
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        overlap = w * h / (area[best] + area[rest] - w * h)
        order = rest[overlap <= iou]
    return np.array(keep, dtype=np.int64)


def select(boxes, image_shape, max_num):
    """insightface's max_num choice: the largest area minus twice the squared distance of the box centre from the
    photo centre (integer centre, H // 2 and W // 2), highest first (the reverse of an unstable ascending sort)."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    dx = (boxes[:, 0] + boxes[:, 2]) / 2 - image_shape[1] // 2
    dy = (boxes[:, 1] + boxes[:, 3]) / 2 - image_shape[0] // 2
    return np.argsort(area - (dx ** 2 + dy ** 2) * 2.0)[::-1][:max_num]


def detect(session, image, size, max_num=0):
    """Faces as (det N x 5 float32: x1, y1, x2, y2, score; landmarks N x 5 x 2) plus the run's input facts."""
    canvas, scale, resized = letterbox(image, size)
    blob = input_tensor(canvas)
    outputs = session.run(None, {session.get_inputs()[0].name: blob})
    scores, boxes, points = decode(outputs, size[1], size[0], SCORE_THRESHOLD)
    order = np.argsort(-scores, kind="stable")
    det = np.hstack([boxes / scale, scores[:, None]]).astype(np.float32)[order]
    points = (points / scale)[order]
    keep = nms(det[:, :4], det[:, 4], NMS_IOU)
    det, points = det[keep], points[keep]
    if 0 < max_num < len(det):
        chosen = select(det, image.shape, max_num)
        det, points = det[chosen], points[chosen]
    facts = {"scale": scale, "resized": list(resized), "input_sha256": sha256(blob.tobytes()),
             "input_sum": float(blob.sum(dtype=np.float64))}
    return det, points, facts, blob, outputs


def photo_list(photos):
    rows = [line.split()[:2] for line in open(os.path.join(ROOT, "Tools", "detection-photos.txt"))
            if line.strip() and not line.startswith("#")]
    for name, want in rows:
        data = open(os.path.join(photos, name), "rb").read()
        if sha256(data) != want:
            sys.exit("error: %s does not have sha256 %s (run Tools/fetch_detection_photos.sh)" % (name, want))
    return [name for name, _ in rows]


def runs_for(name):
    return [((640, 640), 0)] + EXTRA_RUNS.get(name, [])


def session_for(threads=0):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(MODEL, options, providers=["CPUExecutionProvider"])


def faces_json(det, points):
    return [{"box": [float(v) for v in d[:4]], "score": float(d[4]),
             "landmarks": [[float(x), float(y)] for x, y in p]} for d, p in zip(det, points)]


def write_tensors(folder, blob, outputs, names):
    os.makedirs(folder, exist_ok=True)
    manifest = {}
    for name, array in [("input", blob)] + list(zip(names, outputs)):
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        with open(os.path.join(folder, name + ".f32"), "wb") as out:
            out.write(data)
        manifest[name] = {"shape": list(array.shape), "sha256": sha256(data)}
    with open(os.path.join(folder, "tensors.json"), "w") as out:
        json.dump(manifest, out, indent=1)


def make(photos, tensors):
    session = session_for()
    names = [o.name for o in session.get_outputs()]
    entries = []
    for name in photo_list(photos):
        data = open(os.path.join(photos, name), "rb").read()
        image = cv2.imread(os.path.join(photos, name))
        runs = []
        for size, max_num in runs_for(name):
            det, points, facts, blob, outputs = detect(session, image, size, max_num)
            resized = cv2.resize(image, tuple(facts["resized"]), interpolation=cv2.INTER_LINEAR)
            if not np.array_equal(opencv_linear_resize(image, *facts["resized"]), resized):
                sys.exit("%s %s: opencv_linear_resize differs from cv2.resize" % (name, size))
            runs.append({"det_size": list(size), "max_num": max_num, **facts, "faces": faces_json(det, points)})
            if name == "t1.jpg" and size == (640, 640) and max_num == 0:
                write_tensors(tensors, blob, outputs, names)
        entries.append({"file": name, "sha256": sha256(data), "width": image.shape[1], "height": image.shape[0],
                        "runs": runs})
        print("%-26s %4dx%-4d %s" % (name, image.shape[1], image.shape[0],
                                      " ".join("%dx%d:%d" % (*r["det_size"], len(r["faces"])) for r in runs)))
    doc = {"generator": "Tools/make_detection_fixtures.py",
           "model": {"file": "scrfd_500m_bnkps.onnx", "sha256": MODEL_SHA256},
           "versions": {"onnxruntime": ort.__version__, "opencv": cv2.__version__, "numpy": np.__version__},
           "constants": {"mean": MEAN, "std": STD, "strides": list(STRIDES),
                         "anchors_per_location": ANCHORS_PER_LOCATION, "score_threshold": SCORE_THRESHOLD,
                         "nms_iou": NMS_IOU, "resize": "cv2.INTER_LINEAR", "channels": "RGB"},
           "photos": entries}
    os.makedirs(os.path.dirname(EXPECTED), exist_ok=True)
    # One line per photo: a small file whose diffs still show which photo changed.
    head = json.dumps({key: value for key, value in doc.items() if key != "photos"}, separators=(",", ":"))
    lines = ",\n".join(json.dumps(entry, separators=(",", ":")) for entry in entries)
    with open(EXPECTED, "w") as out:
        out.write(head[:-1] + ',\n"photos":[\n' + lines + "\n]}\n")
    print("wrote", EXPECTED)


def make_local(photos, tensors):
    """t1.jpg's 640x640 tensors for the Swift tests, checked against the committed run they stand for: the same
    input tensor (OpenCV's resize is exact), the same number of faces, and the worst difference printed (onnxruntime's
    kernels may round differently on another CPU; the Swift tests allow 0.5 px and 0.005)."""
    photo_list(photos)
    committed = json.load(open(EXPECTED))
    want = next(run for photo in committed["photos"] if photo["file"] == "t1.jpg" for run in photo["runs"]
                if run["det_size"] == [640, 640] and run["max_num"] == 0)
    session = session_for()
    det, points, facts, blob, outputs = detect(session, cv2.imread(os.path.join(photos, "t1.jpg")), (640, 640))
    write_tensors(tensors, blob, outputs, [o.name for o in session.get_outputs()])
    if facts["input_sha256"] != want["input_sha256"]:
        sys.exit("error: t1.jpg's 640x640 input tensor differs from the committed %s" % EXPECTED)
    faces = faces_json(det, points)
    if len(faces) != len(want["faces"]):
        sys.exit("error: t1.jpg at 640x640: %d faces, the committed fixture has %d" % (len(faces), len(want["faces"])))
    worst = max((abs(a - b) for got, ref in zip(faces, want["faces"])
                 for a, b in zip(got["box"] + [got["score"]] + sum(got["landmarks"], []),
                                 ref["box"] + [ref["score"]] + sum(ref["landmarks"], []))), default=0.0)
    print("wrote %s: t1.jpg 640x640, %d faces, largest difference from expected.json %.3g"
          % (tensors, len(faces), worst))


def validate(photos):
    """Runs insightface's own SCRFD on every photo and run; any difference in the faces is an error."""
    from insightface.model_zoo.scrfd import SCRFD
    reference = SCRFD(model_file=MODEL)
    reference.prepare(-1, det_thresh=SCORE_THRESHOLD, nms_thresh=NMS_IOU)
    session = session_for()
    worst, count = 0.0, 0
    for name in photo_list(photos):
        image = cv2.imread(os.path.join(photos, name))
        for size, max_num in runs_for(name):
            det, points, _, blob, _ = detect(session, image, size, max_num)
            want, want_points = reference.detect(image, input_size=size, max_num=max_num)
            canvas, _, _ = letterbox(image, size)
            if not np.array_equal(blob, reference._prepare_input_blob(canvas, size)):
                sys.exit("%s %s: the input tensor differs from insightface's blob" % (name, size))
            if det.shape != want.shape:
                sys.exit("%s %s: %d faces, insightface finds %d" % (name, size, len(det), len(want)))
            difference = max(np.abs(det - want).max(initial=0), np.abs(points - want_points).max(initial=0))
            worst, count = max(worst, difference), count + len(det)
            print("%-26s %dx%d max_num %d: %2d faces, max |difference| %.3g" % (name, *size, max_num, len(det),
                                                                            difference))
    print("all runs agree with insightface: %d faces, largest difference %.3g px" % (count, worst))


def timing():
    image = cv2.imread(os.path.join(LOCAL, "photos", "t1.jpg"))
    blob = input_tensor(letterbox(image, (640, 640))[0])
    for threads in (1, 2):
        session = session_for(threads)
        name = session.get_inputs()[0].name
        for _ in range(3):
            session.run(None, {name: blob})
        times = []
        for _ in range(20):
            start = time.perf_counter()
            session.run(None, {name: blob})
            times.append(time.perf_counter() - start)
        print("onnxruntime %s, %d thread(s), 640x640: median %.2f ms (min %.2f) of 20 runs"
              % (ort.__version__, threads, 1000 * np.median(times), 1000 * min(times)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", default=os.path.join(LOCAL, "photos"))
    parser.add_argument("--tensors", default=os.path.join(LOCAL, "t1-640"), help="where t1.jpg's tensors go")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--local", action="store_true", help="write t1's tensors only, check them against expected.json")
    mode.add_argument("--validate", action="store_true", help="compare with the insightface package")
    mode.add_argument("--timing", action="store_true", help="time onnxruntime on the 640x640 input")
    args = parser.parse_args()
    if not os.path.isfile(MODEL):
        fetch = os.path.join(ROOT, "Models", "fetch_default_model.sh")
        subprocess.check_call(["bash", fetch, "--detector-only", MODEL], env={**os.environ, "PYTHON": sys.executable})
    if sha256(open(MODEL, "rb").read()) != MODEL_SHA256:
        sys.exit("error: %s does not have sha256 %s" % (MODEL, MODEL_SHA256))
    if args.validate:
        validate(args.photos)
    elif args.timing:
        timing()
    elif args.local:
        make_local(args.photos, args.tensors)
    else:
        make(args.photos, args.tensors)


if __name__ == "__main__":
    main()
