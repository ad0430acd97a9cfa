"""Write benchmarks/README.md (tables, gate checks) and one plot per model from results/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
GATE_MACS, GATE_LOSS = 0.57, 2.9  # CNNSplitter: 57% kernels kept, 2.89 pp composed loss


def is_budget(row: dict) -> bool:
    """A row whose keep ratios were shared out under a mean-MACs budget (``--macs``)."""
    return str(row["keep"]).startswith("macs<=")


def is_fixed(row: dict) -> bool:
    return row["keep"] != "tuned" and not is_budget(row)


def plot(name: str, res: dict) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for crit in dict.fromkeys(r["criterion"] for r in res["rows"] if is_fixed(r)):
        rows = sorted((r for r in res["rows"] if r["criterion"] == crit and is_fixed(r)),
                      key=lambda r: r["macs"])
        ax.plot([100 * r["macs"] for r in rows], [r["loss_pp"] for r in rows], "o-", label=crit)
    budget = sorted((r for r in res["rows"] if is_budget(r)), key=lambda r: r["macs"])
    if budget:
        ax.plot([100 * r["macs"] for r in budget], [r["loss_pp"] for r in budget], "s--",
                label="refit, --macs budget")
    for r in res["rows"]:
        if r["keep"] == "tuned":
            ax.plot(100 * r["macs"], r["loss_pp"], "k*", ms=12, label="default (tuned)")
    ax.axvline(100 * GATE_MACS, color="grey", ls=":", lw=1)
    ax.axhline(GATE_LOSS, color="grey", ls=":", lw=1)
    ax.set_xlabel("mean module MACs, % of parent")
    ax.set_ylabel("top-1 loss, pp (all modules linked)")
    ax.set_title(name, fontsize=9)
    ax.set_yscale("symlog", linthresh=1.0)  # the region that matters is below a few pp
    ticks = [t for t in (0, 0.5, 1, 2, 5, 10, 20, 50) if t <= max(
        [r["loss_pp"] for r in res["rows"]] + [GATE_LOSS]) * 1.2]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def reuse_section(name: str, res: dict) -> str:
    """Sub-task reuse by union linking, by subset size, against the issue's gates."""
    rows = res["rows"]
    sizes = sorted({r["size"] for r in rows})
    out = [f"\n### {name[len('reuse_'):]}\n\n`{res['command']}`\n\n"
           f"Compensation `{res['compensation']}`, fidelity target {res['fidelity']}; parent "
           f"{res['parent_macs']:,} MACs, {res['parent_latency_ms']} ms per batch of 64 "
           f"({res['latency_setup']}).{' ' + res['rows_note'] if 'rows_note' in res else ''}"
           "\n\n| size | subsets | mean loss pp | max loss pp | mean MACs | max MACs | mean "
           "latency | mean keep | mean build s |\n|---|---|---|---|---|---|---|---|---|\n"]
    for size in sizes:
        rs = [r for r in rows if r["size"] == size]

        def mean(key: str, rs: list[dict] = rs) -> float:
            return float(np.mean([r[key] for r in rs]))

        out.append(f"| {size} | {len(rs)} | {mean('loss_pp'):.2f} | "
                   f"{max(r['loss_pp'] for r in rs):.2f} | {100 * mean('macs'):.1f}% | "
                   f"{100 * max(r['macs'] for r in rs):.1f}% | {100 * mean('latency'):.1f}% | "
                   f"{mean('keep'):.2f} | {mean('build_seconds'):.1f} |\n")
    by_size = {size: [r for r in rows if r["size"] == size] for size in sizes}
    worst = max(float(np.mean([r["loss_pp"] for r in rs])) for rs in by_size.values())
    pairs = by_size.get(2, [])
    pair_macs = float(np.mean([r["macs"] for r in pairs])) if pairs else float("nan")
    over = [r for r in rows if r["macs"] > 1.0]
    out.append(f"\nGates: mean loss <= 0.5 pp at every size: worst size {worst:.2f} pp "
               f"({'met' if worst <= 0.5 else 'not met'}); 2-class models at <= 40% MACs: "
               f"mean {100 * pair_macs:.1f}% ({'met' if pair_macs <= 0.4 else 'not met'}); "
               f"no subset above the parent's MACs: {'met' if not over else 'not met'}.\n")
    return "".join(out)


