"""Tests for onnxdecomp.stats: exact MAC and parameter counts computed by hand."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.stats import LayerStat, ModelStats, TensorInfo, format_stats, model_stats

F = TensorProto.FLOAT


def _init(name: str, shape: tuple[int, ...], dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.zeros(shape, dtype=dtype), name)


def _model(nodes, inputs, outputs, inits=(), opset: int = 17, **kwargs) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kwargs)
    onnx.checker.check_model(model)
    return model


def _vi(name: str, shape, elem=F) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _conv_net(batch) -> onnx.ModelProto:
    """Conv (stride 2, pad 1) -> depthwise Conv -> Flatten -> Gemm(transB=1)."""
    nodes = [
        helper.make_node(
            "Conv", ["x", "W", "B"], ["c"], name="conv", strides=[2, 2], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Conv", ["c", "D"], ["d"], name="dw", group=8, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["d"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "G", "GB"], ["y"], name="fc", transB=1),
    ]
    inits = [
        _init("W", (8, 3, 3, 3)),
        _init("B", (8,)),
        _init("D", (8, 1, 3, 3)),
        _init("G", (10, 8 * 16 * 16)),
        _init("GB", (10,)),
    ]
    return _model(nodes, [_vi("x", [batch, 3, 32, 32])], [_vi("y", [batch, 10])], inits)


# By hand: conv out [1,8,16,16] = 2048 elements, each 3 in-channels * 3*3 kernel.
CONV_MACS = 2048 * 3 * 9  # 55_296
DW_MACS = 2048 * 1 * 9  # depthwise: 1 input channel per group -> 18_432
FC_MACS = 1 * 10 * 2048  # 20_480
CONV_PARAMS = 8 * 27 + 8
DW_PARAMS = 8 * 9
FC_PARAMS = 10 * 2048 + 10


# --------------------------------------------------------------------------------------------
# convolutions, Gemm, MatMul


def test_conv_depthwise_gemm_exact_counts():
    stats = model_stats(_conv_net("N"))
    by_name = {layer.node: layer for layer in stats.layers}
    assert [layer.node for layer in stats.layers] == ["conv", "dw", "fc"]  # graph order
    assert by_name["conv"].macs == CONV_MACS == 55_296
    assert by_name["dw"].macs == DW_MACS == 18_432
    assert by_name["fc"].macs == FC_MACS
    assert by_name["conv"].params == CONV_PARAMS
    assert by_name["dw"].params == DW_PARAMS
    assert by_name["fc"].params == FC_PARAMS
    assert by_name["conv"].output_shape == [1, 8, 16, 16]
    assert by_name["fc"].output_shape == [1, 10]
    assert stats.macs == CONV_MACS + DW_MACS + FC_MACS
    assert stats.params == CONV_PARAMS + DW_PARAMS + FC_PARAMS


def test_op_counts_sorted_by_count_then_name():
    stats = model_stats(_conv_net("N"))
    assert stats.op_counts == {"Conv": 2, "Flatten": 1, "Gemm": 1, "Relu": 1}
    assert list(stats.op_counts) == ["Conv", "Flatten", "Gemm", "Relu"]


@pytest.mark.parametrize("batch", [1, 4, "N", "batch_size"])
def test_fixed_and_dynamic_batch_give_same_per_sample_macs(batch):
    stats = model_stats(_conv_net(batch))
    assert stats.macs == CONV_MACS + DW_MACS + FC_MACS
    assert stats.inputs == [TensorInfo("x", [batch, 3, 32, 32], "float32")]
    assert stats.outputs == [TensorInfo("y", [batch, 10], "float32")]


def test_caller_model_is_not_modified():
    model = _conv_net("N")
    before = model.SerializeToString()
    model_stats(model)
    assert model.SerializeToString() == before


@pytest.mark.parametrize("equation,shapes,out,macs", [
    ("nk,ko->no", [["N", 6], [6, 4]], ["N", 4], 6 * 4),  # a dense layer: a MatMul's count
    ("nk,ok->no", [["N", 6], [4, 6]], ["N", 4], 6 * 4),
    ("bhid,bhjd->bhij", [["N", 2, 5, 3], ["N", 2, 7, 3]], ["N", 2, 5, 7], 2 * 5 * 7 * 3),
    ("...k,ko->...o", [["N", 5, 6], [6, 4]], ["N", 5, 4], 5 * 6 * 4),
    ("nij->nji", [["N", 3, 4]], ["N", 4, 3], 0)])  # one operand: no multiply-accumulate
def test_einsum(equation: str, shapes: list, out: list, macs: int) -> None:
    """(An operand without the batch is a weight, an initializer.)"""
    names = [f"in{i}" for i in range(len(shapes))]
    nodes = [helper.make_node("Einsum", names, ["y"], name="e", equation=equation)]
    inputs = [_vi(n, sh) for n, sh in zip(names, shapes) if sh[0] == "N"]
    weights = [numpy_helper.from_array(np.ones(sh, np.float32), n)
               for n, sh in zip(names, shapes) if sh[0] != "N"]
    assert model_stats(_model(nodes, inputs, [_vi("y", out)], weights)).macs == macs


def test_conv_transpose():
    # in [1,4,8,8] = 256 elements, each scattered to Cout/groups=2 channels * 3*3 kernel.
    nodes = [helper.make_node("ConvTranspose", ["x", "W"], ["y"], name="up", strides=[2, 2])]
    model = _model(
        nodes, [_vi("x", ["N", 4, 8, 8])], [_vi("y", ["N", 2, 17, 17])], [_init("W", (4, 2, 3, 3))]
    )
    stats = model_stats(model)
    assert stats.macs == 256 * 2 * 9
    assert stats.layers[0].output_shape == [1, 2, 17, 17]
    assert stats.params == 4 * 2 * 9


def test_conv_transpose_grouped():
    # groups=2: W [Cin=4, Cout/groups=3, 2, 2]; Cout = 6.
    nodes = [helper.make_node("ConvTranspose", ["x", "W"], ["y"], name="up", group=2)]
    model = _model(
        nodes, [_vi("x", [1, 4, 5, 5])], [_vi("y", [1, 6, 6, 6])], [_init("W", (4, 3, 2, 2))]
    )
    assert model_stats(model).macs == 100 * 3 * 4


def test_gemm_trans_a_and_b():
    # x [N, 64] transposed to [64, N]; Gemm(transA=1, transB=1) with B [10, 64]: M=1, K=64, N=10.
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0]),
        helper.make_node("Gemm", ["xt", "B"], ["y"], name="fc", transA=1, transB=1),
    ]
    model = _model(nodes, [_vi("x", ["N", 64])], [_vi("y", ["N", 10])], [_init("B", (10, 64))])
    stats = model_stats(model)
    assert stats.macs == 64 * 10
    assert stats.layers[0].output_shape == [1, 10]


def test_gemm_trans_b():
    nodes = [helper.make_node("Gemm", ["a", "B", "C"], ["y"], name="fc", transB=1)]
    model = _model(
        nodes,
        [_vi("a", ["N", 64])],
        [_vi("y", ["N", 10])],
        [_init("B", (10, 64)), _init("C", (10,))],
    )
    stats = model_stats(model)
    assert stats.macs == 64 * 10
    assert stats.layers == [LayerStat("fc", "Gemm", 640, 650, [1, 10])]


def test_gemm_rejects_inner_dim_mismatch():
    # A Reshape hard-coding the original batch (4) breaks at batch 1: refuse, do not guess.
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r"], name="reshape"),
        helper.make_node("Gemm", ["r", "B"], ["y"], name="fc", transB=1),
    ]
    shape = numpy_helper.from_array(np.array([4, -1], dtype=np.int64), "shape")
    model = _model(nodes, [_vi("x", [4, 8, 8])], [_vi("y", [4, 10])], [shape, _init("B", (10, 64))])
    with pytest.raises(OnnxDecompError, match=r"'fc' \(Gemm\)"):
        model_stats(model)


def test_matmul_2d():
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")]
    model = _model(nodes, [_vi("x", ["N", 16])], [_vi("y", ["N", 4])], [_init("W", (16, 4))])
    stats = model_stats(model)
    assert stats.macs == 16 * 4
    assert stats.layers[0].params == 64


def test_matmul_batched():
    # x [N, 3, 5, 7] @ W [7, 4] -> per sample [1, 3, 5, 4]: 3 * 5*4*7.
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")]
    model = _model(
        nodes, [_vi("x", ["N", 3, 5, 7])], [_vi("y", ["N", 3, 5, 4])], [_init("W", (7, 4))]
    )
    stats = model_stats(model)
    assert stats.macs == 3 * 5 * 4 * 7
    assert stats.layers[0].output_shape == [1, 3, 5, 4]


def test_matmul_broadcast_batch_dims():
    # x [N, 1, 5, 7] @ W [3, 7, 4]: batch dims broadcast to [1, 3] -> 3 * 5*4*7.
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")]
    model = _model(
        nodes, [_vi("x", ["N", 1, 5, 7])], [_vi("y", ["N", 3, 5, 4])], [_init("W", (3, 7, 4))]
    )
    assert model_stats(model).macs == 3 * 5 * 4 * 7


def test_matmul_of_two_activations():
    # Attention-like q @ k^T with both operands runtime values: [1,2,6,8] @ [1,2,8,6].
    nodes = [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["s"], name="scores"),
    ]
    model = _model(
        nodes, [_vi("q", ["N", 2, 6, 8]), _vi("k", ["N", 2, 6, 8])], [_vi("s", ["N", 2, 6, 6])]
    )
    stats = model_stats(model)
    assert stats.macs == 2 * 6 * 6 * 8
    assert stats.params == 0 and stats.layers[0].params == 0


def test_symbolic_non_batch_dim_raises_naming_node():
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="proj")]
    model = _model(
        nodes, [_vi("x", ["N", "seq", 8])], [_vi("y", ["N", "seq", 4])], [_init("W", (8, 4))]
    )
    with pytest.raises(OnnxDecompError) as info:
        model_stats(model)
    msg = str(info.value)
    assert "'proj' (MatMul)" in msg and "seq" in msg and "\n" not in msg


def test_unknown_shape_raises_naming_node():
    # A custom-domain op hides its output shape from shape inference.
    nodes = [
        helper.make_node("Mystery", ["x"], ["m"], domain="example.custom", name="mystery"),
        helper.make_node("Conv", ["m", "W"], ["y"], name="conv_after_custom"),
    ]
    graph = helper.make_graph(
        nodes, "g", [_vi("x", ["N", 3, 8, 8])], [_vi("y", None)], [_init("W", (4, 3, 3, 3))]
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.custom", 1)],
    )
    with pytest.raises(OnnxDecompError, match=r"^cannot count MACs of node 'conv_after_custom'"):
        model_stats(model)


def test_custom_domain_op_counted_with_domain_prefix():
    nodes = [helper.make_node("Mystery", ["x"], ["y"], domain="example.custom", name="m")]
    graph = helper.make_graph(nodes, "g", [_vi("x", ["N", 3])], [_vi("y", None)])
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.custom", 1)],
    )
    stats = model_stats(model)
    assert stats.op_counts == {"example.custom.Mystery": 1}
    assert stats.macs == 0 and stats.layers == []


# --------------------------------------------------------------------------------------------
# recurrent layers


def _rnn_model(op: str, x_shape, hidden: int, inp: int, dirs: int, layout: int = 0):
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    direction = "bidirectional" if dirs == 2 else "forward"
    node = helper.make_node(
        op,
        ["x", "W", "R", "B"],
        ["y", "y_h"],
        name=op.lower(),
        hidden_size=hidden,
        direction=direction,
        layout=layout,
    )
    inits = [
        _init("W", (dirs, gates * hidden, inp)),
        _init("R", (dirs, gates * hidden, hidden)),
        _init("B", (dirs, 2 * gates * hidden)),
    ]
    outputs = [_vi("y", [None] * 4), _vi("y_h", [None] * 3)]  # checker wants a rank
    model = _model([node], [_vi("x", x_shape)], outputs, inits)
    params = dirs * gates * hidden * (inp + hidden + 2)
    return model, params


@pytest.mark.parametrize(
    ("op", "dirs", "expected"),
    [
        # seq 5, hidden 20, input 10: per gate and direction 20*10 + 20*20 = 600 per step.
        ("RNN", 1, 5 * 1 * 1 * 600),
        ("LSTM", 1, 5 * 1 * 4 * 600),  # 12_000
        ("LSTM", 2, 5 * 2 * 4 * 600),  # 24_000
        ("GRU", 1, 5 * 1 * 3 * 600),  # 9_000
        ("GRU", 2, 5 * 2 * 3 * 600),  # 18_000
    ],
)
def test_recurrent_layout0_seq_first(op, dirs, expected):
    # X is [seq, batch, in]: the batch axis set to 1 must be axis 1, not the sequence axis.
    model, params = _rnn_model(op, [5, "N", 10], hidden=20, inp=10, dirs=dirs)
    stats = model_stats(model)
    assert stats.macs == expected
    assert stats.params == params
    (layer,) = stats.layers
    assert layer.params == params and layer.per_step is False
    assert layer.output_shape == [5, dirs, 1, 20]


def test_recurrent_fixed_batch_seq_first():
    # Fixed [5, 3, 10] (batch 3): per-sample count still uses seq 5.
    model, _ = _rnn_model("LSTM", [5, 3, 10], hidden=20, inp=10, dirs=1)
    assert model_stats(model).macs == 12_000


def test_gru_layout1_batch_first_bidirectional():
    model, _ = _rnn_model("GRU", ["N", 5, 10], hidden=20, inp=10, dirs=2, layout=1)
    stats = model_stats(model)
    assert stats.macs == 5 * 2 * 3 * 600
    assert stats.layers[0].output_shape == [1, 5, 2, 20]


def test_lstm_symbolic_seq_counts_per_step():
    model, _ = _rnn_model("LSTM", ["T", "N", 10], hidden=20, inp=10, dirs=2)
    stats = model_stats(model)
    (layer,) = stats.layers
    assert layer.per_step is True
    assert layer.macs == 2 * 4 * 600  # one time step
    assert stats.macs == layer.macs and stats.macs_per_step
    assert "per time step" in format_stats(stats)
    assert "4,800*" in format_stats(stats)


def test_stacked_lstm_with_unknown_input_shape_counts_from_its_weights():
    """A second layer fed through a custom op (shape unknown, as after the dynamo exporter's
    reshapes): MACs per sample and time step from W and R alone."""
    first = helper.make_node("LSTM", ["x", "W", "R", "B"], ["y", "y_h"], name="lstm1",
                             hidden_size=20, direction="bidirectional")
    view = helper.make_node("Flip", ["y"], ["z"], name="view", domain="custom")
    second = helper.make_node("LSTM", ["z", "W2", "R2", "B2"], ["y2", "y2_h"], name="lstm2",
                              hidden_size=8)
    inits = [_init("W", (2, 80, 10)), _init("R", (2, 80, 20)), _init("B", (2, 160)),
             _init("W2", (1, 32, 40)), _init("R2", (1, 32, 8)), _init("B2", (1, 64))]
    graph = helper.make_graph([first, view, second], "g", [_vi("x", ["T", "N", 10])],
                              [_vi("y2", [None] * 4), _vi("y2_h", [None] * 3)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("custom", 1)])
    stats = model_stats(model)
    layers = {layer.node: layer for layer in stats.layers}
    assert layers["lstm2"].per_step and layers["lstm2"].macs == 1 * 4 * (8 * 40 + 8 * 8)
    assert layers["lstm1"].macs == 2 * 4 * (20 * 10 + 20 * 20)


# --------------------------------------------------------------------------------------------
# parameters


def test_params_count_floats_and_constants_not_ints():
    nodes = [
        helper.make_node(
            "Constant",
            [],
            ["scale"],
            value=numpy_helper.from_array(np.ones((4,), np.float32), "s"),
        ),
        helper.make_node("Constant", [], ["half"], value_float=0.5),
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("Mul", ["r", "scale"], ["m"]),
        helper.make_node("Mul", ["m", "half"], ["h"]),
        helper.make_node("Gather", ["h", "idx"], ["y"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1, 4], np.int64), "shape"),
        numpy_helper.from_array(np.array([0, 2, 3], np.int64), "idx"),
    ]
    model = _model(nodes, [_vi("x", ["N", 2, 2])], [_vi("y", ["N", 3])], inits)
    stats = model_stats(model)
    assert stats.params == 4 + 1  # int64 shape/indices are not parameters
    assert stats.macs == 0 and stats.layers == []
    assert stats.op_counts == {"Constant": 2, "Mul": 2, "Gather": 1, "Reshape": 1}


def test_quantized_int8_weight_counts_and_traces_to_layer():
    # int8 W -> DequantizeLinear -> Transpose -> MatMul: the layer owns W and its scale.
    nodes = [
        helper.make_node("DequantizeLinear", ["Wq", "scale", "zp"], ["Wf"]),
        helper.make_node("Transpose", ["Wf"], ["Wt"], perm=[1, 0]),
        helper.make_node("MatMul", ["x", "Wt"], ["y"], name="mm"),
    ]
    inits = [
        _init("Wq", (4, 16), np.int8),
        numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
        numpy_helper.from_array(np.array(0, np.int8), "zp"),
    ]
    model = _model(nodes, [_vi("x", ["N", 16])], [_vi("y", ["N", 4])], inits)
    stats = model_stats(model)
    assert stats.params == 64 + 1  # int8 weights + float scale; the int8 zero point is not
    assert stats.layers[0].params == 65
    assert stats.macs == 64


def test_ir3_initializers_listed_as_inputs_are_not_inputs():
    model = _conv_net("N")
    model.ir_version = 3
    for init in model.graph.initializer:
        model.graph.input.append(_vi(init.name, list(init.dims)))
    stats = model_stats(model)
    assert [t.name for t in stats.inputs] == ["x"]
    assert stats.macs == CONV_MACS + DW_MACS + FC_MACS
    assert stats.params == CONV_PARAMS + DW_PARAMS + FC_PARAMS


def test_local_function_is_inlined():
    fn = helper.make_function(
        "local",
        "Proj",
        ["a", "w"],
        ["b"],
        [helper.make_node("MatMul", ["a", "w"], ["b"], name="inner")],
        opset_imports=[helper.make_opsetid("", 17)],
    )
    nodes = [helper.make_node("Proj", ["x", "W"], ["y"], domain="local", name="call")]
    graph = helper.make_graph(
        nodes, "g", [_vi("x", ["N", 16])], [_vi("y", ["N", 4])], [_init("W", (16, 4))]
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
        functions=[fn],
    )
    stats = model_stats(model)
    assert stats.macs == 64
    assert stats.op_counts == {"MatMul": 1}


# --------------------------------------------------------------------------------------------
# metadata, JSON, formatting


def test_metadata_and_json():
    model = _conv_net("N")
    model.producer_name, model.producer_version = "unit", "1.0"
    stats = model_stats(model)
    assert stats.producer == "unit 1.0"
    assert stats.opset == 17
    assert stats.ir_version == model.ir_version
    data = stats.to_json()
    assert set(data) == {
        "inputs",
        "outputs",
        "op_counts",
        "params",
        "macs",
        "layers",
        "producer",
        "opset",
        "ir_version",
    }
    text = json.dumps(data)
    back = json.loads(text)
    assert back["macs"] == stats.macs
    assert back["inputs"] == [{"name": "x", "shape": ["N", 3, 32, 32], "dtype": "float32"}]
    assert back["layers"][0]["node"] == "conv"
    assert isinstance(stats, ModelStats)


def test_format_stats_table():
    stats = model_stats(_conv_net("N"))
    text = format_stats(stats)
    assert "55,296" in text and "94,208" in text  # thousands separators
    assert "58.7%" in text  # 55_296 / 94_208
    assert "[N, 3, 32, 32]" in text and "float32" in text
    layer_lines = [line for line in text.splitlines() if "%" in line and "Conv" in line]
    assert len(layer_lines) == 2
    # Right-aligned MACs column: the percentages end at the same column.
    assert len({len(line) for line in layer_lines}) == 1


def test_format_stats_top_sorts_by_macs_and_sums_rest():
    stats = model_stats(_conv_net("N"))
    text = format_stats(stats, top=2)
    rows = text.split("top 2 layers by MACs:")[1].strip().splitlines()
    assert rows[1].split()[0] == "conv" and rows[2].split()[0] == "fc"
    assert "1 more" in rows[3] and "18,432" in rows[3]


def test_format_stats_without_layers():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    text = format_stats(model_stats(_model(nodes, [_vi("x", ["N", 3])], [_vi("y", ["N", 3])])))
    assert "MACs/sample: 0" in text and "layers" not in text


# --------------------------------------------------------------------------------------------
# loading and errors


def test_path_and_model_agree(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_conv_net("N"), path)
    assert model_stats(path) == model_stats(str(path)) == model_stats(_conv_net("N"))


def test_external_data_model(tmp_path):
    path = tmp_path / "ext.onnx"
    onnx.save(
        _conv_net("N"),
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.data",
        size_threshold=0,
    )
    stats = model_stats(path)
    assert stats.macs == CONV_MACS + DW_MACS + FC_MACS
    assert stats.params == CONV_PARAMS + DW_PARAMS + FC_PARAMS


def test_missing_file(tmp_path):
    path = tmp_path / "nope.onnx"
    with pytest.raises(OnnxDecompError) as info:
        model_stats(path)
    msg = str(info.value)
    assert msg == f"not an ONNX model: {path} (no such file)"


def test_directory_is_not_a_model(tmp_path):
    with pytest.raises(OnnxDecompError, match="not an ONNX model: .* \\(is a directory\\)"):
        model_stats(tmp_path)


@pytest.mark.parametrize(
    "content", [b"", b"hello, this is not a model\n", bytes(range(256)) * 4, b"\x08\x07"]
)
def test_garbage_file(tmp_path, content):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(content)
    with pytest.raises(OnnxDecompError) as info:
        model_stats(path)
    msg = str(info.value)
    assert msg.startswith(f"not an ONNX model: {path} (")
    assert "\n" not in msg


# --------------------------------------------------------------------------------------------
# torch exports (tests only; the tool never imports torch)


def _torch_net():
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(4)
            self.fc = torch.nn.Linear(4 * 8 * 8, 10)

        def forward(self, x):
            return self.fc(torch.flatten(torch.relu(self.bn(self.conv(x))), 1))

    torch.manual_seed(0)
    return torch, Net().eval(), torch.randn(2, 3, 8, 8)


# Conv 3->4, k3, pad 1 on 8x8: 4*64 outputs * 27; Linear 256 -> 10.
TORCH_MACS = 4 * 64 * 27 + 256 * 10  # 9_472


def _torch_params(stats: ModelStats) -> int:
    conv, fc = 4 * 27 + 4, 256 * 10 + 10
    # Eval-mode export usually folds BN into the conv; unfolded it adds 4 x (scale, B, mean, var).
    return conv + fc + (16 if "BatchNormalization" in stats.op_counts else 0)


def test_torch_export_torchscript(tmp_path):
    torch, net, x = _torch_net()
    path = tmp_path / "ts.onnx"
    torch.onnx.export(
        net,
        (x,),
        str(path),
        dynamo=False,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
    )
    stats = model_stats(path)
    assert stats.macs == TORCH_MACS
    assert stats.params == _torch_params(stats)
    assert stats.inputs[0].shape == ["N", 3, 8, 8]
    assert stats.producer.startswith("pytorch")
    json.dumps(stats.to_json())


@pytest.mark.parametrize("dynamo", [False, True])
def test_fixed_batch_export_counts_one_sample(tmp_path, dynamo: bool):
    """Exported at batch 8 without dynamic axes, dynamo flattens into the dense layer with
    ``Reshape(x, [8, 256])``: counted at batch 1, that target is one sample's [1, 256], not
    the dense layer eight times over."""
    torch, net, _ = _torch_net()
    if dynamo:
        pytest.importorskip("onnxscript")
    path = tmp_path / "fixed.onnx"
    x = torch.randn(8, 3, 8, 8)
    if dynamo:
        torch.onnx.export(net, (x,), str(path), dynamo=True, external_data=False)
    else:
        torch.onnx.export(net, (x,), str(path), dynamo=False)
    reshapes = [n for n in onnx.load(str(path)).graph.node if n.op_type == "Reshape"]
    assert not dynamo or reshapes  # the pinned target this test is about
    stats = model_stats(path)
    assert stats.inputs[0].shape[0] == 8
    assert stats.macs == TORCH_MACS


def test_reshape_of_a_fixed_batch_is_left_when_it_is_not_the_batch():
    """A first entry equal to the batch whose other entries do not hold one sample's
    elements is not the batch: left, and counted as written."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Reshape", ["x", "t"], ["r"]),
             helper.make_node("MatMul", ["r", "w"], ["y"])]
    inits = [numpy_helper.from_array(np.array([4, 2], np.int64), "t"),
             numpy_helper.from_array(np.ones((2, 3), np.float32), "w")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    # At batch 1, [1, 8] -> [4, 2]: one sample is 8 elements, the target's rest 2.
    assert model_stats(model).macs == 4 * 2 * 3


def test_torch_export_dynamo(tmp_path):
    torch, net, x = _torch_net()
    pytest.importorskip("onnxscript")
    path = tmp_path / "dyn.onnx"
    torch.onnx.export(
        net,
        (x,),
        str(path),
        dynamo=True,
        external_data=False,
        dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
        verbose=False,
    )
    stats = model_stats(path)
    assert stats.macs == TORCH_MACS
    assert stats.params == _torch_params(stats)
    assert stats.op_counts.get("Conv") == 1


@pytest.mark.parametrize("opset", [11, 17])
def test_torchscript_computed_pads_are_counted(tmp_path, opset):
    """TorchScript computes ``F.pad``'s pads from constants (ConstantOfShape, Concat,
    Reshape, Slice backwards, Transpose): folded as integers, the conv after it is counted
    (before: 'shape of output ... is not static')."""
    torch, _, x = _torch_net()

    class Padded(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"))

    path = tmp_path / "pad.onnx"
    torch.onnx.export(Padded().eval(), (x,), str(path), dynamo=False, opset_version=opset,
                      input_names=["x"], dynamic_axes={"x": {0: "N"}})
    stats = model_stats(path)
    assert stats.macs == 4 * 64 * 27 and stats.params == 4 * 27 + 4


_BILSTM_EXPORT = """
import sys, torch

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(100, 16)
        self.lstm = torch.nn.LSTM(16, 20, num_layers=2, bidirectional=True, batch_first=True)
        self.head = torch.nn.Linear(40, 5)

    def forward(self, x):
        y, _ = self.lstm(self.emb(x))
        return self.head(y[:, -1])

x = torch.randint(0, 100, (2, 7))
torch.onnx.export(Net().eval(), (x,), sys.argv[1], dynamo=True, external_data=False,
                  dynamic_shapes=({0: torch.export.Dim("N"), 1: torch.export.Dim("T")},),
                  verbose=False)
"""


def test_torch_dynamo_two_layer_bilstm_counts_every_layer(tmp_path):
    """The dynamo exporter's 2-layer bidirectional LSTM: the second layer's input and the
    head's features are symbolic after shape inference; both count from their weights.

    Exported in a fresh process: after another export of an LSTM with a static sequence
    length in the same process, torch 2.13's exporter makes T static here too."""
    pytest.importorskip("torch")
    import subprocess
    import sys

    path = tmp_path / "bilstm.onnx"
    subprocess.run([sys.executable, "-c", _BILSTM_EXPORT, str(path)], check=True,
                   capture_output=True)
    stats = model_stats(str(path))
    macs = sorted(layer.macs for layer in stats.layers if layer.op == "LSTM")
    assert macs == [2 * 4 * (20 * 16 + 20 * 20), 2 * 4 * (20 * 40 + 20 * 20)]
    assert stats.macs_per_step and any(layer.op == "Gemm" and layer.macs == 200
                                       for layer in stats.layers)
