"""Recurrent classifiers (ONNX RNN, LSTM, GRU): exact modules with nothing pruned, against
torch, for both exporters, uni- and bidirectional, 1 and 2 layers; pruned modules that are
valid and smaller; the normalisation passes they need; one-line errors for what has no rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from conftest import build_lstm, torch_export
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from onnxdecomp.channels import analyse
from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.decompose.head import logodds_from_logits
from onnxdecomp.errors import UnsupportedOpError
from onnxdecomp.passes import FoldGatherOfConcatPass, normalize
from onnxdecomp.runtime import Runner
from onnxdecomp.stats import model_stats

torch = pytest.importorskip("torch")

VOCAB, EMBED, HIDDEN, CLASSES, STEPS = 40, 6, 8, 4, 7


class IntentNet(torch.nn.Module):
    """Embedding -> RNN/LSTM/GRU -> final state of the last layer -> linear (as the zoo)."""

    def __init__(self, cell: str, bidirectional: bool, layers: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, EMBED, padding_idx=0)
        self.rnn = getattr(torch.nn, cell)(EMBED, HIDDEN, num_layers=layers, batch_first=True,
                                           bidirectional=bidirectional)
        self.bidirectional = bidirectional
        self.head = torch.nn.Linear(HIDDEN * (2 if bidirectional else 1), CLASSES)

    def forward(self, ids):
        _, state = self.rnn(self.embed(ids))
        h = state[0] if isinstance(state, tuple) else state
        return self.head(torch.cat([h[-2], h[-1]], 1) if self.bidirectional else h[-1])


def ids(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, (n, STEPS)).astype(np.int64)


def export(net, exporter: str, path: Path) -> Path:
    return torch_export(net, torch.from_numpy(ids(3, 7)), exporter, path)


CASES = [(cell, bi, layers, exporter) for cell in ("LSTM", "GRU", "RNN")
         for bi in (False, True) for layers in (1, 2) for exporter in ("torchscript", "dynamo")]


@pytest.mark.parametrize("cell,bi,layers,exporter", CASES,
                         ids=[f"{c}-{'bi' if b else 'uni'}-{n}-{e}" for c, b, n, e in CASES])
def test_recurrent_modules_exact_then_smaller(tmp_path: Path, cell: str, bi: bool, layers: int,
                                              exporter: str) -> None:
    """Nothing pruned: every module's score is the parent's (= torch's) class log-odds to
    1e-5. Pruned: valid modules with fewer hidden units and fewer MACs. (Dynamo unrolls a
    vanilla RNN into MatMul/Tanh steps: ``RerollTanhRecurrencePass`` rolls it up.)"""
    torch.manual_seed(0)
    net = IntentNet(cell, bi, layers).eval()
    path = export(net, exporter, tmp_path / "m.onnx")
    x = ids(200, 0)
    if cell == "RNN" and exporter == "dynamo":  # it unrolls the loop into MatMul/Tanh steps
        assert "RNN" not in {n.op_type for n in onnx.load(str(path)).graph.node}
    with torch.no_grad():
        want = logodds_from_logits(net(torch.from_numpy(x)).numpy())
    dec = Decomposer(path, x, settings=Settings(keep=1.0, compensation="none", device="cpu"))
    for k in range(CLASSES):
        module = dec.build(k, 1.0, check=True)
        got = Runner(module.proto, device="cpu").run(x)[0][:, 0]
        np.testing.assert_allclose(got, want[:, k], atol=1e-5)
    dec = Decomposer(path, x, settings=Settings(keep=0.5, align=1, device="cpu"))
    module = dec.measure(dec.build(1, 0.5, check=True))
    sizes = [a.i for n in module.proto.graph.node if n.op_type == cell
             for a in n.attribute if a.name == "hidden_size"]
    # Rolled up, each direction of a bidirectional layer is an RNN of its own: one cluster of
    # units with the layer's other direction (the next layer reads both), kept as a whole.
    per_layer = 2 if bi and cell == "RNN" and exporter == "dynamo" else 1
    assert len(sizes) == layers * per_layer and sum(sizes) == len(sizes) * HIDDEN // 2
    assert per_layer == 2 or all(s == HIDDEN // 2 for s in sizes)
    assert model_stats(module.proto).macs < 0.5 * dec.parent.macs
    assert np.isfinite(module.fidelity)


def test_state_refit_beats_slicing(tmp_path: Path) -> None:
    """Refitting R from the parent's own states (and W, the head) keeps a pruned LSTM's
    log-odds closer to the parent's than plain slicing does."""
    torch.manual_seed(1)
    path = export(IntentNet("LSTM", False, 1).eval(), "torchscript", tmp_path / "m.onnx")
    x = ids(600, 1)
    fid = {}
    for comp in ("lstsq", "none"):
        dec = Decomposer(path, x, settings=Settings(keep=0.5, compensation=comp, align=1,
                                                    device="cpu"))
        fid[comp] = np.mean([dec.measure(dec.build(k, 0.75)).fidelity for k in range(CLASSES)])
    assert fid["lstsq"] > fid["none"]


def test_zero_initial_states_are_dropped_and_y_named(tmp_path: Path) -> None:
    """Exporters build h0 = ConstantOfShape(Concat(D, N, H)), the hidden size baked in: the
    normalised model has no initial state (zeros by the spec) and a named Y."""
    torch.manual_seed(0)
    path = export(IntentNet("GRU", True, 2).eval(), "torchscript", tmp_path / "m.onnx")
    assert any(n.op_type == "ConstantOfShape" for n in onnx.load(str(path)).graph.node)
    model = normalize(ir.serde.deserialize_model(onnx.load(str(path))))
    grus = [n for n in model.graph if n.op_type == "GRU"]
    assert len(grus) == 2
    for node in grus:
        assert len(node.inputs) <= 5 and node.outputs[0].name
    assert not any(n.op_type == "ConstantOfShape" for n in model.graph)


def test_a_parent_that_runs_only_normalised_says_so() -> None:
    """A zero initial state baked at batch 1 stops ONNX Runtime on any other batch; the
    normalised model drops it and runs: its modules come with a note saying they match that
    form, not the file."""
    from conftest import build_lstm

    from onnxdecomp.decompose import decompose

    proto = build_lstm()
    lstm = next(n for n in proto.graph.node if n.op_type == "LSTM")
    lstm.input.extend(["", "", "h0"])
    proto.graph.initializer.append(numpy_helper.from_array(np.zeros((1, 1, 4), np.float32),
                                                           "h0"))
    x = np.random.default_rng(0).normal(size=(90, 5, 3)).astype(np.float32)
    manifest = decompose(proto, x, settings=Settings(keep=1.0, device="cpu"))
    assert any("cannot run the parent as given" in n for n in manifest.notes)
    assert not any("as given" in n for n in decompose(
        build_lstm(), x, settings=Settings(keep=1.0, device="cpu")).notes)


def test_fold_gather_of_concat() -> None:
    """Gather(Concat(a, b, axis 0), -1, axis 0) reads b's last row."""
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
    idx = numpy_helper.from_array(np.array(-1, np.int64), "idx")
    graph = helper.make_graph([
        helper.make_node("Concat", ["a", "b"], ["c"], axis=0),
        helper.make_node("Gather", ["c", "idx"], ["y"], axis=0)], "g", [a, b], [y], [idx])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model = ir.serde.deserialize_model(proto)
    ir.passes.common.ShapeInferencePass()(model)
    assert FoldGatherOfConcatPass()(model).modified
    gather = next(n for n in model.graph if n.op_type == "Gather")
    assert gather.inputs[0].name == "b" and int(gather.inputs[1].const_value.numpy()) == 0
    (out,) = ReferenceEvaluator(ir.serde.serialize_model(model)).run(
        None, {"a": np.ones((2, 3), np.float32), "b": np.full((1, 3), 5, np.float32)})
    np.testing.assert_array_equal(out, np.full(3, 5, np.float32))


def test_unsupported_recurrent_layout_names_the_node() -> None:
    model = normalize(ir.serde.deserialize_model(build_lstm(layout=1)))
    with pytest.raises(UnsupportedOpError, match="layout=1") as err:
        analyse(model)
    assert "(LSTM)" in str(err.value) and "\n" not in str(err.value)


def test_custom_activations_prune_like_the_defaults() -> None:
    """Pruning a hidden unit removes its gate rows and R columns whatever the gates compute
    (statistics and refits are measured): an LSTM with a Relu cell activation."""
    proto = build_lstm(activations=["Sigmoid", "Relu", "Tanh"])
    x = np.random.default_rng(0).normal(size=(200, 5, 3)).astype(np.float32)
    dec = Decomposer(proto, x, settings=Settings(device="cpu", align=1))
    want = logodds_from_logits(Runner(proto, device="cpu").run(x)[0])
    got = Runner(dec.build(0, 1.0, check=True).proto, device="cpu").run(x)[0][:, 0]
    np.testing.assert_allclose(got, want[:, 0], atol=1e-5)
    half = dec.build(0, 0.5, check=True)
    assert half.removed and model_stats(half.proto).macs < dec.parent.macs


def test_default_lstm_model_analyses() -> None:
    """The same graph with the defaults: the hidden units are prunable units."""
    model = normalize(ir.serde.deserialize_model(build_lstm()))
    cg = analyse(model)
    assert len(cg.units()) == 4
    assert {c.kind for c in cg.consumers} == {"gemm", "rnn_state"}


def test_embeddings_kept_unless_asked(tmp_path: Path) -> None:
    """The lookup table keeps its columns by default; ``prune_embeddings`` prunes them too."""
    torch.manual_seed(0)
    path = export(IntentNet("GRU", False, 1).eval(), "torchscript", tmp_path / "m.onnx")
    x = ids(200, 0)
    widths = {}
    for prune in (False, True):
        dec = Decomposer(path, x, settings=Settings(keep=0.5, align=1, device="cpu",
                                                    prune_embeddings=prune))
        proto = dec.build(0, 0.5, check=True).proto
        table = next(t for t in proto.graph.initializer if list(t.dims[:1]) == [VOCAB])
        widths[prune] = table.dims[1]
    assert widths == {False: EMBED, True: EMBED // 2}


def test_computed_nonzero_initial_state_pins_the_units() -> None:
    """h0 = ConstantOfShape(Concat(1, N, H)) filled with 0.5: computed from the batch, not
    zeros, so neither dropped nor sliced, and no pruned channel reaches it: every unit of
    the LSTM stays (it was refused); a state computed from pruned channels on other axes is
    still a one-line error naming the LSTM."""
    proto = build_lstm()
    half = numpy_helper.from_array(np.array([0.5], np.float32))
    proto.graph.initializer.extend([numpy_helper.from_array(np.array([1], np.int64), "one"),
                                    numpy_helper.from_array(np.array([4], np.int64), "hid")])
    shape_nodes = [
        helper.make_node("Shape", ["x"], ["xs"]),
        helper.make_node("Gather", ["xs", "zero_i"], ["n"], axis=0),
        helper.make_node("Concat", ["one", "n", "hid"], ["h0_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["h0_shape"], ["h0"], value=half)]
    proto.graph.initializer.append(numpy_helper.from_array(np.array([0], np.int64), "zero_i"))
    lstm = next(n for n in proto.graph.node if n.op_type == "LSTM")
    lstm.input.extend(["", "", "h0"])
    nodes = list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(shape_nodes + nodes)
    model = normalize(ir.serde.deserialize_model(proto))
    cg = analyse(model)
    lstm = next(n for n in model.graph if n.op_type == "LSTM")
    assert set(cg.roots(lstm.outputs[0]).tolist()) <= cg.pinned_roots()
    assert any("initial state 'h0' of LSTM" in by for by in cg.pinned_by)  # named in the note
    # a dense layer's units as both directions' state, [2, N, H]: the same unit starts
    # unit i of each direction, which one unit space per direction cannot say
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)
             for name, shape in (("W", (2, 16, 3)), ("R", (2, 16, 4)), ("Wp", (3, 4)),
                                 ("Wo", (8, 3)))]
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "axes0"))
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        helper.make_node("ReduceMean", ["x"], ["xm"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["xm", "Wp"], ["hp"]),
        helper.make_node("Unsqueeze", ["hp", "axes0"], ["h1"]),
        helper.make_node("Concat", ["h1", "h1"], ["h0"], axis=0),
        helper.make_node("LSTM", ["xt", "W", "R", "", "", "h0"], ["y", "yh"], hidden_size=4,
                         direction="bidirectional", name="lstm"),
        helper.make_node("Transpose", ["yh"], ["yt"], perm=[1, 0, 2]),
        helper.make_node("Flatten", ["yt"], ["yf"], axis=1),
        helper.make_node("MatMul", ["yf", "Wo"], ["z"])]
    graph = helper.make_graph(
        nodes, "bi", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 3])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 3])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedOpError, match="initial state 'h0' is computed") as err:
        analyse(normalize(ir.serde.deserialize_model(proto)))
    assert "(LSTM)" in str(err.value) and "\n" not in str(err.value)


