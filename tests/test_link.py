"""The linker: union, parallel and cross-model linking, combiners, replace; its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from conftest import ort_run
from test_cli import _assert_user_error, _npz

from onnxdecomp import link, replace
from onnxdecomp.cli import main
from onnxdecomp.decompose.head import logodds_from_logits
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.link import combine, link_parallel
from onnxdecomp.runtime import Runner
from onnxdecomp.stats import model_stats


def _run(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def _decompose(case, tmp: Path, name: str, *flags) -> tuple[Path, Path, np.ndarray]:
    """(module folder, calibration .npz, its x) of ``case`` decomposed through the CLI, so
    that the manifest records the parent and the data; labels are the parent's decisions."""
    x = case.calib(240, seed=7)
    y = case.logits(x).argmax(axis=1)
    data = _npz(tmp / f"{name}.npz", x, y)
    out = tmp / name
    res = _run("decompose", case.path, "--data", data, "-o", out, *flags)
    assert res.exit_code == 0, res.output
    return out, data, x


@pytest.fixture(scope="module")
def plain(get_case, tmp_path_factory):
    case = get_case("plain-dynamo")
    folder, data, x = _decompose(case, tmp_path_factory.mktemp("plain"), "m", "--keep", "0.5")
    return case, folder, data, x


@pytest.fixture(scope="module")
def other(get_case, tmp_path_factory):
    """A second parent with the same input: the fixed-batch CNTK-like export (opset 7)."""
    case = get_case("cntk")
    folder, data, x = _decompose(case, tmp_path_factory.mktemp("cntk"), "m", "--keep", "0.6")
    return case, folder, data, x


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("class_*.onnx"))


# ------------------------------------------------------------------------ union


def test_union_of_a_subset_is_a_smaller_sub_task_model(plain) -> None:
    case, folder, _, x = plain
    files = _files(folder)
    result = link([files[3], files[1]])
    assert result.mode == "union" and result.parts[0]["classes"] == [3, 1]
    proto = result.proto
    onnx.checker.check_model(proto, full_check=True)
    assert [o.name for o in proto.graph.output] == ["scores", "label"]
    scores, label = Runner(proto, device="cpu").run(x)
    assert scores.shape == (len(x), 2) and label.dtype == np.int64
    np.testing.assert_array_equal(label, scores.argmax(axis=1))
    assert model_stats(proto).macs < model_stats(str(case.path)).macs
    parent = case.logits(x)[:, [3, 1]]
    mask = np.isin(parent.argmax(axis=1), [0, 1]) & np.isin(case.logits(x).argmax(1), [3, 1])
    assert np.mean(label[mask] == parent[mask].argmax(axis=1)) > 0.8


def test_union_of_all_classes_at_fidelity_one_is_the_parent(plain) -> None:
    """Nothing pruned: the scores are the parent's log-odds within the subset, to 1e-5."""
    case, folder, _, x = plain
    result = link([folder], mode="union", fidelity=1.0)
    assert result.parts[0]["keep"] == 1.0
    scores, _ = Runner(result.proto, device="cpu").run(x)
    np.testing.assert_allclose(scores, logodds_from_logits(case.logits(x)), atol=1e-5)
    assert model_stats(result.proto).macs <= model_stats(str(case.path)).macs


