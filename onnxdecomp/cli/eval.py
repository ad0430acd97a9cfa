"""``onnxdecomp eval``: accuracy of a model on data."""

from __future__ import annotations

import json
from dataclasses import replace

import click
import numpy as np

from onnxdecomp import provenance
from onnxdecomp.cli.options import (
    Progress,
    add_data_options,
    device_option,
    json_option,
    spec_from_options,
)
from onnxdecomp.data import (
    Dataset,
    check_dataset,
    check_label_shape,
    fit_to_input,
    require_labels,
)
from onnxdecomp.data.records import is_records
from onnxdecomp.errors import UnsupportedModelError
from onnxdecomp.link.output import label_map
from onnxdecomp.modelio import read_model
from onnxdecomp.passes import select_scores_output
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
    proto = read_model(model)
    module = _module_class(proto)
    if module is None:  # a module's [N, 1] or tagger's [N, T, 1] is read as written
        proto = select_scores_output(proto)
    runner = Runner(proto, device=device)
    spec = spec_from_options(data_opts)
    ds = fit_to_input(spec.load(), runner.input.shape, runner.input.dtype)
    require_labels(ds, "eval measures accuracy")
    runner.check_input(ds.x)
    linked = label_map(proto)
    recorded = _recorded_names(proto, linked is not None)
    # A model linked from several parents decides among its columns only: other classes'
    # samples are ignored, as a linked model of one parent's are below.
    several = linked is None and module is None and bool(provenance.read_columns(proto))
    ds = _labels_by_name(ds, recorded, ignore_others=several)
    names = ds.class_names
    if linked is not None and len(linked[0]) == 1:  # one module linked: its class's log-odds
        (k,) = linked[0]
        module, linked = (k, str(k)), None
    if module is not None:  # one class's log-odds: that class against the rest
        k, name = module
        name = names[k] if names and k < len(names) and names[k] else name
        ds = replace(ds, y=np.where(ds.y >= 0, (ds.y == k).astype(np.int64), -1))
        names = [f"not {name}", name]
    if linked is not None:  # labels are the parent's classes: map them onto the columns
        to_column, parent = linked
        classes = sorted(to_column, key=to_column.get)
        lut = np.full(max(int(ds.y.max()), max(classes)) + 2, -1, dtype=np.int64)
        lut[classes] = np.arange(len(classes))
        ds = replace(ds, y=np.where(ds.y >= 0, lut[np.clip(ds.y, 0, None)], -1))
        names = [names[c] if names and c < len(names) else str(c) for c in classes]
    out_shape = runner.session.get_outputs()[0].shape
    check_label_shape(ds.y, len(out_shape) == 3, ds.source)
    out_dim = out_shape[-1] if len(out_shape) > 1 else 1  # [N]: one score a sample
    binary = out_dim == 1  # one sigmoid output (or logit): two classes
    check_dataset(ds, 2 if binary else out_dim if isinstance(out_dim, int) else None)
    bar = Progress("eval", len(ds.x))
    scores = runner.run(ds.x, batch_size=batch_size, progress=bar)[0]
    if binary:
        scores = two_classes(scores, _is_sigmoid_output(proto))
    bar.close()
    if scores.shape[:ds.y.ndim] != ds.y.shape:  # e.g. [T, N, K] with a fixed batch
        raise UnsupportedModelError(
            f"the output {list(scores.shape)} does not hold the labels' {list(ds.y.shape)} "
            "samples first, and the model does not say where they are: export it with a "
            "named dynamic batch axis")
    report = classification_report(scores, ds.y, names)
    report.update(model=model, data=ds.source, device=runner.device, providers=runner.providers)
    notes = []
    if module is None and linked is None and not recorded and names and \
            isinstance(out_dim, int) and len(names) < out_dim and \
            names != [str(i) for i in range(len(names))]:
        first = ", ".join(f"{n} = {i}" for i, n in enumerate(names[:2]))
        notes.append(f"the data names {len(names)} class{'es' if len(names) > 1 else ''} and "
                     f"the model has {out_dim}: labels are the data's classes in sorted order "
                     f"({first}{', ...' if len(names) > 1 else ''}); if they are other classes "
                     "of the model, give the data as an .npz labelled with the model's class "
                     "indices")
    k = len(report["per_class"])
    raw = spec.pre.is_identity and not is_records(ds.x) and \
        ds.x.dtype.kind == "f" and ds.x.size and float(ds.x.max()) > 2.0
    if k >= 3 and report["top1"] < 2.0 / k and raw:
        top = float(ds.x.max())
        # 8-bit pixels take 1/255; smaller ranges (the digits' 0..16) their own top
        scale = 1 / 255 if top > 16 else 1 / np.ceil(top)
        notes.append(f"top-1 is near chance ({100 * report['top1']:.1f}% for {k} classes) and "
                     f"the inputs run up to {top:g}: if the model takes inputs scaled to 0..1 "
                     f"or normalised, give --scale {scale:.3g} (and --mean, --std; an .npz is "
                     "used as stored: save it so)")
    report["notes"] = notes
    if linked is not None:
        report["parent_restricted_top1"] = _parent_restricted(linked, ds, classes, device)
    if module is not None:
        report["module"] = {"class_index": module[0], "class_name": names[1],
                            **one_class_report(scores, ds.y)}
    if as_json:
        click.echo(json.dumps({**report, "passed": True}))
        return
    click.echo(f"model   {model}\ndata    {ds.source}\ndevice  {runner.device} "
               f"({', '.join(runner.providers)})")
    click.echo(f"n       {report['n']}\ntop-1   {100 * report['top1']:.2f}%\n"
               f"top-5   {100 * report['top5']:.2f}%")
    if module is not None:
        m = report["module"]
        click.echo(f"module  class {m['class_index']} ({m['class_name']}) against the rest, "
                   f"claimed where its log-odds > 0: "
                   + ", ".join(f"{key} {_percent(m[key])}"
                               for key in ("precision", "recall", "f1")))
    if report.get("parent_restricted_top1") is not None:
        click.echo(f"parent  {100 * report['parent_restricted_top1']:.2f}% (restricted to the "
                   "linked classes, on the same samples)")
    click.echo(_per_class_line(report["per_class"]))
    if report["confused"]:
        click.echo("most confused (true -> predicted): " + ", ".join(
            f"{p['true']}->{p['predicted']} {p['count']}" for p in report["confused"]))
    for note in notes:
        click.echo(f"note: {note}")
    click.echo(f"PASSED | onnxdecomp eval {model}")


