"""Recurrent taggers (many-to-many: logits [N, T, K], a class at every step): modules that
score every step ([N, T, 1]) and reproduce torch's log-odds to 1e-5 with nothing pruned, for
both exporters, RNN, LSTM and GRU, uni- and bidirectional, 1 and 2 layers; pruned modules
that are valid and smaller; per-step profiling, linking, union, replacement and eval; the
sequence MatMul's rule and its errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from conftest import torch_export
from onnx import TensorProto, helper, numpy_helper

from onnxdecomp.channels import PruneChannelsPass, analyse
from onnxdecomp.cli import main
from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.decompose.head import logodds_from_logits
from onnxdecomp.errors import OnnxDecompError, UnsupportedOpError
from onnxdecomp.link import link, replace
from onnxdecomp.passes import normalize
from onnxdecomp.runtime import Runner
from onnxdecomp.stats import model_stats

torch = pytest.importorskip("torch")

VOCAB, EMBED, HIDDEN, TAGS, STEPS = 40, 6, 8, 4, 7


class TaggerNet(torch.nn.Module):
    """Embedding -> RNN/LSTM/GRU over the sentence -> linear at every step (as the zoo)."""

    def __init__(self, cell: str, bidirectional: bool, layers: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, EMBED, padding_idx=0)
        self.rnn = getattr(torch.nn, cell)(EMBED, HIDDEN, num_layers=layers, batch_first=True,
                                           bidirectional=bidirectional)
        self.head = torch.nn.Linear(HIDDEN * (2 if bidirectional else 1), TAGS)

    def forward(self, ids):
        seq, _ = self.rnn(self.embed(ids))
        return self.head(seq)


def run_cli(args: list[str], check: bool = True):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if check:
        assert result.exit_code == 0, result.output
    return result


def ids(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, VOCAB, (n, STEPS)).astype(np.int64)


def tags(x: np.ndarray) -> np.ndarray:
    """Labels [N, T] with the last two steps of every other sentence as padding (-1)."""
    y = (x % TAGS).astype(np.int64)
    y[::2, -2:] = -1
    return y


def exported(tmp_path: Path, cell: str = "LSTM", bi: bool = False, layers: int = 1,
             exporter: str = "torchscript", seed: int = 0):
    torch.manual_seed(seed)
    net = TaggerNet(cell, bi, layers).eval()
    return net, torch_export(net, torch.from_numpy(ids(3, 7)), exporter, tmp_path / "t.onnx")


def torch_logodds(net, x: np.ndarray) -> np.ndarray:
    """torch's class log-odds at every step, [N, T, K]."""
    with torch.no_grad():
        z = net(torch.from_numpy(x)).numpy()
    return logodds_from_logits(z.reshape(-1, TAGS)).reshape(z.shape)


def exact_module(path: Path, net, x: np.ndarray, k: int) -> Decomposer:
    """Nothing pruned: module k scores every step with torch's log-odds to 1e-5."""
    dec = Decomposer(path, x, tags(x), Settings(keep=1.0, compensation="none", device="cpu"))
    got = Runner(dec.build(k, 1.0, check=True).proto, device="cpu").run(x)[0]
    np.testing.assert_allclose(got[..., 0], torch_logodds(net, x)[..., k], atol=1e-5)
    return dec


CASES = [(cell, bi, layers, exporter) for cell in ("LSTM", "GRU", "RNN")
         for bi in (False, True) for layers in (1, 2) for exporter in ("torchscript", "dynamo")]


@pytest.mark.parametrize("cell,bi,layers,exporter", CASES,
                         ids=[f"{c}-{'bi' if b else 'uni'}-{n}-{e}" for c, b, n, e in CASES])