def linking_sections() -> str:
    """Sub-task reuse, linking across data sets, replacement and patching."""
    out = []
    reuse = sorted(RESULTS.glob("reuse_*.json"))
    if reuse:
        out.append("\n## Sub-task reuse (union linking)\n\nEach subset's union (`onnxdecomp "
                   "link` defaults) on the test samples of its classes; loss = parent "
                   "restricted to the subset's logits minus the union; MACs and latency as "
                   "fractions of the parent's.\n")
        out += [reuse_section(p.stem, json.loads(p.read_text())) for p in reuse]
    titles = {"link_cross.json": "Linking across data sets",
              "link_unlabelled.json": "Linking across data sets from unlabelled data "
              "(npz without `y`: decompositions, unions and combiners learn from the "
              "parents' decisions; held-out accuracy is agreement with them)"}
    for file, title in titles.items():
        if not (RESULTS / file).is_file():
            continue
        res = json.loads((RESULTS / file).read_text())
        out.append(f"\n## {title}\n\n`{res['command']}`\n")
        for key, r in res.items():
            if key == "command":
                continue
            out.append(f"\n### {key}: {r['first']} + {r['second']}\n\nParents "
                       f"{100 * r['parents_top1']['first']:.2f}% and "
                       f"{100 * r['parents_top1']['second']:.2f}% on their own test sets "
                       f"(mean {100 * r['parents_mean']:.2f}%); linked model evaluated on both "
                       f"test sets together ({r['test_samples']:,} samples).\n\n"
                       "| combiner | chosen | top-1 | loss pp | MACs | held-out calibration "
                       f"accuracy ({', '.join(next(iter(r['combiners'].values()))['held_out'])})"
                       " |\n|---|---|---|---|---|---|\n")
            for name, c in r["combiners"].items():
                held = ", ".join(f"{100 * v:.1f}%" for v in c["held_out"].values())
                out.append(f"| {name} | {c['chosen']} | {100 * c['top1']:.2f}% | "
                           f"{c['loss_pp']:.2f} | {c['macs']:,} | {held} |\n")
    rep = RESULTS / "link_replace.json"
    if rep.is_file():
        res = json.loads(rep.read_text())
        out.append(f"\n## Replacement and patching\n\n`{res['command']}`\n\n"
                   "| model | target class | precision | recall | F1 | non-target top-1 | "
                   "top-1 | combiner |\n|---|---|---|---|---|---|---|---|\n")
        for section, cls in (("replace", 5), ("patch", 6)):
            for name, r in res.get(section, {}).items():
                if not isinstance(r, dict):
                    continue
                out.append(f"| {section}: {name} | {cls} | {r['precision']:.3f} | "
                           f"{r['recall']:.3f} | {r['f1']:.3f} | "
                           f"{100 * r['non_target_top1']:.2f}% | {100 * r['top1']:.2f}% | "
                           f"{r.get('combiner') or '-'} |\n")
        own = res.get("replace", {}).get("own_module_loss_pp")
        if own:
            out.append(f"\nEach class of LeNet-5 replaced by its own module: loss "
                       f"{min(own):.2f} to {max(own):.2f} pp (mean {np.mean(own):.2f}).\n")
    return "".join(out)


