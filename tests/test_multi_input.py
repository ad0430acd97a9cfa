"""Models with several inputs: a transformer text classifier's token ids and attention mask
(as transformer exporters write it), a recurrent one masking its padding, and a two-tower
net (an image and a feature vector) joined before its head.

Their samples are records (``data.records``): an ``.npz`` holds one array per input, named
after it. For each net and exporter the module of class 0 with nothing pruned reproduces
the parent's log-odds to 1e-5 and one at keep 0.5 loses channels and runs; the commands
(decompose, link as a union and side by side, across parents, replace, eval, check) work on
them end to end, and data or modules that do not fit give one-line errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from conftest import quiet, softmax
from onnx import numpy_helper

from onnxdecomp import link
from onnxdecomp.cli.main import main
from onnxdecomp.data import load_data
from onnxdecomp.data.records import as_records, fields, is_records, sample_shape
from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.decompose.head import logodds_from_logits
from onnxdecomp.runtime import Runner
from onnxdecomp.stats import model_stats

torch = pytest.importorskip("torch")
nn = torch.nn
T, VOCAB, K = 7, 50, 5


class MaskedTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.enc = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(16, K)

    def forward(self, input_ids, attention_mask):
        h = self.enc(self.emb(input_ids), src_key_padding_mask=attention_mask == 0)
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1).clamp(min=1))


class MaskedGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.rnn = nn.GRU(16, 24, batch_first=True)
        self.head = nn.Linear(24, K)

    def forward(self, input_ids, attention_mask):
        h, _ = self.rnn(self.emb(input_ids))
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1))


class MaskFirst(MaskedGRU):
    """The same inputs listed the other way round (another exporter's order)."""

    def forward(self, attention_mask, input_ids):  # noqa: D102
        return super().forward(input_ids, attention_mask)


class TwoTower(nn.Module):
    """An image through convs and a feature vector through a dense layer, concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.tab = nn.Sequential(nn.Linear(6, 12), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(28, 20), nn.ReLU(), nn.Linear(20, K))

    def forward(self, image, feats):
        return self.head(torch.cat([self.conv(image), self.tab(feats)], 1))


class BertLayer(nn.Module):
    """A BERT encoder layer as Hugging Face writes it (views into heads, permutes, an
    additive mask, erf GELU, post-norm)."""

    def __init__(self, width: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(width, width) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(width, eps=1e-12), nn.LayerNorm(width, eps=1e-12)
        self.up, self.down = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def split(self, x):
        n, t, c = x.size()
        return x.view(n, t, self.heads, c // self.heads).permute(0, 2, 1, 3)

    def forward(self, x, bias):
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / (q.size(-1) ** 0.5) + bias
        ctx = torch.matmul(torch.softmax(scores, -1), v).permute(0, 2, 1, 3).contiguous()
        x = self.ln1(x + self.o(ctx.view(ctx.size(0), ctx.size(1), -1)))
        return self.ln2(x + self.down(nn.functional.gelu(self.up(x))))


class BertLike(nn.Module):
    """Word, position and token-type embeddings, two encoder layers, the pooler's tanh on
    the first token: three inputs, as BERT exporters name them."""

    def __init__(self) -> None:
        super().__init__()
        self.words, self.positions = nn.Embedding(VOCAB, 32), nn.Embedding(T, 32)
        self.types, self.ln = nn.Embedding(2, 32), nn.LayerNorm(32, eps=1e-12)
        self.layers = nn.ModuleList([BertLayer(), BertLayer()])
        self.pool, self.head = nn.Linear(32, 32), nn.Linear(32, K)

    def forward(self, input_ids, attention_mask, token_type_ids):
        steps = torch.arange(input_ids.size(1)).unsqueeze(0)
        x = self.ln(self.words(input_ids) + self.positions(steps) + self.types(token_type_ids))
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return self.head(torch.tanh(self.pool(x[:, 0])))


class DistilLayer(BertLayer):
    """DistilBERT's writing of the same: the mask expanded to the scores' shape
    (``expand_as``) and filled in (``masked_fill``), the scale on the queries."""

    def forward(self, x, mask):
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        scores = torch.matmul(q / (q.size(-1) ** 0.5), k.transpose(2, 3))
        hidden = (mask == 0).view(x.size(0), 1, 1, x.size(1)).expand_as(scores)
        scores = scores.masked_fill(hidden, torch.finfo(scores.dtype).min)
        ctx = torch.matmul(torch.softmax(scores, -1), v).transpose(1, 2).contiguous()
        x = self.ln1(x + self.o(ctx.view(x.size(0), -1, x.size(2))))
        return self.ln2(x + self.down(nn.functional.gelu(self.up(x))))


class DistilLike(nn.Module):
    """Position embeddings [T, C] added to the tokens' [N, T, C] (no batch axis), two
    ``DistilLayer``s, the first token's features to the head."""

    def __init__(self) -> None:
        super().__init__()
        self.words, self.positions = nn.Embedding(VOCAB, 32), nn.Embedding(T, 32)
        self.layers = nn.ModuleList([DistilLayer(), DistilLayer()])
        self.head = nn.Linear(32, K)

    def forward(self, input_ids, attention_mask):
        x = self.words(input_ids) + self.positions(torch.arange(input_ids.size(1)))
        for layer in self.layers:
            x = layer(x, attention_mask)
        return self.head(x[:, 0])


class GptLayer(BertLayer):
    """GPT-2's attention: causal, a lower-triangular buffer filled in (right padding
    follows every real token, so no other mask is needed)."""

    def forward(self, x, causal):
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / (q.size(-1) ** 0.5)
        scores = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
        ctx = torch.matmul(torch.softmax(scores, -1), v).transpose(1, 2).contiguous()
        x = self.ln1(x + self.o(ctx.view(x.size(0), -1, x.size(2))))
        return self.ln2(x + self.down(nn.functional.gelu(self.up(x))))


class GptLike(nn.Module):
    """A decoder classifier as GPT-2's is written: causal layers, the head on every token,
    then each sentence's last token's logits (``logits[arange(N), lengths - 1]``: a
    Flatten of the rows and a Gather by computed indices)."""

    def __init__(self) -> None:
        super().__init__()
        self.words, self.positions = nn.Embedding(VOCAB, 32), nn.Embedding(T, 32)
        self.layers = nn.ModuleList([GptLayer(), GptLayer()])
        self.head = nn.Linear(32, K)
        self.register_buffer("causal", torch.tril(torch.ones(T, T, dtype=torch.bool)))

    def forward(self, input_ids, attention_mask):
        t = input_ids.size(1)
        x = self.words(input_ids) + self.positions(torch.arange(t))
        for layer in self.layers:
            x = layer(x, self.causal[:t, :t])
        logits = self.head(x)
        return logits[torch.arange(x.size(0)), attention_mask.sum(1) - 1]


class GptPick(GptLike):
    """The last token's features picked before the head: the head's input rows are unknown
    to shape inference, its MACs counted on the shapes of one sample run."""

    def forward(self, input_ids, attention_mask):
        t = input_ids.size(1)
        x = self.words(input_ids) + self.positions(torch.arange(t))
        for layer in self.layers:
            x = layer(x, self.causal[:t, :t])
        return self.head(x[torch.arange(x.size(0)), attention_mask.sum(1) - 1])


NETS = {"transformer": MaskedTransformer, "gru": MaskedGRU, "two_tower": TwoTower,
        "mask_first": MaskFirst, "bert": BertLike, "distil": DistilLike, "gpt": GptLike,
        "gpt_pick": GptPick}


def samples(name: str, n: int, seed: int) -> dict[str, np.ndarray]:
    """Inputs by name, in the net's order."""
    rng = np.random.default_rng(seed)
    if name == "two_tower":
        return {"image": rng.normal(size=(n, 1, 8, 8)).astype(np.float32),
                "feats": rng.normal(size=(n, 6)).astype(np.float32)}
    lengths = rng.integers(2, T + 1, n)
    mask = (np.arange(T)[None] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(1, VOCAB, (n, T)) * mask
    inputs = {"input_ids": ids, "attention_mask": mask}
    if name == "bert":  # a second segment after the first half of each sentence
        inputs["token_type_ids"] = ((np.arange(T)[None] > lengths[:, None] // 2) &
                                    (mask == 1)).astype(np.int64)
    return dict(reversed(inputs.items())) if name == "mask_first" else inputs


def balanced(name: str) -> nn.Module:
    """The net ``name`` (seeded) with its last layer standardising the logits: every class
    is decided for some samples."""
    torch.manual_seed(0)
    net = NETS[name]().eval()
    last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        z = net(*(torch.from_numpy(a) for a in samples(name, 300, 9).values())).double()
        mean, std = z.mean(0), z.std(0) + 1e-6
        last.weight.copy_(last.weight / std[:, None].float())
        last.bias.copy_(((last.bias - mean) / std).float())
    return net


def export(name: str, exporter: str, folder: Path, fixed_batch: bool = False) -> Path:
    """The net ``name`` (seeded) exported with its inputs' batch dynamic (or fixed at 1)."""
    path = folder / f"{name}-{exporter}{'-b1' if fixed_batch else ''}.onnx"
    if path.exists():
        return path
    net = balanced(name)
    example = tuple(torch.from_numpy(a) for a in samples(name, 1 if fixed_batch else 2,
                                                         1).values())
    names = list(samples(name, 1, 1))
    if fixed_batch or exporter.startswith("torchscript"):
        axes = {} if fixed_batch else {n: {0: "N"} for n in [*names, "logits"]}
        if name == "bert":  # sentences of any length, as transformer exporters write them
            axes = {n: {0: "N", 1: "T"} for n in names} | {"logits": {0: "N"}}
        opset = int(exporter.partition("-")[2] or 17)
        with quiet():
            torch.onnx.export(net, example, str(path), dynamo=False, opset_version=opset,
                              input_names=names, output_names=["logits"], dynamic_axes=axes)
        return path
    batch = torch.export.Dim("N", min=1)
    with quiet():
        torch.onnx.export(net, example, str(path), dynamo=True, external_data=False,
                          input_names=names, output_names=["logits"], verbose=False,
                          dynamic_shapes=tuple({0: batch} for _ in names))
    return path


def run(model, x: np.ndarray) -> np.ndarray:
    return Runner(model, device="cpu").run(x)[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("multi_input")


# ------------------------------------------------------------------------ records


def test_records_hold_each_inputs_part_of_every_sample() -> None:
    parts = samples("transformer", 30, 0)
    x = as_records(parts)
    assert is_records(x) and x.shape == (30,) and sample_shape(x) == (T,)
    picked = x[[3, 1, 20]]  # what subsampling and class selection do
    np.testing.assert_array_equal(fields(picked)["input_ids"], parts["input_ids"][[3, 1, 20]])
    np.testing.assert_array_equal(np.concatenate([x[:10], x[10:]])["attention_mask"],
                                  parts["attention_mask"])
    with pytest.raises(Exception, match="differ in their sample counts"):
        as_records({"a": np.zeros((3, 2)), "b": np.zeros((4, 2))})


def test_npz_with_an_array_per_input_loads_as_records(folder: Path) -> None:
    parts = samples("transformer", 60, 0)
    y = np.arange(60) % K
    np.savez(folder / "named.npz", **parts, y=y)
    ds = load_data(str(folder / "named.npz"), limit=25)
    assert is_records(ds.x) and len(ds) == 25 and ds.labelled
    # the subsample keeps each sample's ids, mask and label together
    rows = [int(np.flatnonzero((parts["input_ids"] == r).all(axis=1))[0])
            for r in ds.x["input_ids"]]
    np.testing.assert_array_equal(ds.x["attention_mask"], parts["attention_mask"][rows])
    np.testing.assert_array_equal(ds.y, y[rows])


# ------------------------------------------------------------------------ decomposition


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("name", ["transformer", "gru", "two_tower"])
def test_multi_input_model_decomposes_exactly(folder: Path, name: str, exporter: str) -> None:
    path = export(name, exporter, folder)
    x = as_records(samples(name, 240, 0))
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    full = dec.build(0, 1.0, check=True).proto
    assert [i.name for i in full.graph.input] == list(samples(name, 1, 0))
    parent = logodds_from_logits(run(str(path), x[:50]))[:, 0]
    np.testing.assert_allclose(run(full, x[:50])[:, 0], parent, atol=1e-5, rtol=1e-5)
    half = dec.build(0, 0.5, check=True)
    assert half.removed
    assert model_stats(half.proto).macs < model_stats(path).macs
    assert run(half.proto, x[:7]).shape == (7, 1)


@pytest.mark.parametrize("exporter", ["torchscript-14", "torchscript-14-optimised",
                                      "dynamo"])
def test_bert_like_model_decomposes_exactly(folder: Path, exporter: str) -> None:
    """Three inputs, sentences of any length; optimised by ONNX Runtime's transformer
    optimiser, its Attention, EmbedLayerNormalization and SkipLayerNormalization are
    written as standard ops: exact, with the MACs of the model it came from."""
    path = export("bert", exporter.removesuffix("-optimised"), folder)
    x = as_records(samples("bert", 240, 0))
    parent = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1)).parent
    if exporter.endswith("optimised"):
        from onnxruntime.transformers.optimizer import optimize_model

        with quiet():
            optimised = optimize_model(str(path), model_type="bert", num_heads=4,
                                       hidden_size=32, opt_level=1)
        path = folder / "bert-optimised.onnx"
        optimised.save_model_to_file(str(path))
        fused = {n.op_type for n in onnx.load(str(path)).graph.node if n.domain}
        assert {"Attention", "EmbedLayerNormalization", "SkipLayerNormalization"} <= fused
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    assert dec.parent.macs == parent.macs
    want = logodds_from_logits(run(str(path), x[:50]))[:, 2]
    full = dec.build(2, 1.0, check=True).proto
    assert not any(n.domain for n in full.graph.node)
    np.testing.assert_allclose(run(full, x[:50])[:, 0], want, atol=1e-5, rtol=1e-5)
    half = dec.build(2, 0.5, check=True)
    assert half.removed and model_stats(half.proto).macs < parent.macs


@pytest.mark.parametrize("net,exporter", [("bert", "torchscript-14"), ("bert", "dynamo"),
                                         ("distil", "torchscript-14"),
                                         ("gpt", "torchscript-14"),
                                         ("gpt_pick", "torchscript-14")])
def test_attention_heads_are_units(folder: Path, net: str, exporter: str) -> None:
    """BERT's attention splits into 4 heads per layer: each head (its query, key and value
    features, scores and context) is one unit. At keep 0.5 two heads of each layer go: the
    Reshapes into heads say 2, the projections lose their rows and the output projection
    its columns. The keep search holds heads whole for the per-cluster steps to take one
    by one."""
    path = export(net, exporter, folder)
    x = as_records(samples(net, 240, 0))
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    if net == "gpt_pick":  # the head on one token per sentence, not on every token
        whole = Decomposer(export("gpt", exporter, folder), x, None,
                           Settings(device="cpu", seed=0, align=1)).parent.macs
        assert whole - dec.parent.macs == 32 * K * (T - 1)
    want = logodds_from_logits(run(str(path), x[:50]))[:, 0]
    np.testing.assert_allclose(run(dec.build(0, 1.0, check=True).proto, x[:50])[:, 0], want,
                               atol=1e-5, rtol=1e-5)
    heads = dec.head_clusters
    assert len(heads) == 2
    sizes = {cl: n for cl, n in dec.counts(1.0).items() if cl in heads}
    assert set(sizes.values()) == {4}
    assert all(dec.counts(0.5)[cl] == 2 and dec.search_counts(0.5)[cl] == 4 for cl in heads)
    half = dec.build(0, 0.5, check=True).proto
    reshaped = [list(numpy_helper.to_array(t)) for t in half.graph.initializer
                if t.name in {n.input[1] for n in half.graph.node if n.op_type == "Reshape"}]
    assert [2, 8] in [r[-2:] for r in reshaped if len(r) == 4]
    assert [4, 8] not in [r[-2:] for r in reshaped if len(r) == 4]
    assert run(half, x[:5]).shape == (5, 1)
    # torch's nn.MultiheadAttention merges the heads with the batch: attention stays whole
    mha = Decomposer(export("transformer", "torchscript", folder),
                     as_records(samples("transformer", 120, 0)), None,
                     Settings(device="cpu", seed=0, align=1))
    assert not mha.head_clusters


# ------------------------------------------------------------------------ commands


def _cli(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def _data(folder: Path, name: str, model: Path, n: int = 240, seed: int = 7,
          labels: bool = True) -> Path:
    """An .npz of ``name``'s inputs labelled by ``model``'s decisions."""
    parts = samples(name, n, seed)
    path = folder / f"{name}-{seed}-{n}{'' if labels else '-x'}.npz"
    y = run(str(model), as_records(parts)).argmax(axis=1)
    np.savez(path, **parts, **({"y": y} if labels else {}))
    return path


def _decomposed(folder: Path, name: str, exporter: str = "torchscript") -> tuple[Path, Path]:
    model = export(name, exporter, folder)
    data = _data(folder, name, model)
    out = folder / f"modules-{name}-{exporter}"
    if not (out / "manifest.json").exists():
        res = _cli("decompose", model, "--data", data, "-o", out, "--align", "1")
        assert res.exit_code == 0, res.output
    return out, data


def test_commands_work_end_to_end(folder: Path) -> None:
    out, data = _decomposed(folder, "transformer")
    model = export("transformer", "torchscript", folder)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["modules"]) == K
    union = folder / "union.onnx"
    res = _cli("link", out / "class_1.onnx", out / "class_3.onnx", "-o", union, "--json")
    assert res.exit_code == 0, res.output
    proto = onnx.load(str(union))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["input_ids", "attention_mask"]
    assert model_stats(proto).macs <= model_stats(model).macs
    res = _cli("eval", union, "--data", data, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["top1"] > 0.8
    parallel = folder / "parallel.onnx"
    assert _cli("link", out, "-o", parallel, "--mode", "parallel").exit_code == 0
    res = _cli("check", parallel, "--parent", model, "--data", data)
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1].startswith("PASSED"), res.output
    assert "input input_ids, attention_mask" in res.output
    replaced = folder / "replaced.onnx"
    res = _cli("replace", model, "--class", 2, "--with", out / "class_2.onnx", "-o", replaced)
    assert res.exit_code == 0, res.output
    x = load_data(str(data)).x
    parent = run(str(model), x).argmax(axis=1)
    assert np.mean(Runner(str(replaced), device="cpu").run(x)[1] == parent) > 0.9


def test_inspect_counts_sentences_of_any_length_at_a_size(folder: Path) -> None:
    """A BERT exported for any sentence length: ``inspect`` says to give ``--size`` and
    counts, at it, the MACs decomposition counts at the calibration samples' length."""
    path = export("bert", "torchscript-14", folder)
    res = _cli("inspect", path)
    assert res.exit_code == 1 and "give --size" in res.output.splitlines()[0], res.output
    res = _cli("inspect", path, "--size", T, "--json")
    assert res.exit_code == 0, res.output
    x = as_records(samples("bert", 60, 0))
    parent = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1)).parent
    assert json.loads(res.output)["macs"] == parent.macs


