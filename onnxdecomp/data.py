"""The data layer every command uses: read a data spec into model-ready arrays.

A data spec is one of (auto-detected, see :func:`load_data`):

* a ``.npz`` file with ``x`` (inputs exactly as the model takes them), ``y`` (int labels,
  ``(N,)`` or ``(N, T)``, ``-1`` = ignore) and optionally ``class_names``;
* an IDX folder in the MNIST layout (``train-images-idx3-ubyte[.gz]``, ``t10k-...``);
* a folder or ``.tar.gz`` of ``<split>/<class>/*.jpg|*.png`` (possibly under one top folder);
* ``sklearn:digits`` (scikit-learn's bundled 8x8 digits; needs no file).

Every failure is a one-line :class:`~onnxdecomp.errors.DataError` naming the problem and path.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from onnxdecomp.errors import DataError

SPLITS = ("train", "test", "all", "val")
LAYOUTS = ("nchw", "nhwc")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")

# IDX type codes (http://yann.lecun.com/exdb/mnist/): all multi-byte values are big-endian.
_IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_PREFIX = {"train": "train", "test": "t10k"}


# --------------------------------------------------------------------------- raw readers


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_maybe_gzip(path: Path) -> bytes:
    """File bytes, gunzipped when the file starts with the gzip magic (whatever its name)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {_first_line(exc)}") from exc
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"corrupt gzip file {path}: {_first_line(exc)}") from exc