def test_tagger_modules_exact_then_smaller(tmp_path: Path, cell: str, bi: bool, layers: int,
                                           exporter: str) -> None:
    """Nothing pruned: every module scores every step with the parent's (= torch's) log-odds
    to 1e-5. Pruned: valid modules with fewer hidden units and fewer MACs."""
    net, path = exported(tmp_path, cell, bi, layers, exporter)
    x = ids(200, 0)
    y = tags(x)
    want = torch_logodds(net, x)
    dec = Decomposer(path, x, y, Settings(keep=1.0, compensation="none", device="cpu"))
    assert dec.parent.per_step and {c.kind for c in dec.parent.cg.consumers} >= {"seq"}
    for k in range(TAGS):
        module = dec.build(k, 1.0, check=True)
        got = Runner(module.proto, device="cpu").run(x)[0]
        assert got.shape == (len(x), STEPS, 1)
        np.testing.assert_allclose(got[..., 0], want[..., k], atol=1e-5)
    dec = Decomposer(path, x, y, Settings(keep=0.5, align=1, device="cpu"))
    module = dec.measure(dec.build(1, 0.5, check=True))
    sizes = [a.i for n in module.proto.graph.node if n.op_type == cell
             for a in n.attribute if a.name == "hidden_size"]
    # dynamo's vanilla RNN, rolled up: an RNN per direction, both one cluster of units
    per_layer = 2 if bi and cell == "RNN" and exporter == "dynamo" else 1
    assert len(sizes) == layers * per_layer and sum(sizes) == len(sizes) * HIDDEN // 2
    assert per_layer == 2 or all(s == HIDDEN // 2 for s in sizes)
    assert model_stats(module.proto).macs < 0.6 * dec.parent.macs
    assert 0 < module.fidelity <= 1


class LogSoftmaxTagger(TaggerNet):
    def forward(self, ids):
        return torch.log_softmax(super().forward(ids), dim=-1)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_log_softmax_output_is_stripped_over_the_tag_axis(tmp_path: Path, exporter: str) -> None:
    """A tagger ending in log_softmax over the tags: the modules are exact all the same."""
    torch.manual_seed(0)
    net = LogSoftmaxTagger("GRU", True, 1).eval()
    path = torch_export(net, torch.from_numpy(ids(3, 7)), exporter, tmp_path / "t.onnx")
    x = ids(100, 0)
    exact_module(path, net, x, 2)


def test_per_step_profile_counts_labelled_steps(tmp_path: Path) -> None:
    """A tagger's samples are its labelled steps: padding (-1) neither counts nor owns rows,
    and the held-out fidelity is measured on labelled steps only."""
    _, path = exported(tmp_path)
    x = ids(300, 1)
    y = tags(x)
    dec = Decomposer(path, x, y, Settings(keep=1.0, holdout=0.3, device="cpu"))
    labelled = int((y >= 0).sum())
    assert dec.profile.samples.sum() + dec.hold_logits.shape[0] == labelled
    cons = next(c for c in dec.parent.cg.consumers if c.kind == "seq")
    assert dec.profile.consumers[cons.key].rows.sum() == dec.profile.samples.sum()
    assert 0.0 <= dec.profile.agreement <= 1.0


def test_tagger_refit_beats_slicing(tmp_path: Path) -> None:
    """The least-squares refit of W, R and the per-step head keeps pruned modules closer to
    the parent than slicing."""
    _, path = exported(tmp_path, "GRU", seed=2)
    x = ids(600, 2)
    y = tags(x)
    fid = {}
    for comp in ("lstsq", "none"):
        dec = Decomposer(path, x, y, Settings(keep=0.5, compensation=comp, align=1,
                                              device="cpu"))
        fid[comp] = np.mean([dec.measure(dec.build(k, 0.5)).fidelity for k in range(TAGS)])
    assert fid["lstsq"] > fid["none"]


def test_sequential_refit_refused_for_taggers(tmp_path: Path) -> None:
    _, path = exported(tmp_path)
    x = ids(50, 0)
    with pytest.raises(OnnxDecompError, match="classes are per step"):
        Decomposer(path, x, tags(x), Settings(compensation="sequential", device="cpu"))


def test_link_union_replace_and_eval(tmp_path: Path) -> None:
    """Parallel link: scores [N, T, K] equal to the modules side by side, label [N, T]; a
    union of two tags decides among them; a tag replaced by another tagger's module; eval
    reads per-step labels."""
    net, path = exported(tmp_path)
    x = ids(400, 3)
    y = tags(x)
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=y)
    out = tmp_path / "mods"
    run_cli(["decompose", str(path), "--data", str(data), "--keep", "0.75", "--align", "1",
             "-o", str(out)])
    assert json.loads((out / "manifest.json").read_text())["parent"]["per_step"] is True
    linked = link([str(out)], mode="parallel").proto
    scores, label = Runner(linked, device="cpu").run(x, outputs=["scores", "label"])
    assert scores.shape == (len(x), STEPS, TAGS) and label.shape == (len(x), STEPS)
    np.testing.assert_array_equal(label, scores.argmax(axis=-1))
    one = Runner(str(out / "class_2.onnx"), device="cpu").run(x)[0]
    np.testing.assert_allclose(scores[..., 2:3], one, atol=1e-5)

    union = link([str(out / "class_0.onnx"), str(out / "class_3.onnx")], mode="union")
    scores = Runner(union.proto, device="cpu").run(x)[0]
    assert scores.shape == (len(x), STEPS, 2) and union.mode == "union"
    assert union.parts[0]["macs_fraction"] <= 1.0
    # the head's MatMul over every step keeps only the two tags' columns, no Gather after it
    head = next(n for n in reversed(union.proto.graph.node) if n.op_type == "MatMul")
    weights = {t.name: t.dims for t in union.proto.graph.initializer}
    assert weights[head.input[1]][-1] == 2
    assert "onnxdecomp_classes" not in {n.name for n in union.proto.graph.node}
    # a tagger's pair takes the steps but not the sequential refit (whole-sample weights)
    assert union.parts[0]["refine"] and not union.parts[0]["polished"]

    other, other_path = exported(tmp_path / "..", "GRU", seed=5)
    out2 = tmp_path / "mods2"
    run_cli(["decompose", str(other_path), "--data", str(data), "--keep", "1.0",
             "-o", str(out2)])
    patched = replace(str(path), [(1, str(out2 / "class_1.onnx"))]).proto
    scores = Runner(patched, device="cpu").run(x)[0]
    np.testing.assert_allclose(scores[..., 1], torch_logodds(other, x)[..., 1], atol=1e-5)

    saved = tmp_path / "linked.onnx"
    onnx.save(linked, str(saved))
    report = json.loads(run_cli(["eval", str(saved), "--data", str(data), "--json"]).output)
    assert report["n"] == int((y >= 0).sum())
    checked = run_cli(["check", str(out / "class_0.onnx"), "--parent", str(path), "--data",
                       str(data)]).output
    assert f"{int((y >= 0).sum())} steps: log-odds fidelity" in checked
    # a tag's module: that tag against the others at every labelled step
    report = json.loads(run_cli(["eval", str(out / "class_2.onnx"), "--data", str(data),
                                 "--json"]).output)
    steps = y >= 0
    claimed, truth = one[..., 0][steps] > 0, y[steps] == 2
    assert report["n"] == int(steps.sum()) and report["module"]["class_index"] == 2
    assert report["top1"] == pytest.approx(np.mean(claimed == truth), abs=1e-6)
    assert report["module"]["recall"] == pytest.approx(
        np.sum(claimed & truth) / truth.sum(), abs=1e-6)


