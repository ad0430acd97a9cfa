"""``onnxdecomp inspect``: what a model is and what it costs."""

from __future__ import annotations

import json

import click

from onnxdecomp import provenance
from onnxdecomp.cli.options import json_option
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.modelio import read_model
from onnxdecomp.stats import format_stats, model_stats


def _size(ctx, param, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        dims = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: give sizes as integers, e.g. 20 or 3,224,224") from None
    if any(d < 1 for d in dims):
        raise click.BadParameter(f"{value!r}: sizes must be at least 1")
    return dims


@click.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--top", type=click.IntRange(min=1), default=None,
              help="Show only the TOP layers with the most MACs.")
@click.option("--size", "size", default=None, callback=_size, metavar="D[,D...]",
              help="One sample's size without the batch axis, for inputs whose sizes are "
                   "dynamic beyond it (token ids [N, T]: 20; images [N, 3, H, W]: "
                   "3,224,224); every input of that rank takes it.")
@json_option
def inspect_cmd(model: str, top: int | None, size: tuple[int, ...] | None,
                as_json: bool) -> None:
    """Inputs, outputs, op counts, parameters and MACs per layer of MODEL."""
    try:
        stats = model_stats(model, sample_shape=size)
    except OnnxDecompError as exc:
        if size is None and _dynamic_beyond_batch(model):
            raise OnnxDecompError(
                f"{exc.render()}; the model's inputs are dynamic beyond the batch: give "
                "{size} (one sample's size, e.g. 20 for token ids [N, T])",
                options=["size"]) from exc
        raise
    loops = sum(stats.op_counts.get(op, 0) for op in ("Loop", "Scan"))
    made = _made_by_onnxdecomp(model)
    if as_json:
        click.echo(json.dumps({**stats.to_json(), "uncounted_loops": loops, **made,
                               "passed": True}))
        return
    click.echo(format_stats(stats, top=top))
    if "module" in made:
        m = made["module"]
        click.echo(f"module of class {m.get('class_index')} ({m.get('class_name')}), parent "
                   f"sha256 {str(m.get('parent_sha256'))[:12]}")
    elif "columns" in made:
        names = [str(c.get("class_name", c.get("class_index"))) for c in made["columns"]]
        click.echo(f"linked model, {len(names)} columns: {_class_names(names)}")
    if loops:  # decompose counts a recurrent loop it rewrites as its RNN, GRU or LSTM op
        click.echo(f"note: MACs leave out the bodies of {loops} Loop/Scan node(s)")
    click.echo(f"PASSED | onnxdecomp inspect {model}")


def _made_by_onnxdecomp(model: str) -> dict:
    """What a module (its class and parent) or a linked model (its columns) records."""
    proto = read_model(model, weights=False)
    identity = provenance.module_identity(proto)
    if "class_index" in identity:
        return {"module": identity}
    columns = provenance.read_columns(proto)
    return {"columns": columns} if columns is not None else {}


def _class_names(names: list[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)})" if len(names) > limit else "")


def _dynamic_beyond_batch(model: str) -> bool:
    """Whether a graph input has a symbolic or unknown size on an axis after the first."""
    try:
        proto = read_model(model, weights=False)
    except OnnxDecompError:
        return False
    inits = {t.name for t in proto.graph.initializer}
    return any(not d.HasField("dim_value") for vi in proto.graph.input if vi.name not in inits
               for d in vi.type.tensor_type.shape.dim[1:])
