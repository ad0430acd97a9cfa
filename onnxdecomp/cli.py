"""The ``onnxdecomp`` command line: thin; it parses, calls the API and prints.

Every command ends with a PASSED or FAILED line (Polygraphy style); ``--json`` prints one
JSON object instead of the tables. User errors print one ``error:`` line and exit 1.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable

import click

from onnxdecomp import __version__
from onnxdecomp.data import add_data_options, check_dataset, dataset_from_options, fit_to_input
from onnxdecomp.decompose import COMPENSATIONS, DEFAULT_FIDELITY, Settings, decompose
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.runtime import DEVICES
from onnxdecomp.select import CRITERIA


def device_option(f: Callable) -> Callable:
    return click.option(
        "--device", type=click.Choice(DEVICES), default="auto", show_default=True,
        help="auto: CUDA when ONNX Runtime really gets it, else CPU; cuda: CUDA or fail.",
    )(f)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(f)


def user_errors(f: Callable) -> Callable:
    """Turn our one-line errors into ``error: ...`` and exit 1, without a traceback."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except OnnxDecompError as exc:
            click.echo(f"error: {exc}", err=True)
            click.echo("FAILED", err=True)
            sys.exit(1)

    return wrapper


class _Progress:
    """A progress bar on stderr that stays quiet when stderr is not a terminal."""

    def __init__(self, label: str, total: int) -> None:
        self.bar = click.progressbar(length=total, label=label, file=sys.stderr,
                                     show_eta=True) if sys.stderr.isatty() else None
        if self.bar:
            self.bar.__enter__()

    def __call__(self, n: int) -> None:
        if self.bar:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar:
            self.bar.__exit__(None, None, None)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="onnxdecomp")
def main() -> None:
    """Cut ONNX classifiers into one smaller module per class, and link modules into models."""


@main.command("eval")
@click.argument("model", type=click.Path(dir_okay=False))
@add_data_options
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@json_option
@user_errors
def eval_cmd(model: str, device: str, batch_size: int, as_json: bool, **data_opts) -> None:
    """Accuracy of MODEL on DATA: top-1, top-5, per class, most confused pairs."""
    from onnxdecomp.metrics import classification_report
    from onnxdecomp.runtime import Runner

    runner = Runner(model, device=device)
    ds = fit_to_input(dataset_from_options(data_opts), runner.input.shape, runner.input.dtype)
    runner.check_input(ds.x)
    out_dim = runner.session.get_outputs()[0].shape[-1]
    check_dataset(ds, out_dim if isinstance(out_dim, int) else None)
    bar = _Progress("eval", len(ds.x))
    scores = runner.run(ds.x, batch_size=batch_size, progress=bar)[0]
    bar.close()
    report = classification_report(scores, ds.y, ds.class_names)
    report.update(model=model, data=ds.source, device=runner.device, providers=runner.providers)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"model   {model}\ndata    {ds.source}\ndevice  {runner.device} "
               f"({', '.join(runner.providers)})")
    click.echo(f"n       {report['n']}\ntop-1   {100 * report['top1']:.2f}%\n"
               f"top-5   {100 * report['top5']:.2f}%")
    click.echo("per class: " + "  ".join(
        f"{name} {'-' if acc is None else f'{100 * acc:.1f}'}"
        for name, acc in report["per_class"].items()))
    if report["confused"]:
        click.echo("most confused (true -> predicted): " + ", ".join(
            f"{p['true']}->{p['predicted']} {p['count']}" for p in report["confused"]))
    click.echo(f"PASSED | onnxdecomp eval {model}")


@main.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--top", type=click.IntRange(min=1), default=None,
              help="Show only the TOP layers with the most MACs.")
@json_option
@user_errors
def inspect_cmd(model: str, top: int | None, as_json: bool) -> None:
    """Inputs, outputs, op counts, parameters and MACs per layer of MODEL."""
    from onnxdecomp.summary import format_stats, model_stats

    stats = model_stats(model)
    if as_json:
        click.echo(json.dumps(stats.to_json()))
        return
    click.echo(format_stats(stats, top=top))
    click.echo(f"PASSED | onnxdecomp inspect {model}")


