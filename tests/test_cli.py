"""Tests for the command line: eval, inspect, decompose, link, and one-line user errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner, Result
from conftest import ort_run

from onnxdecomp.cli import main
from onnxdecomp.decompose.head import logodds_from_logits


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _npz(path: Path, x: np.ndarray, y: np.ndarray, **extra) -> Path:
    np.savez(path, x=x, y=y, **extra)
    return path


def _labels(scores: np.ndarray, seed: int = 0) -> np.ndarray:
    """The model's own predictions with a third of them changed: accuracy is neither 0 nor 1."""
    rng = np.random.default_rng(seed)
    y = scores.argmax(axis=1)
    flip = rng.random(len(y)) < 0.35
    y[flip] = rng.integers(0, scores.shape[1], flip.sum())
    return y.astype(np.int64)


def _assert_user_error(res: Result, *needles: str, code: int = 1) -> str:
    """Exit ``code`` (1: the user's input, 3: an unsupported model, 4: a runtime failure), no
    traceback, exactly one ``error:`` line (then FAILED); returns the line."""
    assert res.exit_code == code, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[0] == errors[0], lines
    assert set(lines[1:]) <= {"FAILED"}, lines
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def small(get_case, tmp_path_factory):
    """(case, data .npz, x, y, scores) for the bn_conv model."""
    case = get_case("bn_conv")
    x = case.calib(90, seed=21)
    scores = ort_run(case.path, x)
    y = _labels(scores)
    data = _npz(tmp_path_factory.mktemp("data") / "d.npz", x, y)
    return case, data, x, y, scores


# ------------------------------------------------------------------------ eval


def test_eval_text_ends_with_passed(small) -> None:
    case, data, *_ = small
    res = _run("eval", case.path, "--data", data, "--device", "cpu")
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[-1].startswith("PASSED")
    assert any(line.startswith("top-1") for line in lines)


def test_eval_json_matches_numpy(small) -> None:
    case, data, _, y, scores = small
    res = _run("eval", case.path, "--data", data, "--json", "--batch-size", "7")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert {"n", "top1", "top5", "per_class"} <= report.keys() and report["passed"] is True
    pred = scores.argmax(axis=1)
    top5 = np.argsort(-scores, axis=1)[:, :5]
    assert report["n"] == len(y)
    assert report["top1"] == pytest.approx(np.mean(pred == y), abs=1e-6)
    assert report["top5"] == pytest.approx(np.mean((top5 == y[:, None]).any(axis=1)), abs=1e-6)
    assert 0 < report["top1"] < 1
    expected = {str(c): round(float(np.mean(pred[y == c] == c)), 4)
                for c in range(case.num_classes)}
    assert report["per_class"] == pytest.approx(expected, abs=1e-4)


def test_eval_third_party_fixed_batch_model(cntk_case, tmp_path: Path) -> None:
    """A CNTK-style model (batch fixed at 1, raw 0..255 input, Reshape/Conv/Add/Relu/
    MaxPool/MatMul) evaluated on more samples than its batch."""
    x = cntk_case.calib(23, seed=8)
    scores = ort_run(cntk_case.path, x)  # one sample at a time
    y = _labels(scores, seed=2)
    data = _npz(tmp_path / "d.npz", x, y)
    res = _run("eval", cntk_case.path, "--data", data, "--json", "--batch-size", "8")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["n"] == 23
    assert report["top1"] == pytest.approx(np.mean(scores.argmax(1) == y), abs=1e-6)
    assert len(report["per_class"]) == cntk_case.num_classes


def test_eval_npz_with_class_names(small, tmp_path: Path) -> None:
    case, _, x, y, _ = small
    names = np.array(["ant", "bee", "cat", "dog", "eel"])
    data = _npz(tmp_path / "named.npz", x, y, class_names=names)
    report = json.loads(_run("eval", case.path, "--data", data, "--json").stdout)
    assert list(report["per_class"]) == names.tolist()


# ------------------------------------------------------------------------ inspect


