"""``onnxdecomp eval``: accuracy of a model on data."""

from __future__ import annotations

import json

import click

from onnxdecomp.cli.options import (
    Progress,
    add_data_options,
    dataset_from_options,
    device_option,
    json_option,
)
from onnxdecomp.data import check_dataset, fit_to_input
from onnxdecomp.runtime import Runner
from onnxdecomp.stats import classification_report


@click.command("eval")
@click.argument("model", type=click.Path(dir_okay=False))
@add_data_options
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@json_option
def eval_cmd(model: str, device: str, batch_size: int, as_json: bool, **data_opts) -> None:
    """Accuracy of MODEL on DATA: top-1, top-5, per class, most confused pairs."""
    runner = Runner(model, device=device)
    ds = fit_to_input(dataset_from_options(data_opts), runner.input.shape, runner.input.dtype)
    runner.check_input(ds.x)
    out_dim = runner.session.get_outputs()[0].shape[-1]
    check_dataset(ds, out_dim if isinstance(out_dim, int) else None)
    bar = Progress("eval", len(ds.x))
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
