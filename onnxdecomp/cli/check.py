"""``onnxdecomp check``: verify a module or linked model, on its own and against its parent."""

from __future__ import annotations

import json
import sys

import click

from onnxdecomp.cli.options import add_data_options, dataset_from_options, json_option
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.verify import verify


@click.command("check")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--parent", type=click.Path(dir_okay=False), default=None,
              help="The model it was cut from: its sha256 must match the provenance.")
@add_data_options(required=False, default_split="test", default_limit=1000)
@json_option
def check_cmd(model: str, parent: str | None, as_json: bool, **data_opts) -> None:
    """Verify MODEL (a module or linked model): onnx.checker, ONNX Runtime load, metadata and
    the manifest beside it; with --parent its provenance, with --data too its agreement with
    the parent."""
    if data_opts.get("data") and parent is None:  # it was skipped without a word
        raise OnnxDecompError("--data checks agreement with the parent: give --parent too")
    data = dataset_from_options(data_opts) if data_opts.get("data") else None
    report = verify(model, parent, data)
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        click.echo(f"{report.model}: {report.kind}")
        width = max(len(r.check) for r in report.rows)
        for r in report.rows:
            click.echo(f"  {r.check:<{width}}  {r.status.upper():<4}  {r.detail}")
        click.echo(f"{'PASSED' if report.passed else 'FAILED'} | onnxdecomp check {model}")
    if not report.passed:
        sys.exit(1)
