"""Fingerprint of what the tool emits: the sha256 of every module that `decompose` writes
for the zoo models (and the third-party CNTK model) under several settings, the linked
model of each, and its test top-1. Run it before and after a refactor that must not change
behaviour; `--compare` says which files differ.

    python -m benchmarks.module_hashes --out /tmp/before.json
    ... change the code ...
    python -m benchmarks.module_hashes --out /tmp/after.json --compare /tmp/before.json

Each file records the commit it ran on; with ``--compare`` it also records the comparison
(``benchmarks/results/hashes_*.json`` are shown by ``benchmarks.report``). It drives the
public command line only (`onnxdecomp decompose / link / eval --json`), so it keeps working
whatever the package layout. Cases whose data is absent are skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"

# (name, model, data, extra decompose flags)
CASES = [
    ("digits-default", "models/cnn_digits.onnx", "sklearn:digits", []),
    ("digits-macs-seq", "models/cnn_digits.onnx", "sklearn:digits",
     ["--macs", "0.5", "--compensation", "sequential"]),
    ("digits-keep-mean", "models/cnn_digits.onnx", "sklearn:digits",
     ["--keep", "0.6", "--compensation", "mean"]),
    ("lenet5-default", "models/lenet5_mnist.onnx", "mnist", []),
    ("lenet5-logodds", "models/lenet5_mnist.onnx", "mnist",
     ["--keep", "0.6", "--criterion", "logodds"]),
    ("lenet5-activation-none", "models/lenet5_mnist.onnx", "mnist",
     ["--keep", "0.6", "--criterion", "activation", "--compensation", "none"]),
    ("lenet5-random", "models/lenet5_mnist.onnx", "mnist",
     ["--keep", "0.6", "--criterion", "random"]),
    ("mlp1_fmnist-default", "models/mlp1_fmnist.onnx", "fashion-mnist", []),
    ("mlp1_mnist-default", "models/mlp1_mnist.onnx", "mnist", []),
    ("mlp4_fmnist-default", "models/mlp4_fmnist.onnx", "fashion-mnist", []),
    ("mlp4_mnist-default", "models/mlp4_mnist.onnx", "mnist", []),
    ("resnet8-default", "models/resnet8_fmnist.onnx", "fashion-mnist", []),
    ("resnet8-macs", "models/resnet8_fmnist.onnx", "fashion-mnist", ["--macs", "0.5"]),
    ("resnet8-seq", "models/resnet8_fmnist.onnx", "fashion-mnist",
     ["--keep", "0.6", "--compensation", "sequential", "--limit", "300", "--classes", "0,3"]),
    ("resnet20-default", "models/resnet20_cifar10.onnx",
     "cifar10-jpg/cifar10-jpg-q75.tar.gz", []),
    ("cntk-default", "onnx-third-party/mnist-cntk.onnx", "mnist", []),
]


def _run(args: list[str]) -> dict:
    res = subprocess.run([sys.executable, "-m", "onnxdecomp.cli", *args, "--json"],
                         cwd=ROOT, capture_output=True, text=True)
    if res.returncode not in (0, 1) or not res.stdout.strip():
        raise SystemExit(f"failed: onnxdecomp {' '.join(args)}\n{res.stderr}")
    return json.loads(res.stdout)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(name: str, model: str, data: str, flags: list[str], eval_limit: int) -> dict:
    spec = data if data.startswith("sklearn:") else str(DATA / data)
    model_path = model if model.startswith("models/") else str(DATA / model)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m"
        man = _run(["decompose", model_path, "--data", spec, "-o", str(out), *flags])
        files = sorted(out.glob("class_*.onnx"))
        linked = Path(tmp) / "linked.onnx"
        _run(["link", *map(str, files), "-o", str(linked), "--mode", "parallel"])
        # A class subset has no labels of its own to be evaluated on.
        ev = {"top1": None} if "--classes" in flags else _run(
            ["eval", str(linked), "--data", spec, "--limit", str(eval_limit)])
        return {
            "modules": {f.name: _sha(f) for f in files},
            "linked": _sha(linked),
            "linked_top1": ev["top1"],
            "mean_macs": round(sum(m["macs_fraction"] for m in man["modules"])
                               / len(man["modules"]), 4),
            "passed": man["passed"],
        }


def _commit() -> str:
    res = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                         capture_output=True, text=True)
    return res.stdout.strip() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file to write the fingerprints to.")
    ap.add_argument("--compare", help="An earlier --out file: list what differs.")
    ap.add_argument("--only", help="Comma-separated case names.")
    ap.add_argument("--eval-limit", type=int, default=2000)
    args = ap.parse_args()
    wanted = set(args.only.split(",")) if args.only else None
    record = {"commit": _commit(), "command": "python -m benchmarks.module_hashes "
              + " ".join(sys.argv[1:]), "cases": {}}
    result = record["cases"]
    for name, model, data, flags in CASES:
        if wanted and name not in wanted:
            continue
        needs = [p for p in (model, data) if not p.startswith(("models/", "sklearn:"))]
        if any(not (DATA / p).exists() for p in needs):
            print(f"skip {name}: {DATA} lacks {needs}", file=sys.stderr)
            continue
        result[name] = fingerprint(name, model, data, flags, args.eval_limit)
        r = result[name]
        top1 = "-" if r["linked_top1"] is None else f"{100 * r['linked_top1']:.2f}%"
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")  # after each case
        print(f"{name:<24} {len(r['modules'])} modules  MACs {100 * r['mean_macs']:5.1f}%  "
              f"linked top-1 {top1}", file=sys.stderr)
    if not args.compare:
        return
    baseline = json.loads(Path(args.compare).read_text())
    before = baseline["cases"]
    differ = 0
    compared = record["comparison"] = {"against": baseline["commit"], "cases": {}}
    for name, r in result.items():
        b = before.get(name)
        if b is None:
            continue
        bad = [f for f, h in r["modules"].items() if b["modules"].get(f) != h]
        if r["linked"] != b["linked"]:
            bad.append("linked.onnx")
        same_top1 = r["linked_top1"] == b["linked_top1"]
        differ += bool(bad) or not same_top1
        compared["cases"][name] = {"modules": len(r["modules"]), "differ": bad,
                                   "same_top1": same_top1}
        top1 = "" if same_top1 else f"; top-1 {b['linked_top1']} -> {r['linked_top1']}"
        print(f"{name:<24} {'identical' if not bad else 'DIFFER: ' + ', '.join(bad)}{top1}")
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"{'PASSED' if not differ else 'FAILED'} | {len(compared['cases']) - differ} of "
          f"{len(compared['cases'])} cases byte-identical")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