def latency_section(res: dict, stem: str = "latency") -> str:
    """Module latency / parent latency against MACs share (batch 64, 1 thread), the gate of
    the deployment issue: worst ratio <= 1.3, median <= 1.15. ``stem``: the results file's
    name, which names the plot and, for a ``--quick`` run, the section."""
    title = "Latency against MACs" + (" (quick run)" if stem.endswith("quick") else "")
    out = [f"\n## {title}\n\n`{res['command']}`; {res['setup']}; p50 of "
           f"{res['runs']} runs.\n\n![latency](results/{stem}.png)\n\n"
           "Batch 64, 1 thread: module latency / parent latency divided by module MACs / "
           "parent MACs (1.0 = as fast as the MACs say). Normalised parent: the parent as the "
           "tool rewrites it before cutting (the form its modules are written in), its latency "
           "as a share of the parent's, and the worst module ratio against it.\n\n"
           "| model | align | modules | mean MACs | mean latency | median ratio | worst ratio "
           "| gate (worst <= 1.3, median <= 1.15) | normalised parent | worst ratio against it "
           "|\n|---|---|---|---|---|---|---|---|---|---|\n"]
    points = {}
    for name, m in res["models"].items():
        rows = [r for r in m["rows"] if r["batch"] == 64 and r["threads"] == 1]
        norm = next((r["latency_fraction"] for r in rows if r["what"] == "parent normalised"),
                    None)
        for align in ("auto", "1"):
            mods = [r for r in rows if r["what"].startswith("module") and
                    r["what"].endswith(f"align {align}") and r["latency_fraction"] is not None]
            if not mods:
                continue
            ratios = [r["latency_fraction"] / r["macs_fraction"] for r in mods]
            points[(name, align)] = [(r["macs_fraction"], r["latency_fraction"]) for r in mods]
            ok = max(ratios) <= 1.3 and float(np.median(ratios)) <= 1.15
            out.append(f"| {name} | {align} | {len(mods)} | "
                       f"{100 * np.mean([r['macs_fraction'] for r in mods]):.1f}% | "
                       f"{100 * np.mean([r['latency_fraction'] for r in mods]):.1f}% | "
                       f"{np.median(ratios):.2f} | {max(ratios):.2f} | "
                       f"{'met' if ok else 'not met'} | "
                       + (f"{100 * norm:.1f}% | {max(ratios) / norm:.2f} |\n" if norm else
                          "- | - |\n"))
    linked = [(name, r) for name, m in res["models"].items() for r in m["rows"]
              if r["what"] in ("union 0,1", "parallel all") and r["batch"] == 64 and
              r["threads"] == 1 and r["latency_fraction"] is not None]
    if linked:
        out.append("\n| model | linked | MACs | latency |\n|---|---|---|---|\n")
        out += [f"| {n} | {r['what']} | {100 * r['macs_fraction']:.1f}% | "
                f"{100 * r['latency_fraction']:.1f}% |\n" for n, r in linked]
    if points:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 5))
        for (name, align), pts in points.items():
            ax.scatter(*zip(*pts), s=14, marker="o" if align == "auto" else "x",
                       label=f"{name} align {align}")
        ax.plot([0, 1.2], [0, 1.2], "k--", lw=1, label="latency = MACs")
        ax.set_xlabel("module MACs / parent MACs")
        ax.set_ylabel("module latency / parent latency (batch 64, 1 thread)")
        ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(RESULTS / f"{stem}.png", dpi=110)
        plt.close(fig)
    return "".join(out)


