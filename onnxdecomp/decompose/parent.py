"""The parent of a decomposition: normalised once, analysed once, never modified."""

from __future__ import annotations

import os
from dataclasses import dataclass

import onnx
import onnx_ir as ir

from onnxdecomp import provenance
from onnxdecomp.channels import ChannelGraph, analyse
from onnxdecomp.errors import OnnxDecompError, UnsupportedModelError
from onnxdecomp.irutil import input_batch_dim, to_proto
from onnxdecomp.modelio import model_sha256, read_model
from onnxdecomp.passes import normalize, select_scores_output
from onnxdecomp.passes.finalize import with_integer_ops
from onnxdecomp.stats import model_stats


@dataclass
class Parent:
    """The normalised parent and everything the modules are built from."""

    path: str
    sha256: str  # of the file as given, before normalisation
    model: ir.Model  # normalised; modules are built on clones of it
    proto: onnx.ModelProto  # the same, serialised once for ONNX Runtime
    cg: ChannelGraph
    num_classes: int
    class_names: list[str]
    params: int
    macs: int
    per_step: bool = False  # logits [N, T, K]: a tagger, decided at every step


def load_parent(model: str | os.PathLike | onnx.ModelProto,
                class_names: list[str] | None = None,
                sample_shape: tuple[int, ...] | None = None) -> Parent:
    """Read, normalise and analyse a classifier whose one output is [N, K] class scores, or a
    tagger's [N, T, K] (class scores at every step). An input whose size is dynamic beyond
    the batch, where the MACs cannot be counted without a size, has them counted at
    ``sample_shape`` (the calibration samples'), which the normalised model, and so every
    module, records (``provenance.MACS_AT``)."""
    proto = read_model(model)
    proto = select_scores_output(optimised_export(proto))  # skl2onnx's label and probabilities
    ir_model = normalize(ir.serde.deserialize_model(proto))
    out = ir_model.graph.outputs[0]
    k = class_count(out, "model" if isinstance(model, onnx.ModelProto) else str(model))
    if len(out.shape) == 3 and _steps_first(ir_model, out):
        raise UnsupportedModelError(
            f"the model's output {out.name!r} is [T, N, K], steps before samples: a tagger's "
            "output must be [N, T, K] (add a Transpose, or export it batch first)")
    if k < 2:
        identity = provenance.module_identity(proto)
        if "class_index" in identity:
            raise UnsupportedModelError(
                f"the model is a module (class {identity['class_index']}'s log-odds), not a "
                "classifier: decompose its parent")
        raise OnnxDecompError("the model has fewer than two classes")
    cg = analyse(ir_model)
    names = list(class_names) if class_names and len(class_names) == k else [
        str(i) for i in range(k)]
    normalised = to_proto(ir_model)
    try:
        # A Loop's body is not counted; normalised, a recurrent loop is its RNN, GRU or LSTM.
        looped = any(n.op_type in ("Loop", "Scan") for n in proto.graph.node)
        stats = model_stats(normalised if looped else proto)
    except OnnxDecompError:
        try:  # a shape only the normalised graph pins down (modules are counted on it too)
            stats = model_stats(normalised)
        except OnnxDecompError:
            if sample_shape is None or not _dynamic_size(ir_model):
                raise
            # An input of any size: counted at the calibration samples', which every module
            # records (built from the normalised model, whose metadata it keeps).
            ir_model.metadata_props[provenance.MACS_AT] = ",".join(map(str, sample_shape))
            normalised = to_proto(ir_model)
            stats = model_stats(normalised)
    return Parent(
        path=str(model) if not isinstance(model, onnx.ModelProto) else "<memory>",
        sha256=model_sha256(model),
        model=ir_model,
        proto=normalised,
        cg=cg,
        num_classes=k,
        class_names=names,
        params=stats.params,
        macs=stats.macs,
        per_step=len(out.shape) == 3,
    )


def _dynamic_size(model: ir.Model) -> bool:
    """Whether the input has dynamic axes besides the batch axis (images of any size)."""
    x = model.graph.inputs[0] if model.graph.inputs else None
    return x is not None and x.shape is not None and any(
        not isinstance(d, int) for d in list(x.shape)[1:])


