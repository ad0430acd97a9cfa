"""Models quantised by ONNX Runtime's ``quantize_dynamic`` (the usual recipe for dense, recurrent
and transformer models on CPU): MatMulInteger / ConvInteger behind DynamicQuantizeLinear,
com.microsoft DynamicQuantizeLSTM, and DynamicQuantizeMatMul in a model ONNX Runtime saved
optimised. Each decomposes: with nothing pruned a module equals its parent's log-odds (the
integer ops written back), pruned it is smaller and still computes with integer ops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import ort_run, torch_export
from onnx import numpy_helper

from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.decompose.head import logodds_from_logits
from onnxdecomp.stats import model_stats

torch = pytest.importorskip("torch")
quantization = pytest.importorskip("onnxruntime.quantization")
nn, F = torch.nn, torch.nn.functional
INTEGER_OPS = {"MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM"}


class Dense(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.f1, self.f2, self.head = nn.Linear(32, 24), nn.Linear(24, 16), nn.Linear(16, 4)

    def forward(self, x):
        return self.head(F.relu(self.f2(F.relu(self.f1(x)))))


class Conv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 12, 3, padding=1), nn.Conv2d(12, 16, 3, 2, 1)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(F.relu(self.c2(F.relu(self.c1(x)))).amax((2, 3)))


class Recurrent(nn.Module):
    """Embedding (quantised as a uint8 table read through DequantizeLinear), LSTM, head."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.rnn = nn.Embedding(40, 12), nn.LSTM(12, 20, batch_first=True)
        self.head = nn.Linear(20, 4)

    def forward(self, x):
        _, (h, _) = self.rnn(self.emb(x))
        return self.head(h[-1])


NETS = {"dense": Dense, "conv": Conv, "recurrent": Recurrent}