def test_pairs_are_polished_only_while_the_sequential_caches_are_small(
        plain, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pair takes the sequential finish by default; not once the refit's activation
    caches would pass the budget, nor a larger union, unless asked."""
    from onnxdecomp.decompose import Decomposer, Settings
    from onnxdecomp.link import union

    case, _, _, x = plain
    dec = Decomposer(str(case.path), x, case.logits(x).argmax(axis=1), Settings())
    held = dec.sequential_bytes()
    assert held is not None and 0 < held <= union.POLISH_BYTES
    builder = union.UnionBuilder(dec)
    assert builder.polishes((0, 1)) and not builder.polishes((0, 1, 2))
    monkeypatch.setattr(union, "POLISH_BYTES", held - 1)
    assert not builder.polishes((0, 1))
    dec.settings.compensation = "sequential"
    assert builder.polishes((0, 1)) and builder.polishes((0, 1, 2))


def test_union_fidelity_holds_every_class_to_the_target(plain) -> None:
    """A union's fidelity is its worst class's: a subset's tuned union meets the target on
    each of its classes' log-odds, not only on their mean."""
    from onnxdecomp.decompose import Decomposer, Settings
    from onnxdecomp.decompose.fidelity import logodds_fidelity
    from onnxdecomp.link.union import UnionBuilder

    case, _, _, x = plain
    dec = Decomposer(str(case.path), x, case.logits(x).argmax(axis=1), Settings())
    builder, classes = UnionBuilder(dec), (0, 2, 3)
    mask = builder.held_out(classes)
    parent = logodds_from_logits(dec.hold_logits[mask][:, list(classes)])

    def per_class(module) -> list[float]:
        score = dec.hold_score(module.proto, mask)
        return [logodds_fidelity(score[:, j], parent, j) for j in range(len(classes))]

    small = builder.measure(builder.build(classes, 0.3))
    fids = per_class(small)
    assert small.fidelity == pytest.approx(min(fids)) and min(fids) < max(fids)
    tuned = builder.tune(classes, 0.95)
    assert min(per_class(tuned)) >= 0.95


def test_union_scores_are_calibrated_one_map_per_class(plain) -> None:
    """A pruned union's scores are mapped per class (a_j, b_j) to the parent's log-odds
    among the subset; a pair's two maps move one threshold (a_1 = a_0, b_1 = -b_0); its
    measured fidelity is that of the mapped scores, and the union with nothing removed is
    not mapped."""
    from onnxdecomp.decompose import Decomposer, Settings
    from onnxdecomp.link.union import UnionBuilder

    case, _, _, x = plain
    y = case.logits(x).argmax(axis=1)
    dec = Decomposer(str(case.path), x, y, Settings(align=1))
    raw = Decomposer(str(case.path), x, y, Settings(align=1, calibrate_score=False))
    pair = (0, 2)
    mapped = UnionBuilder(dec).measure(UnionBuilder(dec).build(pair, 0.3))
    plain_pair = UnionBuilder(raw).measure(UnionBuilder(raw).build(pair, 0.3))
    assert plain_pair.score_map is None and mapped.score_map is not None
    a, b = mapped.score_map
    assert a[0] == pytest.approx(a[1]) and b[0] == pytest.approx(-b[1])
    assert mapped.fidelity >= plain_pair.fidelity
    mask = UnionBuilder(dec).held_out(pair)
    np.testing.assert_allclose(dec.hold_score(mapped.proto, mask),
                               raw.hold_score(plain_pair.proto, mask) * a + b,
                               rtol=1e-4, atol=1e-4)
    whole = UnionBuilder(dec).measure(UnionBuilder(dec).build(pair, 1.0))
    assert whole.score_map is None


def test_select_classes_is_stable_where_one_logit_dominates() -> None:
    from conftest import F32, make_model
    from onnx import helper

    model = make_model([helper.make_node("Identity", ["input"], ["logits"])],
                       [helper.make_tensor_value_info("input", F32, ["N", 3])],
                       [helper.make_tensor_value_info("logits", F32, ["N", 3])], [])
    import onnx_ir as ir

    from onnxdecomp.link.select_classes import SelectClassesPass
    from onnxdecomp.passes import finalize

    m = ir.serde.deserialize_model(model)
    SelectClassesPass([2, 0], 3)(m)
    z = np.array([[0.0, 1.0, 200.0], [3.0, -1.0, 2.0]], np.float32)
    got = ort_run(finalize(m), z)
    want = logodds_from_logits(z[:, [2, 0]].astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.all(np.isfinite(got))


# ------------------------------------------------------------------------ parallel


def test_parallel_keeps_the_order_given(plain) -> None:
    _, folder, _, x = plain
    files = _files(folder)
    chosen = [files[4], files[0], files[2]]
    result = link(chosen, mode="parallel")
    assert [c["class_index"] for c in result.columns] == [4, 0, 2]
    scores, label = Runner(result.proto, device="cpu").run(x)
    for j, f in enumerate(chosen):
        np.testing.assert_allclose(scores[:, j], ort_run(f, x)[:, 0], atol=1e-5)
    np.testing.assert_array_equal(label, scores.argmax(axis=1))


def test_a_folder_links_in_its_manifest_order(plain) -> None:
    _, folder, _, _ = plain
    manifest = json.loads((folder / "manifest.json").read_text())
    result = link([folder], mode="parallel")
    assert [c["class_index"] for c in result.columns] == [
        m["class_index"] for m in manifest["modules"]]


def test_link_parallel_takes_modules_without_provenance(get_case) -> None:
    from onnxdecomp.decompose import Decomposer, Settings

    case = get_case("bn_conv")
    dec = Decomposer(case.path, case.calib(60), None, Settings(keep=0.5, device="cpu"))
    protos = [dec.build(k, 0.5).proto for k in range(2)]
    scores = ort_run(link_parallel(protos), case.calib(5))
    assert scores.shape == (5, 2)


# ------------------------------------------------------------------------ across models


def test_two_parents_with_calibration_get_a_combiner(plain, other) -> None:
    """Different exporters, opsets and batch axes (one fixed at 1) in one model."""
    _, folder_a, data_a, xa = plain
    _, folder_b, data_b, xb = other
    from onnxdecomp.data import DataSpec

    result = link([folder_a, folder_b], calibrate=[DataSpec(str(data_a)), DataSpec(str(data_b))])
    assert result.mode == "union" and len(result.parts) == 2
    assert result.combiner in combine.COMBINERS
    assert set(result.held_out) == {"router", "input_router", "temperature", "logistic",
                                    "minmax", "argmax"}
    assert result.batch is None  # the CNTK-like module could be made batch-dynamic
    onnx.checker.check_model(result.proto, full_check=True)
    k = len(result.columns)
    scores, label = Runner(result.proto, device="cpu").run(np.concatenate([xa, xb]))
    assert scores.shape == (len(xa) + len(xb), k)
    np.testing.assert_array_equal(label, scores.argmax(axis=1))


@pytest.mark.parametrize("name", ["router", "input_router", "temperature", "logistic",
                                  "minmax", "argmax"])
def test_combiner_in_onnx_matches_numpy(name: str) -> None:
    """What a combiner computes in the graph is what it was selected on (the input router
    reads the graph's input, here the scores themselves)."""
    import onnx_ir as ir
    from conftest import F32, make_model
    from onnx import helper

    from onnxdecomp.passes import finalize

    rng = np.random.default_rng(3)
    groups = np.array([0, 0, 0, 1, 1])
    s = rng.normal(0, 4, (200, 5))
    y = rng.integers(0, 5, 200)
    fitted = combine.fit(name, s, y, groups, x=s)
    model = make_model([helper.make_node("Identity", ["input"], ["scores"])],
                       [helper.make_tensor_value_info("input", F32, ["N", 5])],
                       [helper.make_tensor_value_info("scores", F32, ["N", 5])], [])
    from onnxdecomp.link.output import set_scores

    m = ir.serde.deserialize_model(model)
    set_scores(m, fitted.emit(m.graph, m.graph.outputs[0], 17, m.graph.inputs[0]))
    got = ort_run(finalize(m), s.astype(np.float32))
    np.testing.assert_allclose(got, fitted.apply(s, s), rtol=1e-4, atol=1e-4)


def test_router_decides_the_parent_then_its_argmax() -> None:
    rng = np.random.default_rng(0)
    groups = np.array([0, 0, 1, 1])
    y = rng.integers(0, 4, 400)
    s = rng.normal(-4, 1, (400, 4))
    s[np.arange(400), y] += 8  # the right module says yes
    s[:, 2:] += np.where(y[:, None] >= 2, 0.0, 6.0)  # parent B is loud on A's inputs
    choice = combine.choose("auto", s, y, groups)
    assert choice.held_out["router"] > choice.held_out["argmax"]
    assert choice.combiner.name != "argmax"


def test_input_router_routes_what_the_scores_cannot_tell() -> None:
    """Each parent's modules score the other parent's samples like their own (the scores
    say nothing of the parent); the samples themselves do: the input router routes them,
    the score router guesses."""
    rng = np.random.default_rng(1)
    groups = np.array([0, 0, 1, 1])
    y = rng.integers(0, 4, 600)
    within = y % 2  # the class within its parent
    s = rng.normal(-4, 1, (600, 4))
    s[:, [0, 2]] += 8 * (within == 0)[:, None]
    s[:, [1, 3]] += 8 * (within == 1)[:, None]
    x = rng.normal(0, 1, (600, 1, 4, 4)).astype(np.float32)
    x[:, 0, 0, 0] += 8 * groups[y]  # one pixel tells the data sets apart
    choice = combine.choose("auto", s, y, groups, x=x)
    assert choice.held_out["input_router"] > 0.9 > 0.7 > choice.held_out["router"]
    assert choice.combiner.name == "input_router"
    with pytest.raises(OnnxDecompError, match="input router reads float samples"):
        combine.choose("input_router", s, y, groups, x=np.zeros((600, 4), np.int64))


# ------------------------------------------------------------------------ replace


def test_replace_a_class_by_its_own_module_changes_nothing(get_case, tmp_path: Path) -> None:
    case = get_case("plain-torchscript")
    folder, data, x = _decompose(case, tmp_path, "m", "--keep", "1.0", "--compensation",
                                 "none")
    result = replace(case.path, [(2, folder / "class_2.onnx")])
    scores, label = Runner(result.proto, device="cpu").run(x)
    np.testing.assert_allclose(scores, logodds_from_logits(case.logits(x)), atol=1e-4)
    assert result.columns[2]["replaces"] == 2
    # every column names its parent: check --parent MODEL knows the model again
    from onnxdecomp.modelio import model_sha256
    from onnxdecomp.verify import verify

    assert {c["parent_sha256"] for c in result.columns} == {model_sha256(case.path)}
    (folder / "r.onnx").write_bytes(result.proto.SerializeToString())
    rows = {r.check: r.status for r in verify(folder / "r.onnx", case.path, None).rows}
    assert rows["parent"] == "pass"
    from onnxdecomp.data import DataSpec

    fitted = replace(case.path, [(2, folder / "class_2.onnx")], calibrate=DataSpec(str(data)))
    assert fitted.combiner in ("temperature", "logistic", "minmax", "argmax")
    assert not set(combine.ROUTERS) & set(fitted.held_out)
    # A path is read as link reads one (the command line's --calibrate): the same 240 samples.
    by_path = replace(case.path, [(2, folder / "class_2.onnx")], calibrate=data)
    assert (by_path.combiner, by_path.held_out) == (fitted.combiner, fitted.held_out)
    assert not fitted.notes  # 72 held-out samples
    few = replace(case.path, [(2, folder / "class_2.onnx")],
                  calibrate=DataSpec(str(data), limit=20))
    assert few.notes == ["the combiner was chosen on 6 held-out calibration samples: too few "
                         "to tell; give more calibration data (--limit; 30% of it is held out)"]


# ------------------------------------------------------------------------ CLI


def test_cli_link_union_and_eval_against_the_parent(plain, tmp_path: Path) -> None:
    case, folder, data, _ = plain
    files = _files(folder)
    out = tmp_path / "sub.onnx"
    res = _run("link", files[0], files[2], "-o", out, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["mode"] == "union" and info["macs"] < model_stats(str(case.path)).macs
    assert info["passed"] is True
    res = _run("eval", out, "--data", data, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["parent_restricted_top1"] is not None
    assert abs(report["top1"] - report["parent_restricted_top1"]) < 0.2
    again = tmp_path / "t.onnx"
    res = _run("link", files[0], files[2], "-o", again)
    assert res.stdout.strip().splitlines()[-1] == f"PASSED | onnxdecomp link -o {again}"
    # a union tuned on a handful of held-out samples says so
    res = _run("link", files[0], files[2], "-o", tmp_path / "few.onnx", "--calibrate", data,
               "--limit", "20", "--json")
    assert res.exit_code == 0, res.output
    (part,) = json.loads(res.stdout)["parts"]
    assert part["held_out_samples"] < 30 and any(
        n.startswith(f"the union of classes 0,2 was tuned on {part['held_out_samples']} ")
        for n in json.loads(res.stdout)["notes"])


def test_cli_link_classes_of_a_folder(plain, tmp_path: Path) -> None:
    """--classes picks a folder's modules by index, range or name, in the order given; a
    class no folder has is one line, and nothing is written."""
    import shutil

    _, plain_folder, _, _ = plain
    folder = tmp_path / "named"  # the same modules, their classes named in the manifest
    shutil.copytree(plain_folder, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    for m in manifest["modules"]:
        m["class_name"] = f"c{m['class_index']}"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for flag, want in (("2,0", [2, 0]), ("1-2", [1, 2]), ("c3,1", [3, 1])):
        res = _run("link", folder, "--classes", flag, "-o", tmp_path / "l.onnx", "--json")
        assert res.exit_code == 0, res.output
        assert [c["class_index"] for c in json.loads(res.stdout)["columns"]] == want
    out = tmp_path / "none.onnx"
    _assert_user_error(_run("link", folder, "--classes", "0,zebra", "-o", out),
                       "--classes zebra: no module of the folders given has that class")
    assert not out.exists()


def test_cli_union_whose_calibration_data_is_gone(plain, tmp_path: Path) -> None:
    """The manifest's calibration data moved away: one line naming it and --calibrate (the
    flag as link spells it), nothing written; given with --calibrate, the union is built."""
    import shutil

    _, plain_folder, data, _ = plain
    folder = tmp_path / "m"
    shutil.copytree(plain_folder, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["calibration"]["data"] = str(tmp_path / "moved.npz")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "u.onnx"
    _assert_user_error(_run("link", folder, "--classes", "0,2", "-o", out),
                       f"{tmp_path / 'moved.npz'} is gone: give it (or other data of the "
                       "same classes) with --calibrate")
    assert not out.exists()
    res = _run("link", folder, "--classes", "0,2", "-o", out, "--calibrate", data)
    assert res.exit_code == 0, res.output


def test_class_list_stays_short() -> None:
    from onnxdecomp.cli.options import class_list

    assert class_list([0, 1, 2, 3, 5, 7, 8, 9, 11]) == "0-3,5,7-9,11"
    assert class_list([3, 5]) == "3,5"
    many = [c for c in range(1000) if c % 13]
    assert class_list(many) == ",".join(
        f"{13 * i + 1}-{13 * i + 12}" for i in range(16)) + ",... (923 classes)"
    assert class_list(list(range(0, 40, 2)), limit=4) == "0,2,4,6,... (20 classes)"


def test_cli_replace(plain, get_case, tmp_path: Path) -> None:
    case, folder, data, _ = plain
    out = tmp_path / "r.onnx"
    res = _run("replace", case.path, "--class", 1, "--with", _files(folder)[1], "-o", out,
               "--calibrate", data)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-1] == f"PASSED | onnxdecomp replace -o {out}"
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)


def test_replace_refuses_another_class_of_the_same_model(plain, tmp_path: Path) -> None:
    """Class 1 replaced by the same model's class-2 module gave two class-2 columns."""
    case, folder, _, _ = plain
    _assert_user_error(_run("replace", case.path, "--class", 1, "--with", _files(folder)[2],
                            "-o", tmp_path / "r.onnx"), "cannot decide class 1")
    assert not (tmp_path / "r.onnx").exists()


def test_device_cuda_is_strict_without_a_session_to_run(plain, tmp_path: Path) -> None:
    """``--device cuda`` where nothing is run (a parallel link, a replace without
    --calibrate) still fails where CUDA does not run, as it does elsewhere."""
    from onnxdecomp.runtime import import_ort

    if "CUDAExecutionProvider" in import_ort().get_available_providers():
        pytest.skip("CUDA is available here")
    case, folder, _, _ = plain
    res = _run("link", *_files(folder)[:2], "--mode", "parallel", "-o", tmp_path / "l.onnx",
               "--device", "cuda")
    assert res.exit_code == 4 and "cuda" in res.output, res.output
    res = _run("replace", case.path, "--class", 1, "--with", _files(folder)[1], "-o",
               tmp_path / "r.onnx", "--device", "cuda")
    assert res.exit_code == 4 and "cuda" in res.output, res.output
    assert not list(tmp_path.iterdir())


def test_calibrate_path_reads_as_the_command_line(plain, monkeypatch) -> None:
    """``link(calibrate=path)`` reads 1,000 samples of the path's train split, as
    ``--calibrate`` does (it read the whole test split)."""
    import importlib

    linker = importlib.import_module("onnxdecomp.link.linker")  # ``link`` is the function

    class Seen(Exception):
        pass

    def calibration(groups, specs, parents, device):
        raise Seen(specs)

    monkeypatch.setattr(linker, "Calibration", calibration)
    with pytest.raises(Seen) as seen:
        link(_files(plain[1])[:2], calibrate="some/images")
    ((spec,),) = seen.value.args
    assert (spec.data, spec.split, spec.limit) == ("some/images", "train", 1000)


def test_parent_output_named_scores(plain, tmp_path: Path) -> None:
    """A parent whose logits are already called ``scores``, the name the linked model's
    output takes: united and replaced without the two names clashing."""
    case, _, data, x = plain
    model = onnx.load(str(case.path))
    old = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = ["scores" if o == old else o for o in node.output]
    model.graph.output[0].name = "scores"
    parent = tmp_path / "parent.onnx"
    onnx.save(model, str(parent))
    res = _run("decompose", parent, "--data", data, "-o", tmp_path / "m", "--keep", "0.5")
    assert res.exit_code == 0, res.output
    files = _files(tmp_path / "m")
    united = link(files[:2]).proto
    onnx.checker.check_model(united, full_check=True)
    assert [o.name for o in united.graph.output] == ["scores", "label"]
    replaced = replace(parent, [(1, files[1])]).proto
    onnx.checker.check_model(replaced, full_check=True)
    scores, label = Runner(replaced, device="cpu").run(x)
    assert scores.shape == (len(x), case.num_classes) and label.shape == (len(x),)


@pytest.mark.parametrize("threshold", [0, 1024])
def test_parent_with_external_data(plain, tmp_path: Path, threshold: int) -> None:
    """A parent whose weights sit beside it (``save_as_external_data``; at threshold 0 even
    its shape tensors): decomposed, united from its manifest and checked against it as the
    same parent, and no longer the same once its weights change."""
    case, _, data, x = plain
    folder = tmp_path / "parent"
    folder.mkdir()
    parent = folder / "parent.onnx"
    onnx.save_model(onnx.load(str(case.path)), str(parent), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="parent.data",
                    size_threshold=threshold)
    res = _run("decompose", parent, "--data", data, "-o", tmp_path / "m", "--keep", "0.5")
    assert res.exit_code == 0, res.output
    files, out = _files(tmp_path / "m"), tmp_path / "u.onnx"
    res = _run("link", *files[:2], "-o", out)
    assert res.exit_code == 0 and "union of classes 0,1" in res.output, res.output
    scores, _ = Runner(str(out), device="cpu").run(x)
    assert scores.shape == (len(x), 2)
    res = _run("check", files[0], "--parent", parent)
    assert res.exit_code == 0 and "sha256" in res.output, res.output
    weights = folder / "parent.data"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 1  # one weight's last byte: the same file, other weights
    weights.write_bytes(bytes(raw))
    _assert_user_error(_run("link", *files[:2], "-o", tmp_path / "v.onnx"), "has changed since")


def test_inputs_are_shown_with_their_own_batch_axis() -> None:
    """A recurrent layer's initial state given as an input holds its samples on axis 1:
    messages show it [1, N, 4], not [N, N, 4]."""
    from conftest import build_lstm
    from onnx import TensorProto, helper

    from onnxdecomp.link.merge import _shown

    proto = build_lstm()
    next(n for n in proto.graph.node if n.op_type == "LSTM").input.extend(["", "", "h0"])
    proto.graph.input.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT,
                                                           [1, "N", 4]))
    assert _shown(proto) == "x float [N, 5, 3], h0 float [1, N, 4]"


def test_state_inputs_compare_without_their_own_batch_axis() -> None:
    """Two parents whose state inputs name the batch (axis 1) differently take the same
    inputs; a state of another width does not."""
    from conftest import build_lstm
    from onnx import TensorProto, helper

    from onnxdecomp.link.merge import signatures

    def with_state(batch: str, width: int = 4):
        proto = build_lstm()
        next(n for n in proto.graph.node if n.op_type == "LSTM").input.extend(["", "", "h0"])
        proto.graph.input.append(helper.make_tensor_value_info(
            "h0", TensorProto.FLOAT, [1, batch, width]))
        return proto

    assert signatures(with_state("N")) == signatures(with_state("batch"))
    assert signatures(with_state("N")) != signatures(with_state("N", 5))


def test_a_steps_first_input_compares_without_its_batch_axis() -> None:
    """A one-input model whose sequence is [T, N, F] (an LSTM at layout 0): its batch is
    axis 1, so two parents naming it differently take the same input; axis 0 (the steps)
    was dropped instead."""
    from onnx import TensorProto, helper, numpy_helper

    from onnxdecomp.link.merge import signatures

    def steps_first(batch: str, steps: int = 5):
        w = numpy_helper.from_array(np.zeros((1, 16, 3), np.float32), "W")
        r = numpy_helper.from_array(np.zeros((1, 16, 4), np.float32), "R")
        lstm = helper.make_node("LSTM", ["x", "W", "R"], ["y", "h"], hidden_size=4)
        graph = helper.make_graph(
            [lstm], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                        [steps, batch, 3])],
            [helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, batch, 4])], [w, r])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    assert signatures(steps_first("N")) == signatures(steps_first("batch"))
    assert signatures(steps_first("N")) != signatures(steps_first("N", 6))