def test_combiner_refused_for_taggers(tmp_path: Path) -> None:
    _, path = exported(tmp_path)
    x = ids(100, 0)
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=tags(x))
    out = tmp_path / "mods"
    run_cli(["decompose", str(path), "--data", str(data), "--keep", "1.0", "-o", str(out)])
    res = run_cli(["replace", str(path), "--class", "0", "--with", str(out / "class_0.onnx"),
                   "--calibrate", str(data), "-o", str(tmp_path / "r.onnx")], check=False)
    assert res.exit_code != 0 and "whole samples" in res.output


def _sequence_head(batch_first: bool, batch: str | int = "N") -> onnx.ModelProto:
    """ids [N, 5] -> embedding [N, 5, 3] (-> Transpose to [5, N, 3]) -> MatMul W [3, 4] +
    Add b -> Relu -> MatMul [4, 2] + Add: two sequence consumers, each with its bias after
    it."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n)
             for n, s in [("E", (9, 3)), ("W1", (3, 4)), ("b1", (4,)), ("W2", (4, 2)),
                          ("b2", (2,))]]
    nodes = [helper.make_node("Gather", ["E", "ids"], ["e" if batch_first else "e0"])]
    nodes += [] if batch_first else [helper.make_node("Transpose", ["e0"], ["e"],
                                                      perm=[1, 0, 2])]
    nodes += [helper.make_node("MatMul", ["e", "W1"], ["m1"]),
              helper.make_node("Add", ["m1", "b1"], ["a1"]),
              helper.make_node("Relu", ["a1"], ["h"]),
              helper.make_node("MatMul", ["h", "W2"], ["m2"]),
              helper.make_node("Add", ["m2", "b2"], ["z"])]
    out = [batch, 5, 2] if batch_first else [5, batch, 2]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "ids", TensorProto.INT64, [batch, 5])], [helper.make_tensor_value_info(
            "z", TensorProto.FLOAT, out)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("batch_first", [True, False])
def test_sequence_matmul_batch_axis_and_bias_refit(batch_first: bool) -> None:
    """The samples' axis is found from the graph input's batch dimension; a refit bias goes
    into the Add after the MatMul, and the Add's own rule slices it."""
    import onnx_ir as ir

    proto = _sequence_head(batch_first)
    model = normalize(ir.serde.deserialize_model(proto))
    cg = analyse(model)
    seq = [c for c in cg.consumers if c.kind == "seq"]
    assert [c.batch_axis for c in seq] == [0 if batch_first else 1] * 2
    removed = {int(r) for r in cg.roots(seq[1].value)[:2]}  # two of the hidden 4

    def shift(node, w, rows, key=None):  # a refit that moves the bias by one
        out = w[:, rows].copy()
        out[:, -1] += 1.0
        return out

    PruneChannelsPass(cg, removed, shift)(model)
    adds = {n.inputs[0].name: n for n in model.graph if n.op_type == "Add"}
    b2 = numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == "b2"))
    np.testing.assert_allclose(adds["m2"].inputs[1].const_value.numpy(), b2 + 1.0)
    b1 = numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == "b1"))
    kept = adds["m1"].inputs[1].const_value.numpy()
    assert kept.shape == (2,) and np.all(np.isin(kept, b1))  # sliced, not refitted