def _x(name: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if name == "recurrent":
        return rng.integers(0, 40, (n, 6))
    shape = (n, 32) if name == "dense" else (n, 3, 8, 8)
    return rng.normal(size=shape).astype(np.float32)


def _quantised(tmp_path: Path, name: str, exporter: str, per_channel: bool,
               reduce_range: bool = False) -> tuple[Path, Path]:
    torch.manual_seed(0)
    net = NETS[name]().eval()
    with torch.no_grad():  # a balanced head: every class predicted
        z = net(torch.from_numpy(_x(name, 300, seed=9))).double()
        mean, std = z.mean(0), z.std(0) + 1e-6
        net.head.weight.copy_(net.head.weight / std[:, None].float())
        net.head.bias.copy_(((net.head.bias - mean) / std).float())
    path = torch_export(net, torch.from_numpy(_x(name, 2, 1)), exporter,
                        tmp_path / f"{name}.onnx")
    out = tmp_path / f"{name}_dq{int(per_channel)}{int(reduce_range)}.onnx"
    quantization.quantize_dynamic(str(path), str(out), per_channel=per_channel,
                                  reduce_range=reduce_range,
                                  op_types_to_quantize=["Conv", "MatMul", "Gemm", "LSTM"])
    return path, out


def _ops(model) -> set[str]:
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    return {n.op_type for n in proto.graph.node}


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("name", sorted(NETS))
def test_dynamic_quantised_model_decomposes(tmp_path: Path, name: str, exporter: str,
                                            per_channel: bool) -> None:
    floats, dq = _quantised(tmp_path, name, exporter, per_channel)
    assert _ops(dq) & INTEGER_OPS
    x = _x(name, 240, seed=0)
    dec = Decomposer(dq, x, None, Settings(device="cpu", seed=0, align=1))
    # fidelity is measured against the parent as it computes (a DynamicQuantizeLSTM
    # quantises inside; the analysis runs on a float twin)
    np.testing.assert_allclose(dec.hold_logits, ort_run(str(dq), dec.x_hold), atol=1e-5)
    want = logodds_from_logits(ort_run(str(dq), x[:60]))
    for k in (0, 3):
        full = dec.build(k, 1.0, check=True).proto
        assert _ops(full) & INTEGER_OPS == _ops(dq) & INTEGER_OPS
        np.testing.assert_allclose(ort_run(full, x[:60])[:, 0], want[:, k], atol=1e-5)
    half = dec.build(0, 0.5, check=True)
    assert half.removed and _ops(half.proto) & INTEGER_OPS == _ops(dq) & INTEGER_OPS
    assert model_stats(half.proto).macs < model_stats(dq).macs == model_stats(floats).macs
    assert ort_run(half.proto, x[:5]).shape == (5, 1)
    int8 = sum(t.data_type == onnx.TensorProto.INT8 for t in half.proto.graph.initializer)
    assert int8 >= 2  # its weights stay integers


def test_runtime_optimised_dynamic_model_decomposes(tmp_path: Path) -> None:
    """ONNX Runtime saves the chain as com.microsoft DynamicQuantizeMatMul."""
    import onnxruntime as ort

    _, dq = _quantised(tmp_path, "dense", "torchscript", per_channel=False)
    saved = tmp_path / "optimised.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(saved)
    ort.InferenceSession(str(dq), options, providers=["CPUExecutionProvider"])
    assert "DynamicQuantizeMatMul" in _ops(saved)
    x = _x("dense", 240, seed=0)
    dec = Decomposer(saved, x, None, Settings(device="cpu", seed=0, align=1))
    full = dec.build(1, 1.0, check=True).proto
    np.testing.assert_allclose(ort_run(full, x[:60])[:, 0],
                               logodds_from_logits(ort_run(str(saved), x[:60]))[:, 1],
                               atol=1e-5)
    assert model_stats(saved).macs == model_stats(dq).macs


@pytest.mark.parametrize("mode", ["parallel", "union"])
def test_dynamic_quantised_modules_link(tmp_path: Path, mode: str) -> None:
    """Linked models of such modules import com.microsoft (DynamicQuantizeLSTM) and run."""
    from onnxdecomp import decompose, link
    from onnxdecomp.data import DataSpec

    _, dq = _quantised(tmp_path, "recurrent", "torchscript", per_channel=False)
    x = _x("recurrent", 240, seed=0)
    np.savez(tmp_path / "data.npz", x=x, y=logodds_from_logits(ort_run(str(dq), x)).argmax(1))
    spec = DataSpec(str(tmp_path / "data.npz"))
    ds = spec.load()
    decompose(dq, ds.x, ds.y, tmp_path / "out", classes=[0, 1],
              settings=Settings(device="cpu", align=1), calibration=spec)
    linked = link([tmp_path / "out" / "class_0.onnx", tmp_path / "out" / "class_1.onnx"],
                  mode=mode).proto
    onnx.checker.check_model(linked, full_check=True)
    assert "DynamicQuantizeLSTM" in _ops(linked)
    assert ort_run(linked, x[:7]).shape == (7, 2)


def test_replace_keeps_the_models_integer_ops(tmp_path: Path) -> None:
    """``replace`` runs the model's own classes as the model computes them: its
    DynamicQuantizeLSTM again, not the float twin the analysis reads."""
    from onnxdecomp import replace

    _, dq = _quantised(tmp_path, "recurrent", "dynamo", per_channel=False)
    x = _x("recurrent", 240, seed=0)
    dec = Decomposer(dq, x, None, Settings(device="cpu", seed=0, align=1))
    module = tmp_path / "class_0.onnx"
    onnx.save(dec.build(0, 0.5, check=True).proto, module)
    result = replace(str(dq), [(0, str(module))]).proto
    assert "DynamicQuantizeLSTM" in _ops(result)
    want = logodds_from_logits(ort_run(str(dq), x[:60]))
    np.testing.assert_allclose(ort_run(result, x[:60])[:, 1:], want[:, 1:], atol=1e-5)


@pytest.mark.parametrize("name", sorted(NETS))
def test_reduced_range_weights_come_back_the_same(tmp_path: Path, name: str) -> None:
    """``reduce_range=True`` quantises weights to +-64 (7 bits): a module's weights are
    quantised again to the parent's bound, so with nothing pruned it is the parent."""
    _, dq = _quantised(tmp_path, name, "torchscript", per_channel=False, reduce_range=True)
    x = _x(name, 240, seed=0)
    dec = Decomposer(dq, x, None, Settings(device="cpu", seed=0, align=1))
    full = dec.build(2, 1.0, check=True).proto
    np.testing.assert_allclose(ort_run(full, x[:60])[:, 0],
                               logodds_from_logits(ort_run(str(dq), x[:60]))[:, 2], atol=1e-5)
    bound = max(int(np.abs(numpy_helper.to_array(t).astype(np.int32)).max())
                for t in full.graph.initializer if t.data_type == onnx.TensorProto.INT8)
    assert bound <= 64


def test_uint8_weights_get_a_note(tmp_path: Path) -> None:
    """quantize_dynamic(weight_type=QUInt8): the modules hold those layers' weights as
    float32 (a digits CNN's at 138% of the parent's bytes): decompose says so."""
    from onnxdecomp.decompose.parent import float_weight_notes

    path, int8 = _quantised(tmp_path, "conv", "torchscript", False)
    uint8 = tmp_path / "u8.onnx"
    quantization.quantize_dynamic(str(path), str(uint8), weight_type=quantization.QuantType.QUInt8,
                                  op_types_to_quantize=["Conv", "MatMul", "Gemm"])
    assert float_weight_notes(int8) == []
    (note,) = float_weight_notes(uint8)
    assert "asymmetric uint8 weights" in note and "QInt8" in note
