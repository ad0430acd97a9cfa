"""``onnxdecomp decompose``: one module per class, and the table of what was kept."""

from __future__ import annotations

import json
import sys

import click

from onnxdecomp.cli.options import (
    Progress,
    add_data_options,
    device_option,
    json_option,
    parse_class_keys,
    spec_from_options,
)
from onnxdecomp.data import check_dataset, fit_to_input
from onnxdecomp.decompose import COMPENSATIONS, DEFAULT_FIDELITY, Manifest, Settings, decompose
from onnxdecomp.decompose.criteria import CRITERIA
from onnxdecomp.decompose.run import PRESENT
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.modelio import check_output_folder
from onnxdecomp.runtime import Runner


@click.command("decompose")
@click.argument("model", type=click.Path(dir_okay=False))
@add_data_options(default_split="train", default_limit=1000)
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the modules and manifest.json.")
@click.option("--classes", default=None, metavar="0,3,7",
              help="Only these classes: indices (ranges too: 0-9,12), or the data's class "
              "names (an image tree's folders, an .npz's class_names); present: every class "
              "the data has [default: all].")
@click.option("--fidelity", type=float, default=DEFAULT_FIDELITY, show_default=True,
              help="Share of the parent's class log-odds variance each module must reproduce "
              "on held-out calibration samples.")
