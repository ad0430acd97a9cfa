"""A recurrent layer written as an ONNX Loop over its steps (tf2onnx's Keras 3 GRU and
SimpleRNN, and an LSTM whose gates are hard sigmoids: ``while`` loops it does not fuse;
jax2onnx's ``jax.lax.scan``, which carries the sequence and the weights through the body
unchanged), found and replaced by one ONNX RNN, GRU or LSTM op: ``reroll_loops`` (used by
``passes.RewriteLoopRecurrencePass``).

The loop is read as a cell h_t = f(x_t, h_{t-1}): x_t = Gather(X, t) of an outer sequence
X [T, N, F] by a counter that starts at 0 and adds 1, h a carried state that starts at zero,
the weights constants (or carried unchanged), the step's h_t both the carried state and the
loop's scan output; an LSTM carries a second state c from zero. W and R are the constants
the MatMuls of x_t and of h_{t-1} read ([F, G*H] and [H, G*H]: G = 1 a plain RNN, 3 a GRU, 4
an LSTM). What the op's gates, their order, its biases, activations and
``linear_before_reset`` are is not guessed from the body's syntax: every candidate
(``loop_cells``) is evaluated as a numpy cell against the body itself (run by ONNX's
reference evaluator on random x, h and c) and only one that reproduces it is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnx_ir as ir
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from onnxdecomp.irutil import (
    axes_node,
    const_array,
    is_default_domain,
    new_initializer,
    run_node,
)
from onnxdecomp.loop_cells import Cell, candidates, run_cell
from onnxdecomp.passes.remove_zero_initial_states import is_zero


@dataclass
class _Loop:
    node: ir.Node
    x: ir.Value  # the outer sequence [T, N, F]
    x_t: ir.Value  # the body's step input (the Gather's output)
    h_in: ir.Value  # the body's carried state input
    h_out: ir.Value  # the body's new state
    state: int  # index of h among the carried values
    scan: int | None  # index of h among the scan outputs, None when not scanned
    consts: dict[str, np.ndarray]  # body input name -> the constant it carries
    opset: int
    c: tuple[int, ir.Value, ir.Value] | None = None  # an LSTM's c: index, body in, new


def _reads_product(value: ir.Value) -> bool:
    """Whether a MatMul or Gemm multiplies ``value`` (h_{t-1}; an LSTM's c is not)."""
    return any(u.node.op_type in ("MatMul", "Gemm") and u.idx == 0 for u in value.uses())


def reroll_loops(model: ir.Model) -> bool:
    """Replace every Loop of ``model``'s main graph that is a plain RNN, a GRU or an LSTM
    (see the module docstring) by that op; True when one was."""
    graph, changed = model.graph, False
    opset = model.opset_imports.get("", 1)
    for node in list(graph):
        if node.op_type != "Loop" or not is_default_domain(node.domain):
            continue
        loop = _read(node, opset)
        if loop is None:
            continue
        cell = _identify(loop)
        if cell is not None:
            _replace(graph, loop, cell, opset)
            changed = True
    return changed


def _base(value: ir.Value) -> ir.Value:
    """``value`` past the Identities that copy it."""
    while (p := value.producer()) is not None and p.op_type == "Identity":
        value = p.inputs[0]
    return value


def _read(node: ir.Node, opset: int) -> _Loop | None:
    body = node.attributes["body"].value if "body" in node.attributes else None
    if body is None or len(node.inputs) < 3:
        return None
    carried = len(node.inputs) - 2
    if len(body.inputs) != 2 + carried or len(body.outputs) < 1 + carried:
        return None
    inner_in, inner_out = list(body.inputs[2:]), list(body.outputs[1:1 + carried])
    scans = list(body.outputs[1 + carried:])
    kept = {v.name: k for k, (v, o) in enumerate(zip(inner_in, inner_out)) if _base(o) is v}
    consts = {n: a for n, k in kept.items()  # carried unchanged: a weight
              if (a := const_array(node.inputs[2 + k])) is not None}

    def outer(v: ir.Value) -> ir.Value | None:
        """The sequence a Gather steps through: read from the graph, or carried unchanged
        (jax2onnx's scan)."""
        if v.name in kept:
            return node.inputs[2 + kept[v.name]]
        return v if v.graph is not body and v.producer() not in body else None

    gathers = [n for n in body if n.op_type == "Gather" and n.attributes.get_int("axis", 0) == 0
               and outer(n.inputs[0]) is not None and _counts_steps(n.inputs[1], body, node)]
    x = outer(gathers[0].inputs[0]) if len(gathers) == 1 else None
    if x is None or x.shape is None or len(x.shape) != 3:
        return None
    states = [i for i, v in enumerate(inner_in) if v.name not in kept
              and is_zero(node.inputs[2 + i]) and v is not gathers[0].inputs[1]]
    hs = [i for i in states if _reads_product(inner_in[i])]
    if len(hs) != 1 or len(states) > 2:
        return None
    i = hs[0]
    c = next(((k, inner_in[k], _base(inner_out[k])) for k in states if k != i), None)
    h_out = _base(inner_out[i])
    scan = next((k for k, s in enumerate(scans) if _base(s) is h_out), None)
    used = {i} | ({carried + scan} if scan is not None else set()) | (
        {c[0]} if c is not None else set())
    if any(v.uses() or v.is_graph_output() for k, v in enumerate(node.outputs) if k not in used):
        return None
    trips = const_array(node.inputs[0]) if node.inputs[0] is not None else None
    if trips is None or trips.size != 1 or int(trips.reshape(-1)[0]) != x.shape[0]:
        return None  # a scan of every step, no more, no fewer
    return _Loop(node, x, gathers[0].outputs[0], inner_in[i], h_out, i, scan, consts, opset, c)


def _counts_steps(index: ir.Value, body: ir.Graph, node: ir.Node) -> bool:
    """Whether ``index`` is the iteration number, or a carried counter from 0 adding 1."""
    if index is body.inputs[0]:
        return True
    if index not in body.inputs[2:]:
        return False
    k = list(body.inputs).index(index) - 2
    start = const_array(node.inputs[2 + k])
    step = body.outputs[1 + k].producer()
    if start is None or int(start.reshape(-1)[0]) != 0 or step is None or \
            step.op_type != "Add" or index not in step.inputs:
        return False
    other = step.inputs[1] if step.inputs[0] is index else step.inputs[0]
    one = const_array(other)
    return one is not None and one.size == 1 and int(one.reshape(-1)[0]) == 1


def _const(value: ir.Value, loop: _Loop, depth: int = 4) -> np.ndarray | None:
    """The value's array where it is a constant: one the loop carries unchanged, or one the
    body computes from constants alone (a Slice of a kernel: loop bodies are not folded)."""
    if value.name in loop.consts:
        return loop.consts[value.name]
    array = const_array(value)
    node = value.producer()
    if array is not None or node is None or depth == 0 or len(node.outputs) != 1 or any(
            isinstance(a.value, ir.Graph) for a in node.attributes.values()):
        return array
    arrays = [_const(v, loop, depth - 1) for v in node.inputs if v is not None]
    if any(a is None for a in arrays):
        return None
    out = run_node(node, arrays, loop.opset)
    return None if out is None else out[0]


def _weight(source: ir.Value, loop: _Loop) -> np.ndarray | None:
    """The constant [in, G*H] a MatMul (or Gemm: its bias is among the candidates') of
    ``source`` reads."""
    for use in source.uses():
        n = use.node
        gemm = n.op_type == "Gemm" and not n.attributes.get_int("transA", 0)
        if (n.op_type == "MatMul" or gemm) and use.idx == 0:
            w = _const(n.inputs[1], loop)
            if w is not None and w.ndim == 2 and gemm:
                w = (w.T if n.attributes.get_int("transB", 0) else w) * \
                    n.attributes.get_float("alpha", 1.0)
            if w is not None and w.ndim == 2:
                return w
    return None


def _recurrent_weight(loop: _Loop, body: ir.Graph, width: int) -> np.ndarray | None:
    """R [H, G*H]: the constant a MatMul of h_{t-1} reads, or, where that covers only the
    update and reset gates ([H, 2H], a GRU that resets before its recurrent product: Keras'
    ``reset_after=False``), joined with the [H, H] one another MatMul of the body reads
    (of r * h_{t-1}); which gate is which the candidates settle."""
    r = _weight(loop.h_in, loop)
    if r is None or r.shape[1] != 2 * r.shape[0] or width != 3 * r.shape[0]:
        return r
    for n in body:
        if n.op_type in ("MatMul", "Gemm") and n.inputs[0] is not loop.h_in and \
                n.inputs[0] is not loop.x_t:
            c = _const(n.inputs[1], loop)
            if c is not None and c.shape == (r.shape[0], r.shape[0]):
                return np.concatenate([r, c], axis=1)
    return r


def _identify(loop: _Loop) -> Cell | None:
    body = loop.node.attributes["body"].value
    w = _weight(loop.x_t, loop)
    r = None if w is None else _recurrent_weight(loop, body, w.shape[1])
    if w is None or r is None or r.shape[1] != w.shape[1] or r.shape[1] % r.shape[0]:
        return None
    hidden, gates = r.shape[0], r.shape[1] // r.shape[0]
    if gates not in ((4,) if loop.c is not None else (1, 3)):
        return None
    reference = _cell_function(loop, body)
    if reference is None:
        return None
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, w.shape[0])).astype(np.float32)
    h, c = rng.uniform(-1, 1, size=(2, 64, hidden)).astype(np.float32)
    try:
        want = reference(x, h, c)
    except Exception:  # noqa: BLE001 - a body the evaluator cannot run is not rewritten
        return None
    values = {v.name: v for n in body for v in n.inputs if v is not None}
    constants = [a for v in values.values() if (a := _const(v, loop)) is not None]
    for cell in candidates(constants, w, r, gates):
        got = run_cell(cell, *(a.astype(np.float64) for a in (x, h, c)))
        if all(np.allclose(g, t, atol=1e-5, rtol=1e-4) for g, t in zip(got, want)
               if g is not None):
            return cell
    return None


