"""Group normalisation: a group of channels goes whole or stays (``channels.rules.groups``).

``nn.GroupNorm`` as each exporter writes it (TorchScript and dynamo at opset 18: a Reshape to
[N, G, -1], InstanceNormalization and a Reshape back; dynamo at opset 21: the
GroupNormalization op) and a hand-built GroupNormalization: exact with nothing pruned;
pruned, the normalised tensor's kept channels are the parent's values (the other groups'
statistics untouched), and kept counts are whole groups, aligned in units of the group.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import _init, assert_full_module_exact, make_model, quiet
from onnx import TensorProto, helper

from onnxdecomp.channels import plain_slice
from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.decompose.align import grouped_align
from onnxdecomp.decompose.decomposer import build_module
from onnxdecomp.irutil import with_outputs
from onnxdecomp.runtime import Runner
from onnxdecomp.stats import model_stats

torch = pytest.importorskip("torch")
nn = torch.nn


class GroupNormNet(nn.Module):
    """Conv, GroupNorm(4, 16), ReLU, conv, GroupNorm(8, 32), SiLU, mean, dense."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.GroupNorm(4, 16),
                                  nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.GroupNorm(8, 32),
                                  nn.SiLU())
        self.head = nn.Linear(32, 6)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


def _torch_model(tmp: Path, exporter: str) -> Path:
    torch.manual_seed(0)
    net = GroupNormNet()
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, nn.GroupNorm):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
    net.eval()
    x, path = torch.randn(2, 3, 12, 12), tmp / f"gn-{exporter}.onnx"
    kind, _, opset = exporter.partition("-")
    with quiet():
        if kind == "torchscript":
            torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=int(opset),
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
        else:
            torch.onnx.export(net, (x,), str(path), dynamo=True, external_data=False,
                              opset_version=int(opset), input_names=["input"],
                              output_names=["logits"],
                              dynamic_shapes=({0: torch.export.Dim("N", min=1)},))
    return path


def _hand_built() -> onnx.ModelProto:
    """Conv 3 -> 16, GroupNormalization-21 (4 groups, per-channel scale), Relu, conv, GAP."""
    rng = np.random.default_rng(3)

    def normal(scale: float, *shape: int) -> np.ndarray:
        return rng.normal(0, scale, shape).astype(np.float32)

    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("GroupNormalization", ["a", "s", "t"], ["n"], num_groups=4),
             helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("Conv", ["r", "w2", "b2"], ["c"]),
             helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wh", "bh"], ["logits"], transB=1)]
    inits = [_init("w1", normal(0.4, 16, 3, 3, 3)), _init("b1", normal(0.1, 16)),
             _init("s", 1 + normal(0.2, 16)), _init("t", normal(0.2, 16)),
             _init("w2", normal(0.4, 8, 16, 1, 1)), _init("b2", normal(0.1, 8)),
             _init("wh", normal(0.5, 5, 8)), _init("bh", normal(0.1, 5))]
    return make_model(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                            ["N", 3, 8, 8])],
                      [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])],
                      inits, opset=21)


def _normalised_values(dec: Decomposer) -> list:
    """The values right after each group normalisation, scale and shift applied, in order."""
    out = []
    for node in dec.parent.model.graph:
        if node.op_type == "GroupNormalization":
            out.append(node.outputs[0])
        elif node.op_type == "InstanceNormalization":
            unfold = next(iter(node.outputs[0].uses())).node  # the Reshape back
            affine = next(iter(unfold.outputs[0].uses())).node  # Mul by the scale
            out.append(next(iter(affine.outputs[0].uses())).node.outputs[0])  # Add
    return out


