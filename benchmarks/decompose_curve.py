"""Top-1 loss of all modules linked back in parallel, against mean module MACs.

For each criterion and keep ratio, every class's module is built from one profile of the
parent, the modules are linked with ``link_parallel`` (each module on its own, as the
papers measure) and the linked model is evaluated on the test split. One more row runs the
default fidelity-tuned decomposition; ``--budgets`` adds rows whose per-class keep ratios
are shared out under a mean-MACs budget (``--macs``). Results go to
``benchmarks/results/NAME.json``; a markdown table is printed.

    python -m benchmarks.decompose_curve --model models/lenet5_mnist.onnx \
        --data ../shared/data/mnist --calib 1000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.common import command, write_result
from onnxdecomp.data import fit_to_input, load_data
from onnxdecomp.decompose import Decomposer, Settings, kernel_fraction
from onnxdecomp.link import link_parallel
from onnxdecomp.runtime import Runner
from onnxdecomp.stats import classification_report, model_stats


def evaluate_linked(protos, x, y) -> dict:
    linked = link_parallel(protos)
    scores = Runner(linked, device="cpu").run(x)[0]
    rep = classification_report(scores, y)
    return {"top1": rep["top1"], "top5": rep["top5"]}


def module_row(dec: Decomposer, keep: float | str | None, criterion: str, compensation: str,
               x, y, parent_macs: int, parent_params: int) -> dict:
    """``keep``: a fixed ratio, None (fidelity-tuned) or "macs<=B" (a MACs budget)."""
    protos, macs, params, chans, kernels, fids, keeps = [], [], [], [], [], [], []
    t0 = time.perf_counter()
    allocated = {}
    if isinstance(keep, str):
        saved, dec.settings.compensation = dec.settings.compensation, compensation
        allocated = dec.allocate(list(range(dec.parent.num_classes)),
                                 float(keep.split("<=")[1]))
        dec.settings.compensation = saved
    for k in range(dec.parent.num_classes):
        if k in allocated:
            module = allocated[k]
        elif keep is None:  # the tuned default: the dec's own criterion and compensation
            module = dec.tune(k)
        else:
            module = dec.measure(dec.build(k, keep, criterion=criterion,
                                           compensation=compensation))
        fids.append(module.fidelity)
        st = model_stats(module.proto)
        protos.append(module.proto)
        macs.append(st.macs / parent_macs)
        params.append(st.params / parent_params)
        chans.append(1 - len(module.removed) / max(len(dec.clusters), 1))
        kernels.append(kernel_fraction(dec.parent.cg, module.removed))
        keeps.append(module.keep)
    build_s = time.perf_counter() - t0
    res = evaluate_linked(protos, x, y)
    return {
        "criterion": criterion, "compensation": compensation,
        "keep": keep if keep is not None else "tuned",
        "mean_keep": round(float(np.mean(keeps)), 3),
        "macs": round(float(np.mean(macs)), 4), "params": round(float(np.mean(params)), 4),
        "channels": round(float(np.mean(chans)), 4), "kernels": round(float(np.mean(kernels)), 4),
        "fidelity": round(float(np.mean(fids)), 4), **res, "build_seconds": round(build_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--calib", type=int, default=1000, help="calibration samples (train split)")
    ap.add_argument("--test-data", default=None,
                    help="test data when --data has no test split (an .npz: default --data)")
    ap.add_argument("--test-limit", type=int, default=None, help="test samples (default all)")
    ap.add_argument("--keeps", default="0.5,0.6,0.7,0.8,0.9")
    ap.add_argument("--criteria", default="refit,logodds,activation,random")
    ap.add_argument("--compensation", default="lstsq")
    ap.add_argument("--fidelity", type=float, default=None, help="also run the tuned default")
    ap.add_argument("--budgets", default=None, help="also these mean-MACs budgets, e.g. 0.5,0.55")
    ap.add_argument("--name", default=None)
    ap.add_argument("--align", default="1", help="kept channel multiple; the curves recorded "
                    "before --align existed are align 1")
    ap.add_argument("--no-refine", action="store_true",
                    help="also a tuned row without the per-group aligned steps (refine.py)")
    ap.add_argument("--no-score-calibration", action="store_true",
                    help="modules keep their raw log-odds (decompose/calibrate.py)")
    args = ap.parse_args()

    runner = Runner(args.model, device="cpu")
    shape, dtype = runner.input.shape, runner.input.dtype
    calib = fit_to_input(load_data(args.data, "train", limit=args.calib), shape, dtype)
    test = fit_to_input(load_data(args.test_data or args.data, "test", limit=args.test_limit),
                        shape, dtype)
    parent_rep = classification_report(runner.run(test.x)[0], test.y)
    align = args.align if args.align == "auto" else int(args.align)
    # The tuned row refits as the first --compensation says.
    comp = args.compensation.split(",")[0]
    settings = Settings(align=align, compensation=comp,
                        calibrate_score=not args.no_score_calibration)
    if args.fidelity is not None:
        settings.fidelity = args.fidelity
    t0 = time.perf_counter()
    dec = Decomposer(args.model, calib.x, calib.y, settings)
    setup_s = time.perf_counter() - t0
    pm, pp = dec.parent.macs, dec.parent.params
    rows = []

    def add(keep, criterion: str, comp: str, **extra) -> None:
        row = module_row(dec, keep, criterion, comp, test.x, test.y, pm, pp)
        row.update(extra)
        row["loss_pp"] = round(100 * (parent_rep["top1"] - row["top1"]), 2)
        row["top5_loss_pp"] = round(100 * (parent_rep["top5"] - row["top5"]), 2)
        rows.append(row)
        print(json.dumps(row), flush=True)

    comps = args.compensation.split(",")
    for criterion in args.criteria.split(","):
        for keep in [float(v) for v in args.keeps.split(",") if v]:
            for comp in comps:
                add(keep, criterion, comp)
    if args.fidelity is not None:
        add(None, settings.criterion, settings.compensation, fidelity_target=args.fidelity)
        if args.no_refine:
            saved, dec.settings.refine = dec.settings.refine, False
            add(None, settings.criterion, settings.compensation, fidelity_target=args.fidelity,
                refine=False)
            dec.settings.refine = saved
    for budget in [float(v) for v in args.budgets.split(",")] if args.budgets else []:
        for comp in comps:
            add(f"macs<={budget}", settings.criterion, comp)
    name = args.name or Path(args.model).stem
    out = {
        "model": args.model, "data": args.data, "calibration": calib.source,
        "test": test.source, "parent_top1": parent_rep["top1"], "parent_top5": parent_rep["top5"],
        "parent_macs": pm, "parent_params": pp, "setup_seconds": round(setup_s, 1),
        "command": command("decompose_curve", args),
        "rows": rows,
    }
    write_result(name, out)
    print(f"\n{name}: parent top-1 {100 * parent_rep['top1']:.2f}%  ({test.source})")
    print("| criterion | keep | MACs | params | channels | kernels | fidelity | top-1 loss pp"
          " | top-5 loss pp |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['criterion']} | {r['keep']} | {100 * r['macs']:.1f}% | "
              f"{100 * r['params']:.1f}% | {100 * r['channels']:.1f}% | "
              f"{100 * r['kernels']:.1f}% | {r['fidelity']:.4f} | {r['loss_pp']:.2f} | "
              f"{r['top5_loss_pp']:.2f} |")


if __name__ == "__main__":
    main()
