"""Decomposition cost at scale: time split, peak memory, and growth with data and classes.

Every run is a fresh process (``python -m benchmarks.decompose_scale --one ...``) so that its
peak resident memory is its own. Reported for each run: the ``decompose`` time split
(analysis, profiling, pruning and tuning, writing), peak memory, and the ratio of the
whole decomposition to one ONNX Runtime pass of the parent over the same calibration data.

- ``--zoo``: every zoo model at default settings, 1,000 calibration samples.
- ``--calib``: LeNet-5 and ResNet-8 at 500, 1,000, 2,000, 5,000 and 10,000 samples.
- ``--classes``: LeNet-5's body with a random head of K = 10, 25, 50, 100, 150 classes
  (timing only: the head is not trained; balanced labels keep every class in).
- ``--recurrent``: the CLINC150 intent classifiers (150 classes), 1,000 calibration
  sentences of the train split.
- ``--memory``: LeNet-5's body with a random 1,000-class head, the profile's grams held
  whole (1.6 MB a class) and within a 256 MB budget (``Settings.profile_memory``: chunks of
  classes, ``decompose/tracked.py``); the modules of both must be byte-identical.

    python -m benchmarks.decompose_scale [--zoo] [--calib] [--classes] [--recurrent] [--memory]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
ZOO = [("models/cnn_digits.onnx", "sklearn:digits"),
       ("models/lenet5_mnist.onnx", str(DATA / "mnist")),
       ("models/mlp1_mnist.onnx", str(DATA / "mnist")),
       ("models/mlp4_fmnist.onnx", str(DATA / "fashion-mnist")),
       ("models/resnet8_fmnist.onnx", str(DATA / "fashion-mnist")),
       ("models/resnet20_cifar10.onnx", str(DATA / "cifar10-jpg" / "cifar10-jpg-q75.tar.gz")),
       (str(DATA / "onnx-third-party" / "mnist-cntk.onnx"), str(DATA / "mnist"))]


RECURRENT = ["clinc_rnn", "clinc_lstm", "clinc_gru", "clinc_bilstm2"]


def one(model: str, data: str, calib: int, balanced: bool = False,
        budget: int | None = None) -> dict:
    """One decomposition in this process (``balanced``: labels cycling over the classes,
    for a re-headed model whose head is not trained; ``budget``: the profile's memory)."""
    import hashlib

    from onnxdecomp import decompose
    from onnxdecomp.data import fit_to_input, load_data
    from onnxdecomp.decompose import Settings
    from onnxdecomp.runtime import Runner

    runner = Runner(model, device="cpu")
    t0 = time.perf_counter()
    ds = fit_to_input(load_data(data, "train", limit=calib), runner.input.shape,
                      runner.input.dtype)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    logits = runner.run(ds.x)[0]
    ort_s = time.perf_counter() - t0
    # A re-headed model's random head decides few classes: balanced labels keep every class
    # (timing only; profiling assigns samples by the parent's own decisions anyway).
    y = np.arange(len(ds.x)) % logits.shape[1] if balanced else ds.y
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        manifest = decompose(model, ds.x, y, Path(out) / "m",
                             settings=Settings(profile_memory=budget))
        total = time.perf_counter() - t0
        digest = hashlib.sha256("".join(m.sha256 for m in manifest.modules).encode())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"model": model, "calibration_samples": len(ds.x), "classes": logits.shape[1],
            "data_loading_seconds": round(load_s, 2), "decompose_seconds": round(total, 2),
            "split_seconds": manifest.to_json()["timing_seconds"],
            "one_ort_pass_seconds": round(ort_s, 3),
            "ratio_to_one_ort_pass": round(total / max(ort_s, 1e-9), 1),
            "peak_memory_mb": round(peak, 1), "mean_macs": round(manifest.mean_macs, 4),
            "passed": manifest.passed, "profile_memory": budget,
            "profile_passes": manifest.profile_passes, "modules_sha256": digest.hexdigest()}


