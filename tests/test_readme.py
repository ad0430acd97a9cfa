"""The README's main job, on the embedded default (sklearn digits + the committed CNN)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from onnxdecomp.cli import main
from onnxdecomp.data import load_data

ROOT = Path(__file__).resolve().parents[1]


def test_readme_main_job(tmp_path: Path) -> None:
    out = tmp_path / "digits"
    run = CliRunner()
    res = run.invoke(main, ["decompose", str(ROOT / "models" / "cnn_digits.onnx"),
                            "--data", "sklearn:digits", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1].startswith("PASSED")
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["modules"]) == 10
    assert all(m["macs"] < manifest["parent"]["macs"] for m in manifest["modules"])
    modules = [str(out / m["file"]) for m in manifest["modules"]]
    res = run.invoke(main, ["link", *modules, "-o", str(out / "linked.onnx")])
    assert res.exit_code == 0, res.output
    res = run.invoke(main, ["eval", str(out / "linked.onnx"), "--data", "sklearn:digits",
                            "--json"])
    assert res.exit_code == 0, res.output
    linked = json.loads(res.output)
    res = run.invoke(main, ["eval", str(ROOT / "models" / "cnn_digits.onnx"), "--data",
                            "sklearn:digits", "--json"])
    parent = json.loads(res.output)
    # The default fidelity target keeps the composed loss small on this tiny model.
    assert parent["top1"] - linked["top1"] <= 0.02, (parent["top1"], linked["top1"])
    # The README's reuse: classes 3 and 8 as one smaller model, beside the parent's figures.
    reuse = out / "reuse_3_8.onnx"
    res = run.invoke(main, ["link", str(out / "class_3.onnx"), str(out / "class_8.onnx"),
                            "-o", str(reuse), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["mode"] == "union" and info["macs"] < manifest["parent"]["macs"]
    res = run.invoke(main, ["eval", str(reuse), "--data", "sklearn:digits", "--json"])
    assert res.exit_code == 0, res.output
    sub = json.loads(res.output)
    test = load_data("sklearn:digits", "test")
    assert sub["n"] == int(np.isin(test.y, [3, 8]).sum())  # the test split's 3s and 8s
    assert sub["top1"] >= sub["parent_restricted_top1"] - 0.02