def test_auto_align_keeps_recurrent_units_in_gemm_multiples(tmp_path: Path) -> None:
    """Under ``--align auto`` hidden units are kept in multiples of RECURRENT_ALIGN (their
    GEMMs have no blocked-kernel cliff), not the convolutions' vector width; an explicit
    ``--align N`` holds for them too; the manifest records the multiple used."""
    from onnxdecomp.decompose import decompose
    from onnxdecomp.decompose.align import RECURRENT_ALIGN, kept_count

    torch.manual_seed(0)
    path = export(IntentNet("LSTM", False, 1).eval(), "torchscript", tmp_path / "m.onnx")
    x = ids(200, 0)
    for align, want in (("auto", None), (3, 3)):
        dec = Decomposer(path, x, settings=Settings(keep=0.3, align=align, device="cpu"))
        if want is None:
            want = min(dec.align, RECURRENT_ALIGN)
        assert dec.align_recurrent == want and set(dec.align_of.values()) == {want}
        module = dec.build(0, 0.3, check=True)
        (size,) = [a.i for n in module.proto.graph.node if n.op_type == "LSTM"
                   for a in n.attribute if a.name == "hidden_size"]
        assert size == kept_count(HIDDEN, 0.3, want)
    manifest = decompose(path, x, classes=[0], settings=Settings(keep=0.3, device="cpu"))
    settings = manifest.to_json()["settings"]
    assert settings["align_recurrent"] == min(settings["align"], RECURRENT_ALIGN)