def test_sequence_matmul_without_batch_dimension_name_errors() -> None:
    import onnx_ir as ir

    model = normalize(ir.serde.deserialize_model(_sequence_head(True, batch=5)))
    with pytest.raises(UnsupportedOpError, match="holds the samples") as err:
        analyse(model)
    assert "(MatMul)" in str(err.value) and "\n" not in str(err.value)


def test_per_step_model_with_a_per_sample_layer_errors() -> None:
    """A per-step output behind a layer that does not read steps (a Gemm over the pooled
    sentence, broadcast back to every step) has no step to own its rows: an error naming
    that layer."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n)
             for n, s in [("E", (9, 3)), ("W", (3, 4)), ("W3", (3, 4)), ("V", (4, 2))]]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "ax"))
    nodes = [helper.make_node("Gather", ["E", "ids"], ["e"]),  # [N, 5, 3]
             helper.make_node("ReduceMean", ["e", "ax"], ["p"], keepdims=0),  # [N, 3]
             helper.make_node("Gemm", ["p", "W"], ["g"], name="pooled"),  # [N, 4]
             helper.make_node("Unsqueeze", ["g", "ax"], ["u"]),  # [N, 1, 4]
             helper.make_node("MatMul", ["e", "W3"], ["m"]),  # [N, 5, 4]
             helper.make_node("Add", ["u", "m"], ["s"]),
             helper.make_node("MatMul", ["s", "V"], ["z"])]
    graph = helper.make_graph(nodes, "g", [
        helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 5])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 5, 2])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = rng.integers(0, 9, (40, 5)).astype(np.int64)
    with pytest.raises(OnnxDecompError, match="'pooled' \\(Gemm\\).*per step"):
        Decomposer(proto, x, settings=Settings(device="cpu"))


@pytest.mark.parametrize("axis,stripped", [(2, True), (-1, True), (1, False)])
def test_softmax_stripped_over_the_last_axis_only(axis: int, stripped: bool) -> None:
    """Softmax over the tags of [N, T, K] is a per-step shift of the logits and goes; over
    the steps it is not and stays."""
    import onnx_ir as ir

    from onnxdecomp.passes import StripOutputSoftmaxPass

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Softmax", ["r"], ["p"],
                                                                  axis=axis)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 3])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 5, 3])])
    model = ir.serde.deserialize_model(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert StripOutputSoftmaxPass()(model).modified is stripped


def test_steps_first_output_is_refused() -> None:
    """A tagger whose output is [T, N, K] gets a one-line error saying so (exit 3)."""
    from onnxdecomp.errors import UnsupportedModelError

    proto = _sequence_head(False)  # its output is [5, N, 2]
    x = np.random.default_rng(0).integers(0, 9, (20, 5)).astype(np.int64)
    with pytest.raises(UnsupportedModelError, match=r"\[T, N, K\]"):
        Decomposer(proto, x, settings=Settings(device="cpu"))


class StepsFirstTagger(torch.nn.Module):
    """A tagger built steps first (batch_first=False), its head over [T, N, H], transposed
    to [N, T, K] at the end: the head's samples are on axis 1."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, EMBED, padding_idx=0)
        self.rnn = torch.nn.LSTM(EMBED, HIDDEN)
        self.head = torch.nn.Linear(HIDDEN, TAGS)

    def forward(self, ids):
        seq, _ = self.rnn(self.embed(ids.transpose(0, 1)))
        return self.head(seq).transpose(0, 1)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_steps_first_head_then_transpose(tmp_path: Path, exporter: str) -> None:
    torch.manual_seed(3)
    net = StepsFirstTagger().eval()
    path = torch_export(net, torch.from_numpy(ids(3, 7)), exporter, tmp_path / "t.onnx")
    x = ids(150, 4)
    dec = exact_module(path, net, x, 3)
    assert [c.batch_axis for c in dec.parent.cg.consumers if c.kind == "seq"] == [1]
    pruned = Decomposer(path, x, tags(x), Settings(keep=0.5, align=1, device="cpu"))
    module = pruned.measure(pruned.build(3, 0.5, check=True))
    assert module.fidelity > 0.5


