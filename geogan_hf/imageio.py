"""Loading images from anything a user may hand us, and PIL <-> tensor conversions.

Image convention (used by every module of geogan_hf):

- PIL images are RGB, uint8 (``mode == "RGB"``), upright (EXIF orientation applied).
- Tensors are float, NCHW, RGB, with values in [-1, 1]: ``t = pixel / 127.5 - 1``.

:func:`load_image` is the one entry point for user input. It accepts paths, bytes, PIL images
and numpy arrays, applies the EXIF orientation, converts every mode to RGB uint8 (alpha is
composited onto white) and raises :class:`~geogan_hf.errors.InvalidImageError` or
:class:`~geogan_hf.errors.ImageTooLargeError` with a one-line message naming the input.
"""

from __future__ import annotations

import binascii
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from geogan_hf.errors import ImageTooLargeError, InvalidImageError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageInput",
    "load_image",
    "pil_to_tensor",
    "read_upload",
    "tensor_to_pil",
]

DEFAULT_MAX_PIXELS = 50_000_000
"""Largest image (width x height) :func:`load_image` accepts by default."""

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray

_WHITE = 255.0


def _describe(role: str | None, source: str | None = None) -> str:
    """Names the input in messages, e.g. ``source image 'face.jpg'``."""
    label = f"{role} image" if role else "image"
    return f"{label} {source!r}" if source else label


def _check_size(width: int, height: int, max_pixels: int | None, what: str) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"{what} is empty ({width}x{height} pixels)")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"{what} is {width}x{height} ({width * height:,} pixels), "
            f"above the limit of {max_pixels:,} pixels"
        )


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) float in [0, 255] -> (H, W, 3) float, transparent pixels become white."""
    alpha = rgba[..., 3:] / 255.0
    return rgba[..., :3] * alpha + _WHITE * (1.0 - alpha)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _gray_or_color_to_rgb(pixels: np.ndarray) -> Image.Image:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) float in [0, 255] -> RGB PIL image."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[2] == 4:
        pixels = _composite_on_white(pixels)
    elif pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return Image.fromarray(_to_uint8(pixels), "RGB")


def _pil_to_rgb(img: Image.Image, what: str) -> Image.Image:
    """Converts any PIL mode to RGB uint8.

    High bit depths are scaled to 8 bits: ``I;16*`` by 1/257; ``I`` (32-bit integer) the same
    when its maximum exceeds 255, else taken as 8-bit values; ``F`` (float) is read as [0, 1]
    when its maximum is at most 1, else as [0, 255].
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float64)
        return _gray_or_color_to_rgb(rgba)
    if mode.startswith("I;16"):
        return _gray_or_color_to_rgb(np.asarray(img, dtype=np.float64) / 257.0)
    if mode == "I":
        values = np.asarray(img, dtype=np.float64)
        return _gray_or_color_to_rgb(values / 257.0 if values.max() > 255 else values)
    if mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if not np.isfinite(values).all():
            raise InvalidImageError(f"{what} contains NaN or infinite values")
        return _gray_or_color_to_rgb(values * 255.0 if values.max() <= 1.0 else values)
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as err:
        raise InvalidImageError(
            f"{what} has mode {mode!r}, which cannot be converted to RGB"
        ) from err


