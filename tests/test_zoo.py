"""Every committed zoo model reproduces its recorded top-1 through `onnxdecomp eval`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from onnxdecomp.cli import main

ROOT = Path(__file__).resolve().parents[1]
ZOO = json.loads((ROOT / "models" / "zoo.json").read_text())["models"]


def _data_present(spec: str) -> bool:
    return spec.startswith("sklearn:") or (ROOT / spec).exists()


def _text_npz(entry: dict, folder: Path) -> Path:
    """A text model's test split as the .npz the CLI takes, through the committed vocabulary
    (the documented way: ``python -m models.text``, with ``--attention-mask`` for a model
    taking one)."""
    from models.tags import TagVocab, conll_arrays
    from models.text import Vocab, clinc_arrays, write_npz

    vocab_file = ROOT / "models" / entry["text"]["vocab"]
    if entry["text"]["dataset"] == "conll2000":  # a tagger: labels [N, T], -1 on padding
        tag_vocab = TagVocab.load(vocab_file)
        x, y = conll_arrays(ROOT / entry["data"] / "..", entry["split"], tag_vocab)
        classes = tag_vocab.tags
    else:
        vocab = Vocab.load(vocab_file)
        x, y = clinc_arrays(ROOT / entry["data"] / "..", entry["split"], vocab)
        classes = vocab.classes
    write_npz(folder / "test.npz", x, y, classes, entry["text"].get("attention_mask", False))
    return folder / "test.npz"


@pytest.mark.parametrize("entry", ZOO, ids=[m["name"] for m in ZOO])
def test_zoo_top1_reproduces(entry: dict, tmp_path: Path) -> None:
    if not _data_present(entry["data"]):
        pytest.skip(f"data {entry['data']} absent (../shared/data not beside the repo)")
    model = ROOT / "models" / entry["file"]
    assert model.is_file(), f"{model} listed in zoo.json but not committed"
    data = str(entry["data"] if entry["data"].startswith("sklearn:") else ROOT / entry["data"])
    if "text" in entry:
        data = str(_text_npz(entry, tmp_path))
    res = CliRunner().invoke(main, ["eval", str(model), "--data", data,
                                    "--split", entry["split"], "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert abs(report["top1"] - entry["top1"]) <= 0.001, (report["top1"], entry["top1"])


def test_zoo_covers_both_exporters_and_required_models() -> None:
    names = {m["name"] for m in ZOO}
    assert {"mlp1_mnist", "mlp4_mnist", "mlp1_fmnist", "mlp4_fmnist", "lenet5_mnist",
            "resnet8_fmnist", "cnn_digits"} <= names
    assert {m["exporter"] for m in ZOO} == {"dynamo", "torchscript", "tf2onnx"}
    for m in ZOO:
        assert not (ROOT / "models" / (m["file"] + ".data")).exists(), "weights must be inside"