class FlattenedHeadTagger(TaggerNet):
    """The head applied to every step through ``view(-1, H)`` and back."""

    def forward(self, ids):
        seq, _ = self.rnn(self.embed(ids))
        n, t, h = seq.shape
        return self.head(seq.reshape(-1, h)).reshape(n, t, -1)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_flattened_per_step_head_is_one_sequence_matmul(tmp_path: Path, exporter: str) -> None:
    """Reshape -> Gemm -> Reshape becomes a MatMul over the sequence (a "seq" consumer):
    exact with nothing pruned, smaller when pruned."""
    torch.manual_seed(4)
    net = FlattenedHeadTagger("GRU", False, 1).eval()
    path = torch_export(net, torch.from_numpy(ids(3, 7)), exporter, tmp_path / "t.onnx")
    x = ids(150, 5)
    dec = exact_module(path, net, x, 0)
    assert [c.kind for c in dec.parent.cg.consumers][-1] == "seq"
    assert not any(n.op_type == "Gemm" for n in dec.parent.model.graph)
    pruned = Decomposer(path, x, tags(x), Settings(keep=0.5, align=1, device="cpu"))
    assert model_stats(pruned.build(0, 0.5, check=True).proto).macs < 0.6 * pruned.parent.macs


def test_flattened_dense_left_alone_when_the_steps_are_not_restored() -> None:
    """Reshape(x [N, 6, 4] -> [-1, 4]) -> Gemm -> Reshape to [N, 3, 2 * O]: the rows do not
    come back to their steps, so the pass changes nothing."""
    import onnx_ir as ir

    from onnxdecomp.passes import FuseFlattenedSequenceDensePass, infer_shapes

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 5)).astype(np.float32), "W"),
             numpy_helper.from_array(np.array([-1, 4], np.int64), "s1"),
             numpy_helper.from_array(np.array([0, 3, 10], np.int64), "s2")]
    graph = helper.make_graph([
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Reshape", ["r", "s1"], ["f"]),
        helper.make_node("Gemm", ["f", "W"], ["g"]),
        helper.make_node("Reshape", ["g", "s2"], ["z"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 3, 10])], inits)
    model = ir.serde.deserialize_model(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    infer_shapes(model)
    assert not FuseFlattenedSequenceDensePass()(model).modified


class ConvTagger(torch.nn.Module):
    """Embedding -> 1-D convolution over the steps ("same" padding) -> ReLU -> GRU -> linear
    at every step: a convolution whose output position t is step t."""

    def __init__(self, recurrent: bool = True) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, EMBED, padding_idx=0)
        self.conv = torch.nn.Conv1d(EMBED, 12, 3, padding=1)
        self.rnn = torch.nn.GRU(12, HIDDEN, batch_first=True, bidirectional=True) \
            if recurrent else None
        self.head = torch.nn.Linear(2 * HIDDEN if recurrent else 12, TAGS)

    def forward(self, ids):
        h = torch.relu(self.conv(self.embed(ids).transpose(1, 2))).transpose(1, 2)
        if self.rnn is not None:
            h, _ = self.rnn(h)
        return self.head(h)