def test_unlabelled_records_decompose(folder: Path) -> None:
    model = export("two_tower", "torchscript", folder)
    data = _data(folder, "two_tower", model, labels=False)
    res = _cli("decompose", model, "--data", data, "-o", folder / "unlabelled", "--json",
               "--align", "1")
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.output)["modules"]) == K


def test_parents_listing_their_inputs_in_other_orders_link(folder: Path) -> None:
    """The inputs are matched by name: a parent exported with the mask first links with
    one exported with the ids first, through a combiner fitted on calibration data."""
    a, _ = _decomposed(folder, "gru")
    b, _ = _decomposed(folder, "mask_first")
    assert [i.name for i in onnx.load(str(b / "class_0.onnx")).graph.input] == [
        "attention_mask", "input_ids"]
    parts = samples("gru", 300, 11)
    x = as_records(parts)
    score_a = run(str(export("gru", "torchscript", folder)), x)
    score_b = run(str(export("mask_first", "torchscript", folder)), x)
    y = np.where(softmax(score_a)[:, 0] > softmax(score_b)[:, 1], 0, 1)  # columns: a0, b1
    calib = folder / "columns.npz"
    np.savez(calib, **parts, y=y)
    result = link([a / "class_0.onnx", b / "class_1.onnx"], calibrate=str(calib),
                  device="cpu")
    onnx.checker.check_model(result.proto, full_check=True)
    assert sorted(i.name for i in result.proto.graph.input) == ["attention_mask", "input_ids"]
    assert Runner(result.proto, device="cpu").run(x)[0].shape == (300, 2)


