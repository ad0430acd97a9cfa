"""Quantised parents: zoo models quantised by ONNX Runtime (``quantize_dynamic``, and
``quantize_static`` in QDQ and QOperator form), decomposed with `onnxdecomp decompose`'s
defaults, all modules linked back with `link --mode parallel`, top-1 on the full test split
against the quantised parent's (and the float model's). Module file size against the
parent's: the modules keep integer weights.

    python -m benchmarks.quantized [--only lenet5_mnist-dynamic,...]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from benchmarks.link_models import DATA, RESULTS, WORK, modules_of, test_split, top1
from onnxdecomp import link
from onnxdecomp.data import fit_to_input, load_data
from onnxdecomp.decompose.manifest import read_manifest
from onnxdecomp.runtime import Runner

MNIST = str(DATA / "mnist")
# (model, quantisation, calibration data, the ops quantize_dynamic may rewrite)
CASES = [
    ("mlp4_mnist", "dynamic", MNIST, ["MatMul", "Gemm"]),
    ("lenet5_mnist", "dynamic", MNIST, ["Conv", "MatMul", "Gemm"]),
    ("lenet5_mnist", "QDQ", MNIST, None),
    ("lenet5_mnist", "QOperator", MNIST, None),
    ("clinc_lstm", "dynamic", "clinc", ["LSTM", "MatMul", "Gemm"]),
]
STATIC_CALIBRATION = 200  # training images for quantize_static's activation ranges


def clinc_data() -> tuple[str, np.ndarray, np.ndarray]:
    """The CLINC150 training split as an .npz (decompose's data) and the test arrays."""
    from models.text import CLINC_VOCAB, Vocab, clinc_arrays, write_npz

    vocab = Vocab.load(CLINC_VOCAB)
    train = WORK / "clinc150_train.npz"
    if not train.is_file():
        write_npz(train, *clinc_arrays(DATA, "train", vocab), vocab.classes)
    x, y = clinc_arrays(DATA, "test", vocab)
    return str(train), x, y


def quantise(model: str, form: str, data: str, ops: list[str] | None) -> str:
    """The quantised copy of ``model`` under WORK (made once)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    out = WORK / f"{Path(model).stem}_{form}.onnx"
    if out.is_file():
        return str(out)
    if form == "dynamic":
        quantize_dynamic(model, str(out), weight_type=QuantType.QInt8,
                         op_types_to_quantize=ops)
        return str(out)
    r = Runner(model, device="cpu")
    x = fit_to_input(load_data(data, "train", limit=STATIC_CALIBRATION), r.input.shape,
                     r.input.dtype).x

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{r.input.name: x[i:i + 50]} for i in range(0, len(x), 50)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(model, str(out), Reader(), quant_format=getattr(QuantFormat, form),
                    per_channel=True)
    return str(out)


def run_case(name: str, form: str, data: str, ops: list[str] | None) -> dict:
    model = f"models/{name}.onnx"
    if data == "clinc":
        data, x, y = clinc_data()
    else:
        x, y = test_split(data, model)
    quantised = quantise(model, form, data, ops)
    folder = modules_of(quantised, data)
    manifest = read_manifest(folder / "manifest.json")
    modules = manifest["modules"]
    linked = link([folder], mode="parallel", device="cpu").proto
    sizes = [os.path.getsize(folder / m["file"]) for m in modules]
    parent_q = top1(quantised, x, y)
    linked_top1 = top1(linked, x, y)
    return {"model": name, "quantisation": form, "quantised_ops": ops,
            "float_top1": top1(model, x, y), "parent_top1": parent_q,
            "linked_top1": linked_top1, "loss_pp": round(100 * (parent_q - linked_top1), 2),
            "mean_macs": round(float(np.mean([m["macs_fraction"] for m in modules])), 4),
            "module_kb": round(float(np.mean(sizes)) / 1024, 1),
            "parent_kb": round(os.path.getsize(quantised) / 1024, 1),
            "modules": len(modules), "test_samples": int(len(y)),
            "timing_seconds": manifest.get("timing_seconds")}


def report_section(res: dict) -> str:
    """The benchmarks README's section on quantised parents."""
    out = [f"\n## Quantised parents\n\n`{res['command']}`: zoo models quantised by ONNX "
           "Runtime (`quantize_dynamic(..., weight_type=QInt8)` on the ops listed, or "
           "`quantize_static(..., per_channel=True)` on "
           f"{res['static_calibration_images']} training images in QDQ or QOperator form), "
           "`decompose` with its defaults, all modules linked back with `link --mode "
           "parallel`; loss against the quantised parent on the full test split. Module "
           "size: mean file size, integer weights kept.\n\n| model | quantisation | float "
           "top-1 | quantised top-1 | linked top-1 | loss pp | mean MACs | module / parent "
           "KB |\n|---|---|---|---|---|---|---|---|\n"]
    for r in res["rows"]:
        how = r["quantisation"] + (f" ({', '.join(r['quantised_ops'])})"
                                   if r.get("quantised_ops") else "")
        out.append(f"| {r['model']} | {how} | {100 * r['float_top1']:.2f}% | "
                   f"{100 * r['parent_top1']:.2f}% | {100 * r['linked_top1']:.2f}% | "
                   f"{r['loss_pp']:.2f} | {100 * r['mean_macs']:.1f}% | "
                   f"{r['module_kb']:.0f} / {r['parent_kb']:.0f} |\n")
    return "".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated MODEL-FORM cases")
    args = ap.parse_args()
    only = {s for s in args.only.split(",") if s}
    WORK.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "quantized.json"
    rows = json.loads(path.read_text())["rows"] if path.is_file() and only else []
    for name, form, data, ops in CASES:
        key = f"{name}-{form}"
        if only and key not in only:
            continue
        row = run_case(name, form, data, ops)
        print(json.dumps(row), flush=True)
        rows = [r for r in rows if f"{r['model']}-{r['quantisation']}" != key] + [row]
    out = {"command": "python -m benchmarks.quantized", "rows": rows,
           "static_calibration_images": STATIC_CALIBRATION}
    path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