def test_errors_write_nothing(plain, get_case, tmp_path: Path) -> None:
    case, folder, data, _ = plain
    files = _files(folder)
    out = tmp_path / "x.onnx"
    # inputs of another shape
    mlp, _, _ = _decompose(get_case("mlp-torchscript"), tmp_path, "mlp", "--keep", "0.5")
    _assert_user_error(_run("link", files[0], _files(mlp)[0], "-o", out, "--mode", "parallel"),
                       "differs from")
    # a model that is not a module
    _assert_user_error(_run("link", case.path, "-o", out), "module")
    # a union without its manifest
    lone = tmp_path / "lone"
    lone.mkdir()
    for f in files[:2]:
        (lone / f.name).write_bytes(f.read_bytes())
    _assert_user_error(_run("link", *sorted(lone.glob("*.onnx")), "-o", out, "--mode", "union"),
                       "--parent")
    # a parent that is not theirs
    _assert_user_error(_run("link", *files[:2], "-o", out, "--parent",
                            get_case("plain-torchscript").path, "--mode", "union"),
                       "is not the parent", "sha256")
    # the manifest's parent changed since the modules were cut from it
    moved = tmp_path / "moved"
    moved.mkdir()
    parent = moved / "parent.onnx"
    parent.write_bytes(case.path.read_bytes())
    res = _run("decompose", parent, "--data", data, "-o", moved / "m", "--keep", "0.5")
    assert res.exit_code == 0, res.output
    other_bytes = onnx.load(str(parent))
    other_bytes.doc_string = "edited"
    onnx.save(other_bytes, str(parent))
    _assert_user_error(_run("link", *_files(moved / "m")[:2], "-o", out), "has changed since")
    # a replace with unmatched flags
    _assert_user_error(_run("replace", case.path, "--class", 1, "--class", 2, "--with",
                            files[1], "-o", out), "--with")
    _assert_user_error(_run("replace", case.path, "--class", 9, "--with", files[1], "-o",
                            out), "class 9")
    assert not out.exists()