def test_a_module_with_its_batch_fixed_links_batch_dynamic(folder: Path) -> None:
    fixed = export("two_tower", "torchscript", folder, fixed_batch=True)
    x = as_records(samples("two_tower", 60, 3))
    dec = Decomposer(fixed, x, None, Settings(device="cpu", seed=0, align=1))
    module = folder / "fixed_class_0.onnx"
    onnx.save(dec.build(0, 0.5).proto, str(module))
    dynamic, _ = _decomposed(folder, "two_tower")
    result = link([module, dynamic / "class_1.onnx"], mode="parallel", device="cpu")
    assert result.batch is None
    assert Runner(result.proto, device="cpu").run(x[:9])[0].shape == (9, 2)


def test_data_and_modules_that_do_not_fit_are_one_line_errors(folder: Path) -> None:
    model = export("transformer", "torchscript", folder)
    parts = samples("transformer", 40, 0)
    wrong = folder / "wrong.npz"
    np.savez(wrong, input_ids=parts["input_ids"], mask=parts["attention_mask"],
             y=np.zeros(40, np.int64))
    one = folder / "one.npz"
    np.savez(one, x=parts["input_ids"], y=np.zeros(40, np.int64))
    short = folder / "short.npz"
    np.savez(short, input_ids=parts["input_ids"], attention_mask=parts["attention_mask"][:5])
    cases = [
        (("eval", model, "--data", wrong), "are not the model's inputs"),
        (("decompose", model, "--data", one, "-o", folder / "e1"), "the data is one array"),
        (("decompose", model, "--data", short, "-o", folder / "e2"), "sample counts"),
        (("decompose", model, "--data", _data(folder, "transformer", model), "--dtype",
          "float32", "-o", folder / "e3"), "holds several"),
    ]
    out, _ = _decomposed(folder, "transformer")
    tower, _ = _decomposed(folder, "two_tower")
    cases.append((("link", out / "class_0.onnx", tower / "class_0.onnx", "-o",
                   folder / "e4.onnx", "--mode", "parallel"),
                  "input image float [N, 1, 8, 8], feats float [N, 6] differs from"))
    for args, message in cases:
        res = _cli(*args)
        assert res.exit_code == 1, res.output
        lines = res.output.strip().splitlines()
        assert lines[0].startswith("error: ") and message in lines[0], res.output
        assert lines[-1] == "FAILED"
    assert not any((folder / f"e{i}").exists() for i in (1, 2, 3))
    assert not (folder / "e4.onnx").exists()


