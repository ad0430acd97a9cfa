"""Recurrent idioms beyond the zoo's: PyTorch's default steps-first ``nn.LSTM`` (token ids
[T, N]: the Runner feeds samples-first data on the model's axis 1), the last step of a
batch-first output ``o[:, -1]`` (dynamo computes its flattening Reshape from the shape),
final states moved behind the batch and flattened ([D, N, H] -> [N, D, H] -> [N, D * H]),
a Relu RNN (custom activations; dynamo's unrolled Relu steps), attention pooling over the
outputs, a learned initial state expanded to the batch.

Each: a module with nothing pruned equals the parent's log-odds to 1e-5, one at keep 0.5
is smaller and runs; random weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import quiet, torch_export
from onnx import TensorProto, helper, numpy_helper

from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.decompose.head import logodds_from_logits
from onnxdecomp.irutil import input_batch_axis
from onnxdecomp.passes import select_scores_output
from onnxdecomp.runtime import Runner
from onnxdecomp.stats import model_stats

torch = pytest.importorskip("torch")
nn = torch.nn
VOCAB, STEPS, CLASSES = 50, 7, 5


class StepsFirst(nn.Module):
    """``nn.LSTM`` (or ``nn.RNN``) as PyTorch makes it by default: ids [T, N], both
    directions' final states concatenated."""

    def __init__(self, cell: str = "LSTM") -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.rnn = getattr(nn, cell)(16, 24, bidirectional=True)
        self.head = nn.Linear(48, CLASSES)

    def forward(self, ids):
        _, h = self.rnn(self.embed(ids))
        h = h[0] if isinstance(h, tuple) else h
        return self.head(torch.cat([h[-2], h[-1]], 1))


class LastStep(nn.Module):
    """Batch first, the output's last step: ``o[:, -1]``."""

    def __init__(self, cell: str) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.rnn = getattr(nn, cell)(16, 24, batch_first=True)
        self.head = nn.Linear(24, CLASSES)

    def forward(self, ids):
        out, _ = self.rnn(self.embed(ids))
        return self.head(out[:, -1])


def _ids(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, (n, STEPS)).astype(np.int64)


def _check(model, x: np.ndarray) -> None:
    dec = Decomposer(model, x, None, Settings(device="cpu", seed=0, align=1))
    parent = logodds_from_logits(Runner(model, device="cpu").run(x[:60])[0])
    for k in range(dec.parent.num_classes):
        full = dec.build(k, 1.0, check=True).proto
        got = Runner(full, device="cpu").run(x[:60])[0][:, 0]
        np.testing.assert_allclose(got, parent[:, k], atol=1e-5, rtol=1e-5)
    half = dec.build(0, 0.5, check=True)
    assert half.removed
    assert model_stats(half.proto).macs < 0.8 * model_stats(model).macs
    assert Runner(half.proto, device="cpu").run(x[:9])[0].shape == (9, 1)


@pytest.mark.parametrize("cell", ["LSTM", "RNN"])
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_steps_first_token_ids(tmp_path: Path, exporter: str, cell: str) -> None:
    """The model takes [T, N]; the data and every Runner result stay samples-first (dynamo
    unrolls the RNN: the Runner finds the axis on the graph rolled up)."""
    torch.manual_seed(0)
    net = StepsFirst(cell).eval()
    ids = torch.from_numpy(_ids(2, 1).T.copy())
    path = torch_export(net, ids, exporter, tmp_path / f"steps_first-{cell}-{exporter}.onnx",
                        batch_axis=1)
    x = _ids(240, 0)
    runner = Runner(path, device="cpu")
    assert runner.input.batch_axis == 1 and runner.input.shape[1] == STEPS
    with torch.no_grad():
        want = net(torch.from_numpy(x[:40].T.copy())).numpy()
    np.testing.assert_allclose(runner.run(x[:40])[0], want, atol=1e-5)
    _check(str(path), x)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("exporter", ["torchscript", "torchscript-9", "dynamo"])
def test_last_step_of_batch_first_output(tmp_path: Path, cell: str, exporter: str) -> None:
    """(Opset 9: Slice takes its bounds as attributes.)"""
    torch.manual_seed(0)
    kind, _, opset = exporter.partition("-")
    path = torch_export(LastStep(cell).eval(), torch.from_numpy(_ids(2, 1)), kind,
                        tmp_path / f"last-{cell}-{exporter}.onnx", opset=int(opset or 17))
    assert Runner(path, device="cpu").input.batch_axis == 0
    _check(str(path), _ids(240, 0))