def test_a_column_without_calibration_samples_is_refused(plain, other, tmp_path) -> None:
    """A combiner never learns to choose a column it saw no sample of (a class at 0%,
    PASSED); with labels of one parent's columns only, the logistic fit crashed (exit 5)."""
    _, folder_a, _, xa = plain
    _, folder_b, _, xb = other
    k_a = len(_files(folder_a))
    y = np.concatenate([np.arange(len(xa)) % k_a, np.full(len(xb), -1)])  # none of b's
    data = _npz(tmp_path / "cols.npz", np.concatenate([xa, xb]), y)
    with pytest.raises(OnnxDecompError, match="no labelled calibration sample of columns"):
        link([folder_a, folder_b], calibrate=str(data), mode="parallel")


def test_one_module_linked_alone_is_a_detector(plain) -> None:
    """argmax of one column labelled every sample 0; calibration and union mode had nothing
    to do and said nothing."""
    _, folder, data, x = plain
    result = link(_files(folder)[1], calibrate=str(data), mode="union")
    score, label = Runner(result.proto, device="cpu").run(x)
    np.testing.assert_array_equal(label, np.where(score[:, 0] > 0, 0, -1))
    assert any("only module" in n for n in result.notes)
    assert any("calibration data was not used" in n for n in result.notes)