@main.command("decompose")
@click.argument("model", type=click.Path(dir_okay=False))
@add_data_options(default_split="train", default_limit=1000)
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the modules and manifest.json.")
@click.option("--classes", default=None, metavar="0,3,7",
              help="Only these class indices [default: all].")
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
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
@json_option
@user_errors
def decompose_cmd(model: str, out_dir: str, classes: str | None, fidelity: float | None,
                  keep: float | None, macs: float | None, criterion: str, compensation: str,
                  seed: int, device: str, as_json: bool, **data_opts) -> None:
    """Cut MODEL into one standalone ONNX module per class, calibrated on DATA."""
    from onnxdecomp.runtime import Runner

    settings = Settings(fidelity=fidelity, criterion=criterion, compensation=compensation,
                        keep=keep, macs=macs, seed=seed, device=device)
    settings.check()  # before any data is read
    runner = Runner(model, device="cpu")
    ds = fit_to_input(dataset_from_options(data_opts, seed=seed), runner.input.shape,
                      runner.input.dtype)
    runner.check_input(ds.x)
    check_dataset(ds, None)
    picked = None
    if classes:
        try:
            picked = [int(c) for c in classes.split(",") if c.strip()]
        except ValueError as exc:
            raise OnnxDecompError(f"--classes takes indices like 0,3,7, got {classes!r}") from exc
    bars: dict[str, _Progress] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = _Progress(stage, total)
            bar.last = 0
        bar(done - bar.last if stage == "modules" else done)
        bar.last = done

    manifest = decompose(model, ds.x, ds.y, out_dir, classes=picked,
                         class_names=ds.class_names, settings=settings, progress=progress)
    for bar in bars.values():
        bar.close()
    mean_macs = sum(m["macs_fraction"] for m in manifest["modules"]) / len(manifest["modules"])
    if macs is not None:
        ok = mean_macs <= macs + 1e-9
        target = f"mean MACs <= {100 * macs:.1f}%"
    elif keep is not None:
        ok, target = True, "fixed --keep"
    else:
        ok = all(m["fidelity"] >= settings.fidelity for m in manifest["modules"])
        target = f"fidelity >= {settings.fidelity}"
    if as_json:
        click.echo(json.dumps({**manifest, "passed": ok}))
        return
    parent = manifest["parent"]
    click.echo(f"parent  {model}: {parent['params']:,} params, {parent['macs']:,} MACs, "
               f"{len(parent['classes'])} classes; calibration {ds.source}")
    head = f"{'class':<16}{'channels':>9}{'kernels':>9}{'params':>9}{'MACs':>9}{'fidelity':>10}"
    click.echo(head)
    click.echo("-" * len(head))
    for m in manifest["modules"]:
        click.echo(f"{m['class_index']:>3} {m['class_name'][:12]:<12}"
                   f"{100 * m['kept_channels']:8.1f}%{100 * m['kept_kernels']:8.1f}%"
                   f"{100 * m['params_fraction']:8.1f}%{100 * m['macs_fraction']:8.1f}%"
                   f"{m['fidelity']:10.4f}")
    t = manifest["timing_seconds"]
    click.echo(f"mean MACs {100 * mean_macs:.1f}% of the parent's")
    click.echo("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in t.items()))
    click.echo(f"wrote {len(manifest['modules'])} modules and manifest.json to {out_dir}")
    click.echo(f"{'PASSED' if ok else 'FAILED'} | onnxdecomp decompose ({target})")
    if not ok:
        sys.exit(1)


@main.command("link")
@click.argument("modules", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False),
              help="The linked .onnx to write.")
@click.option("--mode", type=click.Choice(["parallel"]), default="parallel", show_default=True,
              help="parallel: modules side by side, scores concatenated in the order given.")
@json_option
@user_errors
def link_cmd(modules: tuple[str, ...], out: str, mode: str, as_json: bool) -> None:
    """Link MODULES into one model whose output ``scores`` is [N, K]."""
    from onnxdecomp.irutil import atomic_write_bytes
    from onnxdecomp.link import link_parallel
    from onnxdecomp.summary import model_stats

    if any(out == m for m in modules):
        raise OnnxDecompError("-o would overwrite an input module")
    proto = link_parallel(list(modules))
    atomic_write_bytes(out, proto.SerializeToString())
    stats = model_stats(proto)
    info = {"output": out, "mode": mode, "modules": list(modules), "params": stats.params,
            "macs": stats.macs}
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(f"linked {len(modules)} modules ({mode}) -> {out}: {stats.params:,} params, "
               f"{stats.macs:,} MACs; output 'scores' [N, {len(modules)}]")
    click.echo(f"PASSED | onnxdecomp link -o {out}")


if __name__ == "__main__":  # pragma: no cover
    main()
