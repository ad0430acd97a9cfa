"""UnfuseAttentionPass: ONNX's Attention (opset 23) as standard ops, checked against ONNX
Runtime's own kernel in each form it writes out, and left alone in the forms it does not;
torch's dynamo export of ``F.scaled_dot_product_attention`` at opset 23 decomposes exactly
with its heads as units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from conftest import assert_full_module_exact, ort_run, quiet
from onnx import TensorProto, helper

from onnxdecomp.channels import plain_slice
from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.decompose.decomposer import build_module
from onnxdecomp.passes import UnfuseAttentionPass
from onnxdecomp.stats import model_stats

N, H, S, D = 3, 2, 5, 4


def _model(rank: int, mask: str | None = None, opset: int = 23, kv_heads: int = H,
           past: bool = False, **attrs) -> onnx.ModelProto:
    """Attention over inputs q, k, v (and a mask, and past keys and values)."""
    def info(name: str, shape: list, dtype=TensorProto.FLOAT):
        return helper.make_tensor_value_info(name, dtype, shape)

    if rank == 4:
        shapes = [[N, H, S, D], [N, kv_heads, S, D], [N, kv_heads, S, D]]
    else:
        shapes = [[N, S, H * D], [N, S, kv_heads * D], [N, S, kv_heads * D]]
        attrs = {"q_num_heads": H, "kv_num_heads": kv_heads, **attrs}
    inputs = [info(n, sh) for n, sh in zip("qkv", shapes)]
    names = ["q", "k", "v"]
    if mask is not None:
        inputs.append(info("mask", [S, S], TensorProto.BOOL if mask == "bool" else
                           TensorProto.FLOAT))
        names.append("mask")
    if past:
        names += [""] * (4 - len(names)) + ["past_k", "past_v"]
        inputs += [info("past_k", [N, kv_heads, 2, D]), info("past_v", [N, kv_heads, 2, D])]
    node = helper.make_node("Attention", names, ["y"], **attrs)
    graph = helper.make_graph([node], "g", inputs, [info("y", [N, H, S, D] if rank == 4 else
                                                          [N, S, H * D])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _feeds(model: onnx.ModelProto, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in model.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if vi.type.tensor_type.elem_type == TensorProto.BOOL:
            feeds[vi.name] = rng.random(shape) < 0.7
            feeds[vi.name][:, 0] = True  # every query sees a key
        else:
            feeds[vi.name] = rng.normal(size=shape).astype(np.float32)
    return feeds


def _unfused(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    ir_model = ir.serde.deserialize_model(model)
    modified = UnfuseAttentionPass()(ir_model).modified
    return ir.serde.serialize_model(ir_model), modified


def _run(model: onnx.ModelProto, feeds: dict) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


@pytest.mark.parametrize("rank,mask,attrs", [
    (4, None, {}), (4, "bool", {}), (4, "float", {}), (4, None, {"is_causal": 1}),
    (4, "bool", {"is_causal": 1, "scale": 0.3}), (3, None, {}), (3, "float", {}),
    (3, None, {"is_causal": 1})])
def test_written_out_as_ort_computes_it(rank: int, mask: str | None, attrs: dict) -> None:
    model = _model(rank, mask, **attrs)
    feeds = _feeds(model)
    out, modified = _unfused(model)
    assert modified and "Attention" not in {n.op_type for n in out.graph.node}
    onnx.checker.check_model(out, full_check=True)
    np.testing.assert_allclose(_run(out, feeds), _run(model, feeds), atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("mask", [None, "bool"])
def test_float16_attention_stays_float16(mask: str | None) -> None:
    """A float16 model's scale and mask constants are float16 (float32 ones fail type
    inference and ONNX Runtime's load)."""
    model = _model(4, mask, is_causal=1)
    for vi in [*model.graph.input, *model.graph.output]:
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    feeds = {k: v.astype(np.float16) if v.dtype == np.float32 else v
             for k, v in _feeds(model).items()}
    out, modified = _unfused(model)
    assert modified
    onnx.checker.check_model(out, full_check=True)
    np.testing.assert_allclose(_run(out, feeds).astype(np.float32),
                               _run(model, feeds).astype(np.float32), atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("case", ["grouped", "past", "softcap"])
def test_other_forms_stay(case: str) -> None:
    model = {"grouped": lambda: _model(4, kv_heads=1), "past": lambda: _model(4, past=True),
             "softcap": lambda: _model(4, softcap=5.0)}[case]()
    out, modified = _unfused(model)
    assert not modified and "Attention" in {n.op_type for n in out.graph.node}


def test_torch_sdpa_at_opset_23_decomposes_by_heads(tmp_path: Path) -> None:
    """A ViT-like block whose attention is ``F.scaled_dot_product_attention`` (dynamo writes
    ONNX's Attention at opset 23, and RMSNormalization for ``nn.RMSNorm``): exact with
    nothing pruned, the MACs those of the written-out graph, and heads go whole."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Conv2d(3, 32, 4, 4)
            self.qkv, self.proj = nn.Linear(32, 96), nn.Linear(32, 32)
            self.norm = nn.RMSNorm(32)
            self.mlp = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
            self.head = nn.Linear(32, 6)

        def forward(self, x):
            t = self.embed(x).flatten(2).transpose(1, 2)
            n, length, _ = t.shape
            q, k, v = self.qkv(t).reshape(n, length, 3, 4, 8).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, length, 32)
            t = t + self.proj(a)
            return self.head((t + self.mlp(self.norm(t))).mean(1))

    torch.manual_seed(0)
    path = tmp_path / "sdpa23.onnx"
    with quiet():
        torch.onnx.export(Block().eval(), (torch.randn(2, 3, 16, 16),), str(path), dynamo=True,
                          external_data=False, opset_version=23, input_names=["input"],
                          output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("N", min=1)},))
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"Attention", "RMSNormalization"} <= ops
    x = np.random.default_rng(0).normal(size=(240, 3, 16, 16)).astype(np.float32)
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    full = assert_full_module_exact(dec, path, x)
    assert model_stats(path).macs == model_stats(full).macs
    assert dec.head_clusters  # the four heads are units
    head = next(r for r, cl in dec.clusters.items() if cl in dec.head_clusters)
    fewer = build_module(dec.parent, {head}, plain_slice, lambda m: None, check=True)
    # One head of 8 dimensions gone from q, k and v together: 96 -> 72 projections.
    assert any(72 in i.dims for i in fewer.graph.initializer)
    assert ort_run(fewer, x[:4]).shape[0] == 4
    # A file without intermediate shapes: the head size comes from inferred ones.
    bare = onnx.load(str(path))
    del bare.graph.value_info[:]
    bare_path = tmp_path / "sdpa23-bare.onnx"
    onnx.save(bare, str(bare_path))
    assert model_stats(bare_path).macs == model_stats(path).macs
    assert Decomposer(bare_path, x, None, Settings(device="cpu", seed=0, align=1)).head_clusters
