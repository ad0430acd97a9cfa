"""Latency of parents, their modules and linked models, against their MACs.

For each model: the parent, its default modules with ``--align auto`` and ``--align 1``
(decomposed with the defaults otherwise), a union-linked class pair and the parallel link
of all modules, and the parent as the tool normalises it (the form its modules are written
in). Each is timed in ONNX Runtime (CPU unless ``--device cuda``; the session's
real providers are recorded) at each batch size and thread count: p50 and p90 of
``--runs`` timed runs after a warm-up, and throughput. Module latency / parent latency (the
median of ``--runs`` ratios, each of the two timed back to back) is set against module
MACs / parent MACs (a table per model and ``latency.png``).

    python -m benchmarks.latency [--quick] [--models cnn_digits,lenet5_mnist,...]

``--quick``: batch 64, 1 thread, the modules only (minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from onnxdecomp import link
from onnxdecomp.data import fit_to_input, load_data
from onnxdecomp.decompose.parent import scores_model
from onnxdecomp.runtime import Runner
from onnxdecomp.stats import model_stats

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
MODELS = {
    "cnn_digits": ("models/cnn_digits.onnx", "sklearn:digits"),
    "lenet5_mnist": ("models/lenet5_mnist.onnx", str(DATA / "mnist")),
    "resnet8_fmnist": ("models/resnet8_fmnist.onnx", str(DATA / "fashion-mnist")),
    "keras_fmnist": ("models/keras_fmnist.onnx", str(DATA / "fashion-mnist")),
    "mobilenetv2_fmnist": ("models/mobilenetv2_fmnist.onnx", str(DATA / "fashion-mnist")),
    "resnet8gn_fmnist": ("models/resnet8gn_fmnist.onnx", str(DATA / "fashion-mnist")),
    "vit_mnist": ("models/vit_mnist.onnx", str(DATA / "mnist")),
    "resnet20_cifar10": ("models/resnet20_cifar10.onnx",
                         str(DATA / "cifar10-jpg" / "cifar10-jpg-q75.tar.gz")),
    "mnist_cntk": (str(DATA / "onnx-third-party" / "mnist-cntk.onnx"), str(DATA / "mnist")),
    # recurrent intent classifiers: hidden units in multiples of 4 under --align auto
    "clinc_rnn": ("models/clinc_rnn.onnx", "clinc150"),
    "clinc_lstm": ("models/clinc_lstm.onnx", "clinc150"),
    "clinc_gru": ("models/clinc_gru.onnx", "clinc150"),
}


def timing(model, x: np.ndarray, batch: int, threads: int | None, runs: int,
           device: str) -> dict:
    runner = Runner(model, device=device, threads=threads)
    fixed = runner.input.fixed_batch
    xb = x[: fixed or batch]
    if len(xb) < (fixed or batch):
        xb = np.concatenate([xb] * ((fixed or batch) // len(xb) + 1))[: fixed or batch]
    runner.run(xb, batch_size=len(xb))  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        runner.run(xb, batch_size=len(xb))
        times.append(time.perf_counter() - t0)
    p50, p90 = float(np.percentile(times, 50)), float(np.percentile(times, 90))
    return {"batch": len(xb), "threads": threads or os.cpu_count(), "p50_ms": round(1e3 * p50, 4),
            "p90_ms": round(1e3 * p90, 4), "samples_per_s": round(len(xb) / p50, 1),
            "providers": runner.providers}


def paired_ratio(path, parent, x: np.ndarray, batch: int, threads: int | None, runs: int,
                 device: str) -> float:
    """Median of (model's time / parent's time) over ``runs`` pairs timed back to back."""
    xb = np.concatenate([x] * (batch // len(x) + 1))[:batch]
    runners = [Runner(m, device=device, threads=threads) for m in (parent, path)]
    for r in runners:
        r.run(xb, batch_size=batch)  # warm-up

    def pair() -> float:
        times = []
        for r in runners:  # the parent first, then the model
            t0 = time.perf_counter()
            r.run(xb, batch_size=batch)
            times.append(time.perf_counter() - t0)
        return times[1] / times[0]

    return float(np.median([pair() for _ in range(runs)]))


def data_spec(data: str, work: Path) -> str:
    """A data spec as the CLI takes it: "clinc150" becomes the training sentences' .npz."""
    if data != "clinc150":
        return data
    from models.text import CLINC_VOCAB, Vocab, clinc_arrays, write_npz

    path = work / "clinc150_train.npz"
    if not path.is_file():
        vocab = Vocab.load(CLINC_VOCAB)
        write_npz(path, *clinc_arrays(DATA, "train", vocab), vocab.classes)
    return str(path)


