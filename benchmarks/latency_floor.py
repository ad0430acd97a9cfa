"""The latency floor of a model's modules: the thinnest module it allows (one unit, or one
aligned step, per channel group) against the parent, beside its default modules.

No module can run faster than the floor, so where the floor is a large share of the
parent's time, the latency gate (module latency / parent latency <= 1.3x the module's MACs
share) cannot hold for modules below floor / 1.3 of the MACs, however they are pruned.
ONNX Runtime CPU, 1 thread, batch 64; ratios are medians of ``--runs`` pairs timed back to
back (``latency.paired_ratio``).

    python -m benchmarks.latency_floor [--models cnn_digits,lenet5_mnist] [--classes 0,3,7]
"""

from __future__ import annotations

import argparse
import platform
from datetime import date

from benchmarks.common import command, write_result
from benchmarks.latency import MODELS, paired_ratio
from onnxdecomp.data import fit_to_input, load_data
from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.runtime import Runner
from onnxdecomp.stats import model_stats

THINNEST = 1e-4  # keep ratio: every group keeps one unit (its aligned step under auto)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="cnn_digits,lenet5_mnist")
    ap.add_argument("--classes", default="0,3,7")
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    out = {"setup": f"ONNX Runtime CPU ({platform.machine()}), 1 thread, batch 64, "
                    f"--align auto, {date.today()}",
           "command": command("latency_floor", args), "models": {}}
    for name in args.models.split(","):
        model, data = MODELS[name]
        runner = Runner(model, device="cpu")
        calib = fit_to_input(load_data(data, "train", limit=1000), runner.input.shape,
                             runner.input.dtype)
        dec = Decomposer(model, calib.x, calib.y, Settings(align="auto"))
        rows = []
        for k in (int(c) for c in args.classes.split(",")):
            for what, module in (("thinnest", dec.build(k, THINNEST)), ("default", dec.tune(k))):
                macs = model_stats(module.proto).macs / dec.parent.macs
                latency = paired_ratio(module.proto, model, calib.x[:64], 64, 1, args.runs,
                                       "cpu")
                rows.append({"class": k, "module": what, "macs_fraction": round(macs, 4),
                             "latency_fraction": round(latency, 4),
                             "ratio": round(latency / macs, 2)})
                print(name, rows[-1], flush=True)
        floor = min(r["latency_fraction"] for r in rows if r["module"] == "thinnest")
        out["models"][name] = {"model": model, "rows": rows, "floor": floor,
                               "smallest_macs_share_meeting_1_3": round(floor / 1.3, 3)}
    write_result("latency_floor", out)
    print(report_section(out))


def report_section(res: dict) -> str:
    """The benchmarks README's section: each model's floor and what the gate then needs."""
    out = [f"\n## The latency floor of small CNNs' modules\n\n`{res['command']}`\n\n"
           f"{res['setup']}. The thinnest module (every channel group at one unit or one "
           "aligned step) against the parent, beside the default modules. No module runs "
           "faster than the floor, so a module under floor / 1.3 of the parent's MACs cannot "
           "meet the gate (latency share <= 1.3x MACs share) however it is pruned.\n\n"
           "| model | floor (latency share) | MACs share the gate then needs | module | class "
           "| MACs | latency | latency / MACs |\n|---|---|---|---|---|---|---|---|\n"]
    for name, m in res["models"].items():
        for r in m["rows"]:
            out.append(f"| {name} | {100 * m['floor']:.1f}% | >= "
                       f"{100 * m['smallest_macs_share_meeting_1_3']:.1f}% | {r['module']} | "
                       f"{r['class']} | {100 * r['macs_fraction']:.1f}% | "
                       f"{100 * r['latency_fraction']:.1f}% | {r['ratio']:.2f} |\n")
    return "".join(out)


if __name__ == "__main__":
    main()
