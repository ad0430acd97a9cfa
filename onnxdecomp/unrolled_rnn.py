"""A vanilla RNN unrolled into per-step MatMul, Add and Tanh or Relu (PyTorch's dynamo exporter's
``nn.RNN``), found and rolled back into one ONNX RNN op: ``reroll`` (used by
``passes.RerollTanhRecurrencePass`` and by the Runner's batch-axis detection)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import axes_node, is_default_domain, new_initializer
from onnxdecomp.irutil import const_array as _const_array


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The constant's values; None also where they cannot be read (external data that
    ``model_stats`` left unread)."""
    try:
        return _const_array(value)
    except OSError:
        return None


# Ops through which an all-zero initial state reaches the first step unchanged.
_ZERO_CARRIERS = {"Squeeze", "Unsqueeze", "Slice", "Reshape", "Identity", "Cast"}


@dataclass
class _Step:
    act: ir.Node  # the step's Tanh (or Relu)
    h_prev: ir.Value
    w: np.ndarray  # [H, H]: h_prev @ w
    bias: np.ndarray | None  # [H]
    seq: ir.Value  # P [T, N, H]: every step's input projection
    index: int  # which step of P this one reads


def reroll(model: ir.Model) -> bool:
    """Roll every unrolled chain of ``model`` into an RNN node (see
    ``passes.RerollTanhRecurrencePass``); True when one was. A model in which no weight is
    read by several MatMuls holds none: it is not searched."""
    graph = model.graph
    if not shares_matmul_weights([n.inputs[1].name for n in graph if n.op_type == "MatMul"
                                  and len(n.inputs) > 1 and n.inputs[1] is not None]):
        return False
    opset = model.opset_imports.get("", 17)
    steps = [s for n in graph if (s := _step(n)) is not None]
    after: dict[int, list[_Step]] = {}  # id(h_prev) -> the steps reading it
    for s in steps:
        after.setdefault(id(s.h_prev), []).append(s)
    modified = False
    for first in (s for s in steps if _is_zero(s.h_prev)):
        chain = [first]
        while len(nxt := after.get(id(chain[-1].act.outputs[0]), [])) == 1:
            chain.append(nxt[0])
        if _consistent(chain):
            _replace(graph, chain, opset)
            modified = True
    return modified


def _step(node: ir.Node) -> _Step | None:
    """The recurrence step a Tanh (or Relu: ``nonlinearity="relu"``) node computes, or
    None."""
    if node.op_type not in ("Tanh", "Relu") or not is_default_domain(node.domain):
        return None
    add = node.inputs[0].producer()
    if add is None or add.op_type != "Add":
        return None
    for rec, x in (add.inputs, add.inputs[::-1]):
        parsed = _recurrent_part(rec)
        source = _step_input(x)
        if parsed is not None and source is not None:
            return _Step(node, parsed[0], parsed[1], parsed[2], source[0], source[1])
    return None


def _dense(value: ir.Value) -> tuple[ir.Value, np.ndarray, np.ndarray | None] | None:
    """(x, W, b) of ``MatMul(x, W) [+ b]`` with constant 2-D W and, if any, b [W's columns]."""
    node, bias = value.producer(), None
    if node is not None and node.op_type == "Add":
        for mm, b in (node.inputs, node.inputs[::-1]):
            b_arr = const_array(b)
            if b_arr is not None and b_arr.ndim == 1 and mm.producer() is not None and \
                    mm.producer().op_type == "MatMul":
                node, bias = mm.producer(), b_arr
                break
        else:
            return None
    if node is None or node.op_type != "MatMul":
        return None
    w = const_array(node.inputs[1])
    if w is None or w.ndim != 2 or bias is not None and bias.shape != (w.shape[1],):
        return None
    return node.inputs[0], w, bias


def _recurrent_part(value: ir.Value) -> tuple[ir.Value, np.ndarray, np.ndarray | None] | None:
    """(h_prev, W, b) of ``MatMul(h_prev, W) [+ b]`` with W [H, H]."""
    parts = _dense(value)
    return parts if parts is not None and parts[1].shape[0] == parts[1].shape[1] else None