def test_inspect(small) -> None:
    case = small[0]
    res = _run("inspect", case.path, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert {"inputs", "outputs", "op_counts", "params", "macs", "layers", "opset",
            "ir_version"} <= info.keys() and info["passed"] is True
    assert info["op_counts"]["Conv"] == 1 and info["params"] > 0 and info["macs"] > 0
    res = _run("inspect", case.path)
    assert res.exit_code == 0 and res.stdout.strip().splitlines()[-1].startswith("PASSED")


# ------------------------------------------------------------------------ decompose + link


def test_decompose_that_misses_its_goal_fails_in_text_and_json(small, tmp_path: Path) -> None:
    """Modules written, but the goal missed: FAILED and exit 1, with --json too."""
    case, data, *_ = small
    res = _run("decompose", case.path, "--data", data, "--macs", "0.01", "-o",
               tmp_path / "a", "--json", "--device", "cpu", "--classes", "0")
    assert res.exit_code == 1 and json.loads(res.stdout)["passed"] is False
    res = _run("decompose", case.path, "--data", data, "--macs", "0.01", "-o",
               tmp_path / "b", "--device", "cpu", "--classes", "0")
    assert res.exit_code == 1 and res.stdout.strip().splitlines()[-1].startswith("FAILED")
    assert (tmp_path / "b" / "class_0.onnx").is_file()


def test_decompose_link_eval(small, tmp_path: Path) -> None:
    case, data, x, y, scores = small
    out = tmp_path / "out"
    res = _run("decompose", case.path, "--data", data, "--keep", "0.5", "-o", out, "--json",
               "--device", "cpu")
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.stdout)
    assert manifest["passed"] is True
    assert len(manifest["modules"]) == case.num_classes
    assert (out / "manifest.json").is_file()
    files = sorted(out.glob("*.onnx"))
    assert [f.name for f in files] == [m["file"] for m in manifest["modules"]]
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["modules"] == manifest["modules"]

    linked = tmp_path / "linked.onnx"
    res = _run("link", *files, "-o", linked)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-1].startswith("PASSED")
    model = onnx.load(str(linked))
    assert [o.name for o in model.graph.output] == ["scores", "label"]
    assert model.graph.output[0].type.tensor_type.shape.dim[1].dim_value == case.num_classes

    res = _run("eval", linked, "--data", data, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert len(report["per_class"]) == case.num_classes
    linked_scores = ort_run(linked, x)
    assert linked_scores.shape == (len(x), case.num_classes)
    assert report["top1"] == pytest.approx(np.mean(linked_scores.argmax(1) == y), abs=1e-6)
    # inspect says what onnxdecomp made: a module's class and parent, a linked model's columns
    module = json.loads(_run("inspect", files[1], "--json").stdout)["module"]
    assert module["class_index"] == "1" and module["parent_sha256"]
    assert "module of class 1 (1), parent sha256" in _run("inspect", files[1]).stdout
    columns = json.loads(_run("inspect", linked, "--json").stdout)["columns"]
    assert [c["class_index"] for c in columns] == list(range(case.num_classes))
    assert f"linked model, {case.num_classes} columns: 0, 1" in _run("inspect", linked).stdout


def test_decompose_text_ends_with_passed(small, tmp_path: Path) -> None:
    case, data, *_ = small
    out = tmp_path / "out"
    res = _run("decompose", case.path, "--data", data, "--keep", "0.5", "-o", out,
               "--classes", "0,2", "--compensation", "mean", "--device", "cpu")
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[-1].startswith("PASSED")
    assert sorted(p.name for p in out.iterdir()) == ["class_0.onnx", "class_2.onnx",
                                                      "manifest.json"]


def test_decompose_macs_budget(small, tmp_path: Path) -> None:
    case, data, *_ = small
    res = _run("decompose", case.path, "--data", data, "--macs", "0.5", "-o", tmp_path / "o",
               "--json", "--device", "cpu")
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.stdout)
    assert manifest["passed"] is True and manifest["settings"]["macs"] == 0.5
    assert np.mean([m["macs_fraction"] for m in manifest["modules"]]) <= 0.5
    res = _run("decompose", case.path, "--data", data, "--macs", "0.5", "-o", tmp_path / "t",
               "--device", "cpu")
    last = res.stdout.strip().splitlines()[-1]
    assert last == "PASSED | onnxdecomp decompose (mean MACs <= 50.0%)"