class StepsFirstTagger(nn.Module):
    """A tagger over ids [T, N] scoring [T, N, K] (``nn.LSTM`` without ``batch_first``)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.rnn = nn.LSTM(16, 24)
        self.head = nn.Linear(24, CLASSES)

    def forward(self, ids):
        return self.head(self.rnn(self.embed(ids))[0])


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_steps_first_tagger(tmp_path: Path, exporter: str) -> None:
    """Its scores are read samples first, [N, T, K], by every command
    (``select_scores_output``); modules score [N, T, 1] as the parent's log-odds."""
    torch.manual_seed(0)
    net = StepsFirstTagger().eval()
    path = torch_export(net, torch.from_numpy(_ids(2, 1).T.copy()), exporter,
                        tmp_path / f"tagger-{exporter}.onnx", batch_axis=1)
    x = _ids(200, 0)
    with torch.no_grad():
        want = net(torch.from_numpy(x.T.copy())).numpy().transpose(1, 0, 2)  # [N, T, K]
    scores = select_scores_output(onnx.load(str(path)))
    np.testing.assert_allclose(Runner(scores, device="cpu").run(x)[0], want, atol=1e-5)
    dec = Decomposer(str(path), x, None, Settings(device="cpu", seed=0, align=1))
    logodds = logodds_from_logits(want.reshape(-1, CLASSES)).reshape(len(x), STEPS, CLASSES)
    got = Runner(dec.build(2, 1.0, check=True).proto, device="cpu").run(x)[0]
    np.testing.assert_allclose(got[..., 0], logodds[..., 2], atol=1e-5)


class ReluRNN(nn.Module):
    """``nn.RNN(nonlinearity="relu")``: TorchScript writes activations ["Relu"], dynamo
    unrolls it with Relu steps."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.rnn = nn.RNN(16, 24, nonlinearity="relu", batch_first=True)
        self.head = nn.Linear(24, CLASSES)

    def forward(self, ids):
        return self.head(self.rnn(self.embed(ids))[1][-1])


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_relu_rnn(tmp_path: Path, exporter: str) -> None:
    torch.manual_seed(0)
    path = torch_export(ReluRNN().eval(), torch.from_numpy(_ids(2, 1)), exporter,
                        tmp_path / f"relu-{exporter}.onnx")
    _check(str(path), _ids(240, 0))


class AttentionPooling(nn.Module):
    """Additive attention over an LSTM's outputs (a bias-free score layer over the sequence:
    a MatMul with no Gemm to hold a refit bias, so pruning appends an Add), softmax over the
    steps, the weighted sum into the head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.rnn = nn.LSTM(16, 24, batch_first=True)
        self.proj = nn.Linear(24, 12)
        self.score = nn.Linear(12, 1, bias=False)
        self.head = nn.Linear(24, CLASSES)

    def forward(self, ids):
        out, _ = self.rnn(self.embed(ids))
        attn = torch.softmax(self.score(torch.tanh(self.proj(out))), dim=1)
        return self.head((attn * out).sum(1))


class LearnedInitialState(nn.Module):
    """A GRU whose initial state is a parameter expanded to the batch (dynamo slices the
    layer's state out of the expanded tensor)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.rnn = nn.GRU(16, 24, batch_first=True)
        self.h0 = nn.Parameter(torch.randn(1, 1, 24) * 0.3)
        self.head = nn.Linear(24, CLASSES)

    def forward(self, ids):
        h0 = self.h0.expand(1, ids.shape[0], 24).contiguous()
        return self.head(self.rnn(self.embed(ids), h0)[1][-1])


class FlattenedOutputs(nn.Module):
    """Every step's output flattened into the head (``out.reshape(N, -1)``): features last,
    interleaved with the steps; a bidirectional GRU's directions merged first."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.rnn = nn.GRU(16, 12, batch_first=True, bidirectional=True)
        self.head = nn.Linear(STEPS * 24, CLASSES)

    def forward(self, ids):
        out, _ = self.rnn(self.embed(ids))
        return self.head(out.reshape(out.shape[0], -1))


@pytest.mark.parametrize("net", [AttentionPooling, LearnedInitialState, FlattenedOutputs])
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_attention_pooling_and_learned_initial_state(tmp_path: Path, exporter: str,
                                                     net) -> None:
    torch.manual_seed(0)
    path = torch_export(net().eval(), torch.from_numpy(_ids(2, 1)), exporter,
                        tmp_path / f"{net.__name__}-{exporter}.onnx")
    _check(str(path), _ids(240, 0))