class StatefulGRU(nn.Module):
    """A GRU classifier given its initial state: inputs ``x`` [N, T, F] and ``h0`` [1, N, H],
    the samples on h0's axis 1."""

    def __init__(self, layers: int) -> None:
        super().__init__()
        self.rnn = nn.GRU(6, 12, num_layers=layers, batch_first=True)
        self.head = nn.Linear(12, K)

    def forward(self, x, h0):
        _, h = self.rnn(x, h0)
        return self.head(h[-1])


@pytest.mark.parametrize("layers", [1, 2])
def test_an_input_named_x_beside_others_and_a_state_input(folder: Path, layers: int) -> None:
    """An .npz holding ``x`` beside another array is the records of a model with an input
    named x (it was read as the one array of a one-input model); a recurrent layer's initial
    state as an input takes the samples on its axis 1 and pins the layer's units, sliced per
    layer or not (it was refused); a one-input model takes ``x`` and leaves an array it does
    not take."""
    torch.manual_seed(0)
    path = folder / f"stateful{layers}.onnx"
    with quiet():
        torch.onnx.export(StatefulGRU(layers).eval(),
                          (torch.randn(2, T, 6), torch.zeros(layers, 2, 12)),
                          str(path), dynamo=False, input_names=["x", "h0"],
                          dynamic_axes={"x": {0: "N"}, "h0": {1: "N"}})
    rng = np.random.default_rng(0)
    x, h0 = rng.normal(size=(60, T, 6)).astype(np.float32), rng.normal(size=(60, layers, 12))
    logits = Runner(str(path), device="cpu").session.run(
        None, {"x": x, "h0": h0.transpose(1, 0, 2).astype(np.float32)})[0]
    y = logits.argmax(axis=1)
    y[::4] = (y[::4] + 1) % K  # a quarter wrong: 75% top-1
    data = folder / f"stateful{layers}.npz"
    np.savez(data, x=x, h0=h0.astype(np.float32), y=y)
    assert is_records(load_data(str(data)).x)
    report = json.loads(_cli("eval", path, "--data", data, "--json").output)
    assert report["top1"] == pytest.approx(np.mean(logits.argmax(axis=1) == y), abs=1e-6)
    assert report["top1"] == pytest.approx(0.75, abs=1e-6)
    # the caller's state holds every unit: the GRU keeps them all, its modules are exact
    records = load_data(str(data)).x
    dec = Decomposer(path, records, None, Settings(device="cpu", align=1))
    full = dec.build(0, 1.0, check=True).proto
    want = logodds_from_logits(Runner(str(path), device="cpu").run(records)[0])[:, 0]
    np.testing.assert_allclose(Runner(full, device="cpu").run(records)[0][:, 0], want,
                               atol=1e-5, rtol=1e-5)
    assert not dec.build(0, 0.5).removed
    # a one-input model beside an array it does not take
    one = folder / "one_input.onnx"
    with quiet():
        torch.onnx.export(nn.Sequential(nn.Flatten(), nn.Linear(T * 6, K)).eval(),
                          (torch.randn(2, T, 6),), str(one), dynamo=False,
                          input_names=["input"], dynamic_axes={"input": {0: "N"}})
    report = json.loads(_cli("eval", one, "--data", data, "--json").output)
    assert report["n"] == 60


