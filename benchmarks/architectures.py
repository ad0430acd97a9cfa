"""torchvision's and timm's classifiers through the tool: exported, exact, smaller.

Each architecture is built by torchvision (or timm) with 5 classes and its initial weights
(BatchNorm statistics drawn at random, so that folding them is not the identity), exported by
TorchScript (opsets 17 and 11) and by dynamo, then decomposed from 60 random images: the
module of class 0 with nothing pruned must give the parent's log-odds to 1e-5 (the largest
difference is reported), the module at keep 0.5 must pass the full checker and run; its
MACs and parameters are reported as fractions of the parent's. Random weights say nothing
of accuracy: this measures what the tool reads, not how well it prunes. The zoo's trained
models are in the other sections.

torchvision and timm are not dependencies of the project (`pip install torchvision timm`;
the torch they are built for): without torchvision the script says so and writes nothing;
without timm it measures torchvision's alone. A row that ends in an error shows the tool's
one-line message: what it cannot read yet.

    python -m benchmarks.architectures [--models resnet18,swin_t] [--exporters dynamo]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
import warnings
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from benchmarks.common import command, write_result

# name: (constructor options, input size); sizes small enough for a 2-core machine.
ARCHITECTURES = {
    "resnet18": ({}, 64), "mobilenet_v3_small": ({}, 64), "efficientnet_b0": ({}, 64),
    "regnet_y_400mf": ({}, 64), "squeezenet1_1": ({}, 64), "shufflenet_v2_x0_5": ({}, 64),
    "mnasnet0_5": ({}, 64), "googlenet": ({"aux_logits": False, "init_weights": True}, 64),
    "densenet121": ({}, 64), "convnext_tiny": ({}, 64), "swin_t": ({}, 64),
}
# timm: architectures beyond torchvision's (re-parameterised blocks, patch unfolding, pooling
# mixers, selective kernels), at 64 pixels.
TIMM = ("mobilevit_xxs", "fastvit_t8", "mobileone_s0", "repvgg_a0", "ghostnet_050",
        "lcnet_050", "edgenext_xx_small", "poolformer_s12", "inception_next_atto",
        "hgnetv2_b0", "mobilenetv4_conv_small", "efficientvit_b0", "skresnet18")
EXPORTERS = ("torchscript", "torchscript-11", "dynamo")


def build(name: str):
    import torch
    import torchvision.models as tvm

    torch.manual_seed(0)
    if name.startswith("timm/"):
        import timm

        kwargs, size = {}, 64
        net = timm.create_model(name[5:], num_classes=5, pretrained=False)
    else:
        kwargs, size = ARCHITECTURES[name]
        net = getattr(tvm, name)(num_classes=5, **kwargs)
    from models.nets import random_batchnorm

    random_batchnorm(net)
    return net.eval(), size


def export(net, x: np.ndarray, exporter: str, path: Path) -> None:
    import torch

    kind, _, opset = exporter.partition("-")
    sample = torch.from_numpy(x[:2])
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        if kind == "torchscript":
            torch.onnx.export(net, (sample,), str(path), dynamo=False,
                              opset_version=int(opset or 17), input_names=["input"],
                              output_names=["logits"],
                              dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
        else:
            torch.onnx.export(net, (sample,), str(path), dynamo=True, external_data=False,
                              opset_version=18, input_names=["input"],
                              output_names=["logits"],
                              dynamic_shapes=({0: torch.export.Dim("N", min=1)},))


def measure(name: str, exporter: str, work: Path) -> dict:
    from onnxdecomp.decompose import Decomposer, Settings
    from onnxdecomp.decompose.head import logodds_from_logits
    from onnxdecomp.errors import OnnxDecompError
    from onnxdecomp.runtime import Runner
    from onnxdecomp.stats import model_stats

    net, size = build(name)
    x = np.random.default_rng(0).normal(size=(60, 3, size, size)).astype(np.float32)
    row = {"model": name, "exporter": exporter, "input": [3, size, size]}
    path = work / f"{name.replace('/', '-')}-{exporter}.onnx"
    t0 = time.perf_counter()
    try:
        export(net, x, exporter, path)
    except Exception as exc:  # noqa: BLE001 - the exporter's failure, not the tool's
        return row | {"status": "not exported", "detail": str(exc).splitlines()[0][:200]}
    try:
        dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
        full = dec.build(0, 1.0, check=True).proto
        parent = logodds_from_logits(Runner(path, device="cpu").run(x[:50])[0])[:, 0]
        diff = float(np.abs(Runner(full, device="cpu").run(x[:50])[0][:, 0] - parent).max())
        half = dec.build(0, 0.5, check=True)
        Runner(half.proto, device="cpu").run(x[:3])
        parent_stats, half_stats = model_stats(path), model_stats(half.proto)
    except OnnxDecompError as exc:
        return row | {"status": "error", "detail": str(exc).splitlines()[0][:300]}
    return row | {
        "status": "exact" if diff <= 1e-5 * max(1.0, float(np.abs(parent).max())) else "differs",
        "max_abs_diff": diff, "parent_max": float(np.abs(parent).max()),
        "parent_macs": parent_stats.macs,
        "macs": half_stats.macs / parent_stats.macs,
        "params": half_stats.params / parent_stats.params,
        "seconds": round(time.perf_counter() - t0, 1)}


def report_section(res: dict) -> str:
    """The markdown of ``results/architectures.json`` for ``benchmarks.report``."""
    out = [f"\n## torchvision and timm architectures\n\n`{res['command']}` (torch "
           f"{res['torch']}, torchvision {res['torchvision']}, timm {res.get('timm')}, "
           f"{res['date']}): random weights, 5 classes; "
           "exact = the module with nothing pruned gives the parent's log-odds to 1e-5, "
           "relative where they exceed 1 (largest difference shown, with the largest "
           "log-odds beside it where that is over 1e3: random weights without "
           "normalisation layers, as MobileOne's training form, give huge ones); MACs and "
           "params of the module at keep 0.5, as a share of the parent's.\n\n"]
    for u in res.get("updates", []):  # rows measured again after a fix, by their command
        out.append(f"Re-measured on {u['date']} ({u['why']}): `{u['command']}`.\n\n")
    out.append("| model | exporter | input | status | max diff | MACs | params | s |\n"
               "|---|---|---|---|---|---|---|---|\n")
    for r in res["rows"]:
        size = "x".join(map(str, r["input"]))
        if "macs" in r:
            scale = f" of {r['parent_max']:.1e}" if r.get("parent_max", 0) > 1e3 else ""
            out.append(f"| {r['model']} | {r['exporter']} | {size} | {r['status']} | "
                       f"{r['max_abs_diff']:.1e}{scale} | {100 * r['macs']:.1f}% | "
                       f"{100 * r['params']:.1f}% | {r['seconds']:.0f} |\n")
        else:
            out.append(f"| {r['model']} | {r['exporter']} | {size} | {r['status']}: "
                       f"{r['detail']} | - | - | - | - |\n")
    return "".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(ARCHITECTURES) + "," + ",".join(
        f"timm/{m}" for m in TIMM), help="torchvision names; timm's as timm/NAME")
    ap.add_argument("--exporters", default=",".join(EXPORTERS))
    ap.add_argument("--name", default="architectures")
    args = ap.parse_args()
    try:
        import torch
        import torchvision
    except ImportError:
        print("torchvision is not installed (pip install torchvision): nothing measured")
        return
    try:
        import timm
    except ImportError:
        timm = None
        print("timm is not installed: its models are left out")
    rows = []
    with TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if name.startswith("timm/") and timm is None:
                continue
            for exporter in args.exporters.split(","):
                row = measure(name, exporter, Path(tmp))
                rows.append(row)
                print(row, flush=True)
    res = {"command": command("architectures", args), "torch": torch.__version__,
           "torchvision": torchvision.__version__,
           "timm": getattr(timm, "__version__", None), "date": time.strftime("%Y-%m-%d"),
           "rows": rows}
    write_result(args.name, res)
    print(report_section(res))


if __name__ == "__main__":
    main()