@pytest.mark.parametrize("op,direction,lbr", [("GRU", "forward", 0),
                                              ("GRU", "bidirectional", 1),
                                              ("LSTM", "reverse", None),
                                              ("RNN", "bidirectional", None)])
def test_final_states_transposed_and_flattened(op: str, direction: str, lbr) -> None:
    """Y_h [D, N, H] -> Transpose [N, D, H] -> Flatten [N, D * H] -> Gemm; a batch-first
    input transposed in (tf2onnx's idiom), GRU with either linear_before_reset."""
    rng = np.random.default_rng(3)
    gates, d, hidden, embed = {"LSTM": 4, "GRU": 3, "RNN": 1}[op], 1, 12, 8
    d = 2 if direction == "bidirectional" else 1

    def w(name: str, *shape: int, scale: float = 0.3) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, scale, shape).astype(np.float32), name)

    attrs = dict(hidden_size=hidden, direction=direction)
    if lbr is not None:
        attrs["linear_before_reset"] = lbr
    nodes = [helper.make_node("Transpose", ["x"], ["steps"], perm=[1, 0, 2]),
             helper.make_node(op, ["steps", "W", "R", "B"], ["Y", "Yh"], **attrs),
             helper.make_node("Transpose", ["Yh"], ["t"], perm=[1, 0, 2]),
             helper.make_node("Flatten", ["t"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "Wh", "bh"], ["logits"], transB=1)]
    inits = [w("W", d, gates * hidden, embed), w("R", d, gates * hidden, hidden),
             w("B", d, 2 * gates * hidden, scale=0.1), w("Wh", CLASSES, d * hidden),
             w("bh", CLASSES, scale=0.1)]
    graph = helper.make_graph(
        nodes, "rnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6, embed])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model, full_check=True)
    _check(model, rng.normal(size=(240, 6, embed)).astype(np.float32))


def test_input_batch_axis_follows_ids_to_the_layer() -> None:
    """Through the embedding's Gather and a Cast to the recurrent layer's X: [T, N] ids hold
    the samples on axis 1; [N, T] ids transposed in hold them on axis 0."""
    import onnx_ir as ir

    def graph(transpose: bool) -> ir.Value:
        nodes = [helper.make_node("Cast", ["ids"], ["i"], to=TensorProto.INT64),
                 helper.make_node("Gather", ["E", "i"], ["e"]),
                 helper.make_node("GRU", ["t" if transpose else "e", "W", "R"], ["Y"],
                                  hidden_size=2)]
        if transpose:
            nodes.insert(2, helper.make_node("Transpose", ["e"], ["t"], perm=[1, 0, 2]))
        inits = [numpy_helper.from_array(np.zeros(s, np.float32), n)
                 for n, s in (("E", (9, 3)), ("W", (1, 6, 3)), ("R", (1, 6, 2)))]
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
            "ids", TensorProto.INT32, [5, 5])], [helper.make_tensor_value_info(
                "Y", TensorProto.FLOAT, None)], inits)
        m = ir.serde.deserialize_model(helper.make_model(g))
        return m.graph.inputs[0]

    assert input_batch_axis(graph(transpose=False)) == 1
    assert input_batch_axis(graph(transpose=True)) == 0


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_steps_first_modules_link(tmp_path: Path, exporter: str) -> None:
    """Linking wrote the symbolic batch on axis 0 of every input: a steps-first model's
    [T, N] became [N, N] (its steps lost), and a linked model whose graph reshapes by T
    could not be counted (link failed). The batch goes on each input's own axis."""
    from onnxdecomp import link
    from onnxdecomp.stats import model_stats

    torch.manual_seed(0)
    net = StepsFirst("LSTM").eval()
    path = torch_export(net, torch.from_numpy(_ids(2, 1).T.copy()), exporter,
                        tmp_path / f"steps_first-{exporter}.onnx", batch_axis=1)
    x = _ids(240, 0)
    dec = Decomposer(str(path), x, None, Settings(device="cpu", seed=0, align=1))
    modules = [dec.build(k, 0.5, check=True).proto for k in (0, 2)]
    linked = link(modules, mode="parallel", device="cpu").proto
    dims = [d.dim_param or d.dim_value for d in linked.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] == STEPS and isinstance(dims[1], str)
    assert model_stats(linked).macs > 0
    got = Runner(linked, device="cpu").run(x[:30])[0]
    for j, m in enumerate(modules):
        np.testing.assert_allclose(got[:, j], Runner(m, device="cpu").run(x[:30])[0][:, 0],
                                   atol=1e-5)


