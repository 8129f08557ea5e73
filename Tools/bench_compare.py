#!/usr/bin/env python3
"""FaceEmbed against ONNX Runtime, OpenVINO, ncnn and MXNet on the same models, threads and batch sizes.

    python Tools/bench_compare.py                  # everything (pip install -r Tools/requirements-bench.txt)
    python Tools/bench_compare.py --rounds 3 --only y1

What it does:
  1. builds FaceEmbed release three ways: a plain `swift build -c release` (.build-bench-default: the package
     traits pick the kernels, the host's best by default, AVX512 or FMA; the "faceembed" column), the same with
     `-Xswiftc -target-cpu -Xswiftc native` and the matching `-DFACEEMBED_AVX512`/`-DFACEEMBED_FMA` condition instead
     of traits (.build-bench-native, "native flags", how 0.2 was built for speed), and with
     `--disable-default-traits` (.build-bench-portable, the portable kernels, "portable");
  2. converts the real y1 (../shared/models/mobilefacenet-arcface) and the seeded-random r100
     (Fixtures-local/r100, made by `python Tools/make_fixtures.py --local`) with `faceembed convert`, and the SCRFD
     face detector (Models/scrfd_500m_bnkps.onnx, fetched by Models/fetch_default_model.sh), timed on a 640x640
     input: the network alone, what each runtime's inference call does (FaceEmbed: `bench` on the detector file);
  3. exports the same MXNet symbol + params to ONNX (mxnet.onnx, MXNet 1.9.1), and from ONNX to ncnn with pnnx;
  4. runs every runtime in its own process (so each gets its own thread settings and peak-RSS figure), interleaved
     round by round: per round, one process per runtime, each timing `--iterations` calls after `--warmup`;
  5. prints median ms per call (median over rounds of each round's median), ms per image, peak RSS, and
     FaceEmbed's time as a ratio to each peer (< 1 means FaceEmbed is faster);
  6. prints the precision each column ran in, read back from the runtime in its worker: OpenVINO's CPU plugin
     computes in bfloat16 by default on CPUs with AVX512_BF16/AMX (its INFERENCE_PRECISION_HINT after
     compile_model), and ncnn's options allow fp16/bf16 storage and arithmetic by default; the "openvino" and
     "ncnn" columns run the defaults, "openvino-f32" and "ncnn-f32" force float32 like FaceEmbed;
  7. "faceembed-int8" runs the same build on the model converted with `faceembed convert --precision int8`
     (int8 weights, 8-bit activations; Models/QUANTIZATION.md);
  8. "openvino-int8" is OpenVINO on an int8 IR that nncf's post-training quantization makes from each exported ONNX
     model at nncf's default settings, calibrated on LFW images no evaluation uses: `Tools/nncf_quantize.py`, run
     with .venv-nncf's python (`pip install -r Tools/requirements-nncf.txt`; nncf needs numpy >= 1.24, which MXNet
     1.9.1 excludes from this venv), which also prints the int8 embeddings' cosine to f32 ones on 400 other LFW
     images (batch-1 models). The IR is timed by the openvino worker at OpenVINO's defaults; its precision says
     how many convolution / fully connected layers the CPU plugin runs in int8 and in what the others run.

A peer that cannot be installed, exported or converted is listed with the reason instead of a time.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDE = 112

MODELS = {
    "y1": {"dir": os.path.join(ROOT, "..", "shared", "models", "mobilefacenet-arcface"), "label": "y1 MobileFaceNet"},
    "r100": {"dir": os.path.join(ROOT, "Fixtures-local", "r100"), "label": "ResNet100-IR (seeded random weights)"},
    "scrfd": {"onnx": os.path.join(ROOT, "Models", "scrfd_500m_bnkps.onnx"), "side": 640,
              "label": "SCRFD-500M face detector, 640x640 input"},
}
CONFIGS = [("y1", 1, 1), ("y1", 1, 2), ("y1", 8, 2), ("r100", 1, 1), ("r100", 1, 2), ("scrfd", 1, 1), ("scrfd", 1, 2)]
PEERS = ["openvino", "openvino-f32", "openvino-int8", "ncnn", "ncnn-f32", "onnxruntime", "mxnet"]
# A "-f32" peer is its runtime forced to float32 arithmetic; the plain name is the runtime at its defaults;
# "openvino-int8" is OpenVINO at its defaults on nncf's int8 model.
NNCF_PYTHON = os.path.join(ROOT, ".venv-nncf", "bin", "python")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def peak_rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def summarize(times, batch):
    times = sorted(times)
    pick = lambda p: times[min(len(times) - 1, int(round((len(times) - 1) * p)))]
    return {"median_ms": statistics.median(times) * 1e3, "p10_ms": pick(0.1) * 1e3, "p90_ms": pick(0.9) * 1e3,
            "batch": batch, "peak_rss_bytes": peak_rss_bytes()}


# ---------------------------------------------------------------------------------------------------- workers
# Each runs in a fresh process: `bench_compare.py --worker NAME --model PATH --batch B --threads T ...`.

def time_calls(call, iterations, warmup):
    for _ in range(warmup):
        call()
    out = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def onnxruntime_call(a, x):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    # The CPU provider computes float tensors in f32; its only reduced-precision switch (bf16 GEMM fast math) is an
    # opt-in session entry for arm64, read back here to show it is off.
    try:
        fastmath = so.get_session_config_entry("mlas.enable_gemm_fastmath_arm64_bfloat16")
    except RuntimeError:  # raised for an entry never set
        fastmath = "unset"
    precision = "f32 (%s %s, bf16 fast math %s)" % (sess.get_providers()[0], sess.get_inputs()[0].type, fastmath)
    return (lambda: sess.run(None, {name: x})), precision


def openvino_call(a, x):
    import openvino as ov
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": a.threads, "PERFORMANCE_HINT": "LATENCY"}
    if a.precision == "f32":
        # On CPUs with AVX512_BF16/AMX the plugin otherwise computes in bfloat16 (about 3 significant digits).
        config["INFERENCE_PRECISION_HINT"] = "f32"
    compiled = core.compile_model(core.read_model(a.model), "CPU", config)
    req = compiled.create_infer_request()
    # The hint is the precision of layers without a lower-precision form; int8 layers (nncf's models) show as
    # u8/i8 in the runtime model's per-layer precisions.
    counts = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in ("Convolution", "FullyConnected", "MatMul"):
            p = info["runtimePrecision"].astype(str)
            p = "int8" if p in ("u8", "i8") else p
            counts[p] = counts.get(p, 0) + 1
    layers = ", ".join("%d %s" % (n, p) for p, n in sorted(counts.items(), key=lambda c: -c[1]))
    hint = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    return (lambda: req.infer([x])), "%s (convolution / fully connected layers: %s)" % (hint, layers)


def ncnn_call(a, x):
    import numpy as np
    import ncnn
    net = ncnn.Net()
    net.opt.num_threads = a.threads
    net.opt.use_vulkan_compute = False
    if a.precision == "f32":
        for flag in NCNN_REDUCED:
            setattr(net.opt, flag, False)
    param, binf = a.model.split(",")
    if net.load_param(param) != 0 or net.load_model(binf) != 0:
        raise SystemExit("ncnn could not load " + a.model)
    # clone: a Mat that wraps numpy memory crashed in extract (ncnn 1.0.20261020 wheel)
    mats = [ncnn.Mat(np.ascontiguousarray(x[i])).clone() for i in range(a.batch)]

    def call():
        for m in mats:  # ncnn has no batch dimension: one extractor per image
            ex = net.create_extractor()
            ex.input("in0", m)
            ex.extract("out0")
    # The options only allow fp16/bf16; a layer uses them where it has a kernel for this CPU.
    on = [f for f in NCNN_REDUCED if getattr(net.opt, f)]
    return call, "f32" if not on else "f32 or reduced where a layer can (" + ", ".join(on) + ")"


def mxnet_call(a, x):
    import mxnet as mx
    sym, args, auxs = mx.model.load_checkpoint(a.model, 0)
    sym = sym.get_internals()["fc1_output"]
    ex = sym.bind(mx.cpu(), dict(args, data=mx.nd.array(x)), aux_states=auxs, grad_req="null")
    return (lambda: ex.forward(is_train=False)[0].asnumpy()), "f32"


NCNN_REDUCED = ["use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_packed", "use_bf16_storage"]
WORKERS = {"onnxruntime": onnxruntime_call, "openvino": openvino_call, "ncnn": ncnn_call, "mxnet": mxnet_call}


def worker(a):
    import numpy as np
    rng = np.random.default_rng(0)
    if a.side == SIDE:
        x = rng.uniform(0, 255, size=(a.batch, 3, SIDE, SIDE)).astype(np.float32)
    else:  # a detector takes its input normalised: (pixel - 127.5) / 128
        x = rng.uniform(-1, 1, size=(a.batch, 3, a.side, a.side)).astype(np.float32)
    if a.worker not in WORKERS:
        raise SystemExit("unknown worker " + a.worker)
    call, precision = WORKERS[a.worker](a, x)
    print(json.dumps(dict(summarize(time_calls(call, a.iterations, a.warmup), a.batch), precision=precision)))


# ---------------------------------------------------------------------------------------------------- setup

def run(cmd, **kw):
    log("$ " + " ".join(cmd))
    return subprocess.run(cmd, check=True, **kw)


def cpu_conditions():
    """FaceEmbed's compile-time CPU conditions for this machine: FACEEMBED_AVX512 (AVX-512F, implies FMA) or
    FACEEMBED_FMA, read from /proc/cpuinfo's flags (none elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
    except OSError:
        return []
    if "avx512f" in flags:
        return ["-Xswiftc", "-DFACEEMBED_AVX512"]
    if "fma" in flags:
        return ["-Xswiftc", "-DFACEEMBED_FMA"]
    return []