def _parse_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (gzip or plain) into an array of its declared type and shape."""
    data = _read_maybe_gzip(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"not an IDX file (bad magic number {data[:4].hex() or 'empty'}): {path}")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"truncated IDX header: {path}")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"corrupt IDX file: header says shape {dims} ({expected} bytes) but it holds "
            f"{len(data) - header} bytes: {path}"
        )
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return arr.reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def _idx_file(folder: Path, prefix: str, kind: str) -> Path | None:
    """The IDX file for ``prefix`` ('train'/'t10k') and ``kind`` ('images'/'labels'), if any."""
    rank = "3" if kind == "images" else "1"
    for stem in (f"{prefix}-{kind}-idx{rank}-ubyte", f"{prefix}-{kind}.idx{rank}-ubyte"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _is_idx_folder(folder: Path) -> bool:
    """A folder holding MNIST-layout image files for at least one split."""
    return any(_idx_file(folder, p, "images") is not None for p in _IDX_PREFIX.values())


def read_idx(folder: str | Path, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Read an MNIST-layout IDX folder.

    ``split`` 'train' reads ``train-images-idx3-ubyte[.gz]`` + ``train-labels-idx1-ubyte[.gz]``,
    'test' reads the ``t10k-*`` pair, 'all' is train followed by test. Files may be gzipped or
    plain. Returns ``x`` uint8 ``[N, H, W]`` and ``y`` int64 ``[N]``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"IDX folder not found: {folder}")
    if split == "all":
        parts = [read_idx(folder, s) for s in ("train", "test")]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if split not in _IDX_PREFIX:
        raise DataError(
            f"unknown split {split!r} for IDX folder {folder}: it has train, test (or all)"
        )
    prefix = _IDX_PREFIX[split]
    img_path = _idx_file(folder, prefix, "images")
    lbl_path = _idx_file(folder, prefix, "labels")
    if img_path is None or lbl_path is None:
        kind = "images" if img_path is None else "labels"
        rank = "3" if kind == "images" else "1"
        raise DataError(
            f"no {split} {kind} in IDX folder {folder}: expected {prefix}-{kind}-idx{rank}-ubyte"
            "[.gz]"
        )
    x = _parse_idx(img_path)
    y = _parse_idx(lbl_path)
    if x.ndim != 3:
        raise DataError(f"IDX images must be 3-d [N, H, W], got shape {x.shape}: {img_path}")
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(f"IDX labels must be 1-d integers, got {y.dtype} {y.shape}: {lbl_path}")
    if len(x) != len(y):
        raise DataError(
            f"IDX images and labels differ in length ({len(x)} vs {len(y)}) in {folder} "
            f"({split} split)"
        )
    return x, y.astype(np.int64)


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTS)


def _pick_prefix(prefixes: Iterable[tuple[str, ...]], path: Path) -> tuple[str, ...]:
    """The shallowest folder holding ``<split>/<class>/<image>``; two at that depth = ambiguous."""
    prefixes = sorted(set(prefixes), key=lambda p: (len(p), p))
    if not prefixes:
        raise DataError(f"no images found as <split>/<class>/*.jpg|*.png in {path}")
    best = [p for p in prefixes if len(p) == len(prefixes[0])]
    if len(best) > 1:
        where = ", ".join("/".join(p) for p in best[:3])
        raise DataError(f"ambiguous image tree in {path}: split folders under {where}")
    return best[0]


def _decode(blobs: list[tuple[str, bytes | Path]], path: Path) -> np.ndarray:
    """Decode images to uint8 [N, H, W, C]; C=1 when every image is grayscale, else RGB."""
    from PIL import Image, UnidentifiedImageError

    arrays: list[np.ndarray] = []
    for name, blob in blobs:
        try:
            src = blob if isinstance(blob, Path) else io.BytesIO(blob)
            with Image.open(src) as im:
                if im.mode not in ("L", "RGB"):
                    # Palette, alpha, 16-bit, CMYK...: reduce to 8-bit gray or RGB.
                    gray = im.mode in ("1", "LA", "I", "I;16", "F")
                    im = im.convert("L" if gray else "RGB")
                arrays.append(np.asarray(im, dtype=np.uint8))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"cannot decode image {name} in {path}: {_first_line(exc)}") from exc
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) > 1:
        raise DataError(f"images differ in size in {path}: {sorted(sizes)[:3]}")
    if any(a.ndim == 3 for a in arrays):
        # Mixed gray and RGB: promote gray to RGB so every sample has the same shape.
        arrays = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=-1) for a in arrays]
    else:
        arrays = [a[..., None] for a in arrays]
    return np.stack(arrays)


def read_image_tree(
    path: str | Path, split: str = "test"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a folder or ``.tar[.gz]`` holding ``<split>/<class>/*.jpg|*.png``.

    The split folders may sit under one top folder (as in ``cifar10-jpg-q75.tar.gz``).
    Class names are the sorted class folder names, taken over every split so that label
    ``k`` means the same class in train and test. ``split='all'`` reads every split.
    Order is deterministic: by split, then class, then file name. Returns ``x`` uint8
    ``[N, H, W, C]`` (C=3 for RGB, 1 when all images are grayscale), ``y`` int64 ``[N]``
    and the class names. A tar is streamed once and only the requested split is kept.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"image data not found: {path}")
    # (prefix, split, class) seen anywhere, and the wanted images with their bytes or path.
    classes: set[tuple[tuple[str, ...], str, str]] = set()
    files: list[tuple[tuple[str, ...], str, str, str, bytes | Path]] = []
    want = None if split == "all" else split

    def note(parts: tuple[str, ...], blob: Callable[[], bytes | Path]) -> None:
        if len(parts) < 3 or not _is_image_name(parts[-1]):
            return
        prefix, sp, cls, name = parts[:-3], parts[-3], parts[-2], parts[-1]
        classes.add((prefix, sp, cls))
        if want is None or sp == want:
            files.append((prefix, sp, cls, name, blob()))

    if path.is_dir():
        for root, dirs, names in os.walk(path):
            dirs.sort()
            rel = Path(root).relative_to(path).parts
            for name in names:
                note(rel + (name,), lambda r=root, n=name: Path(r) / n)
    else:
        try:
            with tarfile.open(path, "r:*") as tf:
                for member in tf:
                    if not member.isfile():
                        continue
                    # str.split, not PurePosixPath: this runs for all 60k CIFAR members.
                    parts = tuple(p for p in member.name.split("/") if p not in ("", "."))

                    def blob(m: tarfile.TarInfo = member) -> bytes:
                        f = tf.extractfile(m)
                        return f.read() if f is not None else b""

                    note(parts, blob)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DataError(f"cannot read archive {path}: {_first_line(exc)}") from exc

    prefix = _pick_prefix((c[0] for c in classes), path)
    splits = sorted({c[1] for c in classes if c[0] == prefix})
    if want is not None and want not in splits:
        raise DataError(f"unknown split {split!r} in {path}: it has {', '.join(splits)} (or all)")
    class_names = sorted({c[2] for c in classes if c[0] == prefix})
    index = {c: i for i, c in enumerate(class_names)}
    chosen = sorted((f for f in files if f[0] == prefix), key=lambda f: (f[1], f[2], f[3]))
    if not chosen:
        raise DataError(f"no images in split {split!r} of {path}")
    x = _decode([("/".join(f[0] + f[1:4]), f[4]) for f in chosen], path)
    y = np.array([index[f[2]] for f in chosen], dtype=np.int64)
    return x, y, class_names


# --------------------------------------------------------------------------- full layer


@dataclass
class Preprocess:
    """How raw images become model input (ignored for ``.npz``, whose ``x`` is used as stored).

    ``x = x.astype(float) * scale``, then ``(x - mean) / std`` per channel (or one value for
    all channels), then the ``layout`` and the final ``dtype``. ``layout=None`` means NCHW and
    ``dtype=None`` means float32 for images and "as stored" for ``.npz``; the None defaults
    let :func:`load_data` tell an explicit ``--dtype float32`` from no ``--dtype`` at all.
    """

    scale: float = 1.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: str | None = None  # "nchw" or "nhwc"; None = nchw
    dtype: str | None = None  # float32, float16, float64, int64, uint8 ...; None = see above

    @property
    def is_identity(self) -> bool:
        """True when no value change is asked for (scale 1, no mean, no std)."""
        return self.scale == 1.0 and self.mean is None and self.std is None


@dataclass
class Dataset:
    """Inputs exactly as the model takes them, with labels."""

    x: np.ndarray
    y: np.ndarray  # int64, (N,) or (N, T) per-timestep labels; -1 = ignore
    class_names: list[str] | None
    source: str  # human description, e.g. "mnist IDX test split (10000 samples)"

    def __len__(self) -> int:
        return int(self.x.shape[0])


def _target_dtype(name: str) -> np.dtype:
    """The numpy dtype for a ``--dtype`` name; only numeric types make sense as model input."""
    try:
        dt = np.dtype(name)
    except TypeError as exc:
        raise DataError(
            f"unknown dtype {name!r}: use float32, float16, float64, int64, int32, uint8 ..."
        ) from exc
    if dt.kind not in "fiu":
        raise DataError(f"unsupported dtype {name!r}: only float and integer types")
    return dt


def _channel_values(values: tuple[float, ...], channels: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size not in (1, channels):
        raise DataError(f"--{what} has {arr.size} values but the images have {channels} channel(s)")
    return arr


def apply_preprocess(images: np.ndarray, pre: Preprocess) -> np.ndarray:
    """Turn raw images ``[N, H, W]`` or ``[N, H, W, C]`` into model input per ``pre``."""
    x = images[..., None] if images.ndim == 3 else images  # [N, H, W, C]
    target = _target_dtype(pre.dtype or "float32")
    layout = pre.layout or "nchw"
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}: choose nchw or nhwc")
    if not pre.is_identity:
        # float32 arithmetic keeps CIFAR train (50k x 3072) at 600 MB instead of 1.2 GB;
        # float64 only where the result needs it.
        work = np.float64 if target == np.float64 or target.kind in "iu" else np.float32
        x = x.astype(work) * work(pre.scale)
        channels = x.shape[-1]
        if pre.mean is not None:
            x -= _channel_values(pre.mean, channels, "mean").astype(work)
        if pre.std is not None:
            std = _channel_values(pre.std, channels, "std")
            if np.any(std == 0):
                raise DataError("--std has a zero value: cannot divide by zero")
            x /= std.astype(work)
    if layout == "nchw":
        x = x.transpose(0, 3, 1, 2)
    if target.kind in "iu" and x.dtype.kind == "f":
        x = np.rint(x)
        info = np.iinfo(target)
        if x.size and (x.min() < info.min or x.max() > info.max):
            raise DataError(
                f"--dtype {target.name}: preprocessed values {x.min():g}..{x.max():g} do not fit"
            )
    return np.ascontiguousarray(x.astype(target, copy=False))


def _digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x, y = d.images, d.target.astype(np.int64)  # images: float64 [N, 8, 8], values 0..16
    if split == "all":
        return x, y
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r} for sklearn:digits: it has train, test, all")
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=0.25, random_state=0, stratify=y)
    keep = np.sort(tr if split == "train" else te)  # keep the original order
    return x[keep], y[keep]


def _as_int_labels(y: np.ndarray, where: str) -> np.ndarray:
    """Integer labels as int64; integral floats (0.0, 1.0...) are accepted, others are not."""
    if y.dtype.kind in "iu":
        return y.astype(np.int64, copy=False)
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        return y.astype(np.int64)
    raise DataError(f"labels must be integers, got {y.dtype} in {where}")


def _load_npz(path: Path, pre: Preprocess) -> Dataset:
    if not pre.is_identity or pre.layout is not None:
        raise DataError(
            f"{path}: .npz inputs are used exactly as stored; --scale/--mean/--std/--layout "
            "only apply to image data (preprocess before saving the npz)"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            missing = [k for k in ("x", "y") if k not in keys]
            if missing:
                raise DataError(
                    f"npz file {path} has no array {' or '.join(missing)!r} "
                    f"(it has: {', '.join(sorted(keys)) or 'nothing'})"
                )
            x, y = z["x"], z["y"]
            names = (
                [str(n) for n in z["class_names"].reshape(-1)] if "class_names" in keys else None
            )
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        # ValueError also covers pickled (object) arrays, which we never unpickle.
        raise DataError(f"cannot read npz file {path}: {_first_line(exc)}") from exc
    if x.ndim == 0 or y.ndim not in (1, 2):
        raise DataError(
            f"npz file {path}: x must be [N, ...] and y (N,) or (N, T); "
            f"got x {x.shape}, y {y.shape}"
        )
    y = _as_int_labels(y, str(path))
    if pre.dtype is not None:  # explicit --dtype: the user asked for the conversion
        x = x.astype(_target_dtype(pre.dtype), copy=False)
    return Dataset(x, y, names, f"{path.name} npz ({len(x)} samples)")


def _detect(spec: str) -> str:
    """Which reader handles ``spec``: 'sklearn', 'npz', 'idx' or 'tree'."""
    if spec.startswith("sklearn:"):
        return "sklearn"
    path = Path(spec)
    if not path.exists():
        raise DataError(f"data not found: {spec}")
    name = path.name.lower()
    if path.is_file():
        if name.endswith(".npz"):
            return "npz"
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            return "tree"
        if zipfile.is_zipfile(path):  # an npz under another name
            return "npz"
        if tarfile.is_tarfile(path):
            return "tree"
    elif path.is_dir():
        if _is_idx_folder(path):
            return "idx"
        return "tree"
    raise DataError(
        f"unrecognised data {spec}: expected a .npz file, an IDX folder, a folder or .tar.gz "
        "of <split>/<class>/images, or sklearn:digits"
    )


def _stratified_subsample(y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``limit`` samples, class proportions kept (largest remainder)."""
    n = len(y)
    if limit >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if y.ndim != 1:  # per-timestep labels have no single class to stratify on
        return np.sort(rng.choice(n, size=limit, replace=False))
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * (limit / n)
    quota = np.floor(exact).astype(np.int64)
    short = limit - int(quota.sum())
    # Hand the leftover places to the largest remainders; ties go to the bigger class.
    order = np.lexsort((-counts, -(exact - quota)))
    quota[order[:short]] += 1
    picked = [
        rng.choice(np.flatnonzero(y == c), size=int(q), replace=False)
        for c, q in zip(classes, quota, strict=True)
        if q > 0
    ]
    return np.sort(np.concatenate(picked))