@click.option("--keep", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Fixed fraction of channels kept per group; disables fidelity tuning.")
@click.option("--macs", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Budget on the modules' mean MACs, as a fraction of the parent's; keep "
              "ratios are shared between classes to keep the composed decisions on held-out "
              "calibration samples. Disables fidelity tuning.")
@click.option("--criterion", type=click.Choice(CRITERIA), default=Settings.criterion,
              show_default=True, help="How units are ranked per class (see README).")
@click.option("--compensation", type=click.Choice(COMPENSATIONS), default=Settings.compensation,
              show_default=True, help="How the next layer makes up for removed channels.")
@click.option("--align", default="auto", show_default=True, metavar="N|auto",
              help="Kept channel counts per group are multiples of N (auto: the vector width "
              "ONNX Runtime's kernels use here: 16 with AVX-512, 8 with AVX2 or CUDA); "
              "1: no alignment.")
@click.option("--prune-embeddings", is_flag=True,
              help="Also prune the columns of embedding lookups (by default they are kept: "
              "they save only the next layer's input columns and cost the most accuracy).")
@click.option("--no-refine", "no_refine", is_flag=True,
              help="Tune one keep ratio for every group only (by default each group then "
              "steps down its coarse aligned counts while the fidelity holds).")
@click.option("--no-score-calibration", "no_score_calibration", is_flag=True,
              help="Keep each module's raw log-odds (by default a pruned module's score is "
              "mapped by a * s + b, fitted on the held-out samples to its parent's).")
@click.option("--profile-memory", type=click.FloatRange(0, min_open=True), default=None,
              metavar="GiB", help="Memory for the profile's per-class statistics [default: 40% "
              "of the memory available]; beyond it the classes are profiled a chunk at a time "
              "(the same modules, more passes over the data).")
@click.option("--force", is_flag=True, help="Replace the output folder if it exists with files.")
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
@json_option
def decompose_cmd(model: str, out_dir: str, classes: str | None, fidelity: float | None,
                  keep: float | None, macs: float | None, criterion: str, compensation: str,
                  align: str, prune_embeddings: bool, no_refine: bool,
                  no_score_calibration: bool,
                  profile_memory: float | None, force: bool, seed: int, device: str,
                  as_json: bool, **data_opts) -> None:
    """Cut MODEL into one standalone ONNX module per class, calibrated on DATA."""
    settings = Settings(fidelity=fidelity, criterion=criterion, compensation=compensation,
                        keep=keep, macs=macs, seed=seed, device=device,
                        align=align if align == "auto" else _int(align),
                        prune_embeddings=prune_embeddings, refine=not no_refine,
                        calibrate_score=not no_score_calibration,
                        profile_memory=None if profile_memory is None
                        else int(profile_memory * 2**30))
    settings.check()  # before any data is read
    given = click.get_current_context().get_parameter_source("fidelity")
    if keep is not None and given == click.core.ParameterSource.COMMANDLINE:
        raise OnnxDecompError("--fidelity tunes the keep ratio, which --keep fixes: give one")
    check_output_folder(out_dir, force, (model,))
    runner = Runner(model, device="cpu")
    spec = spec_from_options(data_opts, seed=seed)
    ds = fit_to_input(spec.load(), runner.input.shape, runner.input.dtype)
    runner.check_input(ds.x)
    check_dataset(ds, None)
    bars: dict[str, Progress] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = Progress(stage, total)
        bar(done - bar.last)  # each stage reports its running count
        bar.last = done

    # Unlabelled data: the parent's own decisions assign the samples to classes.
    manifest = decompose(model, ds.x, ds.y if ds.labelled else None, out_dir,
                         classes=_parse_classes(classes, ds.class_names),
                         class_names=ds.class_names,
                         settings=settings, progress=progress, calibration=spec, force=force)
    for bar in bars.values():
        bar.close()
    if as_json:  # the same exit status as the text's PASSED / FAILED line
        click.echo(json.dumps({**manifest.to_json(), "passed": manifest.passed}))
        sys.exit(0 if manifest.passed else 1)
    click.echo(_table(manifest, model, ds.source))
    n = len(manifest.modules)
    click.echo(f"wrote {n} module{'s' if n != 1 else ''} and manifest.json to {out_dir}")
    for note in manifest.notes:
        click.echo(f"note: {note}")
    click.echo(f"{'PASSED' if manifest.passed else 'FAILED'} | onnxdecomp decompose "
               f"({settings.goal})")
    if not manifest.passed:
        sys.exit(1)


def _int(text: str) -> int | str:
    return int(text) if text.isdigit() else text  # Settings.check rejects the rest


def _parse_classes(text: str | None, names: list[str] | None = None) -> list[int] | str | None:
    """Class indices, ranges, or the data's class names (an image tree's folders, an .npz's
    ``class_names``), comma-separated; ``present`` unless a class has that name."""
    if text and text.strip() == PRESENT and not (names and PRESENT in names):
        return PRESENT
    keys = parse_class_keys(text, names)
    if keys is None:
        return None
    for c in keys:
        if isinstance(c, str) and not (names and c in names):
            known = f" or one of the data's class names ({', '.join(names[:8])}" \
                f"{', ...' if len(names) > 8 else ''})" if names else ""
            raise OnnxDecompError(f"--classes takes indices like 0,3,7 or 0-9{known}, or "
                                  f"{PRESENT}, got {c!r}")
    return [names.index(c) if isinstance(c, str) else c for c in keys]


def _table(manifest: Manifest, model: str, source: str) -> str:
    parent = manifest.parent
    lines = [f"parent  {model}: {parent.params:,} params, {parent.macs:,} MACs, "
             f"{len(parent.classes)} classes; calibration {source}"]
    head = f"{'class':<16}{'channels':>9}{'kernels':>9}{'params':>9}{'MACs':>9}{'fidelity':>10}"
    lines += [head, "-" * len(head)]
    for m in manifest.modules:
        name = "" if m.class_name == str(m.class_index) else m.class_name  # not "3 3"
        lines.append(f"{m.class_index:>3} {name[:12]:<12}"
                     f"{100 * m.kept_channels:8.1f}%{100 * m.kept_kernels:8.1f}%"
                     f"{100 * m.params_fraction:8.1f}%{100 * m.macs_fraction:8.1f}%"
                     f"{m.fidelity:10.4f}")
    lines.append(f"mean MACs {100 * manifest.mean_macs:.1f}% of the parent's")
    lines.append("time: " + ", ".join(f"{k} {v:.1f}s"
                                      for k, v in manifest.timing_seconds.items()))
    return "\n".join(lines)