def scale_section(res: dict) -> str:
    """Decomposition time split, peak memory and growth with data and classes."""
    out = [f"\n## Decomposition cost and scale\n\n`{res['command']}`; each run a fresh "
           "process, default settings, 2 cores. Ratio = the whole decomposition over one ONNX "
           "Runtime pass of the parent over the same calibration data.\n"]
    for key, title in (("zoo", "Zoo models, 1,000 calibration samples"),
                       ("recurrent", "Recurrent CLINC150 intent classifiers (150 classes), "
                        "1,000 calibration sentences"),
                       ("calib", "Growth with calibration samples"),
                       ("classes", "Growth with classes (LeNet-5 body, random K-class head)"),
                       ("classes_before", "The same before `Profile.gram` summed the per-class "
                        f"matrices once (recorded at {res.get('classes_before_commit')}, "
                        "possibly under other settings: the mean MACs differ; the grams of "
                        "both ways agree to 1e-16 relative): super-linear in the classes")):
        rows = res.get(key)
        if not rows:
            continue
        out.append(f"\n### {title}\n\n| model | samples | classes | total s | analysis | "
                   "profiling | pruning + tuning | writing | one ORT pass s | ratio | peak MB "
                   "| mean MACs |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            t = r["split_seconds"]
            out.append(f"| {Path(r['model']).stem} | {r['calibration_samples']} | "
                       f"{r['classes']} | {r['decompose_seconds']} | {t['analysis']} | "
                       f"{t['profiling']} | {t['pruning']} | {t['writing']} | "
                       f"{r['one_ort_pass_seconds']} | {r['ratio_to_one_ort_pass']} | "
                       f"{r['peak_memory_mb']} | {100 * r['mean_macs']:.1f}% |\n")
    rows = res.get("memory")
    if rows:
        same = len({r["modules_sha256"] for r in rows}) == 1
        out.append("\n### The profile within a memory budget (LeNet-5 body, random 1,000-class "
                   "head; `Settings.profile_memory`, `decompose/tracked.py`)\n\nModules of "
                   f"every run byte-identical: {'yes' if same else 'NO'}.\n\n| budget | "
                   "profile passes | total s | profiling | pruning + tuning | peak MB | "
                   "modules sha256 |\n|---|---|---|---|---|---|---|\n")
        for r in rows:
            t, budget = r["split_seconds"], r["profile_memory"]
            out.append(f"| {'whole' if budget is None else f'{budget >> 20} MB'} | "
                       f"{r['profile_passes']} | {r['decompose_seconds']} | "
                       f"{t['profiling']} | {t['pruning']} | {r['peak_memory_mb']} | "
                       f"{r['modules_sha256'][:12]} |\n")
    return "".join(out)


def recurrent_gates(models: list[tuple[str, dict]]) -> str:
    """The recurrent issue's gate (<= 1 pp at <= 90% MACs) and goal (<= 0.5 pp at <= 60%),
    with the random-unit baseline at the same keep ratios."""
    out = ["\n## Recurrent gate summary\n\nGate: <= 1 pp at <= 90% of the parent's MACs; "
           "goal: <= 0.5 pp at <= 60% (Imtiaz et al.: 0.6 pp with modules of full size). "
           "Refit criterion against random units at the same keep ratios. The curves' "
           "`.npz` files come from `python -m models.text clinc150 --split train --out "
           "/tmp/clinc_train.npz` (and `--split test --out /tmp/clinc_test.npz`; the "
           "taggers' `conll2000` likewise, their loss in token accuracy).\n\n| model | "
           "smallest refit point <= 1 pp | best refit point at <= 60% MACs | random at that "
           "keep | tuned to --fidelity |\n|---|---|---|---|---|\n"]
    for name, res in models:
        rows = [r for r in res["rows"] if is_fixed(r)]
        refit = [r for r in rows if r["criterion"] == "refit"]
        rand = {r["keep"]: r for r in rows if r["criterion"] == "random"}
        ok = [r for r in refit if r["loss_pp"] <= 1.0]
        gate = min(ok, key=lambda r: r["macs"]) if ok else None
        small = [r for r in refit if r["macs"] <= 0.6]
        goal = min(small, key=lambda r: r["loss_pp"]) if small else None
        tuned = next((r for r in res["rows"] if r["keep"] == "tuned"), None)

        def cell(r) -> str:
            return f"keep {r['keep']}: {100 * r['macs']:.1f}% MACs, {r['loss_pp']:.2f} pp" \
                if r else "-"

        tuned_cell = f"{100 * tuned['macs']:.1f}% MACs, {tuned['loss_pp']:.2f} pp" \
            if tuned else "-"
        baseline = cell(rand.get(goal["keep"])) if goal else "-"
        out.append(f"| {name} | {cell(gate)} | {cell(goal)} | {baseline} | {tuned_cell} |\n")
    return "".join(out)


def recurrent_sections() -> str:
    """Default settings, reuse and replacement of the recurrent zoo."""
    out = []
    path = RESULTS / "recurrent_default.json"
    if path.is_file():
        res = json.loads(path.read_text())
        out.append(f"\n## Recurrent models at default settings\n\n`{res['command']}`: "
                   "`decompose` without options (1,000 training sentences, `--fidelity "
                   "0.99`, `--align auto`), 150 modules linked back with `link --mode "
                   f"parallel`, {res['test_samples']} test sentences.\n\n| model | parent "
                   "top-1 | linked top-1 | loss pp | mean MACs | align | decompose s (machine "
                   "shared with other runs; clean times: scale section) |\n"
                   "|---|---|---|---|---|---|---|\n")
        for r in res["rows"]:
            t = r.get("timing_seconds") or {}
            out.append(f"| {r['model']} | {100 * r['parent_top1']:.2f}% | "
                       f"{100 * r['linked_top1']:.2f}% | {r['loss_pp']:.2f} | "
                       f"{100 * r['mean_macs']:.1f}% | {align_cell(r)} | "
                       f"{sum(t.values()):.0f} |\n")
    path = RESULTS / "recurrent_reuse.json"
    if path.is_file():
        res = json.loads(path.read_text())
        out.append(f"\n## Recurrent reuse and replacement\n\n`{res['command']}`. Reuse: "
                   f"intents of `{res['parent']}` union-linked into a sub-task model, top-1 on "
                   "the test sentences of those intents against the parent restricted to "
                   "them.\n\n| intents | top-1 | parent restricted | loss pp | MACs |\n"
                   "|---|---|---|---|---|\n")
        out.append(subset_rows(res["reuse"]))
        out.append(f"\nReplacement: an intent of `{res['parent']}` decided by "
                   f"`{res['donor']}`'s module (raw log-odds), the intents chosen on the "
                   "validation split; F1 of the intent and top-1 on the test split.\n\n"
                   "| intent | F1 parent | F1 donor | F1 replaced (P / R) | top-1 change pp |"
                   "\n|---|---|---|---|---|\n")
        out.append(replacement_rows(res["replace"], "intent", "top1_change_pp"))
    return "".join(out)


def subset_rows(rows: list[dict]) -> str:
    """Table rows of union-linked subsets: classes, top-1, the parent restricted to them,
    loss and MACs."""
    return "".join(f"| {','.join(map(str, r['classes']))} | {100 * r['top1']:.2f}% | "
                   f"{100 * r['parent_restricted_top1']:.2f}% | {r['loss_pp']:.2f} | "
                   f"{100 * r['macs_fraction']:.1f}% |\n" for r in rows)


def align_cell(row: dict) -> str:
    """The multiples a default run used: the vector width, and the recurrent one if any."""
    rec = row.get("align_recurrent")
    return f"{row['align']}" + (f", recurrent {rec}" if rec is not None else "")


def replacement_rows(rows: list[dict], name: str, change: str) -> str:
    """Table rows of a replacement benchmark: the class (``name``), its F1 in the parent, the
    donor and the replaced model (precision / recall), and the accuracy ``change``."""
    out = []
    for r in rows:
        rep = r["replaced"]
        out.append(f"| {r[name]} | {r['lstm']['f1']:.3f} | {r['gru']['f1']:.3f} | "
                   f"{rep['f1']:.3f} ({rep['precision']:.3f} / {rep['recall']:.3f}) | "
                   f"{r[change]:+.2f} |\n")
    return "".join(out)


def descent_section(paths: list) -> str:
    """The allocator's descent traced (``benchmarks.descent_path``): held-out statistics
    against the test loss, every 5% of MACs."""
    out = ["\n## The allocator's descent: what the held-out samples see\n\n"
           "Every step of the `--macs` allocator (classes stepped down the keep grid by the "
           "composed held-out cross-entropy per MAC saved) traced on the held-out calibration "
           "samples, against the test loss of the modules linked at that step. A default that "
           "stops this descent on a held-out statistic needs one whose value says the same "
           "test loss on every model.\n"]
    for path in paths:
        res = json.loads(path.read_text())
        out.append(f"\n### {res['model']}\n\n`{res['command']}`\n\nParent top-1 "
                   f"{100 * res['parent_top1']:.2f}%; {res['holdout_samples']} held-out "
                   f"samples; descent {res['seconds']} s.\n\n"
                   "| step | mean MACs | held-out CE rise | held-out agreement | test loss pp |\n"
                   "|---|---|---|---|---|\n")
        for r in res["checks"]:
            out.append(f"| {r['step']} | {100 * r['macs']:.1f}% | {r['ce_rise']:.4f} | "
                       f"{100 * r['agreement']:.2f}% | {r['test_loss_pp']:.2f} |\n")
    return "".join(out)


def _macs_loss(row: dict | None) -> str:
    return f"{100 * row['macs']:.1f}%, {row['loss_pp']:.2f}" if row else "-"


def defaults_section(paths: list) -> str:
    """The defaults (``--align auto``) with and without the per-group aligned steps."""
    out = ["\n## Defaults at `--align auto`, with and without `--no-refine`\n\n"
           "`python -m benchmarks.decompose_curve --model M --data D --calib 1000 --keeps '' "
           "--criteria refit --fidelity 0.99 --align auto --no-refine --name defaults_M` "
           "(each file records its command). Gates of the deployment issue for the CNNs: mean "
           "module MACs <= 70%, loss <= 1 pp. Measured on AVX-512 (align 16).\n\n| model "
           "(parent top-1) | default: MACs, loss pp | `--no-refine`: MACs, loss pp | tuning s "
           "(default) |\n|---|---|---|---|\n"]
    for path in paths:
        res = json.loads(path.read_text())
        tuned = [r for r in res["rows"] if r["keep"] == "tuned"]
        on = next(r for r in tuned if r.get("refine", True))
        off = next((r for r in tuned if r.get("refine") is False), None)
        out.append(f"| {path.stem[9:]} ({100 * res['parent_top1']:.2f}%) | "
                   f"{_macs_loss(on)} | {_macs_loss(off)} | "
                   f"{on['build_seconds']} |\n")
    return "".join(out)


def scorecal_section() -> str:
    """Score calibration on and off at one fixed keep ratio (scorecal_M.json beside
    scorecal_M_raw.json, decompose/calibrate.py)."""
    pairs = [(p, p.with_name(p.stem + "_raw.json")) for p in sorted(RESULTS.glob("scorecal_*.json"))
             if not p.stem.endswith("_raw")]
    pairs = [(on, off) for on, off in pairs if off.exists()]
    if not pairs:
        return ""
    out = ["\n## Score calibration (`decompose/calibrate.py`)\n\n`python -m "
           "benchmarks.decompose_curve --model M --data D --calib 1000 --keeps KEEP --criteria "
           "refit --align 1 [--no-score-calibration] --name scorecal_M[_raw]` (each file records "
           "its command): the same units, each module's score raw or mapped by a * s + b fitted "
           "on the held-out samples.\n\n| model (parent top-1) | keep | MACs | fidelity raw -> "
           "mapped | loss pp raw -> mapped |\n|---|---|---|---|---|\n"]
    for on, off in pairs:
        a, b = (json.loads(p.read_text()) for p in (on, off))
        for r, q in zip(a["rows"], b["rows"]):
            out.append(f"| {on.stem[9:]} ({100 * a['parent_top1']:.2f}%) | {r['keep']} | "
                       f"{100 * r['macs']:.1f}% | {q['fidelity']:.4f} -> {r['fidelity']:.4f} | "
                       f"{q['loss_pp']:.2f} -> {r['loss_pp']:.2f} |\n")
    return "".join(out)


def sequential_section() -> str:
    """``--compensation sequential`` at the default target (sequential_*.json, beside the
    default's defaults_*.json) and the sequential refit of the parallel search's own modules
    (finish_*.json, benchmarks.sequential_finish)."""
    runs = sorted(RESULTS.glob("sequential_*.json"))
    finishes = sorted(RESULTS.glob("finish_*.json"))
    if not runs and not finishes:
        return ""
    out = ["\n## The sequential refit as a finishing step (`decompose/polish.py`)\n"]
    if runs:
        out.append("\n`--compensation sequential` at the default target 0.99: the search "
                   "runs on the parallel refit, its module is refitted sequentially and the "
                   "search goes on while the sequential fidelity holds. Beside it the default "
                   "(`defaults_*.json`).\n\n| model | command | sequential: MACs, loss pp, "
                   "tuning s | default: MACs, loss pp, tuning s |\n|---|---|---|---|\n")
        for path in runs:
            res = json.loads(path.read_text())
            row = next(r for r in res["rows"] if r["keep"] == "tuned")
            model = path.stem[len("sequential_"):]
            base = RESULTS / f"defaults_{model}.json"
            dflt = next((r for r in json.loads(base.read_text())["rows"]
                         if r["keep"] == "tuned" and r.get("refine", True)), None) \
                if base.is_file() else None
            out.append(f"| {model} | `{res['command']}` | {_macs_loss(row)}, "
                       f"{row['build_seconds']} | {_macs_loss(dflt)}"
                       f"{', ' + str(dflt['build_seconds']) if dflt else ''} |\n")
    for path in finishes:
        res = json.loads(path.read_text())
        out.append(f"\n### {path.stem[len('finish_'):]}\n\n`{res['command']}`\n\nModules "
                   "tuned with the parallel refit to each target, then the same units refitted "
                   "sequentially; gap ratio = mean over the modules of (1 - f_seq) / (1 - f_par)."
                   f" Parent top-1 {100 * res['parent_top1']:.2f}%.\n")
        timing = res.get("probe_timing")
        if timing:
            out.append(f"One sequential build (class {timing['class']}, keep {timing['keep']}): "
                       f"{timing['cut_seconds']} s with its probes cut at final activations, "
                       f"{timing['full_seconds']} s with every probe run from the input; same "
                       f"weights: {'yes' if timing['same_weights'] else 'no'}.\n")
        out.append("\n| target | MACs | fidelity parallel | fidelity sequential | gap ratio | "
                   "loss pp parallel | loss pp sequential | s parallel | s sequential |\n"
                   "|---|---|---|---|---|---|---|---|---|\n")
        for r in res["rows"]:
            out.append(f"| {r['target']} | {100 * r['macs']:.1f}% | {r['fidelity_parallel']:.4f}"
                       f" | {r['fidelity_sequential']:.4f} | {r['gap_ratio']} | "
                       f"{r['loss_parallel_pp']:.2f} | {r['loss_sequential_pp']:.2f} | "
                       f"{r['tune_seconds']} | {r['sequential_seconds']} |\n")
    return "".join(out)


def hashes_section(name: str, res: dict) -> str:
    """Byte-identity of emitted models across a change (benchmarks.module_hashes)."""
    cmp = res.get("comparison")
    if cmp is None:
        return ""
    cases = cmp["cases"]
    same = [n for n, c in cases.items() if not c["differ"] and c["same_top1"]]
    rows = "".join(f"| {n} | {c['modules']} | "
                   f"{'identical' if not c['differ'] else ', '.join(c['differ'])} | "
                   f"{'same' if c['same_top1'] else 'differs'} |\n" for n, c in cases.items())
    return (f"\n## Emitted models before and after a change: {name[len('hashes_'):]}\n\n"
            f"`{res['command']}` at {res['commit']}, against {cmp['against']}: "
            f"{len(same)} of {len(cases)} cases byte-identical "
            f"({sum(c['modules'] for c in cases.values())} module files, plus each case's "
            "linked model and its top-1).\n\n| case | modules | files | linked top-1 |\n"
            "|---|---|---|---|\n" + rows)


def main() -> None:
    parts = ["# Benchmarks\n",
             "Generated by `python -m benchmarks.report` from `benchmarks/results/*.json`; each "
             "JSON holds the exact command that produced it. Loss = parent top-1 minus the "
             "top-1 of all modules linked back with `link --mode parallel` (each module run on "
             "its own, prediction = argmax of module scores), on the full test split. "
             "Calibration = training split samples. MACs/params/channels/kernels = mean over the "
             "modules, as a fraction of the parent. Kernels = kept Conv kernels / all "
             "(CNNSplitter's KRR). CPU: 2 cores.\n"]
    gates, recurrent = [], []
    for path in sorted(RESULTS.glob("*.json")):
        if path.stem.startswith(("time_", "tmp_", "hashes_", "reuse_", "link_", "soak",
                                 "latency", "scale", "recurrent_", "tagging", "descent_",
                                 "defaults_", "sequential_", "finish_", "quantized",
                                 "multi_input", "scorecal_", "architectures",
                                 "macs_cache_")):
            continue
        res = json.loads(path.read_text())
        name = path.stem
        png = plot(name, res)
        parts.append(f"\n## {name}\n\n`{res['command']}`\n\n"
                     f"Parent top-1 {100 * res['parent_top1']:.2f}%, top-5 "
                     f"{100 * res['parent_top5']:.2f}%, {res['parent_macs']:,} MACs, "
                     f"{res['parent_params']:,} params. Calibration: {res['calibration']}; "
                     f"test: {res['test']}.\n")
        if png:
            parts.append(f"\n![{name}](results/{png})\n")
        parts.append("\n| criterion | compensation | keep | MACs | params | channels | kernels "
                     "| fidelity | top-1 loss pp | top-5 loss pp |\n"
                     "|---|---|---|---|---|---|---|---|---|---|\n")
        for r in res["rows"]:
            keep = r["keep"]
            if keep == "tuned":
                keep = f"tuned to {r.get('fidelity_target')} (mean {r['mean_keep']})"
            elif is_budget(r):
                keep = f"--macs {keep[6:]} (mean {r['mean_keep']})"
            parts.append(f"| {r['criterion']} | {r.get('compensation', 'lstsq')} | {keep} | "
                         f"{100 * r['macs']:.1f}% | "
                         f"{100 * r['params']:.1f}% | {100 * r['channels']:.1f}% | "
                         f"{100 * r['kernels']:.1f}% | {r['fidelity']:.4f} | "
                         f"{r['loss_pp']:.2f} | {r['top5_loss_pp']:.2f} |\n")
        default = [r for r in res["rows"] if r["criterion"] == "refit" and r["keep"] != "tuned"]
        ok = [r for r in default if r["macs"] <= GATE_MACS]
        best = min(ok, key=lambda r: r["loss_pp"]) if ok else None
        tuned = next((r for r in res["rows"] if r["keep"] == "tuned"), None)
        if name.startswith(("clinc_", "conll_")):
            recurrent.append((name, res))
            continue
        gates.append((name, best, tuned))
    parts.append("\n## Gate summary\n\nThe gates of the CNN issue (CNNSplitter: 2.89 pp at 57% of "
                 "the kernels; default `--fidelity` <= 1 pp) apply to the CNNs; the MLPs are "
                 "shown for reference.\n\n| model | best refit point at <= 57% MACs | loss pp "
                 "(gate < 2.9) | tuned to --fidelity: MACs | loss pp (gate <= 1 at the default "
                 "0.99) |\n"
                 "|---|---|---|---|---|\n")
    for name, best, tuned in gates:
        how = f"--macs {best['keep'][6:]}" if best and is_budget(best) else (
            f"keep {best['keep']}" if best else "")
        if best and best.get("compensation", "lstsq") != "lstsq":
            how += f" --compensation {best['compensation']}"
        b = (f"{how}, {100 * best['macs']:.1f}% MACs", f"{best['loss_pp']:.2f}") \
            if best else ("none at <= 57%", "-")
        t = (f"{tuned.get('fidelity_target')}: {100 * tuned['macs']:.1f}%",
             f"{tuned['loss_pp']:.2f}") if tuned else ("-", "-")
        parts.append(f"| {name} | {b[0]} | {b[1]} | {t[0]} | {t[1]} |\n")
    if recurrent:
        parts.append(recurrent_gates(recurrent))
    defaults = sorted(RESULTS.glob("defaults_*.json"))
    if defaults:
        parts.append(defaults_section(defaults))
    parts.append(scorecal_section())
    parts.append(sequential_section())
    parts.append(recurrent_sections())
    if (RESULTS / "tagging.json").is_file():
        from benchmarks.tagging import report_section

        parts.append(report_section(json.loads((RESULTS / "tagging.json").read_text())))
    if (RESULTS / "multi_input.json").is_file():
        from benchmarks.multi_input import report_section as multi_input_section

        parts.append(multi_input_section(json.loads((RESULTS / "multi_input.json").read_text())))
    if (RESULTS / "architectures.json").is_file():
        from benchmarks.architectures import report_section as architectures_section

        parts.append(architectures_section(
            json.loads((RESULTS / "architectures.json").read_text())))
    for path in sorted(RESULTS.glob("time_*.json")):
        t = json.loads(path.read_text())
        parts.append(f"\n## Decomposition time: {t['model']}\n\n`{t['command']}`\n\n"
                     f"{t['modules']} modules from {t['calibration']} on {t['cores']} cores: "
                     f"{t['decompose_seconds']} s (split: "
                     + ", ".join(f"{k} {v} s" for k, v in t["split_seconds"].items())
                     + f"); data loading {t['data_loading_seconds']} s; mean module MACs "
                     f"{100 * t['mean_macs_fraction']:.1f}%.\n")
    for path in sorted(RESULTS.glob("macs_cache_*.json")):
        from benchmarks.macs_cache import report_section as macs_cache_section

        parts.append(macs_cache_section(json.loads(path.read_text())))
    if (RESULTS / "quantized.json").is_file():
        from benchmarks.quantized import report_section as quantized_section

        parts.append(quantized_section(json.loads((RESULTS / "quantized.json").read_text())))
    parts.append(linking_sections())
    descents = sorted(RESULTS.glob("descent_*.json"))
    if descents:
        parts.append(descent_section(descents))
    for path in sorted(RESULTS.glob("hashes_*.json")):
        parts.append(hashes_section(path.stem, json.loads(path.read_text())))
    for stem in ("latency", "latency_quick"):  # a quick run may hold newer settings' figures
        if (RESULTS / f"{stem}.json").is_file():
            parts.append(latency_section(json.loads((RESULTS / f"{stem}.json").read_text()),
                                         stem))
    if (RESULTS / "latency_floor.json").is_file():
        from benchmarks.latency_floor import report_section as floor_section

        parts.append(floor_section(json.loads((RESULTS / "latency_floor.json").read_text())))
    if (RESULTS / "scale.json").is_file():
        parts.append(scale_section(json.loads((RESULTS / "scale.json").read_text())))
    soak = RESULTS / "soak.json"
    if soak.is_file():
        s = json.loads(soak.read_text())
        parts.append(f"\n## Soak\n\n`{s['command']}`\n\n{s['rounds']} rounds of decompose, "
                     f"union and parallel link and their evaluation in one process: resident "
                     f"memory {s['rss_mb_first']} MB after the first round, "
                     f"{s['rss_mb_after_warmup']} MB after the warm-up, {s['rss_mb_last']} MB "
                     f"at the end; {s['growth_mb_per_round']} MB per round after the warm-up "
                     f"(a linear fit).\n")
    (HERE / "README.md").write_text("".join(parts))
    print("".join(parts))


if __name__ == "__main__":
    main()
