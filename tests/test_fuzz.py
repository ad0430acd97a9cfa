"""Mutated inputs: truncated and bit-flipped model files, data files and manifests.

Whatever the bytes, a command ends with success or one of the documented errors (exit 1
the user's input, 3 an unsupported model, 4 a runtime failure): one ``error:`` line, no
traceback, never an internal error (exit 5).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from onnxdecomp.cli import main

DOCUMENTED = {0, 1, 3, 4}


def _run(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def _documented(res, verdict: bool = False) -> None:
    """A documented ending; ``verdict``: a command (check) that may also fail by its report,
    exit 1 with FAILED as its last line."""
    assert res.exit_code in DOCUMENTED, res.output
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    if res.exit_code:
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        reported = verdict and res.stdout.strip().splitlines()[-1:] != [] and \
            res.stdout.strip().splitlines()[-1].startswith("FAILED")
        assert len(errors) == 1 or reported, res.output


def _mutate(data: bytes, how: str, where: float, value: int) -> bytes:
    i = int(where * max(len(data) - 1, 0))
    if how == "truncate":
        return data[:i]
    if how == "flip":
        return data[:i] + bytes([data[i] ^ (1 << (value % 8))]) + data[i + 1:]
    return data[:i] + bytes([value % 256]) * 16 + data[i + 16:]  # overwrite a run


mutations = st.tuples(st.sampled_from(["truncate", "flip", "overwrite"]),
                      st.floats(0, 1), st.integers(0, 255))


@dataclass(frozen=True)
class Valid:
    """The inputs that are mutated (paths only, so that a failing example prints short)."""

    model: Path
    data: Path
    modules: Path


@pytest.fixture(scope="module")
def valid(get_case, tmp_path_factory) -> Valid:
    case = get_case("bn_conv")
    folder = tmp_path_factory.mktemp("fuzz")
    x = case.calib(40, seed=5)
    y = case.logits(x).argmax(axis=1)
    data = folder / "d.npz"
    np.savez(data, x=x, y=y)
    res = _run("decompose", case.path, "--data", data, "--keep", "0.5", "-o", folder / "m")
    assert res.exit_code == 0, res.output
    return Valid(case.path, data, folder / "m")


@given(mutations)
def test_mutated_model_files(valid, tmp_path_factory, mutation) -> None:
    data = valid.data
    folder = tmp_path_factory.mktemp("m")
    bad = folder / "bad.onnx"
    bad.write_bytes(_mutate(valid.model.read_bytes(), *mutation))
    _documented(_run("inspect", bad))
    _documented(_run("eval", bad, "--data", data))
    out = folder / "out"
    res = _run("decompose", bad, "--data", data, "--keep", "0.5", "-o", out)
    _documented(res)
    if res.exit_code:
        assert not out.exists()


@given(mutations)
def test_mutated_data_files(valid, tmp_path_factory, mutation) -> None:
    bad = tmp_path_factory.mktemp("d") / "bad.npz"
    bad.write_bytes(_mutate(valid.data.read_bytes(), *mutation))
    _documented(_run("eval", valid.model, "--data", bad))


@given(st.sampled_from(["truncate", "drop-key", "wrong-type", "garbage"]),
       st.sampled_from(["parent", "modules", "calibration", "settings"]))
def test_mutated_manifests(valid, tmp_path_factory, how: str, key: str) -> None:
    modules = valid.modules
    folder = tmp_path_factory.mktemp("man")
    for f in modules.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((modules / "manifest.json").read_text())
    text = json.dumps(manifest)
    if how == "truncate":
        text = text[: len(text) // 2]
    elif how == "drop-key":
        manifest.pop(key, None)
        text = json.dumps(manifest)
    elif how == "wrong-type":
        manifest[key] = 42
        text = json.dumps(manifest)
    else:
        text = "\x00\xff not json"
    (folder / "manifest.json").write_text(text)
    out = Path(str(folder) + ".onnx")
    _documented(_run("link", folder, "-o", out))
    files = sorted(folder.glob("class_*.onnx"))
    _documented(_run("link", *files[:2], "-o", out))
    _documented(_run("check", files[0]), verdict=True)