def test_decompose_no_refine_is_recorded_and_no_smaller(small, tmp_path: Path) -> None:
    case, data, *_ = small
    found = {}
    for flag in ([], ["--no-refine"]):
        res = _run("decompose", case.path, "--data", data, "--align", "4", "--fidelity",
                   "0.95", "-o", tmp_path / str(len(flag)), "--json", "--device", "cpu", *flag)
        assert res.exit_code == 0, res.output
        manifest = json.loads(res.stdout)
        assert manifest["settings"]["refine"] is (not flag)
        found[bool(flag)] = manifest["modules"]
    for on, off in zip(found[False], found[True]):
        assert on["macs"] <= off["macs"] and on["fidelity"] >= 0.95


def test_link_refines_pairs_by_default(small, tmp_path: Path) -> None:
    case, data, *_ = small
    out = tmp_path / "mods"
    res = _run("decompose", case.path, "--data", data, "--align", "4", "--fidelity", "0.95",
               "-o", out, "--device", "cpu")
    assert res.exit_code == 0, res.output
    found = {}
    for name, flag, classes, refined in (("pair", [], (0, 1), True),
                                         ("off", ["--no-refine"], (0, 1), False),
                                         ("three", [], (0, 1, 2), False),
                                         ("asked", ["--refine"], (0, 1, 2), True)):
        res = _run("link", *(out / f"class_{c}.onnx" for c in classes), "-o",
                   tmp_path / f"{name}.onnx", "--json", *flag)
        assert res.exit_code == 0, res.output
        (part,) = [p for p in json.loads(res.stdout)["parts"] if p["kind"] == "union"]
        assert part["refine"] is refined and part["fidelity"] >= 0.95
        # a refined pair is also refitted sequentially (polish.py); larger unions are not
        assert part["polished"] is (name == "pair")
        found[name] = part["macs"]
    assert found["pair"] <= found["off"] and found["asked"] <= found["three"]


# ------------------------------------------------------------------------ user errors


def test_error_missing_model(small, tmp_path: Path) -> None:
    data = small[1]
    _assert_user_error(_run("eval", tmp_path / "nope.onnx", "--data", data), "no such file")
    _assert_user_error(_run("inspect", tmp_path / "nope.onnx"))


def test_error_with_json_prints_its_object_too(small, tmp_path: Path) -> None:
    """With --json a failure still writes its one line and FAILED on stderr, and its JSON
    object on stdout, for scripts that read stdout only."""
    _, data, *_ = small
    res = _run("eval", tmp_path / "missing.onnx", "--data", data, "--json")
    line = _assert_user_error(res, "not an ONNX model")
    assert json.loads(res.stdout) == {"passed": False, "error": line[len("error: "):],
                                      "exit_code": 1}


