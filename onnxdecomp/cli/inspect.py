"""``onnxdecomp inspect``: what a model is and what it costs."""

from __future__ import annotations

import json

import click

from onnxdecomp.cli.options import json_option
from onnxdecomp.stats import format_stats, model_stats


@click.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--top", type=click.IntRange(min=1), default=None,
              help="Show only the TOP layers with the most MACs.")
@json_option
def inspect_cmd(model: str, top: int | None, as_json: bool) -> None:
    """Inputs, outputs, op counts, parameters and MACs per layer of MODEL."""
    stats = model_stats(model)
    if as_json:
        click.echo(json.dumps(stats.to_json()))
        return
    click.echo(format_stats(stats, top=top))
    click.echo(f"PASSED | onnxdecomp inspect {model}")