def load_data(
    spec: str,
    split: str = "test",
    pre: Preprocess | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a data spec (see the module docstring) as model-ready arrays.

    Image formats (IDX, image trees, ``sklearn:digits``) get ``pre`` applied; the default is
    raw pixel values as float32 NCHW, since our models normalise inside the graph. IDX and
    digits images have one channel: ``[N, 1, H, W]`` (or ``[N, H, W, 1]``). An ``.npz`` is
    used exactly as stored (``split`` is ignored); only an explicit ``pre.dtype`` converts
    its ``x``, and scale/mean/std/layout raise, since silently ignoring them would mislead.
    ``limit`` keeps at most that many samples: a stratified subsample drawn with
    ``np.random.default_rng(seed)``, in the original order.
    """
    pre = pre or Preprocess()
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    if limit is not None and limit < 1:
        raise DataError(f"--limit must be at least 1, got {limit}")
    kind = _detect(spec)
    images: np.ndarray | None = None  # raw images, preprocessed after any subsampling
    if kind == "sklearn":
        name = spec.split(":", 1)[1]
        if name != "digits":
            raise DataError(f"unknown scikit-learn data set {spec!r}: only sklearn:digits")
        images, y = _digits(split)
        ds = Dataset(images, y, [str(i) for i in range(10)], "")
        what = f"sklearn digits {split} split"
    elif kind == "npz":
        ds = _load_npz(Path(spec), pre)
        what = f"{Path(spec).name} npz"
    elif kind == "idx":
        images, y = read_idx(spec, split)
        n_cls = max(10, int(y.max()) + 1) if len(y) else 10
        # IDX files carry no class names (Fashion-MNIST's neither): digits, never guesses.
        ds = Dataset(images, y, [str(i) for i in range(n_cls)], "")
        what = f"{Path(spec).resolve().name} IDX {split} split"
    else:
        images, y, names = read_image_tree(spec, split)
        ds = Dataset(images, y, names, "")
        what = f"{Path(spec).name} images {split} split"
    check_dataset(ds, None, where=spec)  # lengths must agree before subsampling
    total = len(ds.x)
    if limit is not None and limit < total:
        keep = _stratified_subsample(ds.y, limit, seed)
        ds = replace(ds, x=ds.x[keep], y=ds.y[keep])
        ds.source = f"{what} ({len(keep)} of {total} samples, stratified, seed {seed})"
    else:
        ds.source = f"{what} ({total} samples)"
    if images is not None:  # preprocess only what is kept: --limit stays cheap on big sets
        ds.x = apply_preprocess(ds.x, pre)
        if not pre.is_identity:  # e.g. --std 1e-320 can overflow to inf
            check_dataset(ds, None, where=spec)
    return ds


def fit_to_input(ds: Dataset, input_shape: tuple, input_dtype) -> Dataset:
    """Adapt ``ds.x`` to the model's input when that is unambiguous.

    * Samples of rank >= 2 (``[N, 1, H, W]``, ``[N, H, W, C]``, ``[N, H, W]``) fed to a rank-2
      input ``[N, F]`` with ``F == prod(sample shape)`` are flattened to ``[N, F]``.
    * ``[N, H, W]`` fed to a rank-4 input gets its channel axis where the model has a 1
      (``[N, 1, H, W]`` or ``[N, H, W, 1]``).
    * Float data is cast to the model's float dtype; floats are never cast to integers.

    Anything else is left alone: ``runtime.Runner.check_input`` reports it in one line.
    """
    x = ds.x
    shape = tuple(input_shape)
    want = np.dtype(input_dtype)

    def fixed(d) -> bool:
        return isinstance(d, (int, np.integer)) and d > 0

    if len(shape) == 2 and x.ndim >= 3 and fixed(shape[1]):
        if int(np.prod(x.shape[1:])) == shape[1]:
            x = x.reshape(x.shape[0], -1)
    elif len(shape) == 4 and x.ndim == 3:
        nchw = fixed(shape[1]) and shape[1] == 1 and _dims_fit(x.shape[1:], shape[2:])
        nhwc = fixed(shape[3]) and shape[3] == 1 and _dims_fit(x.shape[1:], shape[1:3])
        if nchw and not nhwc:
            x = x[:, None]
        elif nhwc and not nchw:
            x = x[..., None]
    if x.dtype.kind == "f" and want.kind == "f" and x.dtype != want:
        x = x.astype(want)
    return ds if x is ds.x else replace(ds, x=x)


def _dims_fit(have: tuple, want: tuple) -> bool:
    """Each wanted dim is symbolic or equal to the data's."""
    return all(
        not (isinstance(w, (int, np.integer)) and w > 0) or h == w
        for h, w in zip(have, want, strict=True)
    )


def check_dataset(ds: Dataset, num_classes: int | None, where: str | None = None) -> None:
    """One-line DataError for data that cannot be used.

    Checks: empty data; x and y lengths differing; NaN or inf in float ``x``; labels that are
    not integers; labels outside ``[0, num_classes)`` other than -1 (``num_classes=None``
    only rejects labels below -1).
    """
    src = where or ds.source or "data"
    x, y = ds.x, ds.y
    if x.ndim == 0 or x.shape[0] == 0:
        raise DataError(f"data is empty: no samples in {src}")
    if y.ndim == 0 or y.shape[0] != x.shape[0]:
        raise DataError(
            f"x and y differ in length: {x.shape[0]} inputs but "
            f"{y.shape[0] if y.ndim else 0} labels in {src}"
        )
    if x.dtype.kind in "fc":
        bad = ~np.isfinite(x)
        if bad.any():
            rows = int(bad.reshape(len(x), -1).any(axis=1).sum())
            raise DataError(f"data has NaN or inf values in {rows} sample(s) of {src}")
    if y.dtype.kind not in "iu":
        raise DataError(f"labels must be integers, got {y.dtype} in {src}")
    valid = y[y != -1]
    if valid.size == 0:
        return
    lo, hi = int(valid.min()), int(valid.max())
    if lo < 0:
        raise DataError(f"label {lo} is negative in {src} (only -1 = ignore is allowed)")
    if num_classes is not None and hi >= num_classes:
        raise DataError(
            f"label {hi} is out of range: the model has {num_classes} classes "
            f"(labels 0..{num_classes - 1}, -1 = ignore) in {src}"
        )


# --------------------------------------------------------------------------- CLI glue


def _parse_floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None or text == "":
        return None
    try:
        return tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError as exc:
        raise DataError(
            f"{flag} must be comma-separated numbers like 0.5,0.5,0.5: {text!r}"
        ) from exc


def add_data_options(
    f: Callable | None = None, *, default_split: str = "test", default_limit: int | None = None
) -> Callable:
    """Click decorator adding the shared data options (``--data``, ``--split`` ...) to a command.

    Use bare (``@add_data_options``) or with another default split
    (``@add_data_options(default_split="train")`` for calibration data).
    """
    import click

    if f is None:
        return lambda g: add_data_options(
            g, default_split=default_split, default_limit=default_limit
        )

    options = [
        click.option(
            "--data",
            "data",
            required=True,
            metavar="SPEC",
            help="Data: a .npz (x, y), an IDX folder, a folder or .tar.gz of "
            "<split>/<class>/images, or sklearn:digits.",
        ),
        click.option(
            "--split",
            type=click.Choice(SPLITS),
            default=default_split,
            show_default=True,
            help="Which split to read (ignored for .npz).",
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
            "--scale", type=float, default=None, help="Multiply image pixels by F (e.g. 0.00392)."
        ),
        click.option("--mean", default=None, metavar="A,B,C", help="Per-channel mean to subtract."),
        click.option("--std", default=None, metavar="A,B,C", help="Per-channel std to divide by."),
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


def dataset_from_options(opts: dict, seed: int = 0) -> Dataset:
    """Build a :class:`Preprocess` from the click values of :func:`add_data_options` and load."""
    scale = opts.get("scale")
    pre = Preprocess(
        scale=1.0 if scale is None else float(scale),
        mean=_parse_floats(opts.get("mean"), "--mean"),
        std=_parse_floats(opts.get("std"), "--std"),
        layout=opts.get("layout"),
        dtype=opts.get("dtype"),
    )
    return load_data(
        opts["data"], split=opts.get("split") or "test", pre=pre, limit=opts.get("limit"), seed=seed
    )


__all__ = [
    "Dataset",
    "Preprocess",
    "add_data_options",
    "apply_preprocess",
    "check_dataset",
    "dataset_from_options",
    "fit_to_input",
    "load_data",
    "read_idx",
    "read_image_tree",
]