def _array_to_rgb(array: np.ndarray, what: str, max_pixels: int | None) -> Image.Image:
    """Numpy HxW / HxWx1/3/4 (uint8, uint16, other integers in [0, 255], float in [0, 1])."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise InvalidImageError(
            f"{what} array has shape {array.shape}; expected HxW or HxWxC with C in 1, 3, 4"
        )
    _check_size(array.shape[1], array.shape[0], max_pixels, what)
    if array.dtype == np.uint8:
        pixels = array.astype(np.float64)
    elif array.dtype == np.uint16:
        pixels = array / 257.0
    elif array.dtype == np.bool_:
        pixels = array * 255.0
    elif np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise InvalidImageError(
                f"{what} array of dtype {array.dtype} has values outside [0, 255] "
                f"(min {array.min()}, max {array.max()})"
            )
        pixels = array.astype(np.float64)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InvalidImageError(f"{what} array contains NaN or infinite values")
        lo, hi = float(array.min()), float(array.max())
        if lo < 0.0 or hi > 1.0:
            raise InvalidImageError(
                f"{what} float array must have values in [0, 1], got [{lo:.3g}, {hi:.3g}]"
            )
        pixels = array.astype(np.float64) * 255.0
    else:
        raise InvalidImageError(f"{what} array has unsupported dtype {array.dtype}")
    return _gray_or_color_to_rgb(pixels)


def _decode(img: Image.Image, what: str, max_pixels: int | None) -> Image.Image:
    """Checks the size (known from the header), decodes all pixels, applies EXIF, -> RGB."""
    _check_size(img.width, img.height, max_pixels, what)
    try:
        img.load()
        upright = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(f"{what} is too large to decode safely: {err}") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise InvalidImageError(f"{what} is truncated or corrupt ({err})") from err
    return _pil_to_rgb(upright, what)


def _open_encoded(data: io.BytesIO | Path, what: str, max_pixels: int | None) -> Image.Image:
    try:
        img = Image.open(data)
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(f"{what} is too large to decode safely: {err}") from err
    except UnidentifiedImageError as err:
        raise InvalidImageError(f"{what} is not a readable image file (unknown format)") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise InvalidImageError(f"{what} is not a readable image file ({err})") from err
    with img:
        return _decode(img, what, max_pixels)


def load_image(
    image: ImageInput,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    role: str | None = None,
) -> Image.Image:
    """Loads an image as an upright RGB uint8 PIL image.

    Args:
        image: a path (str or ``os.PathLike``), encoded bytes, a PIL image, or a numpy array
            HxW / HxWx1 / HxWx3 / HxWx4 of dtype uint8, uint16 or float in [0, 1].
        max_pixels: largest accepted ``width * height``; ``None`` disables the check.
            The size is checked from the file header, before pixels are decoded.
        role: what the image is for (e.g. ``"source"``), used in error messages.

    Returns:
        A new RGB PIL image with the EXIF orientation applied and transparency composited
        onto white.

    Raises:
        InvalidImageError: missing, empty, truncated or undecodable input.
        ImageTooLargeError: more than ``max_pixels`` pixels.
    """
    if isinstance(image, Image.Image):
        return _decode(image, _describe(role), max_pixels)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image, _describe(role), max_pixels)
    if isinstance(image, (bytes, bytearray, memoryview)):
        what = _describe(role)
        if len(image) == 0:
            raise InvalidImageError(f"{what} is empty (0 bytes)")
        return _open_encoded(io.BytesIO(image), what, max_pixels)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image).expanduser()
        what = _describe(role, str(image))
        if not path.exists():
            raise InvalidImageError(f"{what} does not exist")
        if not path.is_file():
            raise InvalidImageError(f"{what} is not a file")
        if path.stat().st_size == 0:
            raise InvalidImageError(f"{what} is an empty file (0 bytes)")
        return _open_encoded(path, what, max_pixels)
    raise InvalidImageError(
        f"{_describe(role)} has unsupported type {type(image).__name__}; "
        "expected a path, bytes, PIL image or numpy array"
    )


def _megabytes(size: int) -> str:
    return f"{size / 1024**2:.1f} MB"


def read_upload(upload: str | os.PathLike, *, max_bytes: int, role: str | None = None) -> bytes:
    """The encoded bytes of an uploaded photo: a file, or a base64 ``data:`` URL.

    Either is refused above ``max_bytes`` before it is read or decoded (a ``data:`` URL by its
    length), so every way in gets the same size limit as an upload; :func:`load_image` then
    checks the declared pixel size before decoding. Messages never name the file: on a
    server it lives in a temporary folder the user should not see.

    Raises:
        InvalidImageError: a missing file, or a ``data:`` URL that is not base64.
        ImageTooLargeError: more than ``max_bytes``.
    """
    what = _describe(role)
    text = os.fspath(upload)
    if text.startswith("data:"):
        header, comma, encoded = text.partition(",")
        if not comma or not header.endswith(";base64"):
            raise InvalidImageError(f"{what} is a data: URL that is not base64-encoded")
        if len(encoded) // 4 * 3 > max_bytes:  # the decoded size, known from the length
            raise ImageTooLargeError(
                f"{what} is {_megabytes(len(encoded) // 4 * 3)}, "
                f"above the limit of {_megabytes(max_bytes)}"
            )
        try:
            return binascii.a2b_base64(encoded, strict_mode=True)
        except binascii.Error as err:
            raise InvalidImageError(f"{what} is a data: URL with invalid base64 ({err})") from err
    path = Path(text)
    if not path.is_file():
        raise InvalidImageError(f"{what} was not uploaded (no such file on the server)")
    size = path.stat().st_size
    if size > max_bytes:
        raise ImageTooLargeError(
            f"{what} is {_megabytes(size)}, above the limit of {_megabytes(max_bytes)}"
        )
    return path.read_bytes()


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 tensor (1, 3, H, W) in [-1, 1]."""
    import torch

    array = np.asarray(image.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).div(127.5).sub(1.0)


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """Tensor (N, C, H, W) or (C, H, W) in [-1, 1], C in {1, 3} -> RGB PIL image.

    Takes the first image of a batch; values are clamped to [-1, 1] and rounded.
    """
    import torch

    if tensor.dim() == 4:
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] not in (1, 3):
        raise ValueError(
            f"expected a (N, C, H, W) or (C, H, W) tensor with C in 1 or 3, got {tuple(tensor.shape)}"
        )
    pixels = (tensor.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5
    array = pixels.round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return Image.fromarray(array, "RGB")
