"""``onnxdecomp replace``: classes of a model decided by modules of another."""

from __future__ import annotations

import click

from onnxdecomp.cli.link import report
from onnxdecomp.cli.options import (
    DATA_HELP,
    add_data_options,
    device_option,
    json_option,
    refuse_overwrite,
    spec_from_options,
)
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.link import COMBINERS, ROUTERS, replace
from onnxdecomp.modelio import atomic_write_bytes
from onnxdecomp.stats import model_stats


@click.command("replace")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--class", "classes", multiple=True, type=int, required=True, metavar="I",
              help="A class of MODEL to decide by the module given with the --with at the "
              "same place.")
@click.option("--with", "modules", multiple=True, required=True, metavar="MODULE",
              type=click.Path(dir_okay=False), help="The module deciding that class.")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False),
              help="The .onnx to write.")
@add_data_options(flag="--calibrate", required=False, default_split="train",
                  default_limit=1000, help="Labelled calibration data (labels: MODEL's "
                  "classes) to fit the combination: " + DATA_HELP + ".")
@click.option("--combiner", type=click.Choice([c for c in COMBINERS if c not in ROUTERS]),
              default="auto", show_default=True,
              help="How the columns are combined with --calibrate; auto: the best on "
              "held-out calibration samples. Without --calibrate: log-odds as they are.")
@device_option
@json_option
def replace_cmd(model: str, classes: tuple[int, ...], modules: tuple[str, ...], out: str,
                combiner: str, device: str, as_json: bool, **data_opts) -> None:
    """MODEL with classes I, J ... decided by the given modules, all others by MODEL:
    outputs ``scores`` [N, K] and ``label`` [N], as ``link``'s."""
    if len(classes) != len(modules):
        raise OnnxDecompError(f"{len(classes)} --class for {len(modules)} --with: give one "
                              "module per class")
    refuse_overwrite(out, [model, *modules])
    result = replace(model, list(zip(classes, modules)), calibrate=spec_from_options(data_opts),
                     combiner=combiner, device=device)
    stats = model_stats(result.proto)  # before the write: a failure writes nothing
    atomic_write_bytes(out, result.proto.SerializeToString())
    report(result, out, [model, *modules], as_json, "replace", stats)