@pytest.mark.parametrize("recurrent", [True, False], ids=["conv-gru", "conv-only"])
def test_conv_tagger_profiled_per_step(tmp_path: Path, recurrent: bool) -> None:
    """A 1-D convolution with one output per step reads its input step by step: exact with
    nothing pruned, its filters pruned and refitted per step."""
    torch.manual_seed(6)
    net = ConvTagger(recurrent).eval()
    path = torch_export(net, torch.from_numpy(ids(3, 7)), "torchscript", tmp_path / "t.onnx")
    x = ids(200, 6)
    dec = exact_module(path, net, x, 2)
    assert "conv" in {c.kind for c in dec.parent.cg.consumers}
    fid = {}
    for comp in ("lstsq", "none"):
        pruned = Decomposer(path, x, tags(x), Settings(keep=0.5, align=1, compensation=comp,
                                                       device="cpu"))
        module = pruned.measure(pruned.build(2, 0.5, check=True))
        fid[comp] = module.fidelity
        conv = next(t for t in module.proto.graph.initializer if len(t.dims) == 3)
        assert conv.dims[0] == 6  # half of the 12 filters
    assert fid["lstsq"] > fid["none"]


class FloatSequenceTagger(torch.nn.Module):
    """Float features [N, T, F] (no embedding) -> LSTM -> linear at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = torch.nn.LSTM(5, HIDDEN, batch_first=True)
        self.head = torch.nn.Linear(HIDDEN, TAGS)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_float_sequence_tagger(tmp_path: Path, exporter: str) -> None:
    """A tagger fed float features: its input is pinned, its hidden units are pruned."""
    torch.manual_seed(7)
    net = FloatSequenceTagger().eval()
    x = np.random.default_rng(7).normal(size=(150, STEPS, 5)).astype(np.float32)
    path = torch_export(net, torch.from_numpy(x[:3]), exporter, tmp_path / "t.onnx")
    y = torch_logodds(net, x).argmax(axis=-1)
    dec = Decomposer(path, x, y, Settings(keep=1.0, compensation="none", device="cpu"))
    got = Runner(dec.build(1, 1.0, check=True).proto, device="cpu").run(x)[0]
    np.testing.assert_allclose(got[..., 0], torch_logodds(net, x)[..., 1], atol=1e-5)
    pruned = Decomposer(path, x, y, Settings(keep=0.5, align=1, device="cpu"))
    module = pruned.build(1, 0.5, check=True)
    sizes = [a.i for n in module.proto.graph.node if n.op_type == "LSTM"
             for a in n.attribute if a.name == "hidden_size"]
    assert sizes == [HIDDEN // 2]
