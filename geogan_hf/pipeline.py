"""Attribute transfer on in-the-wild photos, at the photo's own resolution.

:class:`TransferPipeline` takes the one path data takes through geogan_hf::

    photo -> load_image -> detect_faces -> align_face -> GeoGAN -> paste_back -> photo

1. Both photos are loaded (EXIF rotation, RGB, size limit) and faces are detected with
   68 landmarks by :func:`~geogan_hf.landmarks.detect_faces` (its detection policy: every
   face it finds can be edited or copied from).
2. Each face is aligned to the FFHQ square at one *work size* ``S``: the face's natural crop
   size in the source photo, rounded, capped at ``work_size`` (1024) and never below the
   model's ``image_size``. The exemplar is aligned at the same ``S``; where its instance
   looks the same mirrored (glasses) and its face is turned the other way from the
   source's, it is mirrored (:func:`~geogan_hf.align.turned_like`).
3. The model transfers the attribute on the ``S`` x ``S`` crops (the geometry prior: the
   exemplar's instance matted, warped, relit and composited at ``S``; networks, when
   trained, at ``image_size``; see :class:`geogan_hf.model.GeoGAN`). An exemplar that
   shows no instance of the attribute is refused (:class:`AttributeNotFoundError`).
4. The edited crop is pasted back into the source photo with a *paste weight*: where the
   model changed the crop (alpha and the removal of the source's own instance), dilated
   by the feather radius, times ``strength``, then feathered by
   :func:`geogan_hf.align.paste_back`. Inside it the photo receives the model's change
   (scaled by ``strength``): where the model drew, its result; where it left the crop as
   it was, the photo's own pixels (not blurred by the crop's two resamplings). Pixels
   whose weight is 0 stay bit-identical.

``strength`` is the paste weight: 0 returns the source photo, 1 the model's edit, values in
between interpolate linearly between the two.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from .align import AlignedFace, align_face, face_crop_size, paste_back, turned_like
from .errors import (
    AttributeNotFoundError,
    ExperimentalAttributeWarning,
    FaceIndexError,
    FaceTooSmallError,
    GrayscaleExemplarWarning,
    InvalidArgumentError,
    ModelLoadError,
    NoFaceError,
    UnknownAttributeError,
    UntrainedModelWarning,
)
from .geometry import flow_to_rgb, pixel_to_normalized, resize_flow
from .imageio import DEFAULT_MAX_PIXELS, ImageInput, load_image, pil_to_tensor, tensor_to_pil
from .instance import is_grayscale
from .landmarks import LANDMARK_BACKENDS, Face, detect_faces
from .model import GeoGAN
from .regions import (
    ATTRIBUTE_SPECS,
    DEFAULT_HAIR_COLOUR,
    SUPPORTED_ATTRIBUTES,
    canonical_attribute,
    check_hair_colour,
)
from .runtime import resolve_device

__all__ = [
    "DEFAULT_WORK_SIZE",
    "MIN_FACE_SIZE",
    "STAGES",
    "TransferPipeline",
    "TransferResult",
]

DEFAULT_WORK_SIZE = 1024
"""Default cap of the high-resolution crop side (pixels)."""

MIN_FACE_SIZE = 64
"""Smallest editable face: side of its FFHQ crop square in the photo, in pixels."""

FEATHER = 0.01
"""Feathering of the paste weight: Gaussian sigma as a fraction of the crop side."""

MODE_PRIOR = "geometry prior"
MODE_LEARNED = "learned"
MODE_UNTRAINED = "untrained (random weights)"

STAGES = {
    "load": "loading the photos",
    "detect": "finding the faces",
    "align": "aligning the faces",
    "model": "transferring the attribute",
    "paste": "pasting the edit back",
}
"""The pipeline's stages, in order, and how progress callbacks describe them."""

ProgressCallback = Callable[[float, str], Any]
"""Called as each stage starts with the fraction done and the stage's description
(a ``gr.Progress`` fits)."""