def reheaded(k: int, folder: Path) -> str:
    """LeNet-5 with a random K-class head (Gemm rows redrawn, seeded)."""
    proto = onnx.load(str(ROOT / "models" / "lenet5_mnist.onnx"))
    rng = np.random.default_rng(k)
    head = next(n for n in reversed(proto.graph.node) if n.op_type in ("Gemm", "MatMul"))
    inits = {t.name: t for t in proto.graph.initializer}
    w = numpy_helper.to_array(inits[head.input[1]])
    transposed = head.op_type == "Gemm" and any(a.name == "transB" and a.i for a in head.attribute)
    features = w.shape[1] if transposed else w.shape[0]
    new_w = rng.normal(0, 1 / np.sqrt(features), (k, features) if transposed else (features, k))
    inits[head.input[1]].CopyFrom(numpy_helper.from_array(new_w.astype(np.float32),
                                                          head.input[1]))
    if len(head.input) > 2 and head.input[2] in inits:
        inits[head.input[2]].CopyFrom(numpy_helper.from_array(np.zeros(k, np.float32),
                                                              head.input[2]))
    else:  # dynamo exports MatMul + Add: the Add's constant is the bias
        add = next(n for n in proto.graph.node if head.output[0] in n.input and n.op_type == "Add")
        b = next(i for i in add.input if i in inits)
        inits[b].CopyFrom(numpy_helper.from_array(np.zeros(k, np.float32), b))
    for vi in proto.graph.output:
        vi.type.tensor_type.shape.dim[1].dim_value = k
    del proto.graph.value_info[:]
    path = folder / f"lenet5_head{k}.onnx"
    onnx.save(proto, str(path))
    return str(path)


def run(model: str, data: str, calib: int, balanced: bool = False,
        budget: int | None = None) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.decompose_scale", "--one", model,
                          data, str(calib)] + (["--balanced"] if balanced else [])
                         + ([] if budget is None else ["--budget", str(budget)]),
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", nargs=3, metavar=("MODEL", "DATA", "CALIB"))
    ap.add_argument("--zoo", action="store_true")
    ap.add_argument("--calib", action="store_true")
    ap.add_argument("--classes", action="store_true")
    ap.add_argument("--recurrent", action="store_true")
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--balanced", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--budget", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], int(args.one[2]), args.balanced,
                             args.budget)))
        return
    path = RESULTS / "scale.json"
    res = json.loads(path.read_text()) if path.is_file() else {}
    res["command"] = ("python -m benchmarks.decompose_scale --zoo --calib --classes "
                      "--recurrent --memory")
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.zoo:
        res["zoo"] = [run(m, d, 1000) for m, d in ZOO if Path(m).exists() or
                      (ROOT / m).exists()]
        path.write_text(json.dumps(res, indent=1) + "\n")
    if args.calib:
        res["calib"] = [run(m, d, n) for m, d in ZOO[1:2] + ZOO[4:5]
                        for n in (500, 1000, 2000, 5000, 10000)]
        path.write_text(json.dumps(res, indent=1) + "\n")
    if args.classes:
        with tempfile.TemporaryDirectory() as tmp:
            res["classes"] = [run(reheaded(k, Path(tmp)), str(DATA / "mnist"), 1000, True)
                              for k in (10, 25, 50, 100, 150)]
        path.write_text(json.dumps(res, indent=1) + "\n")
    if args.recurrent:
        from models.text import CLINC_VOCAB, Vocab, clinc_arrays, write_npz

        vocab = Vocab.load(CLINC_VOCAB)
        with tempfile.TemporaryDirectory() as tmp:
            npz = Path(tmp) / "clinc150_train.npz"
            write_npz(npz, *clinc_arrays(DATA, "train", vocab), vocab.classes)
            res["recurrent"] = [run(str(ROOT / "models" / f"{m}.onnx"), str(npz), 1000)
                                for m in RECURRENT if (ROOT / "models" / f"{m}.onnx").exists()]
        path.write_text(json.dumps(res, indent=1) + "\n")
    if args.memory:
        with tempfile.TemporaryDirectory() as tmp:
            model = reheaded(1000, Path(tmp))
            res["memory"] = [run(model, str(DATA / "mnist"), 1000, True, budget)
                             for budget in (None, 256 << 20)]
        path.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
