"""Tests for benchmarks.common: the recorded command reproduces the run's options."""

from __future__ import annotations

import argparse
import shlex

from benchmarks.common import command


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--keeps", default="0.5")
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--no-steps", action="store_true")
    ap.add_argument("--refine", action=argparse.BooleanOptionalAction, default=None)
    return ap


def test_command_parses_back_to_the_same_options() -> None:
    ap = _parser()
    for argv in (["--model", "m.onnx", "--keeps", "", "--no-steps", "--no-refine"],
                 ["--model", "m.onnx", "--test-limit", "5", "--refine"],
                 ["--model", "m.onnx", "--no-steps"],
                 ["--model", "m.onnx"]):
        args = ap.parse_args(argv)
        line = command("decompose_curve", args, negatable=("refine",))
        assert line.startswith("python -m benchmarks.decompose_curve ")
        assert ap.parse_args(shlex.split(line)[3:]) == args


def test_command_spells_options_as_typed() -> None:
    args = _parser().parse_args(["--model", "m.onnx", "--keeps", "", "--test-limit", "5"])
    assert command("x", args) == "python -m benchmarks.x --model m.onnx --keeps '' --test-limit 5"