_CROP_MULTIPLE = 16  # work sizes are rounded to a multiple of this
_CACHE_SIZE = 8  # photos whose detections are remembered


@dataclass
class TransferResult:
    """Output of :meth:`TransferPipeline.__call__`.

    Crops, masks and landmarks live in the aligned crop frame (``S`` x ``S`` pixels, the
    work size); faces live in the photo frame.

    Attributes:
        image: the edited photo, same size and orientation as :attr:`source`.
        source: the source photo as loaded (RGB, upright).
        exemplar: the exemplar photo as loaded.
        source_crop: aligned source face crop.
        exemplar_crop: aligned exemplar face crop, as the model took it (mirrored where
            :attr:`exemplar_mirrored`).
        warped: the exemplar crop warped onto the source geometry (at the networks' size).
        mask: the model's attribute mask (``L`` image, 255 = take the warped exemplar).
        flow_rgb: the flow as a colour picture (hue = direction, saturation = magnitude) at
            the networks' resolution (``image_size``).
        source_landmarks: ``(68, 2)`` landmarks in :attr:`source_crop` pixels.
        exemplar_landmarks: ``(68, 2)`` landmarks in :attr:`exemplar_crop` pixels.
        mode: ``"geometry prior"``, ``"learned"`` or ``"untrained (random weights)"``.
        attribute: canonical name of the transferred attribute.
        strength: the paste weight used.
        hair_colour: whose colours the hair took (:data:`~geogan_hf.regions.HAIR_COLOURS`).
        timings: seconds per stage (``load``, ``detect``, ``align``; the model's ``flow``,
            ``instance``, ``compose`` and ``networks`` (when it runs them) and ``outputs``,
            or ``model`` as one stage in paper mode; ``paste``); their sum is the end-to-end
            time.
        coverage: how much of the attribute's region the exemplar's instance covers
            (geometry prior; ``None`` in paper mode).
        source_coverage: the same for the source's own instance, removed before the
            exemplar's is composited when it clearly has one.
        source_faces: every face found in the source photo, largest first (photo pixels).
        exemplar_faces: every face found in the exemplar photo, largest first.
        source_face: index of the edited face in :attr:`source_faces`.
        exemplar_face: index of the exemplar face in :attr:`exemplar_faces`.
        exemplar_mirrored: the exemplar crop was mirrored: its face was turned the other way
            from the source's and the attribute's instance looks the same mirrored
            (:attr:`~geogan_hf.regions.AttributeSpec.mirrors`: glasses).
        flow: the flow ``(1, 2, S, S)`` (normalized backward displacement, see
            :mod:`geogan_hf.geometry`) that produced :attr:`warped`.
        paste_weight: ``(S, S)`` float32 weight given to :func:`~geogan_hf.align.paste_back`
            (before its feathering).
        aligned: the source :class:`~geogan_hf.align.AlignedFace` (crop -> photo transform).
        notes: what this transfer warned about, the messages of its
            :class:`~geogan_hf.errors.ExperimentalAttributeWarning` and
            :class:`~geogan_hf.errors.GrayscaleExemplarWarning` (also issued as warnings):
            for a server to show its user. Warnings are caught process-wide, so around a
            transfer they also catch other threads' (another request's, a library's).
    """

    image: Image.Image
    source: Image.Image
    exemplar: Image.Image
    source_crop: Image.Image
    exemplar_crop: Image.Image
    warped: Image.Image
    mask: Image.Image
    flow_rgb: Image.Image
    source_landmarks: np.ndarray
    exemplar_landmarks: np.ndarray
    mode: str
    attribute: str
    strength: float
    timings: dict[str, float]
    hair_colour: str = DEFAULT_HAIR_COLOUR
    source_faces: list[Face] = field(default_factory=list)
    exemplar_faces: list[Face] = field(default_factory=list)
    source_face: int = 0
    exemplar_face: int = 0
    exemplar_mirrored: bool = False
    flow: torch.Tensor | None = None
    paste_weight: np.ndarray | None = None
    aligned: AlignedFace | None = None
    coverage: float | None = None
    source_coverage: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def experimental(self) -> bool:
        """The attribute is experimental (:data:`~geogan_hf.regions.EXPERIMENTAL_ATTRIBUTES`)."""
        return ATTRIBUTE_SPECS[self.attribute].experimental

    @property
    def total_time(self) -> float:
        """End-to-end seconds (sum of :attr:`timings`)."""
        return sum(self.timings.values())

    def edit_region(self) -> np.ndarray:
        """Boolean ``(H, W)`` map of the photo pixels the paste may change (weight > 0)."""
        if self.aligned is None or self.paste_weight is None:
            return np.zeros((self.image.height, self.image.width), dtype=bool)
        black = Image.new("RGB", self.image.size)
        white = Image.new("RGB", (self.aligned.size, self.aligned.size), (255, 255, 255))
        weight = paste_back(black, white, self.aligned, self.paste_weight, feather=FEATHER)
        return np.asarray(weight)[..., 0] > 0

    def save_intermediates(self, directory: str | os.PathLike) -> list[Path]:
        """Write the inspection images and landmarks into ``directory`` (created if missing).

        Returns:
            The written paths: ``source_crop.png``, ``exemplar_crop.png``, ``warped.png``,
            ``mask.png``, ``flow.png``, ``result.png`` and ``landmarks.json``.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        images = {
            "source_crop": self.source_crop,
            "exemplar_crop": self.exemplar_crop,
            "warped": self.warped,
            "mask": self.mask,
            "flow": self.flow_rgb,
            "result": self.image,
        }
        paths = []
        for name, image in images.items():
            paths.append(out / f"{name}.png")
            image.save(paths[-1])
        paths.append(out / "landmarks.json")
        paths[-1].write_text(
            json.dumps(
                {
                    "crop_size": self.source_crop.width,
                    "source": self.source_landmarks.round(3).tolist(),
                    "exemplar": self.exemplar_landmarks.round(3).tolist(),
                }
            )
        )
        return paths


def _load_model(model: GeoGAN | str | os.PathLike | None) -> tuple[GeoGAN, str | None]:
    """The model and where it came from (``None`` for an in-memory model or the prior)."""
    if model is None:
        return GeoGAN(geometry_prior=True, attributes=SUPPORTED_ATTRIBUTES), None
    if isinstance(model, GeoGAN):
        return model, None
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"model must be a GeoGAN, a directory, a Hub repo id or None, got {type(model).__name__}"
        )
    name = os.fspath(model)
    path = Path(name).expanduser()
    looks_local = (
        isinstance(model, os.PathLike) or name.startswith((".", "/", "~")) or path.exists()
    )
    if looks_local and not path.is_dir():
        raise ModelLoadError(f"model directory {name!r} does not exist")
    if looks_local and not (path / "config.json").is_file():
        raise ModelLoadError(f"model directory {name!r} has no config.json")
    return GeoGAN.from_pretrained(str(path) if looks_local else name), name


def _described(attribute: str) -> str:
    """``"a mustache"``, ``"eyeglasses"``: the attribute in a sentence."""
    words = attribute.replace("_", " ").lower()
    return f"a {words}" if attribute in ("Mustache", "Goatee") else words


def _colourless_hair(attribute: str, source: torch.Tensor, exemplar: torch.Tensor) -> bool:
    """Whether ``attribute`` is hair taken from a black-and-white ``exemplar`` crop onto a
    colour ``source`` crop (``(1, 3, H, W)``): in a grayscale photo no hue tells light hair
    from lit skin, and the hair's own colour is not seen (real held-out pairs 3 and 11 of
    ``benchmarks/results/real_pairs.md``: Einstein's white mustache as dark spots)."""
    if ATTRIBUTE_SPECS[attribute].kind != "hair":
        return False
    return bool(is_grayscale(exemplar)[0]) and not bool(is_grayscale(source)[0])


