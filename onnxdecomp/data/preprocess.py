"""How raw images become model input, and how data is fitted to a model's input."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace

import numpy as np

from onnxdecomp.data.dataset import Dataset
from onnxdecomp.data.records import is_records
from onnxdecomp.errors import DataError

LAYOUTS = ("nchw", "nhwc")
CHANNEL_ORDERS = ("rgb", "bgr")


@dataclass
class Preprocess:
    """How raw images become model input (ignored for ``.npz``, whose ``x`` is used as stored).

    Each image is first made gray or RGB (``channels``), resized and centre-cropped
    (``resize``: N on the shorter side or (H, W); ``crop``: (H, W); see
    :mod:`onnxdecomp.data.geometry`), its colour channels reversed for ``channel_order``
    "bgr" (Caffe's and OpenCV's models), then ``x = x.astype(float) * scale``, then
    ``(x - mean) / std`` per channel (or one value for all channels), then the ``layout`` and
    the final ``dtype``. ``layout=None`` means NCHW and
    ``dtype=None`` means float32 for images and "as stored" for ``.npz``; the None defaults
    let :func:`load_data` tell an explicit ``--dtype float32`` from no ``--dtype`` at all.
    """

    scale: float = 1.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: str | None = None  # "nchw" or "nhwc"; None = nchw
    dtype: str | None = None  # float32, float16, float64, int64, uint8 ...; None = see above
    resize: tuple[int, ...] | None = None  # (N,): the shorter side; (H, W): exactly
    crop: tuple[int, int] | None = None  # centred, after resize
    channels: int | None = None  # 1 (gray) or 3 (RGB); None = as decoded
    channel_order: str | None = None  # "bgr": colour channels reversed (Caffe, OpenCV)

    def __post_init__(self) -> None:  # the API's forms of what the flags check
        if isinstance(self.resize, numbers.Integral):
            self.resize = (int(self.resize),)
        if isinstance(self.crop, numbers.Integral):
            self.crop = (int(self.crop), int(self.crop))
        if self.channels not in (None, 1, 3):
            raise DataError(f"{{channels}} is 1 (gray) or 3 (RGB), got {self.channels!r}",
                            options=["channels"])

    @property
    def is_identity(self) -> bool:
        """True when no value change is asked for (scale 1, no mean, no std)."""
        return self.scale == 1.0 and self.mean is None and self.std is None

    @property
    def fits_images(self) -> bool:
        """True when images are converted, resized or cropped before the arithmetic."""
        return self.resize is not None or self.crop is not None or self.channels is not None


def target_dtype(name: str) -> np.dtype:
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
        raise DataError(f"{{{what}}} has {arr.size} values but the images have {channels} "
                        "channel(s)", options=[what])
    return arr


def apply_preprocess(images: np.ndarray, pre: Preprocess) -> np.ndarray:
    """Turn raw images ``[N, H, W]`` or ``[N, H, W, C]`` into model input per ``pre``."""
    x = images[..., None] if images.ndim == 3 else images  # [N, H, W, C]
    target = target_dtype(pre.dtype or "float32")
    layout = pre.layout or "nchw"
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}: choose nchw or nhwc")
    if pre.channel_order not in (None, *CHANNEL_ORDERS):
        raise DataError(f"unknown channel order {pre.channel_order!r}: choose rgb or bgr")
    if pre.channel_order == "bgr" and x.shape[-1] == 3:  # before the mean and std, which a
        x = x[..., ::-1]  # BGR model's documentation gives in its own order
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
                raise DataError("{std} has a zero value: cannot divide by zero", options=["std"])
            x /= std.astype(work)
    if layout == "nchw":
        x = x.transpose(0, 3, 1, 2)
    if target.kind in "iu" and x.dtype.kind == "f":
        x = np.rint(x)
        info = np.iinfo(target)
        if x.size and (x.min() < info.min or x.max() > info.max):
            raise DataError(
                f"{{dtype}} {target.name}: preprocessed values {x.min():g}..{x.max():g} do not "
                "fit", options=["dtype"])
    return np.ascontiguousarray(x.astype(target, copy=False))


def fit_to_input(ds: Dataset, input_shape: tuple, input_dtype) -> Dataset:
    """Adapt ``ds.x`` to the model's input when that is unambiguous.

    * Samples of rank >= 2 (``[N, 1, H, W]``, ``[N, H, W, C]``, ``[N, H, W]``) fed to a rank-2
      input ``[N, F]`` with ``F == prod(sample shape)`` are flattened to ``[N, F]``; rows of
      ``F = H * W`` pixels (a table of one channel's images, as Kaggle's MNIST CSVs) fed to
      a fixed one-channel image input are reshaped to it (several channels' rows are
      ambiguous, channels first or last, and are left alone).
    * ``[N, H, W]`` fed to a rank-4 input gets its channel axis where the model has a 1
      (``[N, 1, H, W]`` or ``[N, H, W, 1]``); ``[N, 1, H, W]`` fed to ``[N, H, W]`` loses it.
    * Images ``[N, C, H, W]`` (how the loaders give them) fed to a channels-last input
      ``[N, H, W, C]`` (Keras, tf2onnx) are transposed to it when they do not fit as they
      are, and channels-last images to a ``[N, C, H, W]`` input.
    * Float data is cast to the model's float dtype; floats are never cast to integers.

    Anything else is left alone: ``runtime.Runner.check_input`` reports it in one line, as
    are records (the samples of a model with several inputs, each field as its input takes it).
    """
    x = ds.x
    if is_records(x):
        return ds
    shape = tuple(input_shape)
    want = np.dtype(input_dtype)

    def fixed(d) -> bool:
        return isinstance(d, (int, np.integer)) and d > 0

    if len(shape) == 2 and x.ndim >= 3 and fixed(shape[1]):
        if int(np.prod(x.shape[1:])) == shape[1]:
            x = x.reshape(x.shape[0], -1)
    elif x.ndim == 2 and len(shape) in (3, 4) and all(fixed(d) for d in shape[1:]) and \
            int(np.prod(shape[1:])) == x.shape[1] and \
            (len(shape) == 3 or shape[1] == 1 or shape[3] == 1):
        x = x.reshape(x.shape[0], *shape[1:])  # one channel's pixels in rows (Kaggle's CSVs)
    elif len(shape) == 4 and x.ndim == 3:
        nchw = fixed(shape[1]) and shape[1] == 1 and _dims_fit(x.shape[1:], shape[2:])
        nhwc = fixed(shape[3]) and shape[3] == 1 and _dims_fit(x.shape[1:], shape[1:3])
        if nchw and not nhwc:
            x = x[:, None]
        elif nhwc and not nchw:
            x = x[..., None]
    elif len(shape) == 4 and x.ndim == 4 and not _dims_fit(x.shape[1:], shape[1:]):
        if _dims_fit((*x.shape[2:], x.shape[1]), shape[1:]):
            x = x.transpose(0, 2, 3, 1)  # [N, C, H, W] data, a channels-last model
        elif _dims_fit((x.shape[3], *x.shape[1:3]), shape[1:]):
            x = x.transpose(0, 3, 1, 2)  # channels-last data, a [N, C, H, W] model
    elif len(shape) == 3 and x.ndim == 4 and x.shape[1] == 1 and _dims_fit(x.shape[2:],
                                                                          shape[1:]):
        x = x[:, 0]
    if x.dtype.kind == "f" and want.kind == "f" and x.dtype != want:
        x = x.astype(want)
    return ds if x is ds.x else replace(ds, x=x)


def _dims_fit(have: tuple, want: tuple) -> bool:
    """Each wanted dim is symbolic or equal to the data's."""
    return all(
        not (isinstance(w, (int, np.integer)) and w > 0) or h == w
        for h, w in zip(have, want, strict=True)
    )
