"""Readers of the raw data formats: IDX folders (MNIST layout), image trees (a folder or
tar of ``<split>/<class>/*.jpg|*.png``) and scikit-learn's digits (``.npz`` and ``.npy``
files: ``arrays``).

They return raw arrays; every failure is a one-line :class:`~onnxdecomp.errors.DataError`
naming the problem and path.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from onnxdecomp.data.dataset import unlabelled
from onnxdecomp.errors import DataError, first_line

# torchvision's ImageFolder's (IMG_EXTENSIONS): a folder that it reads, this reads whole.
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

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


def _read_maybe_gzip(path: Path) -> bytes:
    """File bytes, gunzipped when the file starts with the gzip magic (whatever its name)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {first_line(exc)}") from exc
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"corrupt gzip file {path}: {first_line(exc)}") from exc


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


def is_idx_folder(folder: Path) -> bool:
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
        raise DataError(f"no images found as [<split>/]<class>/*.jpg|*.png in {path}")
    best = [p for p in prefixes if len(p) == len(prefixes[0])]
    if len(best) > 1:
        where = ", ".join("/".join(p) for p in best[:3])
        raise DataError(f"ambiguous image tree in {path}: split folders under {where}")
    return best[0]


# ``fit(image, name)``: a decoded PIL image converted, resized or cropped (geometry.py).
Fit = Callable[[object, str], object]


def _decode(blobs: list[tuple[str, bytes | Path]], path: Path,
            fit: Fit | None = None) -> np.ndarray:
    """Decode images to uint8 [N, H, W, C]; C=1 when every image is grayscale, else RGB.
    ``fit`` is applied to each image as it is decoded."""
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
                if fit is not None:
                    im = fit(im, name)
                arrays.append(np.asarray(im, dtype=np.uint8))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"cannot decode image {name} in {path}: {first_line(exc)}") from exc
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) > 1:
        seen = ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:3])
        raise DataError(
            f"images differ in size in {path}: {seen}"
            f"{' ...' if len(sizes) > 3 else ''}: give the size the model takes, {{resize}} H,W "
            "(or {resize} N {crop} H,W: the shorter side to N, then the centre)",
            options=["resize", "crop"])
    if any(a.ndim == 3 for a in arrays):
        # Mixed gray and RGB: promote gray to RGB so every sample has the same shape.
        arrays = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=-1) for a in arrays]
    else:
        arrays = [a[..., None] for a in arrays]
    return np.stack(arrays)


def is_image_zip(path: Path) -> bool:
    """A zip holding images and no ``.npy`` arrays (an ``.npz`` is a zip of ``.npy``)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n.lower() for n in zf.namelist()]
    except (zipfile.BadZipFile, OSError):
        return False
    return not any(n.endswith(".npy") for n in names) and any(
        _is_image_name(n.rsplit("/", 1)[-1]) for n in names)


def read_image_tree(
    path: str | Path, split: str = "test",
    select: Callable[[np.ndarray], np.ndarray] | None = None, fit: Fit | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Read a folder, ``.tar[.gz]`` or ``.zip`` holding ``<split>/<class>/*.jpg|*.png``.

    The split folders may sit under one top folder (as in ``cifar10-jpg-q75.tar.gz``). A
    tree of ``<class>/*.png`` with no split folders (torchvision's ImageFolder) is read
    whole whatever the split asked, and so are images with no folder at all: unlabelled
    (every label -1, no class names).
    Class names are the sorted class folder names, taken over every split so that label
    ``k`` means the same class in train and test. ``split='all'`` reads every split.
    Order is deterministic: by split, then class, then file name. Returns ``x`` uint8
    ``[N, H, W, C]`` (C=3 for RGB, 1 when all images are grayscale), ``y`` int64 ``[N]``
    and the class names. A tar is streamed once and only the requested split is kept.
    ``select(y)`` (the labels of every image of the split) gives the sorted indices of the
    images to decode: ``--limit`` then decodes only what it keeps (1,000 of CIFAR-10's
    50,000 training images: 2.2 s instead of 5.9). ``fit(image, name)`` converts, resizes or
    crops each decoded image (``--channels``, ``--resize``, ``--crop``).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"image data not found: {path}")
    # (prefix, split, class) seen anywhere, and the wanted images with their bytes or path.
    classes: set[tuple[tuple[str, ...], str, str]] = set()
    files: list[tuple[tuple[str, ...], str, str, str, bytes | Path]] = []
    want = None if split == "all" else split

    flat: list[tuple[str, str, bytes | Path]] = []  # <class>/<image>, no split folders
    loose: list[tuple[str, bytes | Path]] = []  # <image>: no class at all

    def note(parts: tuple[str, ...], blob: Callable[[], bytes | Path]) -> None:
        if not parts or not _is_image_name(parts[-1]):
            return
        if any(p.startswith(".") and p != ".." for p in parts[:-1]):
            return  # a hidden folder (.ipynb_checkpoints) is no class: it shifted the labels
        if len(parts) == 1:
            loose.append((parts[0], blob()))
            return
        if len(parts) == 2:
            flat.append((parts[0], parts[1], blob()))
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
    elif zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    parts = tuple(p for p in info.filename.split("/") if p not in ("", "."))
                    note(parts, lambda i=info: zf.read(i))
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise DataError(f"cannot read archive {path}: {first_line(exc)}") from exc
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
            raise DataError(f"cannot read archive {path}: {first_line(exc)}") from exc

    if not classes and flat:  # torchvision's ImageFolder layout: one split, every split
        class_names = sorted({f[0] for f in flat})
        flat.sort(key=lambda f: (f[0], f[1]))
        y = np.array([class_names.index(f[0]) for f in flat], np.int64)
        return _decode_selected([(f"{f[0]}/{f[1]}", f[2]) for f in flat], y, select,
                                path, fit) + (class_names,)
    if not classes and loose:  # a folder of images and nothing else: no labels
        loose.sort(key=lambda f: f[0])
        return _decode_selected(loose, unlabelled(len(loose)), select, path, fit) + (None,)
    prefix = _pick_prefix((c[0] for c in classes), path)
    splits = sorted({c[1] for c in classes if c[0] == prefix})
    if want is not None and want not in splits:
        raise DataError(f"unknown split {split!r} in {path}: it has {', '.join(splits)} "
                        "(or all): give {split} NAME", options=["split"])
    class_names = sorted({c[2] for c in classes if c[0] == prefix})
    index = {c: i for i, c in enumerate(class_names)}
    chosen = sorted((f for f in files if f[0] == prefix), key=lambda f: (f[1], f[2], f[3]))
    if not chosen:
        raise DataError(f"no images in split {split!r} of {path}")
    y = np.array([index[f[2]] for f in chosen], dtype=np.int64)
    return _decode_selected([("/".join(f[0] + f[1:4]), f[4]) for f in chosen], y, select,
                            path, fit) + (class_names,)


def _decode_selected(blobs: list[tuple[str, bytes | Path]], y: np.ndarray,
                     select: Callable[[np.ndarray], np.ndarray] | None,
                     path: Path, fit: Fit | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The images ``select(y)`` keeps (all without it), decoded (and fitted), and their
    labels."""
    if select is not None:
        keep = select(y)
        blobs, y = [blobs[i] for i in keep.tolist()], y[keep]
    return _decode(blobs, path, fit), y


def read_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
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