PER_CLASS_SHOWN = 30  # beyond this many classes the text shows the lowest (JSON: all)


def _per_class_line(per_class: dict[str, float | None]) -> str:
    """Each class's accuracy; of many classes the ``PER_CLASS_SHOWN // 3`` lowest."""
    items = list(per_class.items())
    head = "per class: "
    if len(items) > PER_CLASS_SHOWN:
        measured = [kv for kv in items if kv[1] is not None]
        items = sorted(measured, key=lambda kv: kv[1])[:PER_CLASS_SHOWN // 3]
        head = f"per class, the {len(items)} lowest of {len(per_class)} (--json: all): "
    return head + "  ".join(f"{name} {'-' if acc is None else f'{100 * acc:.1f}'}"
                            for name, acc in items)


def _recorded_names(proto, one_parent: bool) -> dict[int, str]:
    """The class names a module or a linked model records, by the label that stands for
    each: a module's and a linked model's of ``one_parent`` by the parent's class index, a
    model linked from several parents by its column (its labels are its columns; names
    that repeat across them match nothing: empty)."""
    identity = provenance.module_identity(proto)
    if identity.get("class_name") and "class_index" in identity:
        return {int(identity["class_index"]): identity["class_name"]}
    columns = provenance.read_columns(proto) or []
    if not one_parent:
        names = {j: c["class_name"] for j, c in enumerate(columns) if c.get("class_name")}
        return names if len(set(names.values())) == len(names) else {}
    return {int(c["class_index"]): c["class_name"] for c in columns
            if c.get("class_index") is not None and c.get("class_name")}


def _labels_by_name(ds: Dataset, recorded: dict[int, str],
                    ignore_others: bool = False) -> Dataset:
    """The data's labels renumbered as the parent's classes, matched by name, when the data
    names its classes otherwise (an image tree of only the cat and dog folders: labels 0, 1
    by folder, 3 and 5 for a CIFAR-10 parent) and has every class the model records; its
    other classes keep numbers past the parent's, so that they count as none of them (-1,
    ignored, with ``ignore_others``)."""
    names = ds.class_names
    if not names or not recorded or not set(recorded.values()) <= set(names):
        return ds
    if all(k < len(names) and names[k] == n for k, n in recorded.items()):
        return ds  # numbered alike already
    by_name = {n: k for k, n in recorded.items()}
    top = max(max(recorded) + 1, len(names))
    lut = np.array([by_name.get(n, -1 if ignore_others else top + i)
                    for i, n in enumerate(names)], np.int64)
    renamed = [""] * (int(lut.max()) + 1)
    for i, n in enumerate(names):
        if lut[i] >= 0:
            renamed[lut[i]] = n
    y = np.where(ds.y >= 0, lut[np.clip(ds.y, 0, None)], -1)
    return replace(ds, y=y, class_names=renamed)


def _module_class(proto) -> tuple[int, str] | None:
    """(class index, class name) of a module (one output, the class's log-odds in its one
    column, and the class it records), or None for any other model."""
    identity = provenance.module_identity(proto)
    outputs = proto.graph.output
    dims = outputs[0].type.tensor_type.shape.dim if len(outputs) == 1 else []
    if "class_index" not in identity or not dims or dims[-1].dim_value != 1:
        return None
    k = int(identity["class_index"])
    return k, identity.get("class_name") or str(k)


def one_class_report(scores: np.ndarray, y: np.ndarray) -> dict:
    """Precision, recall and F1 of class 1 (label 1 against 0, -1 ignored) decided by the
    argmax of two columns; None where undefined (nothing claimed, or no sample of it)."""
    mask = y.reshape(-1) >= 0
    claimed = scores.reshape(-1, 2).argmax(axis=1)[mask] == 1
    truth = y.reshape(-1)[mask] == 1
    hits = int(np.sum(claimed & truth))
    precision = hits / int(claimed.sum()) if claimed.any() else None
    recall = hits / int(truth.sum()) if truth.any() else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {key: None if v is None else round(float(v), 6)
            for key, v in (("precision", precision), ("recall", recall), ("f1", f1))}


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def two_classes(scores: np.ndarray, probabilities: bool) -> np.ndarray:
    """One column (a probability, or a logit z; [N, 1] or [N]) as two classes' logits
    [0, z]."""
    z = (scores if scores.ndim == 1 else scores[..., 0]).astype(np.float64)
    if probabilities:
        p = np.clip(z, 1e-12, 1 - 1e-12)
        z = np.log(p) - np.log1p(-p)
    return np.stack([np.zeros_like(z), z], axis=-1)


def _is_sigmoid_output(proto) -> bool:
    """Whether the first output is a Sigmoid's, through ops that only reshape it."""
    producer = {o: n for n in proto.graph.node for o in n.output}
    node = producer.get(proto.graph.output[0].name)
    while node is not None and node.op_type in ("Squeeze", "Reshape", "Flatten", "Identity"):
        node = producer.get(node.input[0])
    return node is not None and node.op_type == "Sigmoid"


def _parent_restricted(linked, ds, classes: list[int], device: str) -> float | None:
    """Top-1 of the parent restricted to the linked classes, on the samples of those classes
    (the sub-task protocol), when the linked model names its parent's file."""
    _, parent = linked
    if parent is None:
        return None
    proto = select_scores_output(read_model(parent))
    runner = Runner(proto, device=device)
    steps = ds.y >= 0
    if ds.y.ndim == 1:
        ds = replace(ds, x=ds.x[steps], y=ds.y[steps])
        steps = np.ones(len(ds.y), bool)
    else:  # a tagger: its sentences with a labelled step of the linked classes
        rows = steps.any(axis=1)
        ds, steps = replace(ds, x=ds.x[rows], y=ds.y[rows]), steps[rows]
    x = fit_to_input(ds, runner.input.shape, runner.input.dtype).x
    scores = runner.run(x)[0]
    if scores.ndim == 1 or scores.shape[-1] == 1:  # a binary parent's one logit or probability
        scores = two_classes(scores, _is_sigmoid_output(proto))
    logits = scores[..., classes]
    return round(float(np.mean(logits.argmax(axis=-1)[steps] == ds.y[steps])), 6)
