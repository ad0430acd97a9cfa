"""SelectClassesPass: a sub-task head, the log-odds of each chosen class among the chosen."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import axes_node, const_array, leading_dims, new_initializer, set_const

SCORES = "scores"


class SelectClassesPass(ir.passes.InPlacePass):
    """Replace the logits z [N, K] by ``scores`` [N, |S|] over the chosen classes S (in the
    order given): s_j = z_j - log sum_{i in S, i != j} exp z_i, the log-odds of class j
    against the other chosen classes under the parent's softmax restricted to S.

    argmax over s is argmax over z_S, and s is on the scale of a module's score, so parts of
    different parents can be compared. A dense head (Gemm with constant weights, the form the
    normalisation passes leave; a tagger's MatMul over every step, with or without its bias
    Add) loses the rows of the other classes; any other producer is followed by a Gather.
    The log-sum-exp over the others runs on [N, |S|, |S|] with -inf on the diagonal: stable
    where z_j dominates, unlike log(sum - exp z_j).

    A tagger's logits [N, T, K] give ``scores`` [N, T, |S|], the same over the last axis.

    Requires: one graph output [N, K] or [N, T, K] holding logits; 2 <= |S| <= K distinct
    classes.
    Ensures: one graph output ``scores`` [N, |S|] (or [N, T, |S|]) of the logits' dtype.
    """

    def __init__(self, classes: list[int], num_classes: int) -> None:
        super().__init__()
        if len(set(classes)) != len(classes) or len(classes) < 2:
            raise ValueError(f"need two or more distinct classes, got {classes}")
        if not all(0 <= c < num_classes for c in classes):
            raise ValueError(f"classes {classes} outside 0..{num_classes - 1}")
        self.classes, self.num_classes = list(classes), num_classes

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        z = graph.outputs[0]
        for value in [*graph.inputs, *(o for n in graph for o in n.outputs)]:
            if value.name == SCORES:  # the parent's own name (a linked model's) would clash
                value.name = f"{SCORES}_parent"
        idx = np.array(self.classes, dtype=np.int64)
        lead = leading_dims(z)
        axis = len(lead)  # the class axis
        if not self._slice_gemm(z, idx) and not self._slice_matmul(z, idx):
            gather = ir.node("Gather", [z, new_initializer(graph, "onnxdecomp_classes", idx)],
                             attributes={"axis": axis}, name="onnxdecomp_classes")
            graph.append(gather)
            out = gather.outputs[0]
            out.dtype = z.dtype
            out.shape = ir.Shape([*lead, len(idx)])
            graph.outputs[0] = z = out
        n = len(self.classes)
        opset = model.opset_imports.get("", 17)
        dtype = z.dtype.numpy() if z.dtype is not None else np.float32
        mask = np.where(np.eye(n, dtype=bool), -np.inf, 0.0).astype(dtype)
        rows = axes_node(graph, "Unsqueeze", z, [axis], opset, "onnxdecomp_rows")  # [.., 1, S]
        masked = ir.node("Add", [rows.outputs[0],
                                 new_initializer(graph, "onnxdecomp_diagonal", mask)],
                         name="onnxdecomp_others")  # row j: z with z_j at -inf
        lse = axes_node(graph, "ReduceLogSumExp", masked.outputs[0], [axis + 1], opset,
                        "onnxdecomp_lse", keepdims=0)
        score = ir.node("Sub", [z, lse.outputs[0]], name="onnxdecomp_scores")
        for node in (rows, masked, lse, score):
            graph.append(node)
        out = score.outputs[0]
        out.name, out.dtype = SCORES, z.dtype
        out.shape = ir.Shape([*lead, n])
        graph.outputs[0] = out
        return ir.passes.PassResult(model, True)

    def _slice_gemm(self, z: ir.Value, idx: np.ndarray) -> bool:
        """Slice a Gemm head's rows in place; False when z is not such a head's output."""
        node = z.producer()
        if node is None or node.op_type != "Gemm" or len(z.uses()) or len(node.inputs) < 2:
            return False
        w = const_array(node.inputs[1])
        b = const_array(node.inputs[2]) if len(node.inputs) > 2 else None
        if w is None or (len(node.inputs) > 2 and node.inputs[2] is not None and b is None):
            return False
        if any(v.const_value is not None and len(v.uses()) > 1 for v in node.inputs[1:]):
            return False  # a weight shared with another node must stay whole
        trans_b = node.attributes.get_int("transB", 0)
        set_const(node.inputs[1], w[idx] if trans_b else w[:, idx])
        if b is not None and b.size == self.num_classes:
            set_const(node.inputs[2], b.reshape(-1)[idx])
        z.shape = ir.Shape([z.shape[0] if z.shape is not None else None, len(idx)])
        return True

    def _slice_matmul(self, z: ir.Value, idx: np.ndarray) -> bool:
        """Slice the columns of a MatMul head [.., F] @ W [F, K] (and of its bias Add's
        [K]) in place; False when z is not such a head's output."""
        add = z.producer()
        if add is None or len(z.uses()):
            return False
        bias = None
        if add.op_type == "Add":
            consts = [i for i, v in enumerate(add.inputs) if const_array(v) is not None]
            if len(consts) != 1:
                return False
            bias = add.inputs[consts[0]]
            node = add.inputs[1 - consts[0]].producer()
            if node is None or len(node.outputs[0].uses()) != 1:
                return False
        else:
            node = add
        if node is None or node.op_type != "MatMul":
            return False
        w = const_array(node.inputs[1])
        b = None if bias is None else const_array(bias)
        if w is None or w.ndim != 2 or w.shape[1] != self.num_classes or (
                b is not None and b.shape[-1:] != (self.num_classes,)) or any(
                v is not None and len(v.uses()) > 1 for v in (node.inputs[1], bias)):
            return False  # a weight shared with another node must stay whole
        set_const(node.inputs[1], w[:, idx])
        if b is not None:
            set_const(bias, b[..., idx])
        for v in {node.outputs[0], z}:
            if v.shape is not None:
                v.shape = ir.Shape([*v.shape[:-1], len(idx)])
        return True