def _step_input(value: ir.Value) -> tuple[ir.Value, int] | None:
    """(P, t) of ``Squeeze(Slice(P, t, t + 1, axis 0), 0)`` or ``Gather(P, t, axis=0)``."""
    node = value.producer()
    if node is None:
        return None
    if node.op_type == "Gather" and node.attributes.get_int("axis", 0) == 0:
        t = const_array(node.inputs[1])
        return (node.inputs[0], int(t)) if t is not None and t.ndim == 0 else None
    if node.op_type != "Squeeze":
        return None
    sliced = node.inputs[0].producer()
    if sliced is None or sliced.op_type != "Slice" or len(sliced.inputs) < 3:
        return None
    bounds = [const_array(v) if v is not None else None for v in sliced.inputs[1:5]]
    if any(b is None for b in bounds[:2]):
        return None
    axes = bounds[2] if len(bounds) > 2 and bounds[2] is not None else np.zeros(1, np.int64)
    steps = bounds[3] if len(bounds) > 3 and bounds[3] is not None else np.ones(1, np.int64)
    start, end = int(bounds[0].reshape(-1)[0]), int(bounds[1].reshape(-1)[0])
    if axes.reshape(-1).tolist() != [0] or steps.reshape(-1).tolist() != [1] or \
            end != start + 1 or start < 0:
        return None
    return sliced.inputs[0], start


def _is_zero(value: ir.Value, depth: int = 8) -> bool:
    """Whether ``value`` is all zeros: a zero constant, or one expanded or moved."""
    array = const_array(value)
    if array is not None:
        return not np.any(array)
    node = value.producer()
    if node is None or depth == 0:
        return False
    if node.op_type in ("Expand", "ConstantOfShape"):
        fill = const_array(node.inputs[0]) if node.op_type == "Expand" else (
            node.attributes["value"].value.numpy() if "value" in node.attributes else
            np.zeros(1))
        return fill is not None and not np.any(fill)
    if node.op_type in _ZERO_CARRIERS:
        return _is_zero(node.inputs[0], depth - 1)
    return False


def _projection(seq: ir.Value) -> tuple[ir.Value, np.ndarray, np.ndarray | None] | None:
    """(X, W_ih, b_ih) of P = ``MatMul(X, W_ih) [+ b_ih]`` with X [T, N, I]."""
    parts = _dense(seq)
    x = parts[0] if parts is not None else None
    return parts if x is not None and x.shape is not None and len(x.shape) == 3 else None


def _unflipped(seq: ir.Value) -> tuple[ir.Value, bool]:
    """(P, True) when ``seq`` is P with its steps reversed (``Slice(P, -1, -inf, axis 0,
    step -1)``: dynamo's backward direction), else (seq, False)."""
    node = seq.producer()
    if node is None or node.op_type != "Slice" or len(node.inputs) < 5:
        return seq, False
    bounds = [const_array(v) if v is not None else None for v in node.inputs[1:5]]
    if any(b is None or b.size != 1 for b in bounds):
        return seq, False
    start, end, axis, step = (int(b.reshape(-1)[0]) for b in bounds)
    if axis != 0 or step != -1 or start != -1 or end > -(2 ** 31):
        return seq, False
    return node.inputs[0], True


def _consistent(chain: list[_Step]) -> bool:
    first = chain[0]
    if _projection(_unflipped(first.seq)[0]) is None:
        return False
    length = first.seq.shape[0] if first.seq.shape is not None else None
    if isinstance(length, int) and length != len(chain):
        return False
    order = list(range(len(chain)))
    if [s.index for s in chain] not in (order, order[::-1]):
        return False  # forward (0 .. T-1) or reverse (T-1 .. 0) over P's steps
    for step in chain:
        if step.seq is not first.seq or not np.array_equal(step.w, first.w) or \
                step.act.op_type != first.act.op_type:
            return False
        if (step.bias is None) != (first.bias is None) or (
                step.bias is not None and not np.array_equal(step.bias, first.bias)):
            return False
    return True


