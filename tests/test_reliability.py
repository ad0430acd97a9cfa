"""Every bad input a one-line error with its exit code; outputs atomic; killed runs harmless.

``BAD_INPUTS`` is the README's table of errors ("Errors"): each row is run here, and the
README is checked to hold every row's message.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from conftest import build_lstm, build_unsupported
from test_cli import _assert_user_error, _npz

from onnxdecomp.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _run(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def env(get_case, tmp_path_factory):
    """A model, its data, a decomposition, and files that break each rule."""
    case = get_case("bn_conv")
    d = tmp_path_factory.mktemp("bad")
    x = case.calib(60, seed=2)
    y = case.logits(x).argmax(axis=1)
    data = _npz(d / "data.npz", x, y)
    res = _run("decompose", case.path, "--data", data, "--keep", "0.5", "-o", d / "modules")
    assert res.exit_code == 0, res.output
    files = {
        "model": case.path, "data": data, "modules": d / "modules", "dir": d,
        "module": d / "modules" / "class_0.onnx",
    }
    (d / "truncated.onnx").write_bytes(case.path.read_bytes()[:200])
    (d / "text.onnx").write_text("not a model\n")
    raw = case.path.read_bytes()  # a byte of a text field flipped: not UTF-8 any more
    at = raw.index(onnx.load(str(case.path)).producer_name.encode()) + 1
    (d / "latin.onnx").write_bytes(raw[:at] + bytes([raw[at] ^ 0x80]) + raw[at + 1:])
    dangling = onnx.load(str(case.path))
    dangling.graph.node[-1].input[0] = "nowhere"
    onnx.save(dangling, str(d / "dangling.onnx"))
    outside = onnx.load(str(case.path))
    init = outside.graph.initializer[-1]
    init.data_location = onnx.TensorProto.EXTERNAL
    init.external_data.add(key="location", value="../elsewhere.bin")
    init.ClearField("raw_data")
    init.ClearField("float_data")
    (d / "ext").mkdir()
    onnx.save(outside, str(d / "ext" / "outside.onnx"))
    two = onnx.load(str(case.path))  # features beside the logits: which are the scores?
    two.graph.output.append(onnx.helper.make_tensor_value_info(
        two.graph.node[0].output[0], onnx.TensorProto.FLOAT, ["N", None, None, None]))
    onnx.save(two, str(d / "two_outputs.onnx"))
    onnx.save(build_unsupported("lpnorm"), str(d / "unsupported.onnx"))
    onnx.save(build_lstm(layout=1), str(d / "lstm_batch_first.onnx"))
    _npz(d / "sequences.npz", np.zeros((8, 5, 3), np.float32), np.arange(8) % 3)
    _npz(d / "shape.npz", np.zeros((4, 3, 9, 9), np.float32), np.zeros(4, np.int64))
    _npz(d / "dtype.npz", x.astype(np.int64), y)  # floats are cast, integers never
    _npz(d / "one_channel.npz", np.full((12, 1, 12, 12), 100, np.float32),
         np.zeros(12, np.int64))
    _npz(d / "labels.npz", x, np.full(len(x), 42, np.int64))
    np.savez(d / "unlabelled.npz", x=x)
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    _npz(d / "nan.npz", bad, y)
    one_class = np.zeros_like(y)
    _npz(d / "one_class.npz", x, one_class)
    # A tagger (the committed LSTM: ids [N, 40], logits [N, 40, 12]) and one full-size module.
    tagger = ROOT / "models" / "conll_lstm.onnx"
    ids = np.random.default_rng(0).integers(2, 100, (30, 40)).astype(np.int64)
    tags = _npz(d / "tags.npz", ids, np.zeros((30, 40), np.int64))
    res = _run("decompose", tagger, "--data", tags, "--classes", "0", "--keep", "1.0", "-o",
               d / "tag_modules")
    assert res.exit_code == 0, res.output
    files.update(tagger=tagger, tags=tags, tag_module=d / "tag_modules" / "class_00.onnx")
    # A model with two inputs (the committed transformer: input_ids and attention_mask).
    two = ROOT / "models" / "clinc_transformer.onnx"
    ids = np.random.default_rng(1).integers(2, 100, (24, 20)).astype(np.int64)
    mask = np.ones_like(ids)
    np.savez(d / "inputs.npz", input_ids=ids, attention_mask=mask)
    np.savez(d / "misnamed.npz", input_ids=ids, mask=mask, y=np.zeros(24, np.int64))
    np.savez(d / "one_array.npz", x=ids, y=np.zeros(24, np.int64))
    np.savez(d / "uneven.npz", input_ids=ids, attention_mask=mask[:20])
    import onnxruntime as ort

    decided = ort.InferenceSession(str(two), providers=["CPUExecutionProvider"]).run(
        None, {"input_ids": ids, "attention_mask": mask})[0].argmax(axis=1)
    res = _run("decompose", two, "--data", d / "inputs.npz", "--keep", "1.0", "--classes",
               int(decided[0]), "-o", d / "two_modules")
    assert res.exit_code == 0, res.output
    files.update(two=two, two_module=sorted((d / "two_modules").glob("class_*.onnx"))[0])
    full = d / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    files["full"] = full
    return files


# (row of the README, command builder, message fragment, exit code)
BAD_INPUTS = [
    ("truncated model file", lambda e: ["eval", e["dir"] / "truncated.onnx", "--data",
                                        e["data"]], "not an ONNX model", 1),
    ("not an ONNX file", lambda e: ["inspect", e["dir"] / "text.onnx"], "not an ONNX model", 1),
    ("text field not UTF-8", lambda e: ["inspect", e["dir"] / "latin.onnx"], "not UTF-8 text",
     1),
    ("missing model file", lambda e: ["eval", e["dir"] / "nope.onnx", "--data", e["data"]],
     "no such file", 1),
    ("malformed graph (an input nothing defines)", lambda e: [
        "decompose", e["dir"] / "dangling.onnx", "--data", e["data"], "-o", e["dir"] / "o1"],
     "invalid ONNX model", 1),
    ("external data outside the model's folder", lambda e: [
        "inspect", e["dir"] / "ext" / "outside.onnx"], "outside the model's folder", 1),
    ("op without a channel rule", lambda e: [
        "decompose", e["dir"] / "unsupported.onnx", "--data", e["dir"] / "one_channel.npz",
        "--keep", "0.5", "-o", e["dir"] / "o2"],
     "no channel-coupling rule", 3),
    ("several float outputs", lambda e: [
        "eval", e["dir"] / "two_outputs.onnx", "--data", e["data"]],
     "which holds the class scores is ambiguous", 3),
    ("recurrent layout without a rule", lambda e: [
        "decompose", e["dir"] / "lstm_batch_first.onnx", "--data", e["dir"] / "sequences.npz",
        "-o", e["dir"] / "o9"],
     "Batchwise recurrent operations (layout == 1) are not supported", 4),
    ("missing data", lambda e: ["eval", e["model"], "--data", e["dir"] / "none.npz"],
     "data not found", 1),
    ("data of another shape", lambda e: ["decompose", e["model"], "--data",
                                         e["dir"] / "shape.npz", "-o", e["dir"] / "o3"],
     "input shape mismatch", 1),
    ("data of another dtype", lambda e: ["eval", e["model"], "--data", e["dir"] / "dtype.npz"],
     "dtype mismatch", 1),
    ("arrays not named after the inputs", lambda e: [
        "eval", e["two"], "--data", e["dir"] / "misnamed.npz"],
     "the data's arrays (input_ids, mask) are not the model's inputs", 1),
    ("one array for several inputs", lambda e: [
        "eval", e["two"], "--data", e["dir"] / "one_array.npz"],
     "the model has 2 inputs (input_ids, attention_mask) but the data is one array", 1),
    ("input arrays of different lengths", lambda e: [
        "decompose", e["two"], "--data", e["dir"] / "uneven.npz", "-o", e["dir"] / "o11"],
     "differ in their sample counts (input_ids 24, attention_mask 20)", 1),
    ("--dtype with several inputs", lambda e: [
        "decompose", e["two"], "--data", e["dir"] / "inputs.npz", "--dtype", "int32", "-o",
        e["dir"] / "o12"], "--dtype converts one input's array", 1),
    ("modules of models with other inputs", lambda e: [
        "link", e["module"], e["two_module"], "-o", e["dir"] / "l3.onnx", "--mode",
        "parallel"], "input input_ids int64 [N, 20], attention_mask int64 [N, 20] differs", 1),
    ("labels outside the model's classes (eval)", lambda e: [
        "eval", e["model"], "--data", e["dir"] / "labels.npz"], "out of range", 1),
    ("labels outside the model's classes (decompose)", lambda e: [
        "decompose", e["model"], "--data", e["dir"] / "labels.npz", "-o", e["dir"] / "o4"],
     "out of range", 1),
    ("labels outside the model's classes (link --calibrate)", lambda e: [
        "link", e["modules"], "-o", e["dir"] / "l1.onnx", "--calibrate",
        e["dir"] / "labels.npz"], "out of range", 1),
    ("labels outside the model's classes (replace --calibrate)", lambda e: [
        "replace", e["model"], "--class", 0, "--with", e["module"], "-o", e["dir"] / "r1.onnx",
        "--calibrate", e["dir"] / "labels.npz"], "out of range", 1),
    ("unlabelled data (eval)", lambda e: [
        "eval", e["model"], "--data", e["dir"] / "unlabelled.npz"],
     "has no labels: eval measures accuracy against labels", 1),
    ("unlabelled data (replace --calibrate)", lambda e: [
        "replace", e["model"], "--class", 0, "--with", e["module"], "-o", e["dir"] / "r3.onnx",
        "--calibrate", e["dir"] / "unlabelled.npz"],
     "has no labels: replace fits its combination against labels", 1),
    ("NaN or inf in the data", lambda e: ["eval", e["model"], "--data", e["dir"] / "nan.npz"],
     "NaN or inf", 1),
    ("a class with no calibration sample", lambda e: [
        "decompose", e["model"], "--data", e["dir"] / "one_class.npz", "--classes", "0,1",
        "-o", e["dir"] / "o5"], "no calibration sample", 1),
    ("output equal to an input (link)", lambda e: ["link", e["module"], e["modules"] /
                                                   "class_1.onnx", "-o", e["module"]],
     "overwrite an input", 1),
    ("output equal to an input (replace)", lambda e: [
        "replace", e["model"], "--class", 0, "--with", e["module"], "-o", e["model"]],
     "overwrite an input", 1),
    ("output equal to an input, spelt otherwise", lambda e: [
        "replace", e["model"], "--class", 0, "--with", e["module"], "-o",
        f"{e['model'].parent}/./{e['model'].name}"], "overwrite an input", 1),
    ("output onto a file of an input folder", lambda e: [
        "link", e["modules"], "-o", e["modules"] / "class_1.onnx"],
     "overwrite an input (a file of the input folder", 1),
    ("output folder holding the input model", lambda e: [
        "decompose", e["model"], "--data", e["data"], "-o", e["model"].parent, "--force"],
     "holds the input", 1),
    ("existing non-empty output folder", lambda e: [
        "decompose", e["model"], "--data", e["data"], "-o", e["full"]],
     "exists and is not empty", 1),
    ("a module that is not one", lambda e: ["link", e["model"], "-o", e["dir"] / "l2.onnx"],
     "module", 1),
    ("sequential refit of a tagger", lambda e: [
        "decompose", e["tagger"], "--data", e["tags"], "--compensation", "sequential", "-o",
        e["dir"] / "o10"], "--compensation sequential weighs whole samples by their class", 1),
    ("a fitted combiner for a tagger", lambda e: [
        "replace", e["tagger"], "--class", 0, "--with", e["tag_module"], "-o",
        e["dir"] / "r2.onnx", "--calibrate", e["tags"]],
     "a combiner fitted on calibration data is for models that score whole samples", 1),
    ("CUDA asked for, none there", lambda e: ["eval", e["model"], "--data", e["data"],
                                             "--device", "cuda"], "CUDA", 4),
]


@pytest.mark.parametrize("row", BAD_INPUTS, ids=[r[0] for r in BAD_INPUTS])
def test_bad_input(env, row) -> None:
    _, command, message, code = row
    if message == "CUDA":
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            pytest.skip("this onnxruntime has CUDA")
    before = sorted(p.name for p in env["dir"].iterdir())
    modules = {p.name: p.read_bytes() for p in env["modules"].iterdir()}
    _assert_user_error(_run(*command(env)), message, code=code)
    assert sorted(p.name for p in env["dir"].iterdir()) == before, "an output was written"
    assert {p.name: p.read_bytes() for p in env["modules"].iterdir()} == modules
    assert (env["full"] / "keep.txt").read_text() == "mine"


def test_model_over_two_gigabytes(env, monkeypatch) -> None:
    from onnxdecomp import modelio

    monkeypatch.setattr(modelio, "MAX_MODEL_BYTES", 1000)
    _assert_user_error(_run("inspect", env["model"]), "over 2 GB")


def test_readme_lists_every_bad_input() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Errors"):]
    for name, _, message, code in BAD_INPUTS:
        assert f"| {name} |" in table, name
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert message in row and f"| {code} |" in row, row


def test_force_replaces_the_folder_as_a_whole(env, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    res = _run("decompose", env["model"], "--data", env["data"], "--keep", "0.5", "-o", out,
               "--force", "--classes", "0")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["class_0.onnx", "manifest.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_failure_while_writing_leaves_the_folder_as_it_was(env, tmp_path, monkeypatch):
    from onnxdecomp.decompose import manifest as manifest_module

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")

    def broken(self, folder):
        raise OSError("disk full")

    monkeypatch.setattr(manifest_module.Manifest, "write", broken)
    res = _run("decompose", env["model"], "--data", env["data"], "--keep", "0.5", "-o", out,
               "--force", "--classes", "0")
    assert res.exit_code != 0
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_ctrl_c_is_one_error_line(env, monkeypatch) -> None:
    import importlib

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("onnxdecomp.cli.eval"), "read_model",
                        interrupted)
    _assert_user_error(_run("eval", env["model"], "--data", env["data"]),
                       "interrupted; the outputs are as they were", code=130)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_decompose_leaves_no_partial_output(get_case, tmp_path: Path, sig) -> None:
    """Killed at several points of its run, ``decompose`` leaves the output folder either
    as it was before or complete, never half written."""
    case = get_case("residual-dynamo")
    x = case.calib(300, seed=1)
    data = _npz(tmp_path / "d.npz", x, case.logits(x).argmax(axis=1))
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    cmd = [sys.executable, "-m", "onnxdecomp.cli", "decompose", str(case.path), "--data",
           str(data), "-o", str(out), "--force", "--compensation", "sequential"]
    outcomes = set()
    for delay in (0.5, 1.5, 3.0, 6.0):
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env={**os.environ})
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == 143:  # caught: one error line, FAILED
            assert err.splitlines()[-2:] == [
                "error: interrupted (SIGTERM); the outputs are as they were", "FAILED"], err
        names = sorted(p.name for p in out.iterdir())
        complete = "manifest.json" in names and len(names) == case.num_classes + 1
        assert names == ["old.txt"] or complete, names
        outcomes.add("before" if names == ["old.txt"] else "complete")
        if complete:  # start the next try from the old folder again
            for p in out.iterdir():
                p.unlink()
            (out / "old.txt").write_text("old")
        if sig == signal.SIGTERM:  # a caught signal also removes the hidden work folder
            assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]
    assert "before" in outcomes


def test_a_missing_required_option_is_a_usage_error(env) -> None:
    """click >= 8.3 read ``default=None`` as a default given: ``--data`` left out was an
    internal error (exit 5); with ``--json`` a usage error prints its object too. A usage
    error ends with FAILED, as every failure does, the group's own options' too."""
    res = _run("eval", env["model"])
    assert res.exit_code == 2 and "Missing option '--data'" in res.output, res.output
    assert res.stderr.splitlines()[-1] == "FAILED"
    res = _run("--bogus")
    assert res.exit_code == 2 and res.stderr.splitlines()[-1] == "FAILED", res.output
    res = _run("decompose", env["model"], "--data", env["data"], "-o", "x", "--keep", "1.5",
               "--json")
    assert res.exit_code == 2
    assert json.loads(res.stdout.splitlines()[0]) == {
        "passed": False, "exit_code": 2,
        "error": "Invalid value for '--keep': 1.5 is not in the range 0<x<=1."}


def test_an_unwritable_output_is_refused_before_the_work(env, tmp_path, monkeypatch) -> None:
    """A folder the file system refuses (read-only, full) is a user error said at once, not
    an internal error after the decomposition; the current folder cannot be swapped."""
    import tempfile

    from onnxdecomp.decompose import Decomposer

    def never(*args, **kwargs):
        raise AssertionError("the work started")

    monkeypatch.setattr(Decomposer, "__init__", never)
    monkeypatch.chdir(tmp_path)
    _assert_user_error(_run("decompose", env["model"], "--data", env["data"], "-o", ".",
                            "--force"), "is or holds the current folder")

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    _assert_user_error(_run("decompose", env["model"], "--data", env["data"], "-o",
                            tmp_path / "out"), "Read-only file system")
    _assert_user_error(_run("link", env["module"], "-o", tmp_path / "l.onnx", "--mode",
                            "parallel"), "cannot write")


def test_a_folder_filled_meanwhile_is_not_replaced_without_force(tmp_path: Path) -> None:
    """Two runs into one new ``-o``: the second to finish is refused, not swapped in."""
    from onnxdecomp.errors import OnnxDecompError
    from onnxdecomp.modelio import atomic_folder

    out = tmp_path / "out"
    with pytest.raises(OnnxDecompError, match="filled by another run"):
        with atomic_folder(out, force=False) as tmp:
            (tmp / "mine.txt").write_text("mine")
            out.mkdir()
            (out / "theirs.txt").write_text("theirs")
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_outputs_follow_the_umask(env, tmp_path: Path) -> None:
    """Model files and manifests were written 0600 (mkstemp's mode) beside 0644 modules."""
    old = os.umask(0o022)
    try:
        res = _run("link", env["module"], "-o", tmp_path / "l.onnx", "--mode", "parallel")
        assert res.exit_code == 0, res.output
        res = _run("decompose", env["model"], "--data", env["data"], "--keep", "0.5", "-o",
                   tmp_path / "m", "--classes", "0")
        assert res.exit_code == 0, res.output
    finally:
        os.umask(old)
    for path in (tmp_path / "l.onnx", tmp_path / "m" / "manifest.json",
                 tmp_path / "m" / "class_0.onnx"):
        assert path.stat().st_mode & 0o777 == 0o644, path
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o755


def test_a_closed_pipe_ends_quietly(env, monkeypatch) -> None:
    """``eval ... | head -1``: the reader gone, the command ends with 141 as a shell reports
    SIGPIPE, not with an internal error (exit 5)."""
    import importlib

    def closed(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(importlib.import_module("onnxdecomp.cli.eval"), "read_model", closed)
    res = _run("eval", env["model"], "--data", env["data"])
    assert res.exit_code == 141 and "internal error" not in res.output, res.output


@pytest.mark.parametrize("missing", ["input", "output"])
def test_a_model_without_inputs_or_outputs_is_unsupported(env, tmp_path, missing) -> None:
    """eval of a graph with no output, or no input (one Constant), was an internal error."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    const = helper.make_node("Constant", [], ["y"], value=helper.make_tensor(
        "c", TensorProto.FLOAT, [1, 3], [0.0, 1.0, 2.0]))
    relu = helper.make_node("Relu", ["x"], ["r"])
    graph = helper.make_graph([const], "g", [], [y]) if missing == "input" else \
        helper.make_graph([relu], "g", [x], [])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    for cmd in (["eval", path, "--data", env["data"]],
                ["decompose", path, "--data", env["data"], "-o", tmp_path / "o"]):
        _assert_user_error(_run(*cmd), f"the model has no {missing}", code=3)


def test_scores_from_a_custom_op_name_it() -> None:
    """A random forest's scores (ai.onnx.ml TreeEnsembleClassifier, then ZipMap) have no
    shape; the refusal named neither the node nor the op."""
    import onnx_ir as ir

    from onnxdecomp.decompose.parent import class_count
    from onnxdecomp.errors import UnsupportedModelError

    x = ir.Value(name="x", shape=ir.Shape(["N", 4]), type=ir.TensorType(ir.DataType.FLOAT))
    trees = ir.node("TreeEnsembleClassifier", [x], domain="ai.onnx.ml", num_outputs=2,
                    name="forest")
    cast = ir.node("Cast", [trees.outputs[1]], attributes={"to": 1}, name="cast")
    with pytest.raises(UnsupportedModelError,
                       match="node 'forest', ai.onnx.ml TreeEnsembleClassifier"):
        class_count(cast.outputs[0], "rf.onnx")


def test_a_failed_command_makes_no_output_folders(env, tmp_path: Path) -> None:
    """The writability probe makes no missing folder: a failure still writes nothing."""
    _assert_user_error(_run("decompose", env["model"], "--data", tmp_path / "none.npz", "-o",
                            tmp_path / "new" / "a" / "b"), "not found")
    _assert_user_error(_run("link", env["module"], env["modules"] / "class_1.onnx", "--mode",
                            "parallel", "--calibrate", tmp_path / "none.npz", "-o",
                            tmp_path / "new" / "l.onnx"))
    assert not (tmp_path / "new").exists()


def test_link_counts_before_it_writes(env, tmp_path: Path, monkeypatch) -> None:
    """The linked model's MACs were counted after it was written: a count that failed left
    the file behind an error line."""
    import importlib

    from onnxdecomp.errors import OnnxDecompError

    def fails(*args, **kwargs):
        raise OnnxDecompError("cannot count MACs")

    for cmd in ("link", "replace"):
        monkeypatch.setattr(importlib.import_module(f"onnxdecomp.cli.{cmd}"), "model_stats",
                            fails)
    out = tmp_path / "l.onnx"
    _assert_user_error(_run("link", env["module"], "--mode", "parallel", "-o", out), "MACs")
    _assert_user_error(_run("replace", env["model"], "--class", 0, "--with", env["module"],
                            "-o", out), "MACs")
    assert not out.exists()