def test_replace_by_another_class_says_so(plain, other) -> None:
    """Allowed (another model's class of another name), but noted; the column keeps the
    model's class name, its module's in ``module_class_name``."""
    case, _, _, _ = plain
    _, folder_b, _, _ = other
    result = replace(str(case.path), [(1, _files(folder_b)[2])])
    assert any("here it decides class 1" in n for n in result.notes)
    assert result.columns[1]["class_name"] == "1"
    assert result.columns[1]["module_class_index"] == 2


def test_link_messages_for_folders(plain, tmp_path: Path) -> None:
    _, folder, _, _ = plain
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(OnnxDecompError, match="no manifest.json in it"):
        link([bare])
    with pytest.raises(OnnxDecompError, match="picks modules of the folders given"):
        link(_files(folder)[:2], classes=[0])


def test_one_calibration_set_gives_each_union_its_own_classes(plain, other, tmp_path) -> None:
    """With one set for several parents (labels: the linked columns), each union drew the
    spec's limit from the whole set, then kept its own classes' samples: a few of them."""
    from onnxdecomp.data import DataSpec

    _, folder_a, _, xa = plain
    _, folder_b, _, xb = other
    k_a, k_b = len(_files(folder_a)), len(_files(folder_b))
    y = np.concatenate([np.arange(len(xa)) % k_a, k_a + np.arange(len(xb)) % k_b])
    data = _npz(tmp_path / "cols.npz", np.concatenate([xa, xb]), y)
    result = link([folder_a, folder_b], calibrate=DataSpec(str(data), "all", 60))
    assert [p["held_out_samples"] for p in result.parts] == [18, 18]  # 30% of 60 each