def _cell_function(loop: _Loop, body: ir.Graph):
    """The body as a function (x_t, h, c) -> [h_t] (an LSTM's [h_t, c_t]; c is ignored
    without one), run by ONNX's reference evaluator; None when it reads outer values that
    are not constants (beyond the sequence it steps through)."""
    proto = ir.serde.serialize_graph(body)
    gather = loop.x_t.producer()
    nodes = [n for n, m in zip(proto.node, body) if m is not gather]
    inits = list(proto.initializer)
    defined = {i.name for i in inits} | {o for n in nodes for o in n.output}
    fed = {loop.x_t.name, loop.h_in.name} | ({loop.c[1].name} if loop.c else set())
    for v in body.inputs:
        if v.name in fed:
            continue
        a = loop.consts.get(v.name)
        if a is None:
            dtype = v.dtype.numpy() if v.dtype is not None else np.int64
            a = np.zeros((), dtype)  # a counter or the condition: unused by h_t
        inits.append(numpy_helper.from_array(np.asarray(a), v.name))
        defined.add(v.name)
    for n in body:
        if n is gather:
            continue
        for v in n.inputs:
            if v is None or v.name in defined or v.name in fed:
                continue
            a = const_array(v)
            if a is None:
                return None
            inits.append(numpy_helper.from_array(a, v.name))
            defined.add(v.name)
    ins = [loop.x_t, loop.h_in] + ([loop.c[1]] if loop.c else [])
    outs = [loop.h_out] + ([loop.c[2]] if loop.c else [])
    graph = helper.make_graph(
        nodes, "cell",
        [helper.make_tensor_value_info(v.name, onnx.TensorProto.FLOAT, None) for v in ins],
        [helper.make_tensor_value_info(v.name, onnx.TensorProto.FLOAT, None) for v in outs],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", loop.opset)])
    evaluator = ReferenceEvaluator(model)

    def run(x: np.ndarray, h: np.ndarray, c: np.ndarray) -> list[np.ndarray]:
        return evaluator.run(None, dict(zip((v.name for v in ins), (x, h, c))))

    return run


def _replace(graph: ir.Graph, loop: _Loop, cell: Cell, opset: int) -> None:
    node, hidden = loop.node, cell.r.shape[1]
    name = node.name or "loop"
    dtype = np.float32  # the body ran as float32 (``_cell_function``)
    w = new_initializer(graph, f"{name}_W", cell.w[None].astype(dtype))
    r = new_initializer(graph, f"{name}_R", cell.r[None].astype(dtype))
    b = new_initializer(graph, f"{name}_B", cell.b[None].astype(dtype))
    op = ir.node(cell.op, [loop.x, w, r, b], num_outputs=3 if cell.op == "LSTM" else 2,
                 name=f"{name}_{cell.op.lower()}",
                 attributes={"hidden_size": int(hidden), **cell.attributes})
    for out, tag in zip(op.outputs, ("Y", "Y_h", "Y_c")):
        out.name = f"{name}_{tag}"
    added = [op]
    carried = len(node.inputs) - 2
    pairs = [(node.outputs[loop.state], op.outputs[1], 0, "h")]
    if loop.c is not None:
        pairs.append((node.outputs[loop.c[0]], op.outputs[2], 0, "c"))
    if loop.scan is not None:
        pairs.append((node.outputs[carried + loop.scan], op.outputs[0], 1, "seq"))
    steps, batch = loop.x.shape[0], loop.x.shape[1]
    for old, new, axis, tag in pairs:
        squeeze = axes_node(graph, "Squeeze", new, [axis], opset, f"{name}_{tag}")
        squeeze.outputs[0].name = f"{name}_{tag}"
        # A loop stepping through this one's sequence reads its length off this shape.
        squeeze.outputs[0].shape = ir.Shape([steps, batch, hidden] if tag == "seq" else
                                            [batch, hidden])
        squeeze.outputs[0].type = old.type or ir.TensorType(ir.DataType.FLOAT)
        added.append(squeeze)
        if old.is_graph_output():
            graph.outputs[graph.outputs.index(old)] = squeeze.outputs[0]
        ir.convenience.replace_all_uses_with(old, squeeze.outputs[0])
    graph.insert_before(node, added)
    for inner in node.attributes["body"].value:  # the body's reads of outer values go too
        for i in range(len(inner.inputs)):
            inner.replace_input_with(i, None)
    graph.remove(node, safe=True)
