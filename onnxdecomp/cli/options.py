"""Options shared by the commands (Polygraphy's argument groups), and progress on stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import click
import numpy as np

from onnxdecomp.data import LAYOUTS, SPLITS, Dataset, DataSpec, Preprocess
from onnxdecomp.data.geometry import parse_size
from onnxdecomp.data.preprocess import CHANNEL_ORDERS
from onnxdecomp.errors import DataError, OnnxDecompError
from onnxdecomp.modelio import check_writable
from onnxdecomp.runtime import DEVICES


def device_option(f: Callable) -> Callable:
    return click.option(
        "--device", type=click.Choice(DEVICES), default="auto", show_default=True,
        help="auto: CUDA when ONNX Runtime really gets it, else CPU; cuda: CUDA or fail.",
    )(f)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(f)


def refuse_overwrite(out: str, inputs: Sequence[str]) -> None:
    """Stop before ``-o`` replaces an input, or a file of an input folder, however the two
    paths are spelt (``./a.onnx``, a link to it): inputs are never overwritten; nor when
    ``out``'s folder cannot be written (said before the work)."""
    for given in inputs if os.path.isfile(out) else ():  # else nothing there to lose
        path = Path(given)
        files = path.iterdir() if path.is_dir() else [path]
        if any(f.is_file() and os.path.samefile(out, f) for f in files):
            where = "" if path.is_file() else f" (a file of the input folder {given})"
            raise OnnxDecompError(f"-o would overwrite an input{where}")
    check_writable(out)


class Progress:
    """A progress bar on stderr that stays quiet when stderr is not a terminal."""

    def __init__(self, label: str, total: int) -> None:
        self.bar = click.progressbar(length=total, label=label, file=sys.stderr,
                                     show_eta=True) if sys.stderr.isatty() else None
        self.last = 0
        if self.bar:
            self.bar.__enter__()

    def __call__(self, n: int) -> None:
        if self.bar:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar:
            self.bar.__exit__(None, None, None)


def _parse_floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None or text == "":
        return None
    try:
        return tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError as exc:
        raise DataError(
            f"{flag} must be comma-separated numbers like 0.5,0.5,0.5: {text!r}"
        ) from exc


DATA_HELP = ("a .npz (x, y; x alone: unlabelled; a model with several inputs: an array "
             "named after each instead of x), an IDX folder, a folder, .tar.gz or .zip of "
             "[<split>/]<class>/images (images alone: unlabelled), a .csv of features and a "
             "label column, a .npy of inputs (unlabelled), or sklearn:digits")


def _nonzero(ctx, param, value: float | None) -> float | None:
    if value is not None and not (np.isfinite(value) and value != 0):
        raise click.BadParameter(f"{value}: give a finite, non-zero factor")
    return value


def add_data_options(
    f: Callable | None = None, *, default_split: str = "test", default_limit: int | None = None,
    flag: str = "--data", required: bool = True, help: str = "Data: " + DATA_HELP + ".",
    multiple: bool = False,
) -> Callable:
    """Click decorator adding the shared data options (``--data``, ``--split`` ...) to a command.

    Use bare (``@add_data_options``) or with another default split
    (``@add_data_options(default_split="train")`` for calibration data); ``flag`` names the
    spec option (``--calibrate`` for the linker, optional there).
    """
    if f is None:
        return lambda g: add_data_options(
            g, default_split=default_split, default_limit=default_limit, flag=flag,
            required=required, help=help, multiple=multiple,
        )

    options = [
        click.option(
            flag,
            "data",
            required=required,  # no default=None: click 8.3 on reads it as a default given
            metavar="SPEC",
            help=help,
            multiple=multiple,
        ),
        click.option(
            "--split",
            default=default_split,
            show_default=True,
            metavar="NAME",
            help=f"Which split to read: {', '.join(SPLITS)}, or an image tree's split folder "
                 "(training_set, ...). An .npz has splits only in Keras' layout: x_train, "
                 "y_train, x_test, ...",
        ),
        click.option(
            "--limit",
            type=click.IntRange(min=1),
            default=default_limit,
            show_default=default_limit is not None,
            metavar="N",
            help="Use at most N samples (stratified, deterministic subsample).",
        ),
        click.option(
            "--scale", type=float, default=None, callback=_nonzero,
            help="Multiply image pixels by F (e.g. 0.00392)."
        ),
        click.option("--mean", default=None, metavar="A,B,C", help="Per-channel mean to subtract."),
        click.option("--std", default=None, metavar="A,B,C", help="Per-channel std to divide by."),
        click.option(
            "--label-column", default=None, metavar="NAME",
            help="A table's label column: its name, or its 0-based index (-1: the last) "
                 "[default: the one named y, label, labels, target or class].",
        ),
        click.option(
            "--resize", default=None, metavar="N|H,W",
            help="Resize each image: N on the shorter side (aspect kept) or exactly H,W "
                 "(bilinear, as torchvision's Resize); images of any size then fit.",
        ),
        click.option(
            "--crop", default=None, metavar="H,W",
            help="Crop the centre H,W of each image, after --resize.",
        ),
        click.option(
            "--channels", type=click.Choice(["1", "3"]), default=None,
            help="Make every image gray (1) or RGB (3) [default: as decoded].",
        ),
        click.option(
            "--channel-order", type=click.Choice(CHANNEL_ORDERS), default=None,
            help="Colour channel order the model takes: bgr for Caffe's and OpenCV's models "
                 "(--mean and --std are then in that order) [default: rgb].",
        ),
        click.option(
            "--layout",
            type=click.Choice(LAYOUTS),
            default=None,
            help="Image layout the model takes [default: nchw].",
        ),
        click.option(
            "--dtype",
            default=None,
            metavar="NAME",
            help="Input dtype, e.g. float32, float16, int64 [default: float32 for images, "
            "as stored for .npz].",
        ),
    ]
    for opt in reversed(options):  # click applies decorators bottom-up; keep --help in order
        f = opt(f)
    return f


