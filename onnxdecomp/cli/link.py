"""``onnxdecomp link``: modules into one model, and what it costs against its parents."""

from __future__ import annotations

import json

import click

from onnxdecomp.cli.options import (
    DATA_HELP,
    add_data_options,
    class_list,
    device_option,
    json_option,
    parse_class_keys,
    refuse_overwrite,
    specs_from_options,
)
from onnxdecomp.decompose import COMPENSATIONS
from onnxdecomp.link import COMBINERS, MODES, LinkResult, link
from onnxdecomp.modelio import atomic_write_bytes
from onnxdecomp.stats import ModelStats, model_stats

CALIBRATE_HELP = (
    "Labelled calibration data: " + DATA_HELP + ". Once per parent, in the order the parents "
    "first appear (labels: that parent's classes), or once for all (labels: the linked "
    "columns, -1 = ignore). Unions calibrate on it instead of the manifest's data; across "
    "parts it fits the score combiner.")


@click.command("link")
@click.argument("modules", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False),
              help="The linked .onnx to write.")
@click.option("--mode", type=click.Choice(MODES), default="auto", show_default=True,
              help="union: one pruned network per parent for its modules' classes; "
              "parallel: the modules side by side; auto: union where a parent has two "
              "modules or more, side by side across parents.")
@add_data_options(flag="--calibrate", required=False, default_split="train",
                  default_limit=1000, help=CALIBRATE_HELP, multiple=True)
@click.option("--parent", "parents", multiple=True, type=click.Path(dir_okay=False),
              help="A parent model, overriding the manifest's (matched by sha256).")
@click.option("--combiner", type=click.Choice(COMBINERS), default="auto", show_default=True,
              help="How scores of several parts are combined with --calibrate; auto: the "
              "best on held-out calibration samples.")
@click.option("--fidelity", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="A union's fidelity target [default: the manifest's].")
@click.option("--compensation", type=click.Choice(COMPENSATIONS), default=None,
              help="A union's refit [default: the manifest's]; sequential refits every "
              "union layer after layer once its search is done, as pairs are by default "
              "(smaller unions of deep nets, seconds more each).")
@click.option("--refine/--no-refine", default=None,
              help="Whether a union also steps each channel group down its aligned counts "
              "while the fidelity holds, and a pair is then refitted sequentially [default: "
              "unions of two classes only; on ResNet-20 larger refined unions lost up to "
              "0.6 pp, see README].")
@click.option("--classes", default=None, metavar="0,3,cat",
              help="Of each folder given, only the modules of these classes (indices, "
              "ranges such as 0-9, or class names), in this order [default: all].")
@device_option
@json_option
def link_cmd(modules: tuple[str, ...], out: str, mode: str, parents: tuple[str, ...],
             combiner: str, fidelity: float | None, compensation: str | None, refine: bool | None,
             classes: str | None, device: str, as_json: bool, **data_opts) -> None:
    """Link MODULES (module files, or folders holding a manifest.json) into one model whose
    outputs are ``scores`` [N, K] (columns in the order given) and ``label`` [N]."""
    refuse_overwrite(out, modules)
    result = link(list(modules), mode=mode, calibrate=specs_from_options(data_opts),
                  parents=list(parents), combiner=combiner, fidelity=fidelity,
                  compensation=compensation, device=device, refine=refine,
                  classes=parse_class_keys(classes) or None)
    stats = model_stats(result.proto)  # before the write: a failure writes nothing
    atomic_write_bytes(out, result.proto.SerializeToString())
    report(result, out, list(modules), as_json, "link", stats)


def report(result: LinkResult, out: str, inputs: list[str], as_json: bool, command: str,
           stats: ModelStats) -> None:
    """The summary table (or JSON) of a linked or replaced model (``stats``: its
    ``model_stats``, counted before it was written), PASSED last."""
    info = {"output": out, "mode": result.mode, "modules": inputs, "params": stats.params,
            "macs": stats.macs, "columns": result.columns, "parts": result.parts,
            "combiner": result.combiner, "held_out": result.held_out, "batch": result.batch,
            "notes": result.notes, "passed": True}
    if as_json:
        click.echo(json.dumps(info))
        return
    dims = [str(d.dim_value) if d.HasField("dim_value") else "N"
            for d in result.proto.graph.output[0].type.tensor_type.shape.dim]
    click.echo(f"{command} ({result.mode}) -> {out}: {stats.params:,} params, "
               f"{stats.macs:,} MACs; outputs scores [{', '.join(dims)}], label "
               f"[{', '.join(dims[:-1])}]")
    for part in result.parts:
        if part.get("kind") == "union":
            steps = " then per-group steps" if part.get("stepped") else ""
            steps += ", refitted sequentially" if part.get("polished") else ""
            click.echo(f"  union of classes {class_list(part['classes'])}: keep "
                       f"{part['keep']}{steps}, {100 * part['macs_fraction']:.1f}% of the parent's "
                       f"{part['parent_macs']:,} MACs, fidelity {part['fidelity']:.4f} "
                       f"(target {part['fidelity_target']}); calibration {part['calibration']}")
        elif part.get("kind") == "modules":
            click.echo(f"  modules of classes {class_list(part['classes'])} side by side")
    if result.held_out:
        ranked = sorted(result.held_out.items(), key=lambda kv: -kv[1])
        click.echo(f"  combiner {result.combiner}; held-out calibration accuracy: " + ", ".join(
            f"{name} {100 * acc:.1f}%" for name, acc in ranked))
    for note in result.notes:
        click.echo(f"  note: {note}")
    click.echo(f"PASSED | onnxdecomp {command} -o {out}")