def test_steps_first_tagger_of_a_fixed_batch_is_refused_by_eval(tmp_path: Path) -> None:
    """Exported without a dynamic batch, a steps-first tagger's [T, 3, K] says nowhere where
    its samples are: eval crashed (exit 5) where decompose refused it; eval refuses it too."""
    from click.testing import CliRunner

    from onnxdecomp.cli import main

    torch.manual_seed(0)
    path = tmp_path / "fixed.onnx"
    with quiet():
        torch.onnx.export(StepsFirstTagger().eval(), (torch.from_numpy(_ids(3, 1).T.copy()),),
                          str(path), dynamo=True, external_data=False, opset_version=18,
                          input_names=["input"], output_names=["logits"], verbose=False)
    data = tmp_path / "d.npz"
    np.savez(data, x=_ids(30, 0), y=np.random.default_rng(0).integers(0, CLASSES, (30, STEPS)))
    res = CliRunner().invoke(main, ["eval", str(path), "--data", str(data)])
    assert res.exit_code == 3 and "named dynamic batch axis" in res.output, res.output


def test_unrolled_rnn_macs_are_counted_once(tmp_path: Path) -> None:
    """Dynamo unrolls ``nn.RNN`` into per-step MatMuls; the MACs count rolled them up into
    an RNN but counted the steps left beside it too, twice the TorchScript export's."""
    from onnxdecomp.stats import model_stats

    torch.manual_seed(0)
    net = ReluRNN().eval()
    ids = torch.from_numpy(_ids(2, 1))
    counts = [model_stats(torch_export(net, ids, e, tmp_path / f"{e}.onnx")).macs
              for e in ("torchscript", "dynamo")]
    assert counts[0] == counts[1] > 0


class EmbedGRU(nn.Module):
    """Token ids, an embedding, a batch-first GRU of 24 units and a dense head: what the
    GatherElements nets below read their steps or units from."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.rnn = nn.GRU(16, 24, batch_first=True)
        self.head = nn.Linear(24, CLASSES)


class LastStepByLength(EmbedGRU):
    """Each sentence's last real step, its length counted from the padding id 0, picked by
    GatherElements: ``out.gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, H))``
    (TorchScript replaces expand's -1 through Equal and Where); ``tile`` builds the
    indices with ``repeat`` (a Tile: the pruned indices are gathered, not re-expanded)."""

    def __init__(self, tile: bool = False) -> None:
        super().__init__()
        self.tile = tile

    def forward(self, ids):
        out, _ = self.rnn(self.embed(ids))
        last = ((ids != 0).sum(1).clamp(min=1) - 1).view(-1, 1, 1)
        idx = last.repeat(1, 1, out.size(2)) if self.tile else last.expand(-1, 1, out.size(2))
        return self.head(out.gather(1, idx).squeeze(1))


@pytest.mark.parametrize("tile", [False, True], ids=["expand", "repeat"])
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_last_step_by_length(tmp_path: Path, exporter: str, tile: bool) -> None:
    """Refused at the GatherElements before it had a rule."""
    torch.manual_seed(0)
    net = LastStepByLength(tile).eval()
    path = torch_export(net, torch.from_numpy(_ids(2, 1)), exporter,
                        tmp_path / f"by-length-{exporter}-{tile}.onnx")
    x = _ids(240, 0)
    x[::3, 4:] = 0  # a third of the sentences padded after 4 steps
    with torch.no_grad():
        want = net(torch.from_numpy(x[:40])).numpy()
    np.testing.assert_allclose(Runner(path, device="cpu").run(x[:40])[0], want, atol=1e-5)
    _check(str(path), x)


class SortedFeatures(EmbedGRU):
    """GatherElements along the features: each sample's units in an order its ids say."""

    def forward(self, ids):
        last = self.rnn(self.embed(ids))[0][:, -1]
        return self.head(last.gather(1, ids.repeat(1, 4)[:, :24] % 24))


def test_gather_elements_over_the_channels_is_refused(tmp_path: Path) -> None:
    from onnxdecomp.errors import UnsupportedOpError

    torch.manual_seed(0)
    path = torch_export(SortedFeatures().eval(), torch.from_numpy(_ids(2, 1)), "torchscript",
                        tmp_path / "sorted.onnx")
    with pytest.raises(UnsupportedOpError, match="GatherElements.*gathers channels at computed"):
        Decomposer(str(path), _ids(60, 0), None, Settings(device="cpu", seed=0, align=1))
