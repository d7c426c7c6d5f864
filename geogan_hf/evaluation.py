"""Metrics for exemplar-based attribute transfer and the ``geogan-eval`` command.

Conventions (images, landmarks, flows, masks) are those of :mod:`geogan_hf.geometry`.
Every metric returns one value per pair, ``(N,)`` float64:

| metric | where | better |
|---|---|---|
| ``region_l1``: mean absolute error against the ground truth | inside the ground-truth region | lower |
| ``region_psnr``: PSNR against the ground truth (dB) | inside the ground-truth region | higher |
| ``mask_iou``: IoU of the predicted and the ground-truth masks | both thresholded at 0.5 | higher |
| ``alpha_sad``: sum of absolute alpha errors / 1000 (matting SAD) | whole image | lower |
| ``alpha_mse``: mean squared alpha error | the attribute's landmark region, grown | lower |
| ``skin_leakage``: mean absolute change against the source | that region outside the ground-truth instance | lower |
| ``landmark_nme``: where the flow fetches each source landmark vs the exemplar's | 68 points (glasses: the 11 a frame rests on) | lower |
| ``background_psnr``: PSNR against the source (dB) | outside the ground-truth region | higher |
| ``foldover``: fraction of flow cells with a negative Jacobian determinant | whole image | lower |

Errors are measured on the ``[0, 1]`` scale (an L1 of 0.1 is 10 % of the range; PSNR with
peak 1). The *ground-truth region* is where the ground-truth mask exceeds
:data:`REGION_THRESHOLD`, i.e. every pixel the instance changes, anti-aliased edges
included; identical pixels give a PSNR of ``inf``. ``landmark_nme`` is the standard
normalized mean error: the mean distance in pixels divided by the source's outer-eye-corner
distance (points 36 and 45). On real photos without ground truth the applicable subset is
``landmark_nme`` (against detected landmarks), ``foldover`` and ``background_psnr`` outside
the attribute's landmark region (:func:`load_photo_pairs`, then :func:`evaluate`).

The evaluation data is the ``eval`` split of :mod:`geogan_hf.synthetic`; each quadruple is
aligned like training data (:func:`geogan_hf.align.align_face`, the ground truth and its
mask with the source's landmarks).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from geogan_hf.align import AlignedFace, align_face, turned_like
from geogan_hf.arguments import ranged
from geogan_hf.errors import DatasetError, ModelLoadError, NoFaceError, UnknownAttributeError
from geogan_hf.geometry import (
    flow_jacobian_determinant,
    identity_flow,
    normalized_to_pixel,
    pixel_to_normalized,
    warp_points_backward,
)
from geogan_hf.imageio import load_image, pil_to_tensor
from geogan_hf.landmarks import detect_faces
from geogan_hf.prior import landmark_weights
from geogan_hf.regions import ATTRIBUTE_SPECS, canonical_attribute, region_mask

__all__ = [
    "IOU_THRESHOLD",
    "METRICS",
    "NO_GROUND_TRUTH_METRICS",
    "REGION_THRESHOLD",
    "EvalPairs",
    "EvalResult",
    "Method",
    "MethodOutput",
    "TransferMethod",
    "alpha_mse",
    "alpha_sad",
    "background_psnr",
    "build_parser",
    "evaluate",
    "foldover_ratio",
    "format_table",
    "geometry_prior_method",
    "landmark_nme",
    "load_eval_pairs",
    "load_method",
    "load_photo_pairs",
    "mask_iou",
    "model_method",
    "naive_paste",
    "region_l1",
    "region_psnr",
    "run",
    "save_grid",
    "skin_leakage",
    "summarize",
]

REGION_THRESHOLD = 0.05
IOU_THRESHOLD = 0.5
LEAKAGE_GROW = 0.1
# metric -> True when higher is better
METRICS: dict[str, bool] = {
    "region_l1": False,
    "region_psnr": True,
    "mask_iou": True,
    "alpha_sad": False,
    "alpha_mse": False,
    "skin_leakage": False,
    "landmark_nme": False,
    "background_psnr": True,
    "foldover": False,
}
NO_GROUND_TRUTH_METRICS = ("landmark_nme", "background_psnr", "foldover")
DEFAULT_PHOTO_SIZE = 256  # alignment size for photo pairs when the method has none
_EYE_CORNERS = (36, 45)


# -- metrics -------------------------------------------------------------------------------


def _unit_error(a: Tensor, b: Tensor) -> Tensor:
    """Per-pixel ``|a - b|`` on the [0, 1] scale, averaged over channels: ``(N, 1, H, W)``."""
    return ((a.double() - b.double()).abs() / 2).mean(1, keepdim=True)


def _masked_mean(values: Tensor, region: Tensor) -> Tensor:
    region = region.double()
    return (values * region).sum((1, 2, 3)) / region.sum((1, 2, 3))  # nan for an empty region


def _psnr(mse: Tensor) -> Tensor:
    return -10 * torch.log10(mse)  # inf for identical pixels


def region_l1(result: Tensor, target: Tensor, region: Tensor) -> Tensor:
    """Mean absolute error of ``result`` against ``target`` (``(N, 3, H, W)``) where ``region`` is set."""
    return _masked_mean(_unit_error(result, target), region)


def region_psnr(result: Tensor, target: Tensor, region: Tensor) -> Tensor:
    """PSNR (dB, [0, 1] scale) of ``result`` against ``target`` where ``region`` is set."""
    squared = ((result.double() - target.double()) / 2).square().mean(1, keepdim=True)
    return _psnr(_masked_mean(squared, region))


def background_psnr(result: Tensor, source: Tensor, region: Tensor) -> Tensor:
    """PSNR (dB) of ``result`` against the ``source`` outside ``region``: what was left alone."""
    return region_psnr(result, source, 1 - region.double())


def mask_iou(predicted: Tensor, target: Tensor, threshold: float = IOU_THRESHOLD) -> Tensor:
    """IoU of two ``(N, 1, H, W)`` masks, each thresholded at ``threshold``; 1 when both are empty."""
    a, b = predicted >= threshold, target >= threshold
    inter = (a & b).sum((1, 2, 3)).double()
    union = (a | b).sum((1, 2, 3)).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def alpha_sad(predicted: Tensor, target: Tensor) -> Tensor:
    """Sum of absolute alpha differences over the image, in thousands (matting benchmarks' SAD).

    Computed at the evaluation resolution: compare values measured at one size.
    """
    return (predicted.double() - target.double()).abs().sum((1, 2, 3)) / 1000


def alpha_mse(predicted: Tensor, target: Tensor, region: Tensor) -> Tensor:
    """Mean squared alpha error inside ``region`` (the attribute's landmark region)."""
    return _masked_mean((predicted.double() - target.double()).square(), region)


def skin_leakage(result: Tensor, source: Tensor, truth_mask: Tensor, region: Tensor) -> Tensor:
    """Mean absolute change of ``result`` against ``source`` ([0, 1] scale) on the skin:
    inside the attribute's ``region`` but outside the ground-truth instance (its mask at most
    :data:`REGION_THRESHOLD`), where a perfect transfer changes nothing."""
    skin = region.double() * (truth_mask <= REGION_THRESHOLD).double()
    return _masked_mean(_unit_error(result, source), skin)


def landmark_nme(
    flow: Tensor,
    source_landmarks: Tensor,
    exemplar_landmarks: Tensor,
    points: Tensor | None = None,
) -> Tensor:
    """Normalized mean landmark error of a flow.

    The flow fetches source landmark ``i`` from ``warp_points_backward(source, flow)[i]``
    in the exemplar; the error is its distance (pixels of the flow's grid) to the exemplar's
    landmark ``i``, averaged over the points and divided by the source's outer-eye-corner
    distance. The identity flow scores the plain landmark mismatch of the two faces.

    Args:
        flow: ``(N, 2, H, W)``.
        source_landmarks, exemplar_landmarks: ``(N, 68, 2)`` normalized coordinates.
        points: ``(N, 68)`` weights of the points the transfer aligns
            (:func:`~geogan_hf.prior.landmark_weights`: for glasses, where a frame rests);
            ``None``: all 68.
    """
    size = tuple(flow.shape[-2:])
    source = source_landmarks.to(flow)
    fetched = normalized_to_pixel(warp_points_backward(source, flow).double(), size)
    target = normalized_to_pixel(exemplar_landmarks.double(), size)
    source_px = normalized_to_pixel(source.double(), size)
    iod = (source_px[:, _EYE_CORNERS[1]] - source_px[:, _EYE_CORNERS[0]]).norm(dim=-1)
    error = (fetched - target).norm(dim=-1)
    if points is None:
        return error.mean(-1) / iod
    weights = points.to(error)
    return (error * weights).sum(-1) / weights.sum(-1).clamp_min(1) / iod


def foldover_ratio(flow: Tensor) -> Tensor:
    """Fraction of cells where the warp ``p -> p + flow(p)`` folds over (negative Jacobian)."""
    return (flow_jacobian_determinant(flow.double()) < 0).double().mean((1, 2, 3))


# -- methods -------------------------------------------------------------------------------


@dataclasses.dataclass
class MethodOutput:
    """What a transfer method returns: ``image (N, 3, H, W)``, ``mask (N, 1, H, W)``, ``flow (N, 2, H, W)``."""

    image: Tensor
    mask: Tensor
    flow: Tensor


Method = Callable[[Tensor, Tensor, Tensor, Tensor, Sequence[str]], MethodOutput]
"""``method(source, exemplar, source_landmarks, exemplar_landmarks, attributes)``."""


def naive_paste(
    source: Tensor,
    exemplar: Tensor,
    source_landmarks: Tensor,
    exemplar_landmarks: Tensor,
    attributes: Sequence[str],
) -> MethodOutput:
    """Baseline: the unwarped exemplar pasted into the source's landmark region (identity flow)."""
    n, _, h, w = source.shape
    mask = torch.cat(
        [region_mask(a, source_landmarks[i : i + 1], (h, w)) for i, a in enumerate(attributes)]
    ).to(source)
    image = mask * exemplar + (1 - mask) * source
    return MethodOutput(image, mask, identity_flow(n, h, w, dtype=source.dtype))


def geometry_prior_method(
    source: Tensor,
    exemplar: Tensor,
    source_landmarks: Tensor,
    exemplar_landmarks: Tensor,
    attributes: Sequence[str],
) -> MethodOutput:
    """The geometry prior: a :class:`~geogan_hf.model.GeoGAN` with no learned weights."""
    out = _prior_model()(
        source, exemplar, source_landmarks, exemplar_landmarks, list(attributes)
    )
    return MethodOutput(out.image, out.mask, out.flow)


@functools.lru_cache(maxsize=1)
def _prior_model() -> torch.nn.Module:
    from geogan_hf.model import GeoGAN
    from geogan_hf.regions import SUPPORTED_ATTRIBUTES

    return GeoGAN(geometry_prior=True, attributes=SUPPORTED_ATTRIBUTES).eval()


@dataclasses.dataclass
class TransferMethod:
    """A named method with what it supports.

    Attributes:
        name: label for tables and grids.
        fn: the :data:`Method`.
        image_size: the size a model runs at (``None``: any).
        attributes: the attributes it transfers (``None``: every supported one).
    """

    name: str
    fn: Method
    image_size: int | None = None
    attributes: tuple[str, ...] | None = None

    def __call__(self, *args) -> MethodOutput:
        return self.fn(*args)


def model_method(model: torch.nn.Module, name: str = "GeoGAN") -> TransferMethod:
    """Wraps a :class:`geogan_hf.model.GeoGAN` (put in eval mode) as a method."""
    model.eval()

    def fn(source, exemplar, source_landmarks, exemplar_landmarks, attributes):
        out = model(source, exemplar, source_landmarks, exemplar_landmarks, list(attributes))
        return MethodOutput(out.image, out.mask, out.flow)

    return TransferMethod(name, fn, int(model.image_size), tuple(model.attributes))


def load_method(spec: str) -> TransferMethod:
    """``"prior"``, ``"naive"``, or a GeoGAN model id / folder as a :class:`TransferMethod`.

    Raises:
        ModelLoadError: the model cannot be loaded.
    """
    if spec == "prior":
        return TransferMethod("geometry prior", geometry_prior_method)
    if spec == "naive":
        return TransferMethod("naive paste", naive_paste)
    from geogan_hf.model import GeoGAN

    try:
        model = GeoGAN.from_pretrained(spec)
    except ModelLoadError:
        raise
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"cannot load a GeoGAN model from {spec!r}: {error}") from error
    return model_method(model, os.path.basename(os.path.normpath(spec)) or spec)


# -- data ----------------------------------------------------------------------------------


@dataclasses.dataclass
class EvalPairs:
    """Aligned evaluation pairs; images ``(N, 3, S, S)`` in [-1, 1], landmarks normalized.

    Synthetic quadruples carry the ground truth and its mask, and the instance's mask on
    the exemplar (``exemplar_mask``, ``(N, 1, S, S)`` in [0, 1]: the matte an extraction
    should find there); real photo pairs (:func:`load_photo_pairs`) have ``None`` there and
    get the metrics that need none.
    """

    source: Tensor
    exemplar: Tensor
    source_landmarks: Tensor
    exemplar_landmarks: Tensor
    attributes: list[str]
    ground_truth: Tensor | None = None
    ground_truth_mask: Tensor | None = None
    exemplar_mask: Tensor | None = None

    def __len__(self) -> int:
        return len(self.attributes)

    @property
    def has_ground_truth(self) -> bool:
        return self.ground_truth is not None and self.ground_truth_mask is not None

    def select(self, indices: Sequence[int]) -> EvalPairs:
        """The pairs at ``indices``."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        tensors = {
            f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index]
            for f in dataclasses.fields(self)
            if f.name != "attributes"
        }
        return EvalPairs(**tensors, attributes=[self.attributes[i] for i in index.tolist()])

    @property
    def region(self) -> Tensor:
        """Binary region ``(N, 1, S, S)`` the transfer may change: where the ground-truth mask
        exceeds :data:`REGION_THRESHOLD`, or without ground truth, where the attribute's
        landmark region (:func:`geogan_hf.regions.region_mask`) does."""
        if self.has_ground_truth:
            return (self.ground_truth_mask > REGION_THRESHOLD).double()
        size = tuple(self.source.shape[-2:])
        masks = [
            region_mask(a, self.source_landmarks[i : i + 1], size)
            for i, a in enumerate(self.attributes)
        ]
        return (torch.cat(masks) > REGION_THRESHOLD).double()

    @property
    def attribute_region(self) -> Tensor:
        """Binary ``(N, 1, S, S)``: the attributes' landmark regions on the sources, grown by
        :data:`LEAKAGE_GROW` inter-ocular distances (where a transfer could leak skin)."""
        size = tuple(self.source.shape[-2:])
        masks = [
            region_mask(a, self.source_landmarks[i : i + 1], size, grow=LEAKAGE_GROW)
            for i, a in enumerate(self.attributes)
        ]
        return (torch.cat(masks) > REGION_THRESHOLD).double()


def load_eval_pairs(
    data,
    size: int,
    *,
    split: str = "eval",
    limit: int | None = None,
    attributes: Sequence[str] | None = None,
) -> EvalPairs:
    """Loads and aligns evaluation quadruples.

    Args:
        data: a ``save_to_disk`` folder of :mod:`geogan_hf.synthetic`, or its eval
            :class:`datasets.Dataset`.
        size: side of the aligned crops.
        split: the split of a saved :class:`datasets.DatasetDict`.
        limit: keep the first ``limit`` pairs (after the attribute filter).
        attributes: keep only pairs of these attributes.

    Raises:
        DatasetError: the data holds no usable pairs.
    """
    if isinstance(data, str | os.PathLike):
        data = _load_split(os.fspath(data), split)
    required = {"source", "exemplar", "ground_truth", "ground_truth_mask", "attribute"}
    missing = required - set(data.column_names)
    if missing:
        raise DatasetError(f"evaluation data lacks columns: {', '.join(sorted(missing))}")
    wanted = None if attributes is None else {canonical_attribute(a) for a in attributes}
    rows = [r for r in data if wanted is None or r["attribute"] in wanted][:limit]
    if not rows:
        raise DatasetError("no evaluation pairs to use")

    fields: dict[str, list] = {f.name: [] for f in dataclasses.fields(EvalPairs)}
    # (synthetic data saved before the exemplar's mask was added has none)
    with_exemplar_mask = "exemplar_mask" in data.column_names
    for row in rows:
        source = align_face(row["source"], row["source_landmarks"], size)
        exemplar = align_face(row["exemplar"], row["exemplar_landmarks"], size)
        truth = align_face(row["ground_truth"], row["source_landmarks"], size)
        mask = align_face(row["ground_truth_mask"].convert("RGB"), row["source_landmarks"], size)
        fields["source"].append(pil_to_tensor(source.image))
        fields["exemplar"].append(pil_to_tensor(exemplar.image))
        fields["ground_truth"].append(pil_to_tensor(truth.image))
        fields["ground_truth_mask"].append((pil_to_tensor(mask.image)[:, :1] + 1) / 2)
        if with_exemplar_mask:
            worn = align_face(row["exemplar_mask"].convert("RGB"), row["exemplar_landmarks"], size)
            fields["exemplar_mask"].append((pil_to_tensor(worn.image)[:, :1] + 1) / 2)
        for key, aligned in (("source_landmarks", source), ("exemplar_landmarks", exemplar)):
            points = torch.as_tensor(aligned.landmarks, dtype=torch.float32)
            fields[key].append(pixel_to_normalized(points, (size, size))[None])
        fields["attributes"].append(row["attribute"])
    tensors = {k: torch.cat(v) if v else None for k, v in fields.items() if k != "attributes"}
    return EvalPairs(**tensors, attributes=fields["attributes"])


def load_photo_pairs(
    path: str | os.PathLike,
    size: int,
    *,
    attributes: Sequence[str] | None = None,
    landmark_backend: str = "dlib",
) -> EvalPairs:
    """Real photo pairs (no ground truth) listed in a JSON Lines file, aligned at ``size``.

    Each line is ``{"source": PATH, "exemplar": PATH, "attribute": NAME}``, paths relative to
    the file. The largest face of each photo is detected with ``landmark_backend`` and
    aligned like training data; ``landmark_nme`` is then measured against the detected
    landmarks. An exemplar turned the other way from its source is mirrored where the
    attribute's instance looks the same mirrored (glasses), as
    :class:`~geogan_hf.pipeline.TransferPipeline` takes it.

    Args:
        path: the JSON Lines file.
        size: side of the aligned crops.
        attributes: the attributes the evaluated method transfers (``None``: any supported).

    Raises:
        DatasetError: a missing or empty file, a line that is not such an object.
        UnknownAttributeError: an attribute that is unknown or not among ``attributes``.
        InvalidImageError: an unreadable photo.
        NoFaceError: a photo without a face (``role`` says which side).
    """
    listing = Path(path)
    if not listing.exists():
        raise DatasetError(f"photo pair list not found: {listing}")
    if listing.is_dir():
        raise DatasetError(f"photo pair list is a folder, not a JSON Lines file: {listing}")
    try:
        text = listing.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DatasetError(f"photo pair list is not UTF-8 text: {listing} ({err})") from err
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        keys = ("source", "exemplar", "attribute")
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in keys):
            raise DatasetError(
                f'{listing}:{number}: expected {{"source": PATH, "exemplar": PATH, '
                f'"attribute": NAME}}, got {line.strip()[:80]!r}'
            )
        rows.append((row["source"], row["exemplar"], canonical_attribute(row["attribute"])))
    if not rows:
        raise DatasetError(f"no photo pairs in {listing}")
    allowed = None if attributes is None else {canonical_attribute(a) for a in attributes}
    detected: dict[str, tuple[Image.Image, np.ndarray]] = {}  # one detection per photo
    aligned: dict[tuple[str, float], AlignedFace] = {}  # one crop per photo and chin room

    def face(name: str, role: str, room: float) -> AlignedFace:
        if name not in detected:
            image = load_image(listing.parent / name)
            found = detect_faces(image, backend=landmark_backend)
            if not found:
                raise NoFaceError(f"no face found in the {role} photo {name}", role=role)
            detected[name] = (image, found[0].landmarks)
        if (name, room) not in aligned:
            aligned[name, room] = align_face(*detected[name], size, chin_room=room)
        return aligned[name, room]

    fields: dict[str, list] = {
        k: [] for k in ("source", "exemplar", "source_landmarks", "exemplar_landmarks")
    }
    for source, exemplar, attribute in rows:
        if allowed is not None and attribute not in allowed:
            raise UnknownAttributeError(
                f"the evaluated method transfers {sorted(allowed)}, not {attribute!r}"
            )
        # cropped as the pipeline crops them
        room = ATTRIBUTE_SPECS[attribute].chin_room
        source_crop, exemplar_crop = face(source, "source", room), face(exemplar, "exemplar", room)
        if ATTRIBUTE_SPECS[attribute].mirrors:
            exemplar_crop, _ = turned_like(exemplar_crop, source_crop)
        for role, crop in (("source", source_crop), ("exemplar", exemplar_crop)):
            points = torch.as_tensor(crop.landmarks, dtype=torch.float32)
            fields[role].append(pil_to_tensor(crop.image))
            fields[f"{role}_landmarks"].append(pixel_to_normalized(points, (size, size))[None])
    tensors = {k: torch.cat(v) for k, v in fields.items()}
    return EvalPairs(**tensors, attributes=[attribute for _, _, attribute in rows])


# -- evaluation ----------------------------------------------------------------------------


@dataclasses.dataclass
class EvalResult:
    """Per-pair metrics ``{name: (N,) array}``, the pairs' attributes, and kept outputs for grids."""

    metrics: dict[str, np.ndarray]
    attributes: list[str]
    outputs: dict[int, tuple[Tensor, Tensor]]  # pair index -> (image, mask), (3, S, S), (1, S, S)


@torch.no_grad()
def evaluate(
    method: Method,
    pairs: EvalPairs,
    *,
    batch_size: int = 16,
    keep: Sequence[int] = (),
) -> EvalResult:
    """Runs ``method`` on every pair and measures the metrics of :data:`METRICS` that apply.

    With ground truth, all of them; without (real photos), ``landmark_nme``, ``foldover``
    and ``background_psnr`` outside the attribute's landmark region.

    Args:
        method: see :data:`Method`.
        pairs: aligned pairs (see :class:`EvalPairs`).
        batch_size: pairs per call.
        keep: pair indices whose result image and mask are kept (for :func:`save_grid`).
    """
    names = METRICS if pairs.has_ground_truth else NO_GROUND_TRUTH_METRICS
    values: dict[str, list[Tensor]] = {name: [] for name in names}
    outputs = {}
    for start in range(0, len(pairs), batch_size):
        batch = pairs.select(range(start, min(start + batch_size, len(pairs))))
        out = method(
            batch.source, batch.exemplar, batch.source_landmarks, batch.exemplar_landmarks,
            batch.attributes,
        )  # fmt: skip
        region = batch.region
        if batch.has_ground_truth:
            truth, truth_mask, around = batch.ground_truth, batch.ground_truth_mask, batch.attribute_region
            values["region_l1"].append(region_l1(out.image, truth, region))
            values["region_psnr"].append(region_psnr(out.image, truth, region))
            values["mask_iou"].append(mask_iou(out.mask, truth_mask))
            values["alpha_sad"].append(alpha_sad(out.mask, truth_mask))
            values["alpha_mse"].append(alpha_mse(out.mask, truth_mask, around))
            values["skin_leakage"].append(
                skin_leakage(out.image, batch.source, truth_mask, around)
            )
        points = landmark_weights(batch.attributes)
        values["landmark_nme"].append(
            landmark_nme(out.flow, batch.source_landmarks, batch.exemplar_landmarks, points)
        )
        values["background_psnr"].append(background_psnr(out.image, batch.source, region))
        values["foldover"].append(foldover_ratio(out.flow))
        for i in keep:
            if start <= i < start + len(batch):
                outputs[i] = (out.image[i - start].float(), out.mask[i - start].float())
    metrics = {name: torch.cat(v).numpy() for name, v in values.items()}
    return EvalResult(metrics, list(pairs.attributes), outputs)


def summarize(result: EvalResult, attribute: str | None = None) -> dict[str, float]:
    """Mean of each metric over all pairs (or those of one attribute); PSNR means in dB."""
    keep = np.array([attribute is None or a == attribute for a in result.attributes])
    return {
        name: float(np.nanmean(v[keep])) if keep.any() else math.nan
        for name, v in result.metrics.items()
    }


def format_table(rows: dict[str, dict[str, float]], title: str = "method") -> str:
    """Markdown table: one row per method, one column per metric (arrow = better direction)."""
    names = [n for n in METRICS if any(n in r for r in rows.values())]
    header = f"| {title} | " + " | ".join(f"{n} {'↑' if METRICS[n] else '↓'}" for n in names) + " |"
    lines = [header, "|---|" + "---:|" * len(names)]
    for label, row in rows.items():
        cells = [_format_value(n, row.get(n, math.nan)) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _format_value(name: str, value: float) -> str:
    if math.isnan(value):
        return "–"
    if "psnr" in name:
        return f"{value:.2f}"
    return f"{value:.4f}"


# -- grid ----------------------------------------------------------------------------------


def _tile(image: Tensor) -> np.ndarray:
    """``(C, H, W)`` in [-1, 1] (image) or [0, 1] (mask, C = 1) -> uint8 ``(H, W, 3)``."""
    x = (image.float() + 1) / 2 if image.shape[0] == 3 else image.float()
    x = x.clamp(0, 1).expand(3, -1, -1)
    return (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def save_grid(
    path: str | os.PathLike,
    pairs: EvalPairs,
    results: dict[str, EvalResult],
    indices: Sequence[int],
) -> None:
    """PNG grid, one row per pair: source | exemplar | ground truth (when known) | (result |
    mask) per method.

    Args:
        path: PNG file to write.
        pairs: the evaluated pairs.
        results: method name -> its :class:`EvalResult` (with ``indices`` kept).
        indices: pairs to show.
    """
    labels = ["source", "exemplar"] + (["ground truth"] if pairs.has_ground_truth else [])
    for name in results:
        labels += [f"{name}: result" if len(results) > 1 else "result", "mask"]
    rows = []
    for i in indices:
        tiles = [_tile(pairs.source[i]), _tile(pairs.exemplar[i])]
        if pairs.has_ground_truth:
            tiles.append(_tile(pairs.ground_truth[i]))
        for result in results.values():
            image, mask = result.outputs[i]
            tiles += [_tile(image), _tile(mask)]
        rows.append(np.concatenate(tiles, axis=1))
    size = pairs.source.shape[-1]
    header = Image.new(
        "RGB", (size * len(labels), 14 * (1 + max(len(x) * 6 // size for x in labels))), "white"
    )
    draw = ImageDraw.Draw(header)
    for k, label in enumerate(labels):
        words, line, y = label.split(), "", 1
        for word in words:  # wrap to the column width (default font: ~6 px per character)
            if line and len(line + " " + word) * 6 > size:
                draw.text((k * size + 2, y), line, fill="black")
                line, y = word, y + 12
            else:
                line = f"{line} {word}".strip()
        draw.text((k * size + 2, y), line, fill="black")
    grid = np.concatenate([np.asarray(header), *rows], axis=0)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid).save(path)


# -- command line --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``geogan-eval``."""
    parser = argparse.ArgumentParser(
        prog="geogan-eval",
        description="Measure a transfer method on the synthetic ground-truth benchmark "
        "(geogan-synth): prints a markdown table and writes a PNG grid.",
    )
    parser.add_argument(
        "--model", required=True,
        help='GeoGAN model id or folder, "prior" (geometry prior) or "naive" (naive paste)',
    )  # fmt: skip
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="folder written by geogan-synth (with ground truth)")
    source.add_argument(
        "--pairs",
        help='real photos, no ground truth: a JSON Lines file of {"source": PATH, '
        '"exemplar": PATH, "attribute": NAME} (paths relative to it)',
    )
    parser.add_argument(
        "--split", default="eval", help="split holding the quadruples (default eval)"
    )
    parser.add_argument(
        "--size", type=ranged(int, 16, 4096), default=None,
        help="alignment size (default: the model's image_size, else the data's image size)",
    )  # fmt: skip
    parser.add_argument(
        "--num-pairs", type=ranged(int, 1), default=None, help="evaluate the first N pairs"
    )
    parser.add_argument("--grid", default="geogan-eval-grid.png", help="PNG grid to write")
    parser.add_argument(
        "--grid-pairs", type=ranged(int, 0), default=6, help="pairs shown in the grid (default 6)"
    )
    parser.add_argument("--batch-size", type=ranged(int, 1), default=16)
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs ``geogan-eval``; returns the exit code."""
    method = load_method(args.model)
    if args.pairs:
        size = args.size or method.image_size or DEFAULT_PHOTO_SIZE
        pairs = load_photo_pairs(args.pairs, size, attributes=method.attributes)
        if args.num_pairs is not None:
            pairs = pairs.select(range(min(args.num_pairs, len(pairs))))
        where = args.pairs
    else:
        size = args.size or method.image_size or _data_size(args.data, args.split)
        pairs = load_eval_pairs(
            args.data, size, split=args.split, limit=args.num_pairs, attributes=method.attributes
        )
        where = f"{args.data} ({args.split})"
    indices = list(range(min(args.grid_pairs, len(pairs))))
    result = evaluate(method, pairs, batch_size=args.batch_size, keep=indices)
    rows = {"all": summarize(result)}
    for attribute in sorted(set(pairs.attributes)):
        rows[attribute] = summarize(result, attribute)
    print(
        f"{method.name} on {len(pairs)} pairs of {where}, aligned at {size} px"
        + ("" if pairs.has_ground_truth else " (real photos: metrics without ground truth)")
        + "\n"
    )
    print(format_table(rows, title="pairs"))
    save_grid(args.grid, pairs, {method.name: result}, indices)
    print(f"\ngrid: {args.grid}")
    return 0


def _load_split(path: str, split: str):
    """One split of a ``save_to_disk`` folder, as a :class:`datasets.Dataset`."""
    import datasets

    if not os.path.isdir(path):
        raise DatasetError(f"evaluation data folder not found: {path}")
    try:
        loaded = datasets.load_from_disk(path)
    except (FileNotFoundError, ValueError) as error:
        raise DatasetError(f"not a geogan-synth dataset folder: {path} ({error})") from error
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DatasetError(f"split {split!r} not in {path}; splits: {', '.join(loaded)}")
        loaded = loaded[split]
    return loaded


def _data_size(path: str, split: str) -> int:
    return _load_split(path, split)[0]["source"].size[0]