def _check_strength(strength: Any) -> float:
    """``strength`` as a float in [0, 1]; anything else is an :class:`InvalidArgumentError`."""
    number = isinstance(strength, numbers.Real) and not isinstance(strength, bool)
    if not number or not 0.0 <= float(strength) <= 1.0:  # NaN fails the comparison
        raise InvalidArgumentError(f"strength must be a number in [0, 1], got {strength!r}")
    return float(strength)


def _check_face_index(index: Any, role: str) -> int:
    """``index`` as an int, or a :class:`FaceIndexError` (range is checked against the faces)."""
    if not isinstance(index, numbers.Integral) or isinstance(index, bool):
        raise FaceIndexError(
            f"{role} face index must be an integer (0 = the largest face), got {index!r}"
        )
    return int(index)


def _work_size(natural: float, image_size: int, cap: int) -> int:
    """Side of the high-resolution crop: the natural face crop size, rounded and clamped."""
    rounded = _CROP_MULTIPLE * round(natural / _CROP_MULTIPLE)
    return int(min(max(rounded, image_size), max(cap, image_size)))


def _paste_weight(mask: np.ndarray, strength: float) -> np.ndarray:
    """Mask support dilated by the feather radius, times ``strength`` (see module docstring).

    ``paste_back`` blurs with a Gaussian truncated at 3 sigma, so after dilating by that
    radius the weight is exactly ``strength`` wherever the model's mask is non-zero.
    """
    support = mask > 0.5 / 255
    radius = math.ceil(3 * FEATHER * mask.shape[0])
    if radius > 0 and support.any():
        support = ndimage.maximum_filter(support, size=2 * radius + 1)
    return support.astype(np.float32) * np.float32(strength)


