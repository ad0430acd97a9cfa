"""``onnxdecomp link``: modules into one model."""

from __future__ import annotations

import json

import click

from onnxdecomp.cli.options import json_option
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.link import MODES, link
from onnxdecomp.modelio import atomic_write_bytes
from onnxdecomp.stats import model_stats


@click.command("link")
@click.argument("modules", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False),
              help="The linked .onnx to write.")
@click.option("--mode", type=click.Choice(MODES), default="parallel", show_default=True,
              help="parallel: modules side by side, scores concatenated in the order given.")
@json_option
def link_cmd(modules: tuple[str, ...], out: str, mode: str, as_json: bool) -> None:
    """Link MODULES into one model whose output ``scores`` is [N, K]."""
    if any(out == m for m in modules):
        raise OnnxDecompError("-o would overwrite an input module")
    proto = link(list(modules), mode=mode)
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
