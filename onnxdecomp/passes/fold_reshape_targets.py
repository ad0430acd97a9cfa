"""FoldReshapeTargetsPass: a Reshape target computed from shapes becomes a constant."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, is_default_domain, new_initializer
from onnxdecomp.passes.shape_values import ShapeValues, same_dynamic_dim


class FoldReshapeTargetsPass(ir.passes.InPlacePass):
    """Replace a computed Reshape target by a constant one that means the same.

    TorchScript writes ``x.view(x.size(0), -1)`` and ``w.view(n, c, 1, 1)`` as targets built
    from Shape, Gather, Unsqueeze and Concat. Onnx's data propagation does not always see
    through them (not at opset 13 and below), and a target the channel rules cannot read
    stops the analysis. Entry by entry, a static dimension is a number and the input's own
    dynamic dimension at the same index is 0 (Reshape copies it); -1 stays. As a constant,
    the target is what the dynamo exporter writes: shape inference reads it, and pruning
    patches the channel count in it. One entry computed otherwise (torchvision's Swin:
    ``attn.view(B // nW, nW, heads, n, n)``, the batch divided by the windows) becomes -1
    where the target has no other: Reshape infers it to the same number.

    Requires: shapes inferred. Ensures: such targets are initializers; a target with two
    such entries, or one beside a -1, is left as it is, and so is a Reshape with allowzero.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        values = ShapeValues.of(model)
        modified = False
        for node in list(graph):
            if node.op_type != "Reshape" or not is_default_domain(node.domain):
                continue
            if len(node.inputs) < 2 or const_array(node.inputs[1]) is not None:
                continue
            if node.attributes.get_int("allowzero", 0):
                continue
            target = _constant_target(node.inputs[0], _target_entries(node.inputs[1], values))
            if target is None:
                continue
            node.replace_input_with(1, new_initializer(
                graph, f"{node.inputs[1].name}_folded", np.array(target, dtype=np.int64)))
            modified = True
        return ir.passes.PassResult(model, modified)


def _target_entries(target: ir.Value, values: ShapeValues) -> list | None:
    """The target's entries, those of a Concat's one-entry parts that cannot be evaluated
    as None."""
    entries = values.entries(target)
    node = target.producer()
    if entries is not None or node is None or node.op_type != "Concat" \
            or not is_default_domain(node.domain):
        return entries
    out: list = []
    for part in node.inputs:
        got = values.entries(part) if part is not None else None
        if got is None:
            if part is None or part.shape is None or list(part.shape) != [1]:
                return None
            got = [None]
        out.extend(got)
    return out


def _constant_target(x: ir.Value, entries) -> list[int] | None:
    """The entries as Reshape numbers, or None when more than one is dynamic and not x's
    own (a single one is -1 where no other entry is)."""
    if entries is None or x.shape is None:
        return None
    dims = list(x.shape)
    out = []
    for i, e in enumerate(entries):
        if isinstance(e, int):
            out.append(e)  # a computed 0 copies x's dimension just as a constant one does
        elif e is not None and i < len(dims) and same_dynamic_dim(dims[i], e):
            out.append(0)
        else:
            out.append(None)
    if out.count(None) == 1 and -1 not in out:
        out[out.index(None)] = -1
    return out if None not in out and out.count(-1) <= 1 else None
