"""What every benchmark records: where results go and the command that reproduces a run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def command(module: str, args: argparse.Namespace, negatable: tuple[str, ...] = ()) -> str:
    """``python -m benchmarks.MODULE`` with the options of ``args`` as typed: dashes in
    names, an empty value as '', a true flag bare, a false one as ``--no-NAME`` when it is one
    of ``negatable`` (``BooleanOptionalAction``) and left out otherwise (``store_true``'s
    default), None left out."""
    parts = [f"python -m benchmarks.{module}"]
    for key, value in vars(args).items():
        flag = "--" + key.replace("_", "-")
        if value is None or (value is False and key not in negatable):
            continue
        if value is True:
            parts.append(flag)
        elif value is False:
            parts.append(f"--no-{key.replace('_', '-')}")
        else:
            parts.append(f"{flag} {value if value != '' else repr('')}")
    return " ".join(parts)


def write_result(name: str, result: dict) -> Path:
    """``results/NAME.json``, indented as every result file is."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path