def build(source, scratch, how):
    """Builds faceembed with the package's default traits ("traits"), with -target-cpu native and the matching
    condition and no traits ("native"), or with no traits ("portable"); returns the executable."""
    cmd = ["swift", "build", "-c", "release", "--product", "faceembed", "--scratch-path", os.path.join(ROOT, scratch)]
    if how == "native":
        cmd += ["--disable-default-traits", "-Xswiftc", "-target-cpu", "-Xswiftc", "native"] + cpu_conditions()
    elif how == "portable":
        cmd += ["--disable-default-traits"]
    run(cmd, cwd=source, stdout=subprocess.DEVNULL)
    return os.path.join(ROOT, scratch, "release", "faceembed")


def export_onnx(model_dir, batch, out):
    """MXNet symbol + params -> ONNX with mxnet.onnx (MXNet 1.9.1). Returns None or the reason it failed."""
    code = f"""
import numpy as np, mxnet as mx
from mxnet import onnx as mx2onnx
sym, args, auxs = mx.model.load_checkpoint({os.path.join(model_dir, 'model')!r}, 0)
sym = sym.get_internals()['fc1_output']
params = dict(args); params.update(auxs)
mx2onnx.export_model(sym, params, in_shapes=[({batch}, 3, {SIDE}, {SIDE})], in_types=[np.float32],
                     onnx_file_path={out!r}, verbose=False)
# mx2onnx writes FullyConnected's flatten as Flatten(axis=-1), which with current onnx/onnxruntime flattens
# (N, C, 1, 1) to (N*C, 1); MXNet flattens to (N, C*H*W), which is axis=1.
import onnx
m = onnx.load({out!r})
for n in m.graph.node:
    if n.op_type == 'Flatten':
        for at in n.attribute:
            if at.name == 'axis' and at.i == -1:
                at.i = 1
# PRelu slopes come out as (C,); ONNX broadcasts from the right, so NCHW needs (C, 1, 1).
inits = {{i.name: i for i in m.graph.initializer}}
for n in m.graph.node:
    if n.op_type == 'PRelu' and n.input[1] in inits and len(inits[n.input[1]].dims) == 1:
        inits[n.input[1]].dims.extend([1, 1])
# Initializers need not be graph inputs (IR >= 4); dropping them there avoids stale shapes.
keep = [i for i in m.graph.input if i.name not in inits]
del m.graph.input[:]
m.graph.input.extend(keep)
# FullyConnected's output reshape is built from the input's 4-D shape; MXNet (flatten=True) gives (N, hidden).
from onnx import helper, TensorProto
gemm_out = {{n.output[0] for n in m.graph.node if n.op_type == 'Gemm'}}
for n in m.graph.node:
    if n.op_type == 'Reshape' and n.input[0] in gemm_out:
        name = n.input[0] + '_nc_shape'
        m.graph.initializer.append(helper.make_tensor(name, TensorProto.INT64, [2], [{batch}, -1]))
        n.input[1] = name
onnx.save(m, {out!r})
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return None if r.returncode == 0 and os.path.exists(out) else "ONNX export failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]


def convert_ncnn(onnx_path, batch, workdir):
    """ONNX -> ncnn with pnnx. Returns ('param,bin', None) or (None, reason)."""
    pnnx = shutil.which("pnnx") or os.path.join(os.path.dirname(sys.executable), "pnnx")
    if not os.path.exists(pnnx):
        return None, "pnnx not installed (pip install pnnx)"
    base = os.path.splitext(os.path.basename(onnx_path))[0]
    local = os.path.join(workdir, base + ".onnx")
    if not os.path.exists(local):
        shutil.copy(onnx_path, local)
    r = subprocess.run([pnnx, local, f"inputshape=[1,3,{SIDE},{SIDE}]"], cwd=workdir, capture_output=True, text=True)
    param, binf = os.path.join(workdir, base + ".ncnn.param"), os.path.join(workdir, base + ".ncnn.bin")
    if r.returncode != 0 or not os.path.exists(param):
        tail = (r.stderr.strip() or r.stdout.strip()).splitlines()[-1:] or ["?"]
        return None, "pnnx could not convert the ONNX model: " + tail[0]
    return param + "," + binf, None


def quantize_openvino(onnx_path, evaluate):
    """ONNX -> OpenVINO int8 IR with nncf (Tools/nncf_quantize.py in .venv-nncf). Returns (xml, cosines or None,
    None) or (None, None, reason); the cosines (int8 vs f32 on other LFW images) only when `evaluate`."""
    if not os.path.exists(NNCF_PYTHON):
        return None, None, ".venv-nncf is missing (python3.11 -m venv .venv-nncf && " \
                           ".venv-nncf/bin/pip install -r Tools/requirements-nncf.txt)"
    xml = os.path.splitext(onnx_path)[0] + "-int8.xml"
    report = os.path.splitext(onnx_path)[0] + "-int8.json"
    cmd = [NNCF_PYTHON, os.path.join(ROOT, "Tools", "nncf_quantize.py"), onnx_path, "-o", xml, "--json", report]
    cmd += [] if evaluate else ["--eval", "0"]
    log("$ " + " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or not os.path.exists(xml):
        return None, None, "nncf could not quantize the ONNX model: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    for line in r.stdout.splitlines():
        if "cosine" in line:  # the rest is nncf's progress bars
            log(line)
    with open(report) as f:
        return xml, (json.load(f) if evaluate else None), None


def measure(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
    return json.loads(r.stdout[r.stdout.index("{"):]), None


def print_precisions(results, runners, int8_cosines):
    """The arithmetic each column ran in, as its runtime reported it (FaceEmbed computes in float32), and what
    nncf's int8 costs OpenVINO in accuracy."""
    print()
    print("Precision per column (as the runtime reports it after loading the model):")
    for runner in runners:
        own = "int8 weights, 8-bit activations (depthwise layers f32)" if runner == "faceembed-int8" else "f32"
        seen = sorted({r.get("precision", own) for (_, rn), rs in results.items() if rn == runner for r in rs})
        print("  %s: %s" % (runner, "; ".join(seen) if seen else "not run"))
    for name, rep in int8_cosines.items():
        print("openvino-int8 on %s (nncf %s, %d calibration images): cosine to OpenVINO f32 over %d other LFW images, "
              "median / 5th pct / min: %s" % (
                  name, rep["nncf"], rep["calibration_images"], rep["eval_images"], "; ".join(
                      "%s %.5f / %.5f / %.5f" % (what, rep[k]["median"], rep[k]["p5"], rep[k]["min"])
                      for k, what in [("cosine_int8_default", "as timed (other layers " + rep["default_precision_hint"]
                                       + ")"), ("cosine_int8_f32", "with INFERENCE_PRECISION_HINT=f32")])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker")
    ap.add_argument("--model")
    ap.add_argument("--precision", choices=["default", "f32"], default="default",
                    help="worker: the runtime's default arithmetic, or forced to float32")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--side", type=int, default=SIDE, help="worker: input height and width")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=0, help="timed calls per process (default: 40 y1, 8 r100)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (each runtime once per round)")
    ap.add_argument("--only", choices=sorted(MODELS), help="only this model")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help="comma-separated subset of " + ",".join(PEERS)
                    + " (openvino and ncnn include their -f32 columns, openvino its -int8 one)")
    ap.add_argument("--no-default-build", action="store_true", help="skip the native-flags and portable FaceEmbed rows")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--source", default=ROOT, help="package to build (default: this checkout)")
    a = ap.parse_args()
    if a.worker:
        return worker(a)

    asked = set(a.peers.split(","))  # a runtime's name also asks for its "-f32" column
    peers = [p for p in PEERS if p in asked or p.split("-")[0] in asked]
    work = tempfile.mkdtemp(prefix="faceembed-bench-")
    builds = {"faceembed": build(a.source, ".build-bench-default", "traits")}
    if not a.no_default_build:
        builds["faceembed-native"] = build(a.source, ".build-bench-native", "native")
        builds["faceembed-portable"] = build(a.source, ".build-bench-portable", "portable")
    converter = builds["faceembed"]

    notes, files, int8_cosines = {}, {}, {}
    for name, m in MODELS.items():
        if a.only and name != a.only:
            continue
        if "onnx" in m:
            if not os.path.exists(m["onnx"]):
                notes[name] = f"{m['onnx']} is missing (bash Models/fetch_default_model.sh)"
                continue
            feb = os.path.join(work, name + ".feb")
            run([converter, "convert", m["onnx"], "-o", feb], stdout=subprocess.DEVNULL)
            files[name] = {"feb": feb, "mxnet": None, ("onnx", 1): (m["onnx"], None),
                           "ncnn": (None, "not converted (the detector is compared with ONNX Runtime and OpenVINO)"),
                           ("openvino-int8", 1): (None, "not quantized (Tools/nncf_quantize.py calibrates on "
                                                        "112x112 faces)")}
            continue
        if not os.path.exists(os.path.join(m["dir"], "model-0000.params")):
            notes[name] = f"{m['dir']} has no model-0000.params (r100: python Tools/make_fixtures.py --local)"
            continue
        feb = os.path.join(work, name + ".feb")
        run([converter, "convert", m["dir"], "-o", feb], stdout=subprocess.DEVNULL)
        files[name] = {"feb": feb, "mxnet": os.path.join(m["dir"], "model")}
        feb8 = os.path.join(work, name + "-int8.feb")
        run([converter, "convert", m["dir"], "-o", feb8, "--precision", "int8"], stdout=subprocess.DEVNULL)
        files[name]["feb-int8"] = feb8
        for batch in sorted({b for (mn, b, _) in CONFIGS if mn == name}):
            onnx_path = os.path.join(work, f"{name}_b{batch}.onnx")  # pnnx turns '-' into '_' in its outputs
            err = export_onnx(m["dir"], batch, onnx_path)
            files[name][("onnx", batch)] = (None, err) if err else (onnx_path, None)
            if "openvino-int8" in peers:
                xml, cos, err = quantize_openvino(onnx_path, batch == 1) if not err else (None, None, err)
                files[name][("openvino-int8", batch)] = (None, err) if err else (xml, None)
                if cos:
                    int8_cosines[name] = cos
        onnx1 = files[name][("onnx", 1)][0]
        files[name]["ncnn"] = convert_ncnn(onnx1, 1, work) if onnx1 else (None, "no ONNX model to convert")

    results = {}  # (config, runner) -> list of per-round summaries
    errors = {}
    configs = [c for c in CONFIGS if c[0] in files]
    runners = list(builds) + ["faceembed-int8"] + peers
    for rnd in range(a.rounds):
        for cfg in configs:
            name, batch, threads = cfg
            iters = a.iterations or {"y1": 40, "scrfd": 30}.get(name, 8)
            for runner in runners:
                if (cfg, runner) in errors:
                    continue
                if runner.startswith("faceembed"):
                    int8 = runner == "faceembed-int8"
                    exe = builds["faceembed" if int8 else runner]
                    feb = files[name].get("feb-int8" if int8 else "feb")
                    if feb is None:
                        errors[(cfg, runner)] = "no int8 model (the detector is converted in float32 only)"
                        continue
                    cmd = [exe, "bench", "--json", "--model", feb, "--batch", str(batch),
                           "--threads", str(threads), "--iterations", str(iters), "--warmup", str(a.warmup)]
                    env = None
                else:
                    runtime = runner.split("-")[0]
                    if runner == "openvino-int8":
                        path, err = files[name][("openvino-int8", batch)]
                    elif runtime == "onnxruntime" or runtime == "openvino":
                        path, err = files[name][("onnx", batch)]
                    elif runtime == "ncnn":
                        path, err = files[name]["ncnn"]
                    else:
                        path = files[name]["mxnet"]
                        err = None if path else "no MXNet model"
                    if err:
                        errors[(cfg, runner)] = err
                        continue
                    cmd = [sys.executable, os.path.abspath(__file__), "--worker", runtime, "--model", path,
                           "--batch", str(batch), "--threads", str(threads), "--iterations", str(iters),
                           "--warmup", str(a.warmup), "--precision", "f32" if runner.endswith("-f32") else "default",
                           "--side", str(MODELS[name].get("side", SIDE))]
                    # MXNET_SUBGRAPH_BACKEND=NONE: with its MKLDNN subgraph fusions, reading fc1_output fails
                    # ("We can't generate TBlob for MKLDNN data"); plain MKLDNN operators are still used.
                    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MXNET_CPU_WORKER_NTHREADS="1",
                               MXNET_SUBGRAPH_BACKEND="NONE",
                               OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
                log(f"round {rnd + 1}/{a.rounds}: {runner} {name} batch {batch} threads {threads}")
                res, err = measure(cmd, env)
                if err:
                    errors[(cfg, runner)] = err
                else:
                    results.setdefault((cfg, runner), []).append(res)

    # ------------------------------------------------------------------------------------------------ table
    def cell(cfg, runner):
        rs = results.get((cfg, runner))
        if not rs:
            return None
        med = statistics.median(r["median_ms"] for r in rs)
        return {"ms": med, "per_image": med / cfg[1], "rss": max(r["peak_rss_bytes"] for r in rs),
                "p10": min(r["p10_ms"] for r in rs), "p90": max(r["p90_ms"] for r in rs)}

    cols = runners
    print()
    print("FaceEmbed vs peers (median ms per call, median over %d interleaved rounds; ms/image for batch > 1)" % a.rounds)
    print("faceembed: plain swift build -c release (package traits: the host's best); faceembed-native: "
          "--disable-default-traits -target-cpu native " + " ".join(c for c in cpu_conditions() if c != "-Xswiftc")
          + "; faceembed-portable: --disable-default-traits")
    head = "| model | batch | threads | " + " | ".join(cols) + " | " + " | ".join("FE/" + p for p in peers) + " |"
    print(head)
    print("|" + "---|" * (3 + len(cols) + len(peers)))
    out = []
    for cfg in configs:
        name, batch, threads = cfg
        cells = {r: cell(cfg, r) for r in cols}
        fe = cells["faceembed"]
        row = [name, str(batch), str(threads)]
        for r in cols:
            c = cells[r]
            row.append("n/a" if c is None else ("%.2f" % c["per_image"] if batch > 1 else "%.2f" % c["ms"]))
        for p in peers:
            c = cells[p]
            row.append("n/a" if c is None or fe is None else "%.2fx" % (fe["per_image"] / c["per_image"]))
        print("| " + " | ".join(row) + " |")
        out.append({"model": name, "batch": batch, "threads": threads,
                    "results": {r: c for r, c in cells.items() if c}})
    print_precisions(results, cols, int8_cosines)
    print()
    print("Peak RSS (MiB, batch 1, threads 1):")
    for name in files:
        cfg = (name, 1, 1)
        print("  " + name + ": " + ", ".join(
            "%s %.0f" % (r, cell(cfg, r)["rss"] / 2**20) for r in cols if cell(cfg, r)))
    if errors or notes:
        print()
        print("Not run:")
        for k, v in notes.items():
            print(f"  {k}: {v}")
        seen = set()
        for (cfg, runner), err in errors.items():
            key = (cfg[0], runner, err)
            if key not in seen:
                seen.add(key)
                print(f"  {runner} on {cfg[0]}: {err}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": out, "errors": {f"{c[0]}/{c[1]}/{c[2]}/{r}": e for (c, r), e in errors.items()}}, f, indent=1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