def test_error_garbage_model(small, tmp_path: Path) -> None:
    data = small[1]
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage\xff" * 50)
    _assert_user_error(_run("eval", bad, "--data", data))
    _assert_user_error(_run("decompose", bad, "--data", data, "-o", tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_error_data_shape_mismatch(small, tmp_path: Path) -> None:
    case = small[0]
    x = np.zeros((4, 3, 10, 10), np.float32)
    data = _npz(tmp_path / "wrong.npz", x, np.zeros(4, np.int64))
    _assert_user_error(_run("eval", case.path, "--data", data), "shape")
    _assert_user_error(_run("decompose", case.path, "--data", data, "-o", tmp_path / "o"),
                       "shape")


def test_error_labels_outside_classes(small, tmp_path: Path) -> None:
    case, _, x, y, _ = small
    bad = y.copy()
    bad[3] = case.num_classes + 2
    data = _npz(tmp_path / "labels.npz", x, bad)
    _assert_user_error(_run("eval", case.path, "--data", data), "out of range")


def test_error_cuda_without_cuda(small) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    case, data, *_ = small
    _assert_user_error(_run("eval", case.path, "--data", data, "--device", "cuda"), "CUDA",
                       code=4)


def test_error_link_output_is_an_input(small, tmp_path: Path) -> None:
    case, data, *_ = small
    out = tmp_path / "out"
    assert _run("decompose", case.path, "--data", data, "--keep", "0.5", "-o", out,
                "--classes", "0,1").exit_code == 0
    files = sorted(out.glob("*.onnx"))
    before = files[0].read_bytes()
    _assert_user_error(_run("link", *files, "-o", files[0]), "overwrite")
    assert files[0].read_bytes() == before


def test_error_link_a_non_module(small, tmp_path: Path) -> None:
    case = small[0]
    _assert_user_error(_run("link", case.path, "-o", tmp_path / "l.onnx"), "module")
    assert not (tmp_path / "l.onnx").exists()


def test_eval_a_module_scores_its_class_against_the_rest(small, tmp_path: Path) -> None:
    """A module's one column is its class's log-odds: eval reads the labels as that class
    against the rest, the module claiming it where its log-odds > 0."""
    case, data, x, y, scores = small
    # the class the parent most often gives p > 0.5, so that the module claims some samples
    k = int(np.argmax((logodds_from_logits(scores) > 0).sum(axis=0)))
    out = tmp_path / "out"
    assert _run("decompose", case.path, "--data", data, "--keep", "1.0", "-o", out,
                "--classes", str(k)).exit_code == 0
    module = out / f"class_{k}.onnx"
    res = _run("eval", module, "--data", data, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    claimed, truth = ort_run(module, x)[:, 0] > 0, y == k
    hits = int(np.sum(claimed & truth))
    assert claimed.any() and truth.any()
    assert report["top1"] == pytest.approx(np.mean(claimed == truth), abs=1e-6)
    assert list(report["per_class"]) == [f"not {k}", str(k)]
    m = report["module"]
    assert m["class_index"] == k and m["class_name"] == str(k)
    assert m["precision"] == pytest.approx(hits / claimed.sum(), abs=1e-6)
    assert m["recall"] == pytest.approx(hits / truth.sum(), abs=1e-6)
    text = _run("eval", module, "--data", data).stdout
    assert f"module  class {k} ({k}) against the rest" in text and "recall" in text
    # one module linked alone: its one column is the same log-odds, read the same way
    single = tmp_path / "single.onnx"
    assert _run("link", module, "-o", single).exit_code == 0
    alone = json.loads(_run("eval", single, "--data", data, "--json").stdout)
    assert alone["top1"] == report["top1"] and alone["module"] == report["module"]


def test_error_modules_and_linked_models_in_the_wrong_place(small, tmp_path: Path) -> None:
    """A module given to decompose, a linked model given to link or replace: one line that
    says what the file is and what to give instead; nothing written."""
    case, data, *_ = small
    out = tmp_path / "out"
    assert _run("decompose", case.path, "--data", data, "--keep", "0.5", "-o", out,
                "--classes", "0,1").exit_code == 0
    files = sorted(out.glob("*.onnx"))
    _assert_user_error(_run("decompose", files[0], "--data", data, "-o", tmp_path / "d"),
                       "is a module (class 0's log-odds)", "decompose its parent", code=3)
    linked = tmp_path / "l.onnx"
    assert _run("link", *files, "-o", linked).exit_code == 0
    _assert_user_error(_run("link", linked, files[0], "-o", tmp_path / "m.onnx"),
                       "is a linked model, not a module")
    _assert_user_error(_run("replace", linked, "--class", "1", "--with", files[1], "-o",
                            tmp_path / "r.onnx"), "is a linked model")
    assert not any((tmp_path / name).exists() for name in ("d", "m.onnx", "r.onnx"))


def test_error_per_step_labels_for_a_model_of_whole_samples(small, tmp_path: Path) -> None:
    """Labels [N, T] for a model that scores whole samples: one line in every command that
    reads labels (an internal error in each before)."""
    case, good, x, y, _ = small
    data = _npz(tmp_path / "steps.npz", x, np.stack([y] * 3, axis=1))
    want = ("labels of shape", "scores whole samples")
    _assert_user_error(_run("eval", case.path, "--data", data), *want)
    _assert_user_error(_run("decompose", case.path, "--data", data, "-o", tmp_path / "o"),
                       *want)
    mods = tmp_path / "mods"
    assert _run("decompose", case.path, "--data", good, "--keep", "0.5", "-o", mods,
                "--classes", "0,1").exit_code == 0
    files = sorted(mods.glob("*.onnx"))
    _assert_user_error(_run("link", *files, "--calibrate", data, "-o", tmp_path / "l.onnx"),
                       *want)
    _assert_user_error(_run("replace", case.path, "--class", "0", "--with", files[0],
                            "--calibrate", data, "-o", tmp_path / "r.onnx"), *want)
    assert not any((tmp_path / n).exists() for n in ("o", "l.onnx", "r.onnx"))


def test_few_held_out_samples_are_noted(tmp_path: Path) -> None:
    """Fidelities measured on a handful of held-out samples are named as rough in a note
    (text and manifest); 1,000 samples of the digits need none."""
    model = Path(__file__).resolve().parent.parent / "models" / "cnn_digits.onnx"
    res = _run("decompose", model, "--data", "sklearn:digits", "--limit", "20", "-o",
               tmp_path / "few", "--classes", "3,7", "--keep", "0.5")
    assert res.exit_code == 0, res.output
    notes = json.loads((tmp_path / "few" / "manifest.json").read_text())["notes"]
    assert len(notes) == 1 and "measured on 6 held-out samples" in notes[0]
    assert f"note: {notes[0]}" in res.stdout
    res = _run("decompose", model, "--data", "sklearn:digits", "-o", tmp_path / "many",
               "--classes", "3,7", "--keep", "0.5")
    assert res.exit_code == 0 and "note:" not in res.stdout, res.output


def test_decompose_classes_by_name(small, tmp_path: Path) -> None:
    """--classes takes the data's class names as well as indices; an unknown name is one
    line listing the names."""
    case, _, x, y, _ = small
    names = [f"c{i}" for i in range(case.num_classes)]
    data = _npz(tmp_path / "named.npz", x, y, class_names=np.array(names))
    res = _run("decompose", case.path, "--data", data, "--keep", "0.5", "-o", tmp_path / "o",
               "--classes", "c2,0", "--json")
    assert res.exit_code == 0, res.output
    modules = json.loads(res.stdout)["modules"]
    assert [(m["class_index"], m["class_name"]) for m in modules] == [(2, "c2"), (0, "c0")]
    _assert_user_error(_run("decompose", case.path, "--data", data, "--keep", "0.5", "-o",
                            tmp_path / "p", "--classes", "c9x"),
                       "or one of the data's class names (c0, c1", "got 'c9x'")


def test_decompose_classes_ranges_and_present(small, tmp_path: Path, monkeypatch) -> None:
    """--classes takes ranges, and ``present`` for the classes the data has (by its labels,
    else by the parent's decisions); a class without a labelled sample is refused before
    the profile is taken, naming at most 12 of them and the way out."""
    import importlib

    decomposer = importlib.import_module("onnxdecomp.decompose.decomposer")
    case, _, x, y, _ = small
    y = y.copy()
    y[y == 1] = 2  # class 1 has no labelled sample
    data = _npz(tmp_path / "no1.npz", x, y)
    res = _run("decompose", case.path, "--data", data, "--keep", "0.5", "-o", tmp_path / "r",
               "--classes", "2-3,0", "--json")
    assert res.exit_code == 0, res.output
    assert [m["class_index"] for m in json.loads(res.stdout)["modules"]] == [2, 3, 0]
    res = _run("decompose", case.path, "--data", data, "--keep", "0.5", "-o", tmp_path / "p",
               "--classes", "present", "--json")
    assert res.exit_code == 0, res.output
    have = sorted(set(y.tolist()))
    assert [m["class_index"] for m in json.loads(res.stdout)["modules"]] == have
    unlabelled = tmp_path / "x.npz"
    np.savez(unlabelled, x=x)
    res = _run("decompose", case.path, "--data", unlabelled, "--keep", "0.5", "-o",
               tmp_path / "u", "--classes", "present", "--json")
    assert res.exit_code == 0, res.output
    decided = sorted(set(ort_run(case.path, x).argmax(axis=1).tolist()))
    assert [m["class_index"] for m in json.loads(res.stdout)["modules"]] == decided

    # no class named is not every class: it is refused as such, not for class 1's samples
    _assert_user_error(_run("decompose", case.path, "--data", data, "--keep", "0.5", "-o",
                            tmp_path / "o", "--classes", ","), "names no class")

    def no_profile(*args, **kwargs):
        raise AssertionError("profiled before refusing")

    monkeypatch.setattr(decomposer, "profile", no_profile)
    _assert_user_error(_run("decompose", case.path, "--data", data, "--keep", "0.5", "-o",
                            tmp_path / "o"),
                       "class 1: no calibration sample (no sample has that label)",
                       "--classes present cuts the classes the data has")
    # data that names fewer classes than the model has (a table's string labels): the
    # error says how they were numbered
    k = case.num_classes
    named = _npz(tmp_path / "named.npz", x, np.minimum(y, k - 2),
                 class_names=np.array([f"c{i}" for i in range(k - 1)]))
    _assert_user_error(_run("decompose", case.path, "--data", named, "--keep", "0.5", "-o",
                            tmp_path / "o"),
                       f"{k - 1}: no calibration sample (no sample has that label; the data "
                       f"names {k - 1} classes, numbered in sorted order (c0 = 0, c1 = 1,")


def test_error_unsupported_op_via_cli(tmp_path: Path) -> None:
    from conftest import build_unsupported

    model = tmp_path / "lp.onnx"
    onnx.save(build_unsupported("lpnorm"), str(model))
    x = np.full((12, 1, 12, 12), 100, np.float32)
    data = _npz(tmp_path / "d.npz", x, np.zeros(12, np.int64))
    out = tmp_path / "o"
    _assert_user_error(_run("decompose", model, "--data", data, "--keep", "0.5", "-o", out),
                       "LpNormalization", "odd_op", code=3)
    assert not out.exists() or not any(out.iterdir())


def test_error_bad_classes_flag(small, tmp_path: Path) -> None:
    case, data, *_ = small
    _assert_user_error(_run("decompose", case.path, "--data", data, "--keep", "0.5",
                            "-o", tmp_path / "o", "--classes", "0,x"), "--classes")
    _assert_user_error(_run("decompose", case.path, "--data", data, "--keep", "0.5",
                            "-o", tmp_path / "o", "--classes", "0,9"), "class 9")
    _assert_user_error(_run("decompose", case.path, "--data", data, "--keep", "0.5",
                            "--macs", "0.5", "-o", tmp_path / "o"), "exclude")
    # --scale 0 made every pixel 0; check --data without --parent skipped the data check
    res = _run("eval", case.path, "--data", data, "--scale", "0")
    assert res.exit_code == 2 and "non-zero factor" in res.output, res.output
    _assert_user_error(_run("check", case.path, "--data", data), "give --parent too")
    # silently ignored before
    _assert_user_error(_run("decompose", case.path, "--data", data, "--keep", "0.5",
                            "--fidelity", "0.9", "-o", tmp_path / "o"), "--keep fixes")
    _assert_user_error(_run("decompose", case.path, "--data", data, "--macs", "0.5",
                            "-o", tmp_path / "o", "--classes", ","), "no class")
    _assert_user_error(_run("decompose", case.path, "--data", data, "--keep", "0.5",
                            "-o", tmp_path / "o", "--classes", ""), "no class")
    # one file and two manifest entries: a folder that link refused
    _assert_user_error(_run("decompose", case.path, "--data", data, "--keep", "0.5",
                            "-o", tmp_path / "o", "--classes", "1,0-2"), "class 1 twice")
    assert not (tmp_path / "o").exists()


def test_no_onnxruntime(small, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without onnxruntime: one line naming both extras."""
    case, data, *_ = small
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    line = _assert_user_error(_run("eval", case.path, "--data", data), code=4)
    assert "onnxdecomp[cpu]" in line and "onnxdecomp[gpu]" in line


def _digits_tree(root: Path, names: list[str], keep: set[int] | None = None) -> Path:
    """scikit-learn's digits as train/<name>/<i>.png (pixels x 15), the classes in ``keep``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for j, (img, label) in enumerate(zip(d.images[:600], d.target[:600])):
        if keep is not None and label not in keep:
            continue
        folder = root / "train" / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 15).astype(np.uint8)).save(folder / f"{j}.png")
    return root


def test_eval_matches_classes_by_name(tmp_path: Path) -> None:
    """A tree of only some class folders is numbered by its own folders (five = 0, three = 1):
    a linked model and a module that record their classes' names are scored by name, as on
    the whole tree; a parent that records none gets a note saying how labels are numbered."""
    model = Path(__file__).resolve().parent.parent / "models" / "cnn_digits.onnx"
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    names = [f"{i}{w}" for i, w in enumerate(words)]  # sorted as the classes are numbered
    whole = _digits_tree(tmp_path / "all", names)
    some = _digits_tree(tmp_path / "some", words, keep={3, 5})
    scale = ["--scale", str(1 / 15), "--split", "train"]
    out = tmp_path / "m"
    res = _run("decompose", model, "--data", whole, *scale, "--keep", "0.5", "-o", out)
    assert res.exit_code == 0, res.output
    # the module and linked columns record 3three, 5five: name the subset's folders alike
    (some / "train" / "three").rename(some / "train" / "3three")
    (some / "train" / "five").rename(some / "train" / "5five")
    linked = tmp_path / "u.onnx"
    assert _run("link", out / "class_3.onnx", out / "class_5.onnx", "-o", linked).exit_code == 0
    for m, same in ((linked, ("3three", "5five")), (out / "class_5.onnx", ("5five",))):
        on_all = json.loads(_run("eval", m, "--data", whole, *scale, "--json").stdout)
        on_some = json.loads(_run("eval", m, "--data", some, *scale, "--json").stdout)
        assert {k: on_some["per_class"][k] for k in same} == \
            {k: on_all["per_class"][k] for k in same}
        assert on_some["n"] == sum(1 for y in load_digits_y() if y in (3, 5))
    # linked across two parents (the same net saved apart): its labels are its columns,
    # matched by name; the other classes' samples are ignored
    proto = onnx.load(str(model))
    proto.doc_string = "the same digits CNN, another file"
    onnx.save(proto, str(tmp_path / "second.onnx"))
    res = _run("decompose", tmp_path / "second.onnx", "--data", whole, *scale, "--keep", "0.5",
               "-o", tmp_path / "m2")
    assert res.exit_code == 0, res.output
    cross = tmp_path / "cross.onnx"
    res = _run("link", out / "class_3.onnx", tmp_path / "m2" / "class_5.onnx", "-o", cross)
    assert res.exit_code == 0, res.output
    on_all = json.loads(_run("eval", cross, "--data", whole, *scale, "--json").stdout)
    on_some = json.loads(_run("eval", cross, "--data", some, *scale, "--json").stdout)
    assert on_some["per_class"] == on_all["per_class"] and on_all["n"] == on_some["n"]
    assert set(on_all["per_class"]) == {"3three", "5five"}
    res = _run("eval", model, "--data", some, *scale)
    assert res.exit_code == 0, res.output
    assert "note: the data names 2 classes and the model has 10: labels are the data's " \
           "classes in sorted order (3three = 0, 5five = 1, ...)" in res.stdout
    # one class folder: the note too (it needed two)
    only = _digits_tree(tmp_path / "only", words, keep={3})
    res = _run("eval", model, "--data", only, *scale)
    assert "note: the data names 1 class and the model has 10: labels are the data's " \
           "classes in sorted order (three = 0)" in res.stdout, res.stdout


def load_digits_y() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().target[:600]


def test_eval_text_shows_the_lowest_of_many_classes() -> None:
    from onnxdecomp.cli.eval import _per_class_line

    few = {"a": 0.5, "b": None}
    assert _per_class_line(few) == "per class: a 50.0  b -"
    many = {f"c{i}": (i % 40) / 40 for i in range(150)} | {"none": None}
    line = _per_class_line(many)
    assert line.startswith("per class, the 10 lowest of 151 (--json: all): c0 0.0  c40 0.0")
    assert line.count(" 0.0") == 4 and "none" not in line
