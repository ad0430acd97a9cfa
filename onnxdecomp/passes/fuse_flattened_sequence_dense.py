"""FuseFlattenedSequenceDensePass: a dense layer applied to every step through reshapes
becomes one MatMul over the sequence."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, new_initializer, only_use


def last_dim(value: ir.Value, depth: int = 8) -> int | None:
    """The static size of a value's last axis, looking through the ops that shape inference
    loses it behind: a Transpose keeping the last axis last, and a Reshape that merges the
    trailing axes (its other dims the input's own: the last is then their product)."""
    shape = value.shape
    if shape is None or not len(shape):
        return None
    if isinstance(shape[-1], int):
        return shape[-1]
    node = value.producer()
    if node is None or depth == 0:
        return None
    x = node.inputs[0] if node.inputs else None
    if x is None or x.shape is None:
        return None
    if node.op_type == "Transpose":
        perm = node.attributes.get_ints("perm", None)
        return last_dim(x, depth - 1) if perm is not None and perm[-1] == len(perm) - 1 \
            else None
    if node.op_type == "Reshape":
        r = len(shape)
        head, rest = list(x.shape)[:r - 1], list(x.shape)[r - 1:]
        if len(x.shape) >= r and all(_known(d) for d in head) and list(shape)[:r - 1] == head \
                and rest and all(isinstance(d, int) for d in rest):
            return int(np.prod(rest))
    return None


def _known(dim) -> bool:
    return isinstance(dim, int) or (dim is not None and getattr(dim, "value", None) is not None)


def _batch_inferred(reshape: ir.Node, lead: list) -> bool:
    """Whether the Reshape's target is [-1, B, O] with B x's own second dim: the rows it
    unflattens are x's (tf2onnx's tensordot, whose target folding measured, the batch
    then -1: inference names a new symbol for it)."""
    target = const_array(reshape.inputs[1])
    return target is not None and target.shape == (3,) and int(target[0]) == -1 and \
        isinstance(lead[1], int) and int(target[1]) == lead[1]


class FuseFlattenedSequenceDensePass(ir.passes.InPlacePass):
    """Rewrite ``Reshape(Gemm(Reshape(x, [-1, F]), W, b), [A, B, O])`` as
    ``Add(MatMul(x, W'), b')`` for x [A, B, F].

    Exporters and user code apply a dense layer at every step of a sequence by flattening the
    two leading axes (``seq.view(-1, H)``, TensorFlow's tensordot) and restoring them after.
    Row-major, the flattened row a * B + b is step (a, b), so when the second Reshape gives
    back x's own leading dims (checked on the inferred shapes, equal numbers or the same
    symbols, or a target [-1, B, O] with x's own B) the three ops are one MatMul over the
    last axis, the form the channel rules read as a per-step consumer. W' = alpha * op(W)
    [F, O], b' = beta * C.

    x's last size may be one that inference lost behind a Transpose or a Reshape merging
    trailing axes (``last_dim``; dynamo's view of a recurrent layer's directions).

    Requires: shapes inferred; W (and C) constant. Ensures: the pattern is gone, the output
    keeps its name and gets the shape [A, B, O].
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        modified = False
        for first in list(graph):
            if first.op_type != "Reshape" or first.graph is None:
                continue
            x, flat = first.inputs[0], first.outputs[0]
            if x.shape is None or len(x.shape) != 3 or last_dim(x) is None:
                continue
            if flat.shape is None or len(flat.shape) != 2 or flat.shape[1] != last_dim(x):
                continue
            gemm = only_use(flat)
            if gemm is None or gemm.op_type != "Gemm" or gemm.inputs[0] is not flat:
                continue
            w = const_array(gemm.inputs[1])
            c = const_array(gemm.inputs[2]) if len(gemm.inputs) > 2 and gemm.inputs[2] \
                is not None else None
            if w is None or gemm.attributes.get_int("transA", 0) or (
                    len(gemm.inputs) > 2 and gemm.inputs[2] is not None and c is None):
                continue
            second = only_use(gemm.outputs[0])
            if second is None or second.op_type != "Reshape":
                continue
            y = second.outputs[0]
            lead = list(x.shape)[:2]
            if y.shape is None or len(y.shape) != 3 or not all(_known(d) for d in lead) or \
                    list(y.shape)[:2] != lead and not _batch_inferred(second, lead):
                continue
            self._rewrite(graph, first, gemm, second, w, c)
            modified = True
        return ir.passes.PassResult(model, modified)

    @staticmethod
    def _rewrite(graph: ir.Graph, first: ir.Node, gemm: ir.Node, second: ir.Node,
                 w: np.ndarray, c: np.ndarray | None) -> None:
        x, y = first.inputs[0], second.outputs[0]
        weight = (w.T if gemm.attributes.get_int("transB", 0) else w) * \
            gemm.attributes.get_float("alpha", 1.0)
        out = weight.shape[1]
        name = gemm.name or "sequence_dense"
        mm = ir.node("MatMul", [x, new_initializer(graph, f"{name}_weight",
                                                   weight.astype(w.dtype))], name=name)
        nodes, tail = [mm], mm.outputs[0]
        if c is not None:
            bias = np.broadcast_to((c * gemm.attributes.get_float("beta", 1.0)).reshape(-1),
                                   (out,)).astype(w.dtype)
            add = ir.node("Add", [tail, new_initializer(graph, f"{name}_bias", bias)],
                          name=f"{name}_bias_add")
            nodes.append(add)
            tail = add.outputs[0]
        shape = ir.Shape([*list(x.shape)[:2], out])
        for v in (mm.outputs[0], tail):
            v.shape, v.type = shape, y.type
        graph.insert_after(second, nodes)
        ir.convenience.replace_all_uses_with(y, tail, replace_graph_outputs=True)
        keep = y.name
        for node in (second, gemm, first):
            graph.remove(node, safe=True)
        tail.name = keep