class TransferPipeline:
    """Transfers a facial attribute from an exemplar photo onto a source photo.

    Args:
        model: a :class:`~geogan_hf.model.GeoGAN`, a local directory or Hub repo id
            (loaded with ``GeoGAN.from_pretrained``), or ``None`` for the geometry prior:
            a ``GeoGAN(geometry_prior=True)`` with no learned weights (TPS flow from
            landmarks, the exemplar's instance matted, relit and composited).
        landmark_backend: ``"dlib"`` (offline) or ``"face_alignment"``.
        device: ``"auto"`` (CUDA when available, else Apple's MPS, else CPU), or any torch
            device.
        work_size: cap of the high-resolution crop side in pixels (default 1024); never
            below the model's ``image_size``.
        max_pixels: largest photo accepted (``width * height``); ``None`` = no limit.

    Raises:
        ModelLoadError: the directory or repo does not hold a loadable model.

    Example::

        pipe = TransferPipeline()  # geometry prior
        result = pipe("me.jpg", "exemplar.jpg", attribute="Mustache")
        result.image.save("me_with_mustache.png")
    """

    def __init__(
        self,
        model: GeoGAN | str | os.PathLike | None = None,
        landmark_backend: str = "dlib",
        device: str | torch.device = "auto",
        work_size: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        if landmark_backend not in LANDMARK_BACKENDS:
            raise ValueError(
                f"unknown landmark backend {landmark_backend!r}; "
                f"choose one of {', '.join(LANDMARK_BACKENDS)}"
            )
        self.device = resolve_device(device)
        model, self.model_id = _load_model(model)
        self.model = model.to(self.device).eval()
        if self.model.is_untrained:
            warnings.warn(
                "this GeoGAN model was never trained nor loaded (paper mode, random weights): "
                "its results are noise; load trained weights with GeoGAN.from_pretrained, or "
                "use the geometry prior (TransferPipeline())",
                UntrainedModelWarning,
                stacklevel=2,
            )
        self.landmark_backend = landmark_backend
        self.work_size = DEFAULT_WORK_SIZE if work_size is None else int(work_size)
        if self.work_size < 1:
            raise ValueError(f"work_size must be positive, got {work_size}")
        self.max_pixels = max_pixels
        self._faces: OrderedDict[tuple[str, tuple[int, int]], list[Face]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def mode(self) -> str:
        """``"geometry prior"`` (a prior model whose learned heads are still zero), ``"learned"``,
        or ``"untrained (random weights)"`` (a paper-mode model whose weights were never
        loaded: its results are noise)."""
        if self.model.is_pure_prior:
            return MODE_PRIOR
        return MODE_UNTRAINED if self.model.is_untrained else MODE_LEARNED

    @property
    def attributes(self) -> tuple[str, ...]:
        """Attribute names the model transfers."""
        return tuple(self.model.attributes)

    @property
    def image_size(self) -> int:
        """Resolution the networks run at."""
        return int(self.model.image_size)

    def describe(self) -> str:
        """One-line summary of the mode, model and settings (for info panels and logs)."""
        config = self.model.config
        source = self.model_id or ("no learned weights" if self.mode == MODE_PRIOR else "in memory")
        arch = f"ngf={config['ngf']}, n_blocks={config['n_blocks']}"
        if self.mode == MODE_PRIOR:
            what = "TPS flow from landmarks, instance matte from the exemplar, relit composite"
        else:
            what = f"GeoGAN {arch}, geometry_prior={config['geometry_prior']}"
        return (
            f"{self.mode} ({what}; {source}); networks at {self.image_size} px, "
            f"crops up to {max(self.work_size, self.image_size)} px; "
            f"attributes: {', '.join(self.attributes)}; "
            f"landmarks: {self.landmark_backend}; device: {self.device}"
        )

    def __repr__(self) -> str:
        return f"TransferPipeline({self.describe()})"

    def clear_cache(self) -> None:
        """Forget the remembered face detections (see :meth:`detect`)."""
        self._faces.clear()

    # --- stages -------------------------------------------------------------------------

    def detect(self, photo: Image.Image) -> list[Face]:
        """Faces in ``photo`` (largest first, photo pixel coordinates).

        Exactly :func:`~geogan_hf.landmarks.detect_faces` (its one detection policy), with
        the results for the last few photos remembered, so an exemplar used again costs
        nothing. Safe to call from several threads.
        """
        key = (hashlib.blake2b(photo.tobytes(), digest_size=16).hexdigest(), photo.size)
        with self._lock:
            if key in self._faces:
                self._faces.move_to_end(key)
                return list(self._faces[key])
        faces = detect_faces(photo, self.landmark_backend)
        with self._lock:
            self._faces[key] = faces
            while len(self._faces) > _CACHE_SIZE:
                self._faces.popitem(last=False)
        return list(faces)

    def _pick_face(self, photo: Image.Image, index: int, role: str) -> tuple[list[Face], Face]:
        faces = self.detect(photo)
        if not faces:
            raise NoFaceError(f"no face found in the {role} image", role=role)
        if not 0 <= index < len(faces):
            count = f"{len(faces)} face" + ("s" if len(faces) > 1 else "")
            raise FaceIndexError(
                f"{role} face index {index} is out of range: the {role} image has {count} "
                f"(valid indices 0..{len(faces) - 1})"
            )
        face = faces[index]
        size = face_crop_size(face.landmarks)
        if size < MIN_FACE_SIZE:
            raise FaceTooSmallError(
                f"the {role} face is too small to edit: its face crop is {size:.0f} px, "
                f"the minimum is {MIN_FACE_SIZE} px"
            )
        return faces, face

    def _check_attribute(self, attribute: str) -> str:
        name = canonical_attribute(attribute)
        if name not in self.attributes:
            raise UnknownAttributeError(
                f"unknown attribute {attribute!r} for this model; supported: "
                f"{', '.join(self.attributes)}"
            )
        return name

    @torch.inference_mode()
    def __call__(
        self,
        source: ImageInput,
        exemplar: ImageInput,
        attribute: str = "Mustache",
        strength: float = 1.0,
        source_face: int = 0,
        exemplar_face: int = 0,
        hair_colour: str = DEFAULT_HAIR_COLOUR,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """Transfer ``attribute`` from the exemplar's face onto the source's face.

        Args:
            source: the photo to edit (path, bytes, PIL image or numpy array).
            exemplar: a photo of a face wearing the attribute.
            attribute: attribute name (any spelling of :data:`~geogan_hf.regions.SUPPORTED_ATTRIBUTES`
                the model transfers).
            strength: paste weight in [0, 1] (0 = the source photo, 1 = the full edit).
            source_face: which source face to edit (0 = the largest).
            exemplar_face: which exemplar face to take the attribute from (0 = the largest).
            hair_colour: ``"own"``: a mustache or goatee takes the colours of the source's
                own beard or brows, a fringe those of its hair, where the photo shows
                enough of them; ``"exemplar"``: the exemplar's colours; ``"auto"``: a
                fringe the source's, a mustache or goatee the exemplar's
                (:data:`~geogan_hf.regions.HAIR_COLOURS`). The shape is the exemplar's.
            progress: called as each stage of :data:`STAGES` starts, with the fraction done
                and the stage's description (e.g. a ``gr.Progress``).

        Returns:
            A :class:`TransferResult`; its ``image`` has the source photo's size.

        Raises:
            InvalidArgumentError: ``strength`` is not a number in [0, 1], or
                ``hair_colour`` not one of :data:`~geogan_hf.regions.HAIR_COLOURS`.
            InvalidImageError: unreadable, empty or non-image input.
            ImageTooLargeError: a photo above the pixel limit.
            NoFaceError: no face in the source or the exemplar (``.role`` says which).
            FaceIndexError: face index not an integer or out of range (the message gives the
                face count).
            FaceTooSmallError: face crop below :data:`MIN_FACE_SIZE` pixels.
            UnknownAttributeError: the model does not transfer ``attribute``.
            AttributeNotFoundError: the exemplar shows no instance of ``attribute``.

        Warns:
            ExperimentalAttributeWarning: ``attribute`` is experimental.
            GrayscaleExemplarWarning: hair from a black-and-white exemplar onto a colour
                source (its colour is not seen, light hair not told from skin).
        """
        strength = _check_strength(strength)
        hair_colour = check_hair_colour(hair_colour)
        source_face = _check_face_index(source_face, "source")
        exemplar_face = _check_face_index(exemplar_face, "exemplar")
        name = self._check_attribute(attribute)
        timings: dict[str, float] = {}
        stages = list(STAGES)
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = now - clock
            clock = now
            done = stages.index(stage) + 1
            if progress is not None and done < len(stages):
                progress(done / len(stages), STAGES[stages[done]])

        if progress is not None:
            progress(0.0, STAGES["load"])
        photo = load_image(source, max_pixels=self.max_pixels, role="source")
        ex_photo = load_image(exemplar, max_pixels=self.max_pixels, role="exemplar")
        lap("load")

        source_faces, face = self._pick_face(photo, source_face, "source")
        exemplar_faces, ex_face = self._pick_face(ex_photo, exemplar_face, "exemplar")
        lap("detect")

        room = ATTRIBUTE_SPECS[name].chin_room
        size = _work_size(face_crop_size(face.landmarks, room), self.image_size, self.work_size)
        src = align_face(photo, face.landmarks, size, chin_room=room)
        resample = Image.Resampling.BICUBIC if ATTRIBUTE_SPECS[name].bicubic else Image.Resampling.BILINEAR
        ex = align_face(ex_photo, ex_face.landmarks, size, resample, chin_room=room)
        mirrored = False
        if ATTRIBUTE_SPECS[name].mirrors:
            ex, mirrored = turned_like(ex, src)
        lap("align")

        out, crop, ex_crop = self._run_model(src, ex, name, hair_colour)
        if out.coverage is not None and self.model.is_pure_prior:
            self._check_exemplar(float(out.coverage[0]), float(out.enclosure[0]), name)
        mask = out.mask[0, 0].float().cpu().numpy()
        edited = tensor_to_pil(out.image)
        warped = tensor_to_pil(out.warped)
        mask_image = Image.fromarray(np.clip(np.rint(mask * 255), 0, 255).astype(np.uint8), "L")
        flow = out.flow.float().cpu()
        flow_rgb = tensor_to_pil(flow_to_rgb(resize_flow(flow, (self.image_size,) * 2)))
        lap("model")
        if out.timings:  # the model's own stages, and the conversions around them
            model_time = timings.pop("model")
            timings.update(out.timings)
            timings["outputs"] = max(0.0, model_time - sum(out.timings.values()))

        changed = (out.image != crop).any(1)[0].cpu().numpy()
        weight = _paste_weight(np.maximum(mask, changed), strength)
        image = paste_back(
            photo, edited, src, weight, FEATHER, unedited=src.image, resample=resample
        )
        lap("paste")
        notes: list[Warning] = []  # after the transfer: bad input gets its error alone
        if ATTRIBUTE_SPECS[name].experimental and self.model.geometry_prior:
            notes.append(
                ExperimentalAttributeWarning(
                    f"{name} is experimental: its transfers are often not believable yet "
                    "(see the README)"
                )
            )
        if _colourless_hair(name, crop, ex_crop) and self.model.geometry_prior:
            notes.append(
                GrayscaleExemplarWarning(
                    f"the exemplar is a black-and-white photo: the colour of its "
                    f"{_described(name).removeprefix('a ')} cannot be seen there, and grey or "
                    "white hair cannot be told from its skin, so the result may come out grey "
                    "or spotted; a colour photo of the exemplar works better"
                )
            )
        for note in notes:
            warnings.warn(note, stacklevel=2)

        return TransferResult(
            image=image,
            source=photo,
            exemplar=ex_photo,
            source_crop=src.image,
            exemplar_crop=ex.image,
            warped=warped,
            mask=mask_image,
            flow_rgb=flow_rgb,
            source_landmarks=src.landmarks,
            exemplar_landmarks=ex.landmarks,
            mode=self.mode,
            attribute=name,
            strength=strength,
            timings=timings,
            hair_colour=hair_colour,
            source_faces=source_faces,
            exemplar_faces=exemplar_faces,
            source_face=source_face,
            exemplar_face=exemplar_face,
            exemplar_mirrored=mirrored,
            flow=flow,
            paste_weight=weight,
            aligned=src,
            coverage=None if out.coverage is None else float(out.coverage[0]),
            source_coverage=None if out.source_coverage is None else float(out.source_coverage[0]),
            notes=tuple(str(note) for note in notes),
        )

    def _check_exemplar(self, coverage: float, enclosure: float, attribute: str) -> None:
        """Raise :class:`AttributeNotFoundError` when the exemplar shows no instance."""
        spec = ATTRIBUTE_SPECS[attribute]
        # whole percents rounded down: 7.6 % read "8 %, at least 8 % expected"
        if enclosure < spec.enclosed:
            shown = (
                f"encloses an eye on {math.floor(100 * enclosure)}% of the way round, "
                f"at least {spec.enclosed:.0%}"
            )
        elif spec.kind in ("hair", "accessory") and coverage < spec.absent:
            shown = f"covers {math.floor(100 * coverage)}% of the region, at least {spec.absent:.0%}"
        else:
            return
        raise AttributeNotFoundError(
            f"the exemplar does not seem to have {_described(attribute)}: what it shows "
            f"{shown} expected; choose an exemplar photo where it is clearly visible"
        )

    def _run_model(
        self, src: AlignedFace, ex: AlignedFace, attribute: str, hair_colour: str
    ) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """The model on the two crops (networks at ``image_size``, outputs at crop size), and
        the source and exemplar crops as the model saw them."""
        size = (src.size, src.size)

        def to_model(aligned: AlignedFace) -> tuple[torch.Tensor, torch.Tensor]:
            image = pil_to_tensor(aligned.image).to(self.device).contiguous()
            points = torch.as_tensor(aligned.landmarks, dtype=torch.float32)
            return image, pixel_to_normalized(points, size)[None].to(self.device)

        a, a_points = to_model(src)
        b, b_points = to_model(ex)
        out = self.model(a, b, a_points, b_points, attribute=attribute, hair_colour=hair_colour)
        return out, a, b
