"""load_image: every input kind and mode, EXIF orientation, typed errors; tensor conversions."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from geogan_hf.errors import ImageTooLargeError, InvalidImageError
from geogan_hf.imageio import (
    DEFAULT_MAX_PIXELS,
    load_image,
    pil_to_tensor,
    read_upload,
    tensor_to_pil,
)

ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def rgb() -> Image.Image:
    """A 40x30 RGB gradient with distinct values per pixel (non-square: orientation shows)."""
    y, x = np.mgrid[0:30, 0:40]
    pixels = np.stack([x * 6, y * 8, (x + y) * 3], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def encode(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG signature, an IHDR chunk declaring the size and the start of an empty IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", 1000)
        + b"IDAT"
    )


def test_inputs_of_every_kind_give_the_same_pixels(rgb: Image.Image, tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    rgb.save(path)
    expected = np.asarray(rgb)
    for image in (str(path), path, path.read_bytes(), rgb, expected):
        loaded = load_image(image)
        assert loaded.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(loaded), expected)


def test_pil_input_is_copied(rgb: Image.Image) -> None:
    loaded = load_image(rgb)
    loaded.putpixel((0, 0), (1, 2, 3))
    assert rgb.getpixel((0, 0)) != (1, 2, 3)


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "YCbCr", "LA", "RGBA"])
def test_pil_modes_convert_to_rgb(rgb: Image.Image, mode: str) -> None:
    converted = rgb.convert(mode)
    loaded = load_image(converted)
    assert loaded.mode == "RGB" and loaded.size == rgb.size
    expected = np.asarray(converted.convert("RGB"), dtype=np.int16)
    # opaque alpha: compositing on white changes nothing
    assert np.abs(np.asarray(loaded, dtype=np.int16) - expected).max() <= 1


def test_transparency_is_composited_on_white(rgb: Image.Image) -> None:
    rgba = rgb.convert("RGBA")
    alpha = np.zeros((30, 40), np.uint8)
    alpha[:, 20:] = 255
    alpha[:, 10:20] = 128
    rgba.putalpha(Image.fromarray(alpha))
    loaded = np.asarray(load_image(rgba), dtype=np.float64)
    source = np.asarray(rgb, dtype=np.float64)
    assert (loaded[:, :10] == 255).all()
    np.testing.assert_array_equal(loaded[:, 20:], source[:, 20:])
    half = source[:, 10:20] * 128 / 255 + 255 * (1 - 128 / 255)
    assert np.abs(loaded[:, 10:20] - half).max() <= 1

    # a palette image whose transparent index is 0
    palette = Image.new("P", (4, 2), 0)
    palette.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 0
    loaded = load_image(encode(palette))
    assert loaded.getpixel((0, 0)) == (255, 255, 255)
    assert loaded.getpixel((1, 0)) == (200, 10, 10)

    la = Image.fromarray(np.stack([np.full((2, 2), 50, np.uint8), np.zeros((2, 2), np.uint8)], -1))
    assert load_image(la).getpixel((0, 0)) == (255, 255, 255)


def test_high_bit_depth_modes(rgb: Image.Image, tmp_path: Path) -> None:
    gray8 = np.asarray(rgb.convert("L"))
    gray16 = gray8.astype(np.uint16) * 257
    path = tmp_path / "gray16.png"
    Image.fromarray(gray16).save(path)
    assert Image.open(path).mode.startswith("I;16")
    expected = np.repeat(gray8[..., None], 3, axis=2)
    np.testing.assert_array_equal(np.asarray(load_image(path)), expected)
    np.testing.assert_array_equal(
        np.asarray(load_image(Image.fromarray(gray16.astype(np.int32)))), expected
    )
    as_float = Image.fromarray(gray8.astype(np.float32) / 255)
    assert as_float.mode == "F"
    np.testing.assert_array_equal(np.asarray(load_image(as_float)), expected)
    as_float_255 = Image.fromarray(gray8.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(load_image(as_float_255)), expected)


def test_numpy_arrays(rgb: Image.Image) -> None:
    pixels = np.asarray(rgb)
    gray = pixels[..., 0]
    gray_rgb = np.repeat(gray[..., None], 3, axis=2)
    np.testing.assert_array_equal(np.asarray(load_image(gray)), gray_rgb)
    np.testing.assert_array_equal(np.asarray(load_image(gray[..., None])), gray_rgb)
    np.testing.assert_array_equal(np.asarray(load_image(pixels.astype(np.uint16) * 257)), pixels)
    np.testing.assert_array_equal(np.asarray(load_image(pixels / 255.0)), pixels)
    np.testing.assert_array_equal(np.asarray(load_image(pixels.astype(np.int64))), pixels)
    rgba = np.concatenate([pixels, np.zeros_like(pixels[..., :1])], axis=2)
    assert (np.asarray(load_image(rgba)) == 255).all()


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.zeros((3, 4, 4, 3), np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.full((4, 4, 3), 2.0), "[0, 1]"),
        (np.full((4, 4, 3), -0.5), "[0, 1]"),
        (np.full((4, 4), np.nan), "NaN"),
        (np.full((4, 4), 300, np.int32), "outside [0, 255]"),
        (np.zeros((4, 4), np.complex64), "dtype"),
    ],
)
def test_bad_arrays_raise(array: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_image(array, role="source")


@pytest.mark.parametrize(
    ("orientation", "transpose"),
    [
        (3, Image.Transpose.ROTATE_180),
        (6, Image.Transpose.ROTATE_90),
        (8, Image.Transpose.ROTATE_270),
    ],
)
def test_exif_orientation_is_applied(
    rgb: Image.Image, tmp_path: Path, orientation: int, transpose: Image.Transpose
) -> None:
    # Stored pixels are rotated; the tag says how to turn them upright.
    stored = rgb.transpose(transpose)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    path = tmp_path / "rotated.png"
    stored.save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.size == rgb.size
    np.testing.assert_array_equal(np.asarray(loaded), np.asarray(rgb))


def test_missing_empty_and_non_image_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match=r"source image '.*nope\.png' does not exist"):
        load_image(tmp_path / "nope.png", role="source")
    with pytest.raises(InvalidImageError, match="not a file"):
        load_image(tmp_path)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(InvalidImageError, match="empty file"):
        load_image(empty)
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    with pytest.raises(InvalidImageError, match=r"notes\.png' is not a readable image file"):
        load_image(text)
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(b"")
    with pytest.raises(InvalidImageError, match="unsupported type int"):
        load_image(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files(rgb: Image.Image, tmp_path: Path, fmt: str) -> None:
    data = encode(rgb.resize((200, 150)), fmt)
    path = tmp_path / f"truncated.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidImageError, match="truncated or corrupt") as info:
        load_image(path, role="exemplar")
    message = str(info.value)
    assert "\n" not in message and "exemplar image" in message and path.name in message


def test_pixel_limit(rgb: Image.Image) -> None:
    assert DEFAULT_MAX_PIXELS == 50_000_000
    with pytest.raises(
        ImageTooLargeError, match=r"40x30 \(1,200 pixels\), above the limit of 1,000"
    ):
        load_image(encode(rgb), max_pixels=1000)
    with pytest.raises(ImageTooLargeError, match="limit of 1,000"):
        load_image(np.asarray(rgb), max_pixels=1000)
    with pytest.raises(ImageTooLargeError):
        load_image(rgb, max_pixels=1000)
    assert load_image(rgb, max_pixels=1200).size == (40, 30)
    assert load_image(rgb, max_pixels=None).size == (40, 30)


def test_size_is_checked_before_decoding() -> None:
    # Only a header: decoding would fail as truncated, so the size error proves the order.
    header = png_header(9000, 6000)
    with pytest.raises(ImageTooLargeError, match="9000x6000"):
        load_image(header)
    with pytest.raises(InvalidImageError, match="truncated or corrupt"):
        load_image(png_header(90, 60))


def test_read_upload_caps_files_and_data_urls_and_names_no_path(
    rgb: Image.Image, tmp_path: Path
) -> None:
    data = encode(rgb)
    path = tmp_path / "upload.png"
    path.write_bytes(data)
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    for upload in (path, str(path), url):
        assert read_upload(upload, max_bytes=len(data), role="source") == data
    with pytest.raises(ImageTooLargeError, match=r"^source image is 0\.0 MB, above the limit"):
        read_upload(path, max_bytes=len(data) - 1, role="source")
    # a data: URL is refused by its length: this one is not even valid base64
    with pytest.raises(ImageTooLargeError, match=r"above the limit of 1\.0 MB"):
        read_upload("data:image/png;base64," + "@" * 2_000_000, max_bytes=1024**2)
    with pytest.raises(InvalidImageError, match="invalid base64"):
        read_upload("data:image/png;base64,@@@@", max_bytes=1024)
    with pytest.raises(InvalidImageError, match="not base64-encoded"):
        read_upload("data:image/png,%89PNG", max_bytes=1024)
    with pytest.raises(InvalidImageError, match="exemplar image was not uploaded") as info:
        read_upload(tmp_path / "gone.png", max_bytes=1024, role="exemplar")
    assert str(tmp_path) not in str(info.value)
    # the bytes keep load_image's declared size check, and its messages name no path
    header = "data:image/png;base64," + base64.b64encode(png_header(9000, 6000)).decode()
    with pytest.raises(ImageTooLargeError, match=r"^source image is 9000x6000"):
        load_image(read_upload(header, max_bytes=1024), role="source")


def test_pillow_decompression_bomb_guard(rgb: Image.Image, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 1,200 > 2 x 500: Pillow refuses
    with pytest.raises(ImageTooLargeError, match="too large to decode safely"):
        load_image(encode(rgb), max_pixels=None)


def test_tensor_round_trip(rgb: Image.Image) -> None:
    tensor = pil_to_tensor(rgb)
    assert tensor.shape == (1, 3, 30, 40) and tensor.dtype == torch.float32
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0
    assert tensor[0, :, 0, 0].tolist() == pytest.approx([-1.0, -1.0, -1.0])
    np.testing.assert_array_equal(np.asarray(tensor_to_pil(tensor)), np.asarray(rgb))
    np.testing.assert_array_equal(np.asarray(tensor_to_pil(tensor[0])), np.asarray(rgb))
    np.testing.assert_array_equal(
        np.asarray(pil_to_tensor(rgb.convert("L"))[0, 0]),
        np.asarray(pil_to_tensor(rgb.convert("L").convert("RGB"))[0, 0]),
    )


def test_tensor_to_pil_clamps_and_takes_first_of_batch() -> None:
    batch = torch.stack([torch.full((3, 2, 2), 5.0), torch.full((3, 2, 2), -5.0)])
    assert (np.asarray(tensor_to_pil(batch)) == 255).all()
    gray = tensor_to_pil(torch.zeros(1, 1, 2, 2))
    assert gray.mode == "RGB" and gray.getpixel((0, 0)) == (128, 128, 128)
    with pytest.raises(ValueError, match="C in 1 or 3"):
        tensor_to_pil(torch.zeros(1, 2, 4, 4))
