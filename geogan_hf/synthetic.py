"""Synthetic paired benchmark: real faces wearing procedural attributes with known ground truth.

CelebA has no picture of "this face wearing that exact mustache"; this module makes one.
Base faces are the real photos of :mod:`geogan_hf.samples` with their 68 landmarks,
aligned to the canonical crop (:func:`geogan_hf.align.align_face`) and multiplied by
random geometric augmentation (a similarity transform composed with a landmark-driven
thin-plate spline that changes face shape and expression) and photometric jitter.

**Instances.** An attribute instance (a mustache, a goatee, a pair of glasses with random
shape, thickness, colour and texture) is drawn once, in the frame of a template face (the
mean aligned landmarks of the base faces), and is carried onto any face by the landmark
thin-plate spline from the template to that face. So for a source ``a`` and an exemplar
``b`` wearing instance ``k`` the ground truth is known: ``a`` with ``k`` rendered in
``a``'s landmark frame, and its exact mask is ``k``'s coverage (alpha) there. The
photometric jitter is applied after the instance is drawn (it is the scene's lighting), so
the exemplar's instance and the ground truth's differ in tone like real photos do, and
outside the mask the ground truth equals the source bit for bit.

**Splits.** Whole base identities are held out: faces named in ``eval_faces`` (default
``astronaut`` and ``lenna``) only appear in the ``eval`` split, all others only in
``train``. These two wear none of the synthetic attributes, so every attribute can be
evaluated on them, and the training faces (takeo, einstein, breakingbad, grace_hopper) keep a
source pool for each attribute (takeo and grace_hopper for Mustache, those and einstein for
Goatee, einstein for Eyeglasses). An evaluation pair takes
its exemplar from another held-out person than its source whenever there is one: in real
use the exemplar is always someone else, and two photos of one face differ in geometry
about four times less than two people do (identity-flow NME 0.04 against 0.18 at 128 px),
which made a same-face benchmark flatter the identity warp. A face that wears an attribute
for real is never a source for it, and never gets a synthetic instance of it (its real one
makes it an exemplar).

An optional ``validation`` split (``num_validation``) holds quadruples of the *training*
faces, drawn like the ``eval`` ones with fresh augmentations and instances: for choosing
training settings without looking at the held-out people.

**Layout** (``DatasetDict.save_to_disk``; :func:`geogan_hf.data.load_face_dataset` loads
the ``train`` split like a Hub dataset):

- ``train``: ``image`` (PNG), ``landmarks`` (68 ``(x, y)`` pixels), ``face`` (base face
  name), one bool column per attribute of :data:`SYNTHETIC_ATTRIBUTES` (real or drawn),
  ``synthetic`` (names of the drawn attributes).
- ``eval``: ``source``, ``exemplar``, ``ground_truth`` (RGB PNG), ``ground_truth_mask``
  (L PNG, alpha x 255), ``exemplar_mask`` (the same instance's alpha on the exemplar: the
  matte an extraction should find there), ``source_landmarks``, ``exemplar_landmarks``,
  ``attribute``, ``source_face``, ``exemplar_face``, ``instance_seed``. The ground truth
  shares the source's landmarks.
- ``validation`` (only when asked for): the columns of ``eval``, training faces.

Every row is a pure function of ``(seed, split, index)``: the same arguments give the
same bytes. Internally images are float tensors ``(3, H, W)`` in ``[0, 1]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import io
import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from geogan_hf.align import align_face, paste_back
from geogan_hf.arguments import ranged
from geogan_hf.errors import DatasetError, NoFaceError
from geogan_hf.geometry import homography_flow, pixel_to_normalized, tps_flow, warp_with_flow
from geogan_hf.landmarks import detect_faces
from geogan_hf.prior import frame_map
from geogan_hf.regions import ATTRIBUTE_SPECS, canonical_attribute
from geogan_hf.samples import available_samples, load_sample

__all__ = [
    "DEFAULT_EVAL_FACES",
    "EVAL_SPLIT",
    "LIGHTING",
    "SYNTHETIC_ATTRIBUTES",
    "TRAIN_SPLIT",
    "VALIDATION_SPLIT",
    "BaseFace",
    "Instance",
    "SyntheticGenerator",
    "build_parser",
    "draw_eyeglasses",
    "generate_synthetic_dataset",
    "load_base_faces",
    "run",
    "wear_drawn_eyeglasses",
    "wear_instance",
]

SYNTHETIC_ATTRIBUTES: tuple[str, ...] = ("Mustache", "Goatee", "Eyeglasses")
DEFAULT_EVAL_FACES: tuple[str, ...] = ("astronaut", "lenna")
TRAIN_SPLIT, EVAL_SPLIT, VALIDATION_SPLIT = "train", "eval", "validation"
LIGHTING: tuple[str, ...] = ("hard", "mild")
_SPLIT_IDS = {TRAIN_SPLIT: 0, EVAL_SPLIT: 1, VALIDATION_SPLIT: 2}
_DRAW_SCALE = 2  # instances are drawn at 2x the layer size, then box-filtered (anti-aliasing)
_LAYER_SCALE = 2  # instance layers are kept at 2x the output size before warping
_DRAW_PROB = 0.5  # chance that a training row gets a synthetic instance of an attribute

_HAIR_COLOURS = (
    (24, 20, 18), (58, 40, 28), (96, 66, 42), (128, 62, 30),
    (186, 154, 98), (146, 140, 134), (212, 206, 198),
)  # fmt: skip
_FRAME_COLOURS = (
    (20, 20, 22), (70, 45, 30), (122, 76, 40), (198, 164, 92),
    (180, 180, 186), (150, 30, 36), (32, 42, 92),
)  # fmt: skip


@dataclasses.dataclass(frozen=True, eq=False)
class BaseFace:
    """A real face aligned to the canonical crop.

    Attributes:
        name: the sample name (:func:`geogan_hf.samples.available_samples`).
        image: ``(3, S, S)`` float tensor in ``[0, 1]``.
        landmarks: ``(68, 2)`` float64 pixel coordinates in the crop.
        attributes: CelebA attributes the face wears for real.
    """

    name: str
    image: torch.Tensor
    landmarks: np.ndarray
    attributes: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Instance:
    """One procedural attribute instance: its shape, colour and texture follow from ``seed``."""

    attribute: str
    seed: int


def load_base_faces(
    size: int, names: Sequence[str] | None = None, landmark_backend: str = "dlib"
) -> list[BaseFace]:
    """Loads the real sample faces, aligned to ``size`` px canonical crops.

    Samples without ground-truth landmarks (the astronaut) get them from
    :func:`geogan_hf.landmarks.detect_faces` (largest face).

    Args:
        size: side of the crops.
        names: sample names; ``None`` = every available sample.
        landmark_backend: detector for samples without ground truth.

    Raises:
        DatasetError: a name is not an available sample.
        NoFaceError: no face found in a sample without ground truth.
    """
    available = available_samples()
    names = list(available if names is None else names)
    missing = [n for n in names if n not in available]
    if missing:
        raise DatasetError(
            f"base faces not available: {', '.join(missing)}; available: {', '.join(available)}"
        )
    faces = []
    for name in names:
        sample = load_sample(name)
        landmarks = sample.landmarks
        if landmarks is None:
            found = detect_faces(sample.image, backend=landmark_backend)
            if not found:
                raise NoFaceError(f"no face found in sample {name!r}")
            landmarks = found[0].landmarks
        aligned = align_face(sample.image, landmarks, size=size)
        faces.append(
            BaseFace(
                name=name,
                image=_pil_to_unit(aligned.image),
                landmarks=np.asarray(aligned.landmarks, dtype=np.float64),
                attributes=frozenset(sample.attributes),
            )
        )
    return faces


class SyntheticGenerator:
    """Renders augmented faces, procedural instances and benchmark rows at one size.

    Args:
        faces: base faces (all at ``size``); the template frame is their mean landmarks.
        size: side of every image.
        attributes: synthetic attributes to draw (subset of :data:`SYNTHETIC_ATTRIBUTES`).
        seed: seed of every random draw.
        lighting: ``"hard"`` (default): source and exemplar also differ in exposure
            (+-0.7 stop), white balance, shading direction and skin tone; ``"mild"``: the
            benchmark before those were added (small gamma / colour / contrast jitter).
    """

    def __init__(
        self,
        faces: Sequence[BaseFace],
        size: int,
        attributes: Sequence[str] = SYNTHETIC_ATTRIBUTES,
        seed: int = 0,
        lighting: str = "hard",
    ) -> None:
        if lighting not in LIGHTING:
            raise DatasetError(f"lighting must be one of {', '.join(LIGHTING)}, got {lighting!r}")
        self.lighting = lighting
        if not faces:
            raise DatasetError("no base faces given")
        self.faces = list(faces)
        self.size = int(size)
        self.attributes = tuple(_synthetic_attribute(a) for a in attributes)
        if not self.attributes:
            raise DatasetError("no attributes given")
        self.seed = int(seed)
        self.template = np.mean([f.landmarks for f in self.faces], axis=0)

    # -- faces -----------------------------------------------------------------------------

    def augment(self, face: BaseFace, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
        """Warps ``face`` by a random shape / expression TPS composed with a similarity.

        Returns:
            ``(image (3, S, S) in [0, 1], landmarks (68, 2) pixels)``; the landmarks are
            exactly where the base landmarks went.
        """
        new = _deform_landmarks(face.landmarks, self.size, rng)
        flow = self._tps(new, face.landmarks)
        image = warp_with_flow(face.image[None], flow, padding_mode="reflection")[0]
        return image.clamp(0, 1), new

    def photometric(self, rng: np.random.Generator) -> _Photometric:
        """Draws a random lighting / camera change (applied to a whole row's images alike)."""
        return _Photometric.sample(rng, self.size, self.lighting)

    # -- instances -------------------------------------------------------------------------

    def template_flow(self, landmarks: np.ndarray, attribute: str | None = None) -> torch.Tensor:
        """TPS flow ``(1, 2, S, S)`` that carries the template frame onto a face's ``landmarks``.

        Glasses (an ``"accessory"`` ``attribute``) are rigid: they are carried by the frame's
        projective map, as the geometry prior places them (:func:`geogan_hf.prior.frame_map`),
        not bent with the eyelids and brows; laid flat (the prior also squeezes a frame's
        far end into a turned head's outline, :func:`geogan_hf.prior.outline_squeeze`).
        """
        if attribute is None or ATTRIBUTE_SPECS[canonical_attribute(attribute)].kind != "accessory":
            return self._tps(landmarks, self.template)
        size = (self.size, self.size)
        out, inp = (
            pixel_to_normalized(torch.as_tensor(p, dtype=torch.float64), size)[None]
            for p in (landmarks, self.template)
        )
        return homography_flow(frame_map(out, inp, size), size).float()

    def render(self, instance: Instance, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Carries ``instance`` onto a face by its :meth:`template_flow`.

        Returns:
            ``(premultiplied colour (3, S, S), alpha (1, S, S))`` in ``[0, 1]``.
        """
        layer = self._template_layer(instance)
        warped = warp_with_flow(layer[None], flow, padding_mode="zeros")[0].clamp(0, 1)
        alpha = warped[3:]
        return torch.minimum(warped[:3], alpha), alpha

    def draw(self, image: torch.Tensor, instance: Instance, flow: torch.Tensor):
        """``image`` wearing ``instance`` (placed by ``flow``) and the instance's alpha ``(1, S, S)``."""
        colour, alpha = self.render(instance, flow)
        return colour + (1 - alpha) * image, alpha

    @functools.lru_cache(maxsize=64)  # noqa: B019 (a generator lives as long as its dataset)
    def _template_layer(self, instance: Instance) -> torch.Tensor:
        """``(4, 2S, 2S)`` premultiplied RGBA of the instance in the template frame."""
        side = self.size * _LAYER_SCALE * _DRAW_SCALE
        points = (self.template + 0.5) * (_LAYER_SCALE * _DRAW_SCALE) - 0.5
        rng = np.random.default_rng([self.seed, 7, instance.seed])
        canvas = _DRAWERS[instance.attribute](points, side, rng)
        rgba = torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255).permute(2, 0, 1)
        rgba[:3] *= rgba[3:]
        return torch.nn.functional.avg_pool2d(rgba[None], _DRAW_SCALE)[0]

    def _tps(
        self,
        output_points: np.ndarray,
        input_points: np.ndarray,
    ) -> torch.Tensor:
        size = (self.size, self.size)
        out = pixel_to_normalized(torch.as_tensor(output_points, dtype=torch.float64), size)
        inp = pixel_to_normalized(torch.as_tensor(input_points, dtype=torch.float64), size)
        return tps_flow(out[None], inp[None], size).float()

    # -- rows ------------------------------------------------------------------------------

    def train_row(self, index: int, faces: Sequence[BaseFace]) -> dict:
        """Training row ``index``: a face of ``faces`` (round robin) with random instances."""
        rng = np.random.default_rng([self.seed, _SPLIT_IDS[TRAIN_SPLIT], index])
        face = faces[index % len(faces)]
        image, landmarks = self.augment(face, rng)
        drawn = []
        tone = _skin_tone(rng, self.lighting)
        image = tone(image)
        for attribute in self.attributes:
            draw = rng.random() < _DRAW_PROB
            seed = int(rng.integers(2**31))
            if draw and attribute not in face.attributes:
                flow = self.template_flow(landmarks, attribute)
                image, _ = self.draw(image, Instance(attribute, seed), flow)
                drawn.append(attribute)
        image = self.photometric(rng)(image)
        row = {"image": _to_png(image), "landmarks": landmarks.astype(np.float32).tolist()}
        row["face"] = face.name
        for attribute in self.attributes:
            row[attribute] = attribute in face.attributes or attribute in drawn
        row["synthetic"] = drawn
        return row

    def eval_row(self, index: int, faces: Sequence[BaseFace], split: str = EVAL_SPLIT) -> dict:
        """Quadruple ``index`` (source, exemplar, ground truth, mask) of ``split`` from ``faces``."""
        rng = np.random.default_rng([self.seed, _SPLIT_IDS[split], index])
        attribute = self.attributes[index % len(self.attributes)]
        without = [f for f in faces if attribute not in f.attributes]
        if not without:
            raise DatasetError(f"no evaluation face without {attribute!r}")
        source = without[int(rng.integers(len(without)))]
        # another person when there is one: real exemplars never share the source's face shape
        others = [f for f in without if f is not source] or without
        exemplar = others[int(rng.integers(len(others)))]
        instance = Instance(attribute, int(rng.integers(2**31)))

        source_image, source_landmarks = self.augment(source, rng)
        source_light = self.photometric(rng)
        exemplar_image, exemplar_landmarks = self.augment(exemplar, rng)
        exemplar_light = self.photometric(rng)
        source_image = _skin_tone(rng, self.lighting)(source_image)
        exemplar_image = _skin_tone(rng, self.lighting)(exemplar_image)
        truth, alpha = self.draw(
            source_image, instance, self.template_flow(source_landmarks, attribute)
        )
        worn, worn_alpha = self.draw(
            exemplar_image, instance, self.template_flow(exemplar_landmarks, attribute)
        )
        return {
            "source": _to_png(source_light(source_image)),
            "exemplar": _to_png(exemplar_light(worn)),
            "ground_truth": _to_png(source_light(truth)),
            "ground_truth_mask": _to_png(alpha),
            "exemplar_mask": _to_png(worn_alpha),
            "source_landmarks": source_landmarks.astype(np.float32).tolist(),
            "exemplar_landmarks": exemplar_landmarks.astype(np.float32).tolist(),
            "attribute": attribute,
            "source_face": source.name,
            "exemplar_face": exemplar.name,
            "instance_seed": instance.seed,
        }


def wear_instance(
    photo: Image.Image, landmarks: np.ndarray, attribute: str, seed: int = 0, size: int = 256
) -> tuple[Image.Image, np.ndarray]:
    """``photo`` with a procedural instance of ``attribute`` drawn on one face.

    The instance is drawn on the face's aligned ``size`` crop (in that face's own frame) and
    pasted back with its alpha, so the rest of the photo is untouched: a real photo wearing
    a known instance, for tests and examples.

    Args:
        photo: the photo (RGB).
        landmarks: ``(68, 2)`` photo pixel landmarks of the face.
        attribute: one of :data:`SYNTHETIC_ATTRIBUTES`.
        seed: selects the instance's shape, colour and texture.
        size: side of the crop the instance is drawn on.

    Returns:
        ``(photo wearing the instance, alpha (size, size) in the aligned crop)``.
    """
    aligned = align_face(photo, landmarks, size=size)
    face = BaseFace("photo", _pil_to_unit(aligned.image), aligned.landmarks, frozenset())
    generator = SyntheticGenerator([face], size, [attribute], seed, lighting="mild")
    colour, alpha = generator.render(
        Instance(_synthetic_attribute(attribute), seed),
        generator.template_flow(face.landmarks, _synthetic_attribute(attribute)),
    )
    worn = colour + (1 - alpha) * face.image
    crop = Image.fromarray((worn.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    weight = (alpha[0] > 0).numpy().astype(np.float32)
    return paste_back(photo, crop, aligned, weight, feather=0.0), alpha[0].numpy()


def generate_synthetic_dataset(
    output_dir: str | os.PathLike | None = None,
    *,
    size: int = 128,
    num_train: int = 1000,
    num_eval: int = 100,
    num_validation: int = 0,
    attributes: Sequence[str] = SYNTHETIC_ATTRIBUTES,
    faces: Sequence[str] | None = None,
    eval_faces: Sequence[str] = DEFAULT_EVAL_FACES,
    seed: int = 0,
    landmark_backend: str = "dlib",
    show_progress: bool = True,
    lighting: str = "hard",
):
    """Generates the synthetic benchmark (see the module docstring for its layout).

    Args:
        output_dir: where to ``save_to_disk`` the :class:`datasets.DatasetDict`; ``None``
            keeps it in memory only.
        size: side of every image in pixels.
        num_train: rows of the ``train`` split.
        num_eval: quadruples of the ``eval`` split (attributes in turn).
        num_validation: quadruples of a ``validation`` split from the training faces
            (0 = no such split).
        attributes: synthetic attributes to draw.
        faces: base sample names; ``None`` = every available sample.
        eval_faces: base faces held out for the ``eval`` split.
        seed: seed of the whole dataset.
        landmark_backend: detector for samples without ground-truth landmarks.
        show_progress: show tqdm bars.
        lighting: ``"hard"`` or ``"mild"`` photometric differences (:class:`SyntheticGenerator`).

    Returns:
        The :class:`datasets.DatasetDict` with ``train``, ``eval`` and (when asked for)
        ``validation`` splits.

    Raises:
        DatasetError: unknown faces, or a split without faces.
    """
    import datasets

    attributes = [_synthetic_attribute(a) for a in attributes]
    base = load_base_faces(size, faces, landmark_backend)
    unknown = sorted(set(eval_faces) - {f.name for f in base})
    if unknown:
        raise DatasetError(f"eval faces not among the base faces: {', '.join(unknown)}")
    train_faces = [f for f in base if f.name not in eval_faces]
    test_faces = [f for f in base if f.name in eval_faces]
    if not train_faces or not test_faces:
        raise DatasetError(
            f"both splits need base faces; train: {[f.name for f in train_faces]}, "
            f"eval: {[f.name for f in test_faces]}"
        )
    generator = SyntheticGenerator(base, size, attributes, seed, lighting)
    with torch.inference_mode():
        train = [
            generator.train_row(i, train_faces)
            for i in tqdm(range(num_train), desc="synthetic train", disable=not show_progress)
        ]
        sources = {EVAL_SPLIT: (test_faces, num_eval)}
        if num_validation:
            sources[VALIDATION_SPLIT] = (train_faces, num_validation)
        quadruples = {
            split: [
                generator.eval_row(i, split_faces, split)
                for i in tqdm(range(count), desc=f"synthetic {split}", disable=not show_progress)
            ]
            for split, (split_faces, count) in sources.items()
        }
    points = datasets.List(datasets.List(datasets.Value("float32"), length=2), length=68)
    train_features = datasets.Features(
        {
            "image": datasets.Image(),
            "landmarks": points,
            "face": datasets.Value("string"),
            **{a: datasets.Value("bool") for a in generator.attributes},
            "synthetic": datasets.List(datasets.Value("string")),
        }
    )
    eval_features = datasets.Features(
        {
            **{k: datasets.Image() for k in ("source", "exemplar", "ground_truth")},
            "ground_truth_mask": datasets.Image(),
            "exemplar_mask": datasets.Image(),
            "source_landmarks": points,
            "exemplar_landmarks": points,
            "attribute": datasets.Value("string"),
            "source_face": datasets.Value("string"),
            "exemplar_face": datasets.Value("string"),
            "instance_seed": datasets.Value("int64"),
        }
    )
    result = datasets.DatasetDict(
        {
            TRAIN_SPLIT: datasets.Dataset.from_list(train, features=train_features),
            **{
                split: datasets.Dataset.from_list(rows, features=eval_features)
                for split, rows in quadruples.items()
            },
        }
    )
    if output_dir is not None:
        result.save_to_disk(os.fspath(output_dir))
    return result


# -- geometric and photometric augmentation ------------------------------------------------


def _deform_landmarks(points: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Random face shape / expression change, then a similarity about the crop centre."""
    p = points.copy()
    eyes = p[36:48].mean(0)
    iod = np.linalg.norm(p[45] - p[36])
    mouth_width = np.linalg.norm(p[54] - p[48])
    centre_x = p[27:31, 0].mean()

    p[0:17, 0] = centre_x + (p[0:17, 0] - centre_x) * rng.uniform(0.88, 1.12)  # jaw width
    p[3:14, 1] = eyes[1] + (p[3:14, 1] - eyes[1]) * rng.uniform(0.93, 1.08)  # face length
    mouth = p[48:68].mean(0)
    p[48:68, 0] = mouth[0] + (p[48:68, 0] - mouth[0]) * rng.uniform(0.85, 1.18)  # mouth width
    p[[48, 54, 60, 64], 1] -= rng.uniform(-0.04, 0.1) * mouth_width  # smile / frown
    if rng.random() < 0.5:  # open mouth: lower lip and chin go down
        opening = rng.uniform(0.02, 0.2) * mouth_width
        p[[55, 56, 57, 58, 59, 65, 66, 67], 1] += opening
        p[6:11, 1] += 0.6 * opening
    for upper, lower, corners in (([37, 38], [40, 41], [36, 39]), ([43, 44], [46, 47], [42, 45])):
        height = 0.3 * np.linalg.norm(p[corners[1]] - p[corners[0]])
        openness = rng.uniform(-0.15, 0.25) * height
        p[upper, 1] -= openness
        p[lower, 1] += 0.5 * openness
    p[17:27, 1] -= rng.uniform(-0.04, 0.08) * iod  # brows
    p[31:36, 0] = p[33, 0] + (p[31:36, 0] - p[33, 0]) * rng.uniform(0.88, 1.15)  # nose width
    # Slight head turn: inner features slide sideways against the face outline.
    half_width = (p[16, 0] - p[0, 0]) / 2
    inner = 1 - np.clip(np.abs(p[:, 0] - centre_x) / half_width, 0, 1) ** 2
    p[:, 0] += rng.uniform(-0.1, 0.1) * half_width * inner
    p += rng.normal(0, 0.002 * size, p.shape)

    angle = math.radians(rng.uniform(-7, 7))
    scale = rng.uniform(0.93, 1.07)
    shift = np.clip(rng.normal(0, 0.025 * size, 2), -0.05 * size, 0.05 * size)
    rotation = scale * np.array(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    )
    centre = (size - 1) / 2
    return (p - centre) @ rotation.T + centre + shift


@dataclasses.dataclass(frozen=True)
class _Photometric:
    """A per-pixel colour change: gamma, white balance, saturation, contrast, brightness, noise;
    in ``"hard"`` lighting also an exposure change and a shading gradient (in linear light)."""

    gamma: float
    gains: tuple[float, float, float]
    saturation: float
    contrast: float
    brightness: float
    noise: torch.Tensor
    exposure: float = 1.0  # multiplies linear light (2 ** stops)
    shading: tuple[float, float] = (0.0, 0.0)  # linear-light gradient across the image (x, y)

    @classmethod
    def sample(cls, rng: np.random.Generator, size: int, lighting: str = "mild") -> _Photometric:
        sigma = rng.uniform(0, 0.012)
        mild = cls(
            gamma=rng.uniform(0.85, 1.15),
            gains=tuple(rng.uniform(0.92, 1.08, 3).tolist()),
            saturation=rng.uniform(0.8, 1.2),
            contrast=rng.uniform(0.85, 1.15),
            brightness=rng.uniform(-0.06, 0.06),
            noise=torch.from_numpy(rng.normal(0, sigma, (3, size, size)).astype(np.float32)),
        )
        if lighting == "mild":
            return mild
        angle = rng.uniform(0, 2 * math.pi)
        strength = rng.uniform(0.2, 0.6)
        return dataclasses.replace(
            mild,
            gains=tuple(rng.uniform(0.85, 1.15, 3).tolist()),  # white balance
            exposure=float(2 ** rng.uniform(-0.7, 0.7)),
            shading=(strength * math.cos(angle), strength * math.sin(angle)),
        )

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        x = image.clamp(0, 1)
        if self.exposure != 1.0 or self.shading != (0.0, 0.0):
            side = image.shape[-1]
            ramp = torch.linspace(-1, 1, side)
            light = 1 + self.shading[0] * ramp[None, :] + self.shading[1] * ramp[:, None]
            x = ((x**2.2) * self.exposure * light.clamp_min(0.2)).clamp(0, 1) ** (1 / 2.2)
        x = x**self.gamma * torch.tensor(self.gains).view(3, 1, 1)
        grey = x.mean(0, keepdim=True)
        x = grey + self.saturation * (x - grey)
        x = (x - 0.5) * self.contrast + 0.5 + self.brightness + self.noise
        return x.clamp(0, 1)


def _skin_tone(rng: np.random.Generator, lighting: str):
    """A random change of the face's skin tone (``"hard"`` lighting; identity when mild).

    Darker skin reflects less light and relatively more red: linear-light gains
    ``(t, t^1.15, t^1.3)`` with ``t`` in [0.3, 1.1]. Applied to the face before an instance
    is drawn, so the instance keeps its own colour.
    """
    if lighting == "mild":
        return lambda image: image
    t = rng.uniform(0.3, 1.1)
    gains = torch.tensor([t, t**1.15, t**1.3], dtype=torch.float32).view(3, 1, 1)
    return lambda image: ((image.clamp(0, 1) ** 2.2 * gains).clamp(0, 1)) ** (1 / 2.2)


# -- procedural instances (drawn in template pixel coordinates) ----------------------------


def _frame(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vector from ``a`` to ``b`` and its perpendicular pointing down the image."""
    u = (b - a) / np.linalg.norm(b - a)
    return u, np.array([-u[1], u[0]])


def _polygon(centre: np.ndarray, u: np.ndarray, v: np.ndarray, s, r) -> list[tuple[float, float]]:
    points = centre + np.outer(s, u) + np.outer(r, v)
    return [tuple(p) for p in points.tolist()]


def _colour(palette, rng: np.random.Generator, jitter: float = 14) -> np.ndarray:
    base = np.asarray(palette[int(rng.integers(len(palette)))], dtype=np.float64)
    return np.clip(base + rng.normal(0, jitter, 3), 0, 255)


def _mottle(canvas: Image.Image, rng: np.random.Generator, strength: float) -> Image.Image:
    """Multiplies the colour by a smooth random field (texture), keeping alpha."""
    side = canvas.size[0]
    coarse = rng.normal(0, 1, (16, 16)).astype(np.float32)
    field = np.asarray(Image.fromarray(coarse, mode="F").resize((side, side), Image.BICUBIC))
    pixels = np.asarray(canvas, dtype=np.float32).copy()
    pixels[..., :3] *= np.clip(1 + strength * field, 0.3, 1.7)[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), mode="RGBA")


def _hair(
    side: int,
    outline: list[tuple[float, float]],
    colour: np.ndarray,
    rng: np.random.Generator,
    direction,
    length: float,
    fill_alpha: float,
) -> Image.Image:
    """A hairy patch: a translucent fill plus random strokes, clipped to ``outline``."""
    fill = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    ImageDraw.Draw(fill).polygon(
        outline, fill=(*colour.round().astype(int), round(255 * fill_alpha))
    )
    shape = Image.new("L", (side, side), 0)
    ImageDraw.Draw(shape).polygon(outline, fill=255)
    inside = np.asarray(shape) > 0
    strokes = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(strokes)
    width = max(1, round(side * rng.uniform(0.002, 0.005)))
    ys, xs = np.nonzero(inside)
    count = int(inside.sum() * rng.uniform(0.6, 2.0) / max(length * width, 1))
    picks = rng.integers(len(xs), size=count) if len(xs) else []
    for i in picks:
        start = np.array([xs[i], ys[i]], dtype=np.float64)
        angle = direction(start) + rng.normal(0, 0.25)
        end = start + length * rng.uniform(0.6, 1.2) * np.array([math.cos(angle), math.sin(angle)])
        shade = np.clip(colour * rng.uniform(0.55, 1.35), 0, 255).round().astype(int)
        draw.line([tuple(start), tuple(end)], fill=(*shade, 255), width=width)
    clipped = np.asarray(strokes).copy()
    clipped[..., 3] = np.where(inside, clipped[..., 3], 0)
    return Image.alpha_composite(fill, Image.fromarray(clipped, mode="RGBA"))


def _draw_mustache(t: np.ndarray, side: int, rng: np.random.Generator) -> Image.Image:
    u, v = _frame(t[48], t[54])
    centre = t[51]
    half = np.linalg.norm(t[54] - t[48]) / 2
    nose = float(np.dot(centre - t[33], v))  # philtrum height
    lip_s, lip_r = (t[48:55] - centre) @ u, (t[48:55] - centre) @ v
    order = np.argsort(lip_s)
    ext = rng.uniform(0.05, 0.45) * half
    end = half + ext
    s = np.linspace(-end, end, 61)
    beyond = np.clip((np.abs(s) - half) / ext, 0, 1)
    low = np.interp(s, lip_s[order], lip_r[order]) - rng.uniform(0.0, 0.15) * nose
    low = low + beyond**1.5 * rng.uniform(-0.25, 1.1) * nose
    profile = (1 - np.clip(np.abs(s) / end, 0, 1) ** rng.uniform(1.5, 4.0)) ** 0.8
    profile *= 1 - rng.uniform(0, 0.35) * np.exp(-((s / (0.12 * half)) ** 2))  # philtrum notch
    profile = np.maximum(profile, rng.uniform(0, 0.15))
    up = np.maximum(low - rng.uniform(0.45, 0.9) * nose * profile, -0.92 * nose)
    outline = _polygon(centre, u, v, np.concatenate([s, s[::-1]]), np.concatenate([up, low[::-1]]))

    def direction(point: np.ndarray) -> float:
        d = v + 0.8 * (float(np.dot(point - centre, u)) / end) * u
        return math.atan2(d[1], d[0])

    colour = _colour(_HAIR_COLOURS, rng)
    patch = _hair(side, outline, colour, rng, direction, 0.45 * nose, rng.uniform(0.6, 1.0))
    return _mottle(patch, rng, rng.uniform(0, 0.3))


def _draw_goatee(t: np.ndarray, side: int, rng: np.random.Generator) -> Image.Image:
    u, v = _frame(t[48], t[54])
    centre = t[57]
    chin = float(np.dot(t[8] - centre, v))
    half = rng.uniform(0.3, 0.6) * np.linalg.norm(t[54] - t[48])
    gap = rng.uniform(0.05, 0.25) * chin
    depth = rng.uniform(0.8, 1.08) * chin
    theta = np.linspace(0, math.pi, 61)
    s = half * np.cos(theta)
    r = gap + (depth - gap) * np.sin(theta) ** rng.uniform(0.35, 1.0)
    outline = _polygon(centre, u, v, s, r)

    def direction(point: np.ndarray) -> float:
        d = v + 0.3 * (float(np.dot(point - centre, u)) / half) * u
        return math.atan2(d[1], d[0])

    colour = _colour(_HAIR_COLOURS, rng)
    patch = _hair(side, outline, colour, rng, direction, 0.25 * chin, rng.uniform(0.6, 1.0))
    return _mottle(patch, rng, rng.uniform(0, 0.3))


def _superellipse(centre, u, v, a: float, b: float, n: float) -> list[tuple[float, float]]:
    theta = np.linspace(0, 2 * math.pi, 97)[:-1]
    c, s = np.cos(theta), np.sin(theta)
    x = a * np.sign(c) * np.abs(c) ** (2 / n)
    y = b * np.sign(s) * np.abs(s) ** (2 / n)
    return _polygon(centre, u, v, x, y)


def draw_eyeglasses(
    t: np.ndarray, side: int, rng: np.random.Generator, thickness: tuple[float, float] = (0.08, 0.2)
) -> Image.Image:
    """A random pair of glasses for the face with landmarks ``t`` (``(68, 2)`` pixels) on a
    transparent ``side`` x ``side`` canvas; the rims' ``thickness`` is drawn from this range
    (a share of a lens's half width: thin metal frames from about 0.03)."""
    right, left = t[36:42].mean(0), t[42:48].mean(0)
    u, v = _frame(right, left)
    distance = np.linalg.norm(left - right)
    a = rng.uniform(0.3, 0.44) * distance
    b = a * rng.uniform(0.55, 0.9)
    n = rng.uniform(2, 6)
    thick = rng.uniform(*thickness) * a
    drop = rng.uniform(-0.05, 0.25) * b
    spread = rng.uniform(-0.03, 0.05) * distance
    centres = (right - spread * u + drop * v, left + spread * u + drop * v)
    frame = (*_colour(_FRAME_COLOURS, rng).round().astype(int), 255)
    if rng.random() < 0.3:  # sunglasses: dark tinted lenses
        lens = (
            *np.clip(rng.uniform(15, 70, 3), 0, 255).round().astype(int),
            round(255 * rng.uniform(0.55, 0.85)),
        )
    else:
        lens = (0, 0, 0, 0)

    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(thick))
    for c in centres:
        draw.polygon(_superellipse(c, u, v, a + thick / 2, b + thick / 2, n), fill=frame)
    mid = (centres[0] + centres[1]) / 2 - 0.35 * b * v
    bridge = [centres[0] + a * u, mid, centres[1] - a * u]
    draw.line([tuple(p) for p in bridge], fill=frame, width=width, joint="curve")
    for c, outward in ((centres[0], -u), (centres[1], u)):
        start = c + (a + thick / 2) * outward - 0.3 * b * v
        draw.line([tuple(start), tuple(start + 0.55 * distance * outward)], fill=frame, width=width)
    for c in centres:
        draw.polygon(_superellipse(c, u, v, a - thick / 2, b - thick / 2, n), fill=lens)
    return _mottle(canvas, rng, rng.uniform(0, 0.25))


def wear_drawn_eyeglasses(
    photo: Image.Image,
    landmarks: np.ndarray,
    rng: np.random.Generator,
    thickness: tuple[float, float] = (0.03, 0.2),
    oversample: int = 4,
) -> Image.Image:
    """``photo`` wearing :func:`draw_eyeglasses` glasses fitted to its ``landmarks``
    (``(68, 2)`` pixels), drawn at ``oversample`` times its size and reduced: drawn at the
    photo's own size, a rim under a pixel thick broke into dashes."""
    width, height = photo.size
    points = np.asarray(landmarks, dtype=np.float64) * oversample + (oversample - 1) / 2
    canvas = draw_eyeglasses(points, oversample * max(width, height), rng, thickness)
    canvas = canvas.crop((0, 0, oversample * width, oversample * height))
    worn = photo.convert("RGBA")
    worn.alpha_composite(canvas.resize((width, height), Image.Resampling.BOX))
    return worn.convert("RGB")


_DRAWERS = {"Mustache": _draw_mustache, "Goatee": _draw_goatee, "Eyeglasses": draw_eyeglasses}


# -- helpers -------------------------------------------------------------------------------


def _synthetic_attribute(name: str) -> str:
    attribute = canonical_attribute(name)
    if attribute not in SYNTHETIC_ATTRIBUTES:
        raise DatasetError(
            f"no procedural instances for {attribute!r}; synthetic attributes: "
            f"{', '.join(SYNTHETIC_ATTRIBUTES)}"
        )
    return attribute


def _pil_to_unit(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(
        2, 0, 1
    )


def _to_png(image: torch.Tensor) -> dict:
    """``(C, H, W)`` in ``[0, 1]`` (C = 3 or 1) -> ``{"bytes": PNG, "path": None}``."""
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    pil = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


# -- command line --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``geogan-synth``."""
    parser = argparse.ArgumentParser(
        prog="geogan-synth",
        description="Generate the synthetic paired benchmark (real faces wearing procedural "
        "mustaches, goatees and glasses with known ground truth) as a save_to_disk dataset.",
    )
    parser.add_argument("--output", required=True, help="folder to write the dataset to")
    parser.add_argument(
        "--size", type=ranged(int, 32, 4096), default=128, help="image side in pixels (default 128)"
    )
    parser.add_argument(
        "--num-train", type=ranged(int, 1), default=1000, help="training rows (default 1000)"
    )
    parser.add_argument(
        "--num-eval", type=ranged(int, 1), default=100, help="evaluation quadruples (default 100)"
    )
    parser.add_argument(
        "--num-validation", type=ranged(int, 0), default=0,
        help="validation quadruples of the training faces (default 0: no validation split)",
    )  # fmt: skip
    parser.add_argument(
        "--attributes", nargs="+", default=list(SYNTHETIC_ATTRIBUTES), help="attributes to draw"
    )
    parser.add_argument(
        "--faces", nargs="+", default=None, help="base faces (default: all available)"
    )
    parser.add_argument(
        "--eval-faces", nargs="+", default=list(DEFAULT_EVAL_FACES),
        help="base faces held out for the eval split (default: astronaut lenna)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--lighting", choices=LIGHTING, default="hard",
        help="hard (default): source and exemplar differ in exposure, white balance, shading "
        "and skin tone; mild: only small colour jitter (the benchmark before 2026-11)",
    )  # fmt: skip
    parser.add_argument(
        "--landmark-backend", default="dlib", help="detector for faces without ground truth"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs ``geogan-synth``; returns the exit code."""
    os.makedirs(args.output, exist_ok=True)  # an unwritable path fails now, not after the work
    data = generate_synthetic_dataset(
        args.output,
        size=args.size,
        num_train=args.num_train,
        num_eval=args.num_eval,
        num_validation=args.num_validation,
        attributes=args.attributes,
        faces=args.faces,
        eval_faces=args.eval_faces,
        seed=args.seed,
        landmark_backend=args.landmark_backend,
        show_progress=not args.no_progress,
        lighting=args.lighting,
    )
    train, test = data[TRAIN_SPLIT], data[EVAL_SPLIT]
    print(
        f"wrote {args.output}: train {len(train)} rows ({', '.join(sorted(set(train['face'])))}), "
        f"eval {len(test)} pairs ({', '.join(sorted(set(test['source_face'])))}), "
        f"validation {len(data[VALIDATION_SPLIT]) if VALIDATION_SPLIT in data else 0} pairs, "
        f"{args.size} px"
    )
    return 0