def _check(model, x: np.ndarray) -> None:
    dec = Decomposer(model, x, None, Settings(device="cpu", seed=0, align=1))
    assert_full_module_exact(dec, model, x)
    half = dec.build(0, 0.5, check=True)
    assert half.removed and model_stats(half.proto).macs < model_stats(model).macs
    sliced = build_module(dec.parent, half.removed, plain_slice, lambda m: None, check=True)
    # The first normalisation reads the first conv, which only loses output channels: its
    # kept channels are the parent's (later ones read convs that lost input channels).
    value = _normalised_values(dec)[0]
    want = Runner(with_outputs(dec.parent.proto, [value.name]), device="cpu").run(x[:20])[1]
    got = Runner(with_outputs(sliced, [value.name]), device="cpu").run(x[:20])[1]
    cg = dec.parent.cg
    kept = cg.kept_channels(value, half.removed)
    k = max(w for n, w in cg.unit_width.items() if cg.cluster(n) == cg.cluster(value.name))
    assert k > 1 and len(kept) % k == 0 and np.all(kept.reshape(-1, k)[:, 0] % k == 0)
    assert len(kept) < want.shape[1]  # some group really went
    np.testing.assert_allclose(got, want[:, kept], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("exporter", ["torchscript-17", "torchscript-11", "dynamo-18",
                                      "dynamo-21"])
def test_torch_group_norm(tmp_path: Path, exporter: str) -> None:
    path = _torch_model(tmp_path, exporter)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ("GroupNormalization" in ops) == (exporter == "dynamo-21")
    x = np.random.default_rng(0).normal(size=(200, 3, 12, 12)).astype(np.float32)
    _check(path, x)


def test_group_normalization_op() -> None:
    x = np.random.default_rng(0).normal(size=(200, 3, 8, 8)).astype(np.float32)
    _check(_hand_built(), x)


def test_groups_align_in_units_of_their_width(tmp_path: Path) -> None:
    """GroupNorm(8, 32): 4 channels a group; at align 16 the kept channels of that conv are
    multiples of 16 (4 groups), at align 8 of 8."""
    path = _torch_model(tmp_path, "dynamo-21")
    x = np.random.default_rng(0).normal(size=(200, 3, 12, 12)).astype(np.float32)
    for align in (8, 16):
        dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=align))
        cg = dec.parent.cg
        widths = {cg.cluster(n): k for n, k in cg.unit_width.items()}
        assert grouped_align(cg, align) == {cl: align // k for cl, k in widths.items()}
        module = dec.build(0, 0.3)
        norm = _normalised_values(dec)[1]
        assert len(cg.kept_channels(norm, module.removed)) % align == 0


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_crnn_columns_prune_the_conv_in_whole_rows(tmp_path: Path, exporter: str) -> None:
    """A CRNN's [N, C, H, W] -> [N, C * H, W] (dynamo writes the target [-1, C * H, W]): the
    last conv loses channels, the LSTM the H input features of each."""
    from conftest import torch_export
    from test_architectures import CRNN, _x

    torch.manual_seed(0)
    path = torch_export(CRNN().eval(), _x("crnn", 2, seed=1), exporter,
                        tmp_path / f"crnn-{exporter}.onnx")
    x = _x("crnn", 240, seed=0).numpy()
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    half = dec.build(0, 0.5, check=True).proto
    convs = [n for n in half.graph.node if n.op_type == "Conv"]
    lstm = next(n for n in half.graph.node if n.op_type == "LSTM")
    weights = {i.name: i for i in half.graph.initializer}
    kept = weights[convs[-1].input[1]].dims[0]
    assert kept < 16 and weights[lstm.input[1]].dims[2] == kept * 4  # H = 4 rows each


def test_refit_criterion_drops_a_unit_of_several_channels_as_one_block() -> None:
    """The columns of a unit (a group's channels, a head's dimensions) are one block of the
    refit's elimination, grouped by block size."""
    from onnxdecomp.decompose.criteria import _unit_blocks

    roots = np.array([5, 5, 7, 7, 9, 3])
    blocks = {tuple(units): idx.tolist()
              for units, idx in _unit_blocks(roots, [0, 1, 2, 3, 4, 5], 2, {5, 7, 9})}
    assert blocks == {(5, 7): [[0, 1, 2, 3], [4, 5, 6, 7]], (9,): [[8, 9]]}
    # A removed channel's columns are gone from the kept ones: unit 7 keeps one channel.
    blocks = {tuple(units): idx.tolist()
              for units, idx in _unit_blocks(roots, [0, 1, 3, 4], 1, {5, 7})}
    assert blocks == {(5,): [[0, 1]], (7,): [[2]]}


@pytest.mark.parametrize("case", ["softmax", "one_group", "groups"])
def test_a_model_nothing_can_leave_says_why(tmp_path: Path, case: str) -> None:
    """Channels that all stay (a softmax over them, one group over all of them) give a note
    naming what pinned them; a model with channels to spare gives none."""
    from onnxdecomp.decompose import decompose

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.norm = nn.GroupNorm({"one_group": 1, "groups": 4}.get(case, 1), 8)
            self.head = nn.Linear(8, 4)

        def forward(self, x):
            y = self.conv(x)
            y = torch.softmax(y, 1) if case == "softmax" else self.norm(y)
            return self.head(y.mean((2, 3)))

    torch.manual_seed(0)
    path = tmp_path / f"{case}.onnx"
    with quiet():
        torch.onnx.export(Net().eval(), (torch.randn(2, 3, 8, 8),), str(path), dynamo=False,
                          input_names=["input"], dynamic_axes={"input": {0: "N"}})
    x = np.random.default_rng(0).normal(size=(120, 3, 8, 8)).astype(np.float32)
    y = np.arange(120) % 4
    manifest = decompose(path, x, y, settings=Settings(device="cpu", keep=0.5), classes=[0])
    assert manifest.to_json()["notes"] == manifest.notes
    # (36 held-out samples also draw a note on their number: not this test's concern)
    notes = [n for n in manifest.notes if not n.startswith("the fidelities were measured")]
    if case == "groups":
        assert notes == []
    else:
        (note,) = notes
        assert note.startswith("no channel of this model can be removed")
        assert ("Softmax" in note) == (case == "softmax")
        assert ("one unit" in note) == (case == "one_group")


def test_macs_of_group_normalization_21_need_no_runtime(tmp_path: Path, monkeypatch) -> None:
    """onnx leaves GroupNormalization-21's output untyped; the static count carries its
    input's shape over instead of running the model to measure shapes."""
    import onnxdecomp.stats.model as stats_model

    path = _torch_model(tmp_path, "dynamo-21")
    bare = onnx.load(str(path))
    del bare.graph.value_info[:]
    want = model_stats(path).macs
    monkeypatch.setattr(stats_model, "measure_shapes", lambda m: pytest.fail("measured"))
    assert model_stats(bare).macs == model_stats(path).macs == want > 0
