"""Image geometry before the pixel arithmetic: channels, size and crop, per image.

Photos come in many sizes, and a model takes one: ``--resize`` and ``--crop`` do what
torchvision's evaluation transform does (``Resize(N)`` then ``CenterCrop(H, W)``, or
``Resize((H, W))``), on PIL images with PIL's bilinear filter, which is torchvision's default
for PIL input (and antialiases when it shrinks). ``--channels`` makes every image gray (1) or
RGB (3): Fashion-MNIST for a model that takes RGB, say. Each image is fitted while it is
decoded, so images of different sizes can be stacked.
"""

from __future__ import annotations

import numpy as np

from onnxdecomp.errors import DataError

CHANNELS = (1, 3)


# One such image side is 1 GiB of float32 pixels per channel: --resize 100000 was decoded
# until the memory ran out (killed, exit 137).
MAX_SIDE = 16384


def parse_size(text: str | None, option: str, pair_only: bool = False) -> tuple[int, ...] | None:
    """``N`` or ``H,W`` (``HxW`` too) as a tuple of positive ints; None for None."""
    if text is None:
        return None
    parts = [p for p in str(text).replace("x", ",").replace("X", ",").split(",") if p.strip()]
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    counts = (2,) if pair_only else (1, 2)
    if len(size) not in counts or min(size) < 1:
        want = "H,W" if pair_only else "N (the shorter side) or H,W"
        raise DataError(f"{{{option}}} takes {want} in pixels, got {text!r}", options=[option])
    if max(size) > MAX_SIDE:
        raise DataError(f"{{{option}}} {text}: a side over {MAX_SIDE} pixels is no classifier's "
                        "input", options=[option])
    return size


def resized_size(height: int, width: int, size: tuple[int, ...]) -> tuple[int, int]:
    """(H, W) after ``--resize``: ``(H, W)`` exactly, or ``N`` on the shorter side with the
    aspect kept (the longer side truncated, as torchvision does)."""
    if len(size) == 2:
        return size[0], size[1]
    (n,) = size
    if height <= width:
        return n, int(n * width / height)
    return int(n * height / width), n


def crop_box(height: int, width: int, crop: tuple[int, int],
             name: str) -> tuple[int, int, int, int]:
    """PIL's (left, top, right, bottom) of the centred ``crop`` of an image of that size."""
    ch, cw = crop
    if ch > height or cw > width:
        raise DataError(
            f"{{crop}} {ch}x{cw} is larger than image {name} ({height}x{width} after any "
            "{resize}): resize it to at least the crop first", options=["crop", "resize"])
    top, left = int(round((height - ch) / 2.0)), int(round((width - cw) / 2.0))
    return left, top, left + cw, top + ch


def fit_image(im, resize: tuple[int, ...] | None, crop: tuple[int, int] | None,
              channels: int | None, name: str):
    """A PIL image in gray or RGB (``channels``, else as it is), resized and cropped."""
    from PIL import Image

    if channels is not None and (im.mode == "L") != (channels == 1):
        im = im.convert("L" if channels == 1 else "RGB")
    if resize is not None:
        h, w = resized_size(im.height, im.width, resize)
        if (h, w) != (im.height, im.width):
            im = im.resize((w, h), Image.Resampling.BILINEAR)
    if crop is not None:
        box = crop_box(im.height, im.width, crop, name)
        if box != (0, 0, im.width, im.height):
            im = im.crop(box)
    return im


def fit_arrays(images: np.ndarray, resize: tuple[int, ...] | None,
               crop: tuple[int, int] | None, channels: int | None) -> np.ndarray:
    """``fit_image`` over decoded images [N, H, W] or [N, H, W, C] (IDX, digits): float
    pixels (digits' 0..16) are resized as floats, one channel at a time."""
    if resize is None and crop is None and channels is None:
        return images
    from PIL import Image

    x = images[..., None] if images.ndim == 3 else images
    if channels is not None and x.shape[-1] != channels:
        if x.shape[-1] == 1:  # gray to RGB: the same plane three times
            x = np.repeat(x, channels, axis=-1)
        else:  # RGB to gray with PIL's weights (ITU-R 601-2), as PIL's convert("L")
            x = (x.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))[..., None]
            x = np.rint(x).astype(images.dtype) if images.dtype.kind in "iu" else x
    if resize is None and crop is None:
        return x if images.ndim == 4 or x.shape[-1] != 1 else x[..., 0]
    out = []
    for i, img in enumerate(x):
        planes = [Image.fromarray(np.ascontiguousarray(img[..., c]).astype(
            np.uint8 if img.dtype == np.uint8 else np.float32)) for c in range(img.shape[-1])]
        fitted = [np.asarray(fit_image(p, resize, crop, None, f"#{i}")) for p in planes]
        out.append(np.stack(fitted, axis=-1))
    y = np.stack(out)
    if y.dtype != images.dtype and images.dtype.kind == "f":
        y = y.astype(images.dtype)
    return y if images.ndim == 4 or y.shape[-1] != 1 else y[..., 0]


def describe_fit(resize: tuple[int, ...] | None, crop: tuple[int, int] | None,
                 channels: int | None) -> str:
    """What was done to each image, for the data's description ("" for nothing)."""
    parts = []
    if channels is not None:
        parts.append("gray" if channels == 1 else "RGB")
    if resize is not None:
        parts.append(f"resized to {resize[0]} on the shorter side" if len(resize) == 1
                     else f"resized to {resize[0]}x{resize[1]}")
    if crop is not None:
        parts.append(f"centre {crop[0]}x{crop[1]}")
    return ", ".join(parts)