def parse_class_keys(text: str | None, names: list[str] | None = None
                     ) -> list[int | str] | None:
    """``--classes``: comma-separated class indices (``-1`` too: the caller names it out of
    range), ``names`` (kept as text), ranges of indices (``0-9``), and any other text as
    a name for the caller to look up; None for no text."""
    if text is None:
        return None
    if not text.strip(" ,"):
        raise OnnxDecompError("--classes names no class (leave it out for every class)")
    out: list[int | str] = []
    for c in (c.strip() for c in text.split(",")):
        lo, _, hi = c.partition("-")
        if c.lstrip("-").isdigit():
            out.append(int(c))
        elif names and c in names:
            out.append(c)
        elif lo.isdigit() and hi.isdigit() and int(lo) <= int(hi):
            out.extend(range(int(lo), int(hi) + 1))
        elif c:
            out.append(c)
    return out


def class_list(classes: list[int], limit: int = 16) -> str:
    """Classes as a short text: runs of three or more as ranges (0-5), at most ``limit``
    items, then how many classes in all (a many-class model's summaries stay one line)."""
    items: list[str] = []
    i = 0
    while i < len(classes):
        j = i
        while j + 1 < len(classes) and classes[j + 1] == classes[j] + 1:
            j += 1
        items += [f"{classes[i]}-{classes[j]}"] if j - i >= 2 else map(str, classes[i:j + 1])
        i = j + 1
    if len(items) > limit:
        return ",".join(items[:limit]) + f",... ({len(classes)} classes)"
    return ",".join(items)


def specs_from_options(opts: dict, seed: int = 0) -> list[DataSpec]:
    """Every spec of a ``multiple=True`` option group, sharing its other options."""
    return [spec_from_options({**opts, "data": d}, seed) for d in opts.get("data") or ()]


def spec_from_options(opts: dict, seed: int = 0) -> DataSpec | None:
    """The :class:`DataSpec` of the click values of :func:`add_data_options` (None when the
    optional spec was not given)."""
    if opts.get("data") is None:
        return None
    scale = opts.get("scale")
    pre = Preprocess(
        scale=1.0 if scale is None else float(scale),
        mean=_parse_floats(opts.get("mean"), "--mean"),
        std=_parse_floats(opts.get("std"), "--std"),
        layout=opts.get("layout"),
        dtype=opts.get("dtype"),
        resize=parse_size(opts.get("resize"), "resize"),
        crop=parse_size(opts.get("crop"), "crop", pair_only=True),
        channels=None if opts.get("channels") is None else int(opts["channels"]),
        channel_order=opts.get("channel_order"),
    )
    return DataSpec(opts["data"], opts.get("split") or "test", opts.get("limit"), seed, pre,
                    opts.get("label_column"))


def dataset_from_options(opts: dict, seed: int = 0) -> Dataset:
    """Load the data the click values of :func:`add_data_options` name."""
    return spec_from_options(opts, seed).load()
