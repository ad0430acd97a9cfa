"""FoldTransposeIntoDensePass: a dense layer reading a transposed, flattened tensor reads the
tensor itself, its weight rows permuted."""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, is_default_domain, new_initializer


class FoldTransposeIntoDensePass(ir.passes.InPlacePass):
    """Rewrite ``Gemm(Flatten(Transpose(x, perm)), W)`` as ``Gemm(Flatten(x), W')``.

    Keras models (and PyTorch code ported from them) flatten channels-last: tf2onnx writes
    ``Transpose(x, [0, 2, 3, 1])`` then a flattening Reshape before the dense layer, so
    feature f' is channel f' mod C, interleaved with the positions, where the channel rules
    want each channel's features together. The transpose only orders the features: with
    t the transposed position of every feature of x, W'[t[f']] = W[f'] (rows of the
    [features, out] weight; columns when transB), the same outputs to rounding.

    Only that channels-last order (``perm = [0, 2, ..., r-1, 1]``) is folded: a Transpose
    back to channels-first in front of the Flatten (torchvision's ConvNeXt head, a
    channels-last LayerNorm between two Transposes) already gives each channel's features
    together, and folding it would leave the Flatten reading the channels-last tensor.

    Where elementwise ops stand between that Transpose and the Flatten (jax2onnx's flax CNN:
    ReLU, a residual Add of another transposed conv output, GELU, all channels-last), or the
    flattened tensor is a sequence [N, T, F] with its features last (a recurrent layer's
    outputs, Keras' TimeDistributed dense layer, flattened into the head: ``o.reshape(N, -1)``),
    the Flatten gets a Transpose to features-first in front of it instead and the weight rows
    the inverse permutation: W'[j] = W[s[j]], s[j] the features-last flat position of
    features-first feature j.

    Requires: shapes inferred; flattening Reshapes already Flatten (CanonicalizeFlattenPass).
    Ensures: such a Transpose and Flatten feed no dense layer; the Transpose goes where
    nothing else reads it.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        modified = False
        for node in list(graph):
            if node.op_type not in ("Gemm", "MatMul") or not is_default_domain(node.domain):
                continue
            match = _transposed_flatten(node)
            if match is None:
                modified |= _transpose_features_first(graph, node)
                continue
            x, order, flat, w, trans_b = match
            permuted = np.empty_like(w)
            if trans_b:
                permuted[:, order] = w
            else:
                permuted[order] = w
            new_flat = ir.node("Flatten", inputs=[x], attributes={"axis": 1},
                               name=f"{flat.name}_untransposed")
            new_flat.outputs[0].shape = flat.outputs[0].shape
            new_flat.outputs[0].type = flat.outputs[0].type
            new_flat.outputs[0].name = f"{flat.outputs[0].name}_untransposed"
            graph.insert_before(node, new_flat)
            node.replace_input_with(0, new_flat.outputs[0])
            node.replace_input_with(1, new_initializer(graph, node.inputs[1].name, permuted))
            modified = True
        if modified:
            ir.passes.common.RemoveUnusedNodesPass()(model)
        return ir.passes.PassResult(model, modified)


def _flattened_weight(dense: ir.Node) -> tuple[ir.Node, np.ndarray, bool] | None:
    """(the Flatten, W, transB) when ``dense`` reads ``Flatten(y)`` at axis 1 through a
    constant 2-D weight W."""
    flat = dense.inputs[0].producer()
    if flat is None or flat.op_type != "Flatten" or flat.attributes.get_int("axis", 1) != 1:
        return None
    if dense.op_type == "Gemm" and dense.attributes.get_int("transA", 0):
        return None
    w = const_array(dense.inputs[1])
    if w is None or w.ndim != 2:
        return None
    return flat, w, bool(dense.op_type == "Gemm" and dense.attributes.get_int("transB", 0))


def _flat_positions(shape, perm: list[int], w: np.ndarray, trans_b: bool) -> np.ndarray | None:
    """t[j]: the flat position, in a tensor of ``shape`` (batch first), of feature j of its
    transpose by ``perm`` (batch kept first); None unless the dimensions are static and make
    as many features as W reads."""
    dims = list(shape)[1:]
    if not all(isinstance(d, int) for d in dims) or math.prod(dims) != w.shape[int(trans_b)]:
        return None
    return np.arange(math.prod(dims)).reshape(dims).transpose(
        [p - 1 for p in perm[1:]]).reshape(-1)


def _transposed_flatten(dense: ir.Node):
    """(x, t, the Flatten, W, transB) when ``dense`` reads Flatten(Transpose(x)) with a
    constant weight W, the batch axis kept first; t[f'] is the flat position in x of
    transposed feature f'."""
    match = _flattened_weight(dense)
    t = match[0].inputs[0].producer() if match is not None else None
    if t is None or t.op_type != "Transpose":
        return None
    flat, w, trans_b = match
    x = t.inputs[0]
    perm = t.attributes.get_ints("perm", None)
    if x.shape is None or perm is None or list(perm) != [0, *range(2, len(perm)), 1]:
        return None
    order = _flat_positions(x.shape, list(perm), w, trans_b)
    return None if order is None else (x, order, flat, w, trans_b)


# Ops that keep a tensor's layout: features last in, features last out.
_LAYOUT_KEEPING = ("Relu", "Gelu", "Sigmoid", "Tanh", "Elu", "LeakyRelu", "HardSwish", "Mish",
                   "Softplus", "Clip", "Add", "Sub", "Mul", "Div", "Identity", "Erf")


def _features_last(value: ir.Value, depth: int = 8) -> bool:
    """Whether ``value``'s features are on its last axis: from a channels-last Transpose
    ([0, 2, ..., r-1, 1]), a recurrent layer, a dense layer or an embedding lookup, through
    ops that keep them last (elementwise ops, a Squeeze, Unsqueeze or Transpose that leaves
    the last axis last, a Reshape merging trailing axes into it, a Concat of such along
    another axis)."""
    node = value.producer()
    if node is None or depth == 0 or not is_default_domain(node.domain):
        return False
    op, rank = node.op_type, len(value.shape) if value.shape is not None else 0
    if op == "Transpose":
        perm = list(node.attributes.get_ints("perm", None) or [])
        if len(perm) > 2 and perm == [0, *range(2, len(perm)), 1]:
            return True
        return bool(perm) and perm[-1] == len(perm) - 1 and _features_last(node.inputs[0],
                                                                            depth - 1)
    if op in ("RNN", "GRU", "LSTM"):
        return value is node.outputs[0]  # Y [T, D, N, H]
    if op in ("MatMul", "Gemm") and rank >= 2:
        return const_array(node.inputs[1]) is not None
    if op == "Concat":  # steps stacked (Keras' TimeDistributed, unrolled)
        axis = node.attributes.get_int("axis", 0) % max(rank, 1)
        return axis != rank - 1 and all(_features_last(v, depth - 1) for v in node.inputs)
    if op == "Reshape":  # trailing axes merged into the last ([T, N, D, H] -> [T, N, D*H])
        x = node.inputs[0]
        last, inner = (value.shape[-1] if rank else None), (
            x.shape[-1] if x.shape is not None and len(x.shape) else None)
        return isinstance(last, int) and isinstance(inner, int) and last % inner == 0 and \
            _features_last(x, depth - 1)
    if op == "Gather":
        table = const_array(node.inputs[0])
        return table is not None and table.ndim == 2 and const_array(node.inputs[1]) is None
    if op in ("Squeeze", "Unsqueeze"):
        x = node.inputs[0]
        return x.shape is not None and value.shape is not None and rank > 0 and \
            value.shape[-1] == x.shape[-1] and _features_last(x, depth - 1)
    if op not in _LAYOUT_KEEPING:
        return False
    return any(v is not None and v.shape is not None and value.shape is not None and
               list(v.shape) == list(value.shape) and _features_last(v, depth - 1)
               for v in node.inputs)


def _transpose_features_first(graph: ir.Graph, dense: ir.Node) -> bool:
    """``Gemm(Flatten(y), W)`` with y's features last by ``_features_last`` becomes
    ``Gemm(Flatten(Transpose(y, [0, r-1, 1, ..., r-2])), W')`` (see the class docstring)."""
    match = _flattened_weight(dense)
    if match is None:
        return False
    flat, w, trans_b = match
    y = flat.inputs[0]
    if y.shape is None or len(y.shape) < 3 or not _features_last(y):
        return False
    rank = len(y.shape)
    perm = [0, rank - 1, *range(1, rank - 1)]
    source = _flat_positions(y.shape, perm, w, trans_b)
    if source is None:
        return False
    back = ir.node("Transpose", inputs=[y], attributes={"perm": perm},
                   name=f"{flat.name}_channels_first")
    back.outputs[0].name = f"{y.name}_channels_first"
    back.outputs[0].shape = ir.Shape([y.shape[a] for a in perm])
    back.outputs[0].type = y.type
    graph.insert_before(flat, back)
    flat.replace_input_with(0, back.outputs[0])
    permuted = w[:, source] if trans_b else w[source]
    dense.replace_input_with(1, new_initializer(graph, dense.inputs[1].name, permuted))
    return True