def decomposed(model: str, data: str, align: str, work: Path) -> Path:
    out = work / f"{Path(model).stem}_align{align}"
    if not (out / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "onnxdecomp.cli", "decompose", model, "--data",
                        data, "-o", str(out), "--align", align], check=True, cwd=ROOT,
                       capture_output=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "onnxdecomp-latency"))
    args = ap.parse_args()
    settings = [(64, 1)] if args.quick else [(b, t) for b in (1, 32, 64, 256) for t in (1, None)]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    setup = (f"ONNX Runtime on {args.device} ({platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores), {date.today()}")
    out = RESULTS / ("latency_quick.json" if args.quick else "latency.json")
    res = {"setup": setup, "runs": args.runs, "models": {}}
    if out.is_file():  # a run of some models adds to the others'
        res["models"] = json.loads(out.read_text()).get("models", {})
    for name in args.models.split(","):
        model, data = MODELS[name]
        if not Path(model).exists() and not (ROOT / model).exists():
            print(f"skip {name}: {model} not found", file=sys.stderr)
            continue
        data = data_spec(data, work)
        r = Runner(model, device="cpu")
        x = fit_to_input(load_data(data, "test", limit=256), r.input.shape, r.input.dtype).x
        parent_macs = model_stats(model).macs
        # The parent as the tool writes it (normalised: e.g. GroupNormalization as an
        # InstanceNormalization): how much of a module's speed is the rewrite, not the pruning.
        normalised = work / f"{name}_normalised.onnx"
        normalised.write_bytes(scores_model(model).SerializeToString())
        entries = [("parent", model, 1.0),
                   ("parent normalised", str(normalised), model_stats(normalised).macs /
                    parent_macs)]
        for align in ("auto", "1"):
            folder = decomposed(model, data, align, work)
            manifest = json.loads((folder / "manifest.json").read_text())
            entries += [(f"module {m['class_index']} align {align}", str(folder / m["file"]),
                         m["macs_fraction"]) for m in manifest["modules"]]
            if not args.quick and align == "auto":
                files = sorted(folder.glob("class_*.onnx"))
                for mode, chosen in (("union 0,1", files[:2]), ("parallel all", files)):
                    proto = link(chosen, mode="auto" if mode.startswith("union") else
                                 "parallel", device="cpu").proto
                    path = work / f"{name}_{mode.split()[0]}.onnx"
                    path.write_bytes(proto.SerializeToString())
                    entries.append((mode, str(path), model_stats(proto).macs / parent_macs))
        rows = []
        for label, path, macs in entries:
            for batch, threads in settings:
                t = timing(path, x, batch, threads, args.runs, args.device)
                row = {"what": label, "macs_fraction": round(macs, 4), **t}
                # timed back to back with the parent: a slow spell of a shared machine
                # slows both (a parent timed once carried its moment into every ratio)
                fixed = Runner(model, device="cpu").input.fixed_batch
                row["latency_fraction"] = 1.0 if label == "parent" else None if \
                    fixed not in (None, t["batch"]) else round(paired_ratio(
                        path, model, x, t["batch"], threads, args.runs, args.device), 4)
                rows.append(row)
                print(name, json.dumps(row), flush=True)
        res["models"][name] = {"model": model, "parent_macs": parent_macs, "rows": rows,
                               "setup": setup,
                               "command": "python -m benchmarks.latency " + " ".join(sys.argv[1:])}
        RESULTS.mkdir(parents=True, exist_ok=True)
        res["command"] = "python -m benchmarks.latency" + (" --quick" if args.quick else "")
        out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