def _replace(graph: ir.Graph, chain: list[_Step], opset: int) -> None:
    seq, flipped = _unflipped(chain[0].seq)
    x, w_ih, b_ih = _projection(seq)
    if flipped:  # step i read row i of the reversed sequence: time T - 1 - i
        for step in chain:
            step.index = len(chain) - 1 - step.index
    hidden = w_ih.shape[1]
    dtype = w_ih.dtype
    name = chain[0].act.name or "rnn"
    zeros = np.zeros(hidden, dtype)
    bias = np.concatenate([b_ih if b_ih is not None else zeros,
                           chain[0].bias if chain[0].bias is not None else zeros])
    w = new_initializer(graph, f"{name}_W", w_ih.T[None].astype(dtype))
    r = new_initializer(graph, f"{name}_R", chain[0].w.T[None].astype(dtype))
    b = new_initializer(graph, f"{name}_B", bias[None].astype(dtype))
    reverse = len(chain) > 1 and chain[0].index > chain[1].index
    attributes = {"hidden_size": int(hidden), "direction": "reverse" if reverse else "forward"}
    if chain[0].act.op_type == "Relu":
        attributes["activations"] = ["Relu"]
    rnn = ir.node("RNN", [x, w, r, b], attributes=attributes, num_outputs=2, name=f"{name}_rnn")
    rnn.outputs[0].name, rnn.outputs[1].name = f"{name}_Y", f"{name}_Y_h"
    added = [rnn]
    _sequence_concat(graph, chain, rnn, added, opset, name)
    last = len(chain) - 1
    for i, step in enumerate(chain):
        h, t = step.act.outputs[0], step.index
        readers = [u for u in h.uses() if not (i < last and u.node.op_type == "MatMul")]
        if not readers and not h.is_graph_output():
            continue
        if i == last:
            value = rnn.outputs[1]  # [1, N, H]: the last state computed
        else:
            index = new_initializer(graph, f"{name}_step{t}", np.array(t, np.int64))
            gather = ir.node("Gather", [rnn.outputs[0], index], attributes={"axis": 0},
                             name=f"{name}_y{t}")
            gather.outputs[0].name = f"{name}_y{t}"
            added.append(gather)
            value = gather.outputs[0]  # [1, N, H]
        if h.shape is not None and len(h.shape) == 2:
            squeeze = axes_node(graph, "Squeeze", value, [0], opset, f"{name}_h{t}")
            squeeze.outputs[0].name = f"{name}_h{t}"
            added.append(squeeze)
            value = squeeze.outputs[0]
        value.shape, value.type = h.shape, h.type
        for use in readers:
            use.node.replace_input_with(use.idx, value)
        if h.is_graph_output():
            graph.outputs[graph.outputs.index(h)] = value
    graph.insert_before(chain[0].act, added)


def _sequence_concat(graph: ir.Graph, chain: list[_Step], rnn: ir.Node, added: list[ir.Node],
                     opset: int, name: str) -> None:
    """A Concat along axis 0 of every step's [1, N, H] state in time order (the layer's
    output sequence [T, N, H]) reads Y [T, 1, N, H] with its direction axis squeezed."""
    by_time = [s.act.outputs[0] for s in sorted(chain, key=lambda s: s.index)]
    for use in by_time[0].uses():
        node = use.node
        if node.op_type != "Concat" or node.attributes.get_int("axis", 0) != 0 or \
                list(node.inputs) != by_time:
            continue
        out = node.outputs[0]
        if by_time[0].shape is None or len(by_time[0].shape) != 3:
            continue
        squeeze = axes_node(graph, "Squeeze", rnn.outputs[0], [1], opset, f"{name}_seq")
        squeeze.outputs[0].name = f"{name}_seq"
        squeeze.outputs[0].shape, squeeze.outputs[0].type = out.shape, out.type
        added.append(squeeze)
        if out.is_graph_output():
            graph.outputs[graph.outputs.index(out)] = squeeze.outputs[0]
        ir.convenience.replace_all_uses_with(out, squeeze.outputs[0])


def shares_matmul_weights(weights: list[str]) -> bool:
    """Whether one weight is read by several MatMuls (``weights``: each MatMul's second input
    name): a cheap sign of an unrolled recurrence, before looking for one."""
    return len(weights) != len(set(weights))