class ConditionedGRU(nn.Module):
    """A GRU started from an encoder's output: h0 = tanh(Linear(feats)) unsqueezed to
    [1, N, H], the dense layer's units on axis 2 alone."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(10, 16)
        self.rnn = nn.GRU(6, 16, batch_first=True)
        self.head = nn.Linear(16, K)

    def forward(self, x, feats):
        _, h = self.rnn(x, torch.tanh(self.enc(feats)).unsqueeze(0))
        return self.head(h[0])


def test_initial_state_from_an_encoder_shares_the_layers_units(folder: Path) -> None:
    """The encoder's units are the GRU's (unit i of its output starts unit i of the state):
    one unit space, so a module with nothing pruned is exact and at keep 0.5 both lose the
    same units (it was refused: 'initial state is computed')."""
    torch.manual_seed(0)
    path = folder / "conditioned.onnx"
    with quiet():
        torch.onnx.export(ConditionedGRU().eval(), (torch.randn(2, T, 6), torch.randn(2, 10)),
                          str(path), dynamo=False, input_names=["x", "feats"],
                          dynamic_axes={"x": {0: "N"}, "feats": {0: "N"}})
    rng = np.random.default_rng(0)
    records = as_records({"x": rng.normal(size=(200, T, 6)).astype(np.float32),
                          "feats": rng.normal(size=(200, 10)).astype(np.float32)})
    dec = Decomposer(path, records, None, Settings(device="cpu", align=1))
    want = logodds_from_logits(Runner(str(path), device="cpu").run(records)[0])[:, 0]
    full = dec.build(0, 1.0, check=True).proto
    np.testing.assert_allclose(Runner(full, device="cpu").run(records)[0][:, 0], want,
                               atol=1e-5, rtol=1e-5)
    half = dec.build(0, 0.5, check=True)
    assert half.removed and model_stats(half.proto).macs < dec.parent.macs
    shapes = {t.name: tuple(t.dims) for t in half.proto.graph.initializer}
    enc = next(n for n in half.proto.graph.node if n.op_type in ("Gemm", "MatMul")
               and "feats" in n.input)
    gru = next(n for n in half.proto.graph.node if n.op_type == "GRU")
    kept = gru.attribute[[a.name for a in gru.attribute].index("hidden_size")].i
    assert kept < 16 and kept in shapes[enc.input[1]]  # the encoder keeps the GRU's units