def scores_model(model: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    """The model as decomposition sees it: one output of class scores, a trailing softmax
    stripped (its log-odds are what modules reproduce), the graph normalised, a quantised
    model's integer weights and ops as it computes with them (``with_integer_ops``)."""
    proto = select_scores_output(optimised_export(read_model(model)))
    return with_integer_ops(to_proto(normalize(ir.serde.deserialize_model(proto))))


def optimised_export(proto: onnx.ModelProto) -> onnx.ModelProto:
    """An unoptimised export of torch's dynamo exporter (``optimize=False``: CastLike,
    SplitToSequence, shape arithmetic left in the graph; TorchScript writes no CastLike and
    the optimiser folds them all) run through the optimiser the exporter would have run,
    onnxscript's, which computes the same; any other model as it is. Without onnxscript
    (it comes with torch's exporter), a one-line error says what to do."""
    if proto.producer_name != "pytorch" or not any(
            n.op_type == "CastLike" for n in proto.graph.node):
        return proto
    try:
        from onnxscript import optimizer
    except ImportError:
        raise UnsupportedModelError(
            "an unoptimised export of torch's dynamo exporter (optimize=False): export it "
            "with optimize=True, or run onnxscript.optimizer.optimize on it first") from None
    return optimizer.optimize(proto)


def float_weight_notes(model: str | os.PathLike | onnx.ModelProto) -> list[str]:
    """A note when the parent's dynamically quantised layers hold asymmetric uint8 weights
    (``quantize_dynamic(weight_type=QUInt8)``): its modules get them back as float32, so a
    module can take more bytes than its parent (a digits CNN's: 138% at 26% of the MACs)."""
    proto = read_model(model, weights=False)
    uint8 = {t.name for t in proto.graph.initializer if t.data_type == onnx.TensorProto.UINT8}
    layers = [n.name or n.op_type for n in proto.graph.node
              if n.op_type in ("MatMulInteger", "ConvInteger") and len(n.input) > 1
              and n.input[1] in uint8]
    if not layers:
        return []
    many = len(layers) > 1
    return [f"{len(layers)} layer{'s' if many else ''} of the parent hold{'' if many else 's'} "
            "asymmetric uint8 weights (quantize_dynamic's QUInt8): the modules keep them as "
            "float32 and can be larger in bytes than the parent; quantise it with "
            "weight_type=QInt8 to keep int8 weights"]


def as_given_notes(model: str | os.PathLike | onnx.ModelProto, x) -> list[str]:
    """A note when ONNX Runtime cannot run the parent as given on a few samples ``x``: its
    modules come from the normalised form, which runs (an exporter's zero initial states of
    the wrong size, removed there), so they match that form, not the file."""
    from onnxdecomp.errors import RuntimeFailure
    from onnxdecomp.runtime import Runner

    try:
        Runner(select_scores_output(read_model(model)), device="cpu").run(x)
    except RuntimeFailure as exc:
        return [f"ONNX Runtime cannot run the parent as given ({exc}); its modules are cut "
                "from the form the tool normalises it to, which runs, and match that form: "
                "check the parent's export"]
    return []


def class_count(out: ir.Value, label: str) -> int:
    """K of a normalised model's logits output, [N, K] or a tagger's [N, T, K]; a one-line
    error naming ``label`` for any other output."""
    if out.shape is None or len(out.shape) not in (2, 3) or not isinstance(out.shape[-1], int):
        custom = _custom_producer(out)
        why = "" if custom is None else (
            f" (it comes from node {custom.name!r}, {custom.domain} {custom.op_type}, whose "
            "scores the tool cannot follow: no channel rule)")
        raise UnsupportedModelError(f"{label}: the output must be [N, K] class scores (or a "
                                    f"tagger's [N, T, K], scores at every step){why}")
    return out.shape[-1]


def _custom_producer(out: ir.Value, depth: int = 8) -> ir.Node | None:
    """The custom-domain op (ai.onnx.ml's TreeEnsembleClassifier ...) an output of unknown
    shape comes from, through ops that know no shape either; None if none."""
    node = out.producer()
    while node is not None and depth > 0:
        if node.domain not in ("", "ai.onnx"):
            return node
        known = [i for i in node.inputs if i is not None and i.producer() is not None]
        node, depth = (known[0].producer() if known else None), depth - 1
    return None


def kernel_fraction(cg: ChannelGraph, removed: set[int]) -> float:
    """Kept kernels / all kernels over Conv consumers (CNNSplitter's KRR); 1 with no Conv."""
    kept = total = 0
    for cons in cg.consumers:
        if cons.kind != "conv":
            continue
        out = cons.node.outputs[0]
        n_in = [r not in removed for r in cg.roots(cons.value)]
        n_out = [r not in removed for r in cg.roots(out)] if cg.has(out) else [True]
        kept += sum(n_in) * sum(n_out)
        total += len(n_in) * len(n_out)
    return kept / total if total else 1.0


def _steps_first(model: ir.Model, out: ir.Value) -> bool:
    """Whether a rank-3 output holds the samples on axis 1: the graph input's batch
    dimension is a symbol found there and not on axis 0."""
    batch = input_batch_dim(model.graph)
    return batch is not None and out.shape[1] == batch and out.shape[0] != batch
