"""Tables: a ``.csv`` (or ``.tsv``) of numeric features and a label column, the data of a
dense network on tabular features (scikit-learn's or a PyTorch MLP exported to ONNX).

The first row names the columns when a cell of it is not a number where the next row's is
(a column of class names is words in every row). The label column is the one
``--label-column`` names (or indexes), else the one named ``y``, ``label``, ``labels``,
``target`` or ``class`` (any case); every other column is a feature, in file order, read as
float32 ``[N, F]``. Labels are class indices when they are all integers; otherwise they are
class names, numbered in sorted order, as scikit-learn's ``LabelEncoder`` and a classifier's
``classes_`` number them (so every class of the model must appear, or the indices shift:
give indices then). An empty label cell is -1 (ignored). A first column with no name
holding 0, 1, 2, ... is the row index pandas' ``to_csv`` writes, not a feature. Without a
header or a label column the rows are unlabelled features. A table has no splits: every
split reads it whole.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from onnxdecomp.data.dataset import unlabelled
from onnxdecomp.errors import DataError

LABEL_COLUMNS = ("y", "label", "labels", "target", "class")
TABLE_EXTS = (".csv", ".tsv")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_table(path: Path, label_column: str | None = None
               ) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """(features float32 [N, F], labels int64 [N], class names or None) of a table;
    ``label_column``: the label column's name, or its 0-based index (-1: the last), instead
    of the one named as ``LABEL_COLUMNS``."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read table {path}: {exc}") from exc
    first = text.split("\n", 1)[0]
    delimiter = "\t" if path.name.lower().endswith(".tsv") else ","
    if delimiter == "," and first.count(";") > first.count(","):
        delimiter = ";"  # a spreadsheet saved where the decimal mark is a comma
    rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter)
            if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"table {path} is empty")
    header = None
    if _is_header(rows):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise DataError(f"table {path} has a header and no rows")
    width = len(header) if header else len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            raise DataError(f"table {path}, row {i + 1 + bool(header)}: {len(r)} cells where "
                            f"the {'header' if header else 'first row'} has {width}")
    label_at = None
    if label_column is not None:
        label_at = _column(label_column, header, width, path)
    elif header:
        hits = [i for i, name in enumerate(header) if name.lower() in LABEL_COLUMNS]
        if len(hits) > 1:
            raise DataError(f"table {path} has several label columns "
                            f"({', '.join(header[i] for i in hits)}): keep one")
        label_at = hits[0] if hits else None
    cols = [i for i in range(width) if i != label_at]
    if header and not header[0] and 0 in cols and len(cols) > 1 and \
            [r[0].strip() for r in rows] == [str(i) for i in range(len(rows))]:
        cols.remove(0)  # pandas' to_csv writes its index first, under an empty name
    if not cols:
        raise DataError(f"table {path} has a label column and no feature column")
    x = np.empty((len(rows), len(cols)), np.float32)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            try:
                x[i, j] = float(r[c])
            except ValueError:
                name = f"column {header[c]!r}" if header else f"column {c + 1}"
                hint = "features must be numeric: encode categories before saving"
                if not r[c].strip():
                    hint = "a missing value: fill or drop it before saving"
                elif label_at is None:
                    hint += f"; labels go in a column named {', '.join(LABEL_COLUMNS)}"
                raise DataError(f"table {path}, row {i + 1 + bool(header)}, {name}: {r[c]!r} "
                                f"is not a number ({hint})") from None
    if label_at is None:
        return x, unlabelled(len(rows)), None
    return x, *_labels([r[label_at].strip() for r in rows])


def _is_header(rows: list[list[str]]) -> bool:
    """Whether the first row names the columns: a cell of it is not a number where the
    second row's is (a column of class names is words in every row), or, alone, any cell
    of it is not a number."""
    first = rows[0]
    if len(rows) == 1:
        return not all(_is_number(c) for c in first if c.strip())
    return any(not _is_number(a) and (_is_number(b) or not b.strip())
               for a, b in zip(first, rows[1]) if a.strip())


def _column(key: str, header: list[str] | None, width: int, path: Path) -> int:
    """The index of the column ``key`` names: a header name (exact, else in any case), or
    a 0-based index (-1: the last)."""
    if header:
        for names in (header, [h.lower() for h in header]):
            wanted = key if names is header else key.lower()
            if wanted in names:
                return names.index(wanted)
    try:
        index = int(key)
    except ValueError:
        have = f"its columns are {', '.join(header[:8])}{', ...' if len(header) > 8 else ''}" \
            if header else "it has no header: give the column's index (0-based, -1: last)"
        raise DataError(f"table {path} has no column {key!r} for {{label_column}}: {have}",
                        options=["label_column"]) from None
    if not -width <= index < width:
        raise DataError(f"table {path} has {width} columns: {{label_column}} {index} is "
                        "none of them", options=["label_column"])
    return index % width


def _labels(cells: list[str]) -> tuple[np.ndarray, list[str] | None]:
    """Integer labels as they are (empty: -1); names numbered in sorted order."""
    given = [c for c in cells if c]
    if all(_is_integer(c) for c in given):
        return np.array([int(float(c)) if c else -1 for c in cells], np.int64), None
    names = sorted(set(given))
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[c] if c else -1 for c in cells], np.int64), names


def _is_integer(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return value == int(value) if np.isfinite(value) else False
