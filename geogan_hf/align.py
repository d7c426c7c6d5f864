"""FFHQ-style face alignment from 68 landmarks, paste-back into the photo, landmark flips.

The crop is a similarity transform of the photo (rotation, uniform scale, translation)
framing the whole head as in FFHQ: with the eye centres (means of points 36-41 and 42-47)
and the mouth centre (mean of the corners 48 and 54),
``x = eye_to_eye - rot90(eye_to_mouth)``, normalised and scaled to
``max(2.0 |eye_to_eye|, 1.8 |eye_to_mouth|)``, ``y = rot90(x)``, centre
``eye_avg + 0.1 eye_to_mouth``; the crop is the square of side ``2 |x|`` around the centre,
grown about it, for an instance that reaches the chin, where the chin (point 8) would lie
less than ``chin_room`` (:data:`CHIN_ROOM`) inside its bottom edge. Unlike the FFHQ script,
the half-pixel offset between landmark coordinates (pixel centres at integers, see
:mod:`geogan_hf.geometry`) and PIL's sampling grid is accounted for, so
``AlignedFace.matrix`` maps crop landmarks exactly onto photo landmarks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from .geometry import face_turn

FLIP_PERMUTATION_68: tuple[int, ...] = (
    *range(16, -1, -1),  # jaw
    *range(26, 16, -1),  # brows
    27, 28, 29, 30,  # nose bridge
    *range(35, 30, -1),  # nose base
    45, 44, 43, 42, 47, 46,  # eyes
    39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,  # outer lips
    64, 63, 62, 61, 60, 67, 66, 65,  # inner lips
)  # fmt: skip
"""Index permutation that relabels iBUG 68 landmarks after a horizontal flip."""

CHIN_ROOM = 0.1
"""Inter-ocular distances a crop keeps under the chin (point 8) for an instance that reaches
it (:attr:`~geogan_hf.regions.AttributeSpec.chin_room`). FFHQ's square ends at or above the chin
of a long face or a wide-open mouth (18 of the 228 faces of the project's real photos had
less room, 4 none): an exemplar's goatee was cut where its crop ended and laid on the source
ending in a dark band above its chin (real pair held-out 10). A goatee fades out within 0.075
of them past the jaw line."""

REPLACED = 32
"""A pixel the edit changed by this much (0-255, largest channel; measured on the crops
resampled into the photo) is the edit's own: :func:`paste_back` keeps the photo's fine
detail under less changed pixels, in proportion."""


@dataclass
class AlignedFace:
    """A square face crop and its placement in the photo.

    Attributes:
        image: the crop, PIL RGB ``size x size``.
        landmarks: ``(68, 2)`` landmarks in crop pixels.
        matrix: ``(2, 3)`` affine map from crop pixel coords to photo pixel coords.
        size: crop side in pixels.
        scale: photo pixels per crop pixel.
    """

    image: Image.Image
    landmarks: np.ndarray
    matrix: np.ndarray
    size: int
    scale: float


def _check_landmarks(landmarks) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2) or not np.isfinite(points).all():
        raise ValueError(f"expected finite (68, 2) landmarks, got shape {points.shape}")
    return points


def _ffhq_frame(
    landmarks: np.ndarray, chin_room: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre and half-axes ``(c, x, y)`` of the crop square (FFHQ's, grown to keep
    ``chin_room`` inter-ocular distances under the chin), in photo pixels."""
    eye_left = landmarks[36:42].mean(axis=0)
    eye_right = landmarks[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (landmarks[48] + landmarks[54]) / 2 - eye_avg
    centre = eye_avg + eye_to_mouth * 0.1
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    down = np.array([-x[1], x[0]]) / np.hypot(*x)
    half = max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    if chin_room > 0:
        half = max(half, (landmarks[8] - centre) @ down + chin_room * np.hypot(*eye_to_eye))
    x = x / np.hypot(*x) * half
    y = np.array([-x[1], x[0]])
    return centre, x, y


def face_crop_size(landmarks, chin_room: float = 0.0) -> float:
    """Side of the crop square in photo pixels (the crop size that keeps full detail);
    ``chin_room`` as :func:`align_face`'s."""
    _, x, _ = _ffhq_frame(_check_landmarks(landmarks), chin_room)
    return float(2 * np.hypot(*x))


def _square_matrix(c: np.ndarray, x: np.ndarray, y: np.ndarray, side: int) -> np.ndarray:
    # Crop pixel i (centre) sits at (i + 0.5) / side along the square's edge-to-edge axes.
    linear = np.stack([2 * x / side, 2 * y / side], axis=1)
    return np.concatenate([linear, (c - x - y + (x + y) / side)[:, None]], axis=1)


def _resized_matrix(aligned: AlignedFace, side: int) -> np.ndarray:
    """Matrix of a ``side``-pixel square array covering the same square as ``aligned``."""
    ratio = aligned.size / side
    linear = aligned.matrix[:, :2] * ratio
    offset = aligned.matrix[:, 2] + aligned.matrix[:, :2] @ np.full(2, 0.5 * ratio - 0.5)
    return np.concatenate([linear, offset[:, None]], axis=1)


def _invert(matrix: np.ndarray) -> np.ndarray:
    linear = np.linalg.inv(matrix[:, :2])
    return np.concatenate([linear, (-linear @ matrix[:, 2])[:, None]], axis=1)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _warp_affine(
    image: Image.Image, matrix: np.ndarray, out_size: tuple[int, int], resample: Image.Resampling
) -> Image.Image:
    """Sample ``image`` at ``matrix @ (x, y, 1)`` for every output pixel centre ``(x, y)``.

    Large reductions are box-filtered first (``Image.reduce``) against aliasing; PIL's
    affine transform maps pixel *edge* coordinates, hence the half-pixel terms. Output
    pixels that map outside ``image`` are 0.
    """
    linear, offset = matrix[:, :2], matrix[:, 2]
    factor = int(math.sqrt(abs(np.linalg.det(linear))))
    if factor >= 2:
        image = image.reduce(factor)
        linear, offset = linear / factor, (offset - (factor - 1) / 2) / factor
    offset = offset + 0.5 - linear @ np.full(2, 0.5)
    data = (linear[0, 0], linear[0, 1], offset[0], linear[1, 0], linear[1, 1], offset[1])
    return image.transform(out_size, Image.Transform.AFFINE, data, resample=resample)


def align_face(
    image: Image.Image,
    landmarks,
    size: int = 256,
    resample: Image.Resampling = Image.Resampling.BILINEAR,
    chin_room: float = 0.0,
) -> AlignedFace:
    """Crop ``image`` to the FFHQ square of the face with ``landmarks`` at ``size x size``.

    Parts of the square outside the photo are filled by reflection; strong reductions are
    box-filtered first, then the crop is sampled with ``resample``: bilinear by default
    (bicubic costs twice as much at 1024 px); bicubic where the crop's pixels are resampled
    again on their way to a photo (an exemplar's instance: warped, then pasted), since
    each bilinear pass softens fine strands further.

    Args:
        image: the photo (PIL; converted to RGB).
        landmarks: ``(68, 2)`` photo pixel coordinates.
        size: side of the crop in pixels.
        resample: ``Image.Resampling.BILINEAR`` or ``BICUBIC``.
        chin_room: inter-ocular distances the crop keeps under the chin (point 8), grown
            about its centre where FFHQ's square keeps less (:data:`CHIN_ROOM` for an
            instance that reaches the chin; 0: FFHQ's square).

    Returns:
        The :class:`AlignedFace`.
    """
    points = _check_landmarks(landmarks)
    if size < 1:
        raise ValueError(f"crop size must be positive, got {size}")
    photo = image if image.mode == "RGB" else image.convert("RGB")
    c, x, y = _ffhq_frame(points, chin_room)
    matrix = _square_matrix(c, x, y, size)
    scale = float(2 * np.hypot(*x) / size)

    # Region of the photo the crop reads from, with room for the filters.
    corners = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    margin = 2 * max(1, int(scale)) + 2
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + margin + 1
    w, h = photo.size
    inner = (max(x0, 0), max(y0, 0), min(x1, w), min(y1, h))
    region = photo.crop(inner)
    pads = ((inner[1] - y0, y1 - inner[3]), (inner[0] - x0, x1 - inner[2]), (0, 0))
    if any(p for pair in pads for p in pair):
        region = Image.fromarray(np.pad(np.asarray(region), pads, mode="reflect"))

    to_region = matrix - np.array([[0, 0, x0], [0, 0, y0]], dtype=np.float64)
    crop = _warp_affine(region, to_region, (size, size), resample)
    return AlignedFace(
        image=crop,
        landmarks=_apply(_invert(matrix), points),
        matrix=matrix,
        size=size,
        scale=scale,
    )


def _feathered(mask: np.ndarray, feather: float) -> np.ndarray:
    """Gaussian-blurred mask (sigma = ``feather`` x side), computed at a reduced size.

    The blur is smooth, so it is computed after a box reduction to ~2 px sigma; the
    truncated kernel keeps exact zeros far from the mask.
    """
    sigma = feather * mask.shape[0]
    if sigma <= 0:
        return mask
    factor = max(1, int(sigma / 2))
    small = np.asarray(Image.fromarray(mask, mode="F").reduce(factor)) if factor > 1 else mask
    return ndimage.gaussian_filter(small, sigma / factor, mode="constant", truncate=3.0)


def paste_back(
    photo: Image.Image,
    crop: Image.Image | np.ndarray,
    aligned: AlignedFace,
    mask: np.ndarray,
    feather: float = 0.01,
    unedited: Image.Image | np.ndarray | None = None,
    resample: Image.Resampling = Image.Resampling.BILINEAR,
) -> Image.Image:
    """Blend an edited crop back into the photo it was aligned from.

    Only the photo's bounding box of the (feathered) mask's footprint is touched; every
    pixel whose pasted weight is exactly 0 is bit-identical to ``photo``.

    The crop is the photo resampled, and pasting resamples it again: the two blur pores,
    freckles and stubble. Given the crop as it was before the edit (``unedited``), only
    the edit's change is pasted where it left the crop alone, so the photo keeps its
    detail there (bit-identical where nothing changed), and under pixels changed by less
    than :data:`REPLACED` in proportion: the edit's own new content is pasted as it is.

    Args:
        photo: the original photo (not modified).
        crop: the edited crop, square PIL image or uint8 ``(S, S, 3)`` array covering the
            same square as ``aligned`` (any resolution).
        aligned: the :class:`AlignedFace` the crop comes from.
        mask: ``(M, M)`` float weights in ``[0, 1]`` over the same square (1 = take the crop).
        feather: Gaussian blur sigma of the mask edge as a fraction of the crop side
            (0 = hard edge).
        unedited: the crop before the edit (same size and kind as ``crop``), or ``None``
            (the photo's detail is not kept).
        resample: how the crop is resampled into the photo (``BILINEAR`` or ``BICUBIC``;
            see :func:`align_face`).

    Returns:
        A new PIL RGB image of the photo's size.
    """
    base = photo.convert("RGB")  # always a copy: the input is never modified
    if isinstance(crop, np.ndarray) and (crop.dtype != np.uint8 or crop.ndim != 3):
        raise ValueError(f"crop array must be uint8 (S, S, 3), got {crop.dtype} {crop.shape}")
    crop_img = crop.convert("RGB") if isinstance(crop, Image.Image) else Image.fromarray(crop)
    if crop_img.mode != "RGB" or crop_img.width != crop_img.height:
        raise ValueError(f"crop must be a square RGB image, got {crop_img.mode} {crop_img.size}")
    if unedited is not None:
        unedited = np.asarray(unedited.convert("RGB") if isinstance(unedited, Image.Image) else unedited)
        if unedited.shape != (crop_img.height, crop_img.width, 3) or unedited.dtype != np.uint8:
            raise ValueError(
                f"unedited must be a uint8 crop of the crop's size {crop_img.size}, "
                f"got {unedited.dtype} {unedited.shape}"
            )
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ValueError(f"mask must be a square (M, M) array, got shape {mask.shape}")
    if not np.isfinite(mask).all() or mask.min(initial=0) < 0 or mask.max(initial=0) > 1:
        raise ValueError("mask values must lie in [0, 1]")

    weights = _feathered(mask, feather)
    rows, cols = np.nonzero(weights)
    if rows.size == 0:
        return base
    # Footprint corners (pixel edges) in photo coordinates -> bounding box.
    mask_matrix = _resized_matrix(aligned, weights.shape[0])
    corners = np.array(
        [
            [x, y]
            for x in (cols.min() - 0.5, cols.max() + 0.5)
            for y in (rows.min() - 0.5, rows.max() + 0.5)
        ]
    )
    photo_corners = _apply(mask_matrix, corners)
    x0, y0 = np.maximum(np.floor(photo_corners.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(photo_corners.max(axis=0)).astype(int) + 1, base.size)
    if x1 <= x0 or y1 <= y0:
        return base

    box_size = (int(x1 - x0), int(y1 - y0))
    shift = np.array([[0, 0, x0], [0, 0, y0]], dtype=np.float64)
    from_box = _invert(mask_matrix - shift)
    w = np.asarray(
        _warp_affine(
            Image.fromarray(weights, mode="F"), from_box, box_size, Image.Resampling.BILINEAR
        )
    )
    from_box = _invert(_resized_matrix(aligned, crop_img.width) - shift)

    def to_box(image: Image.Image) -> np.ndarray:
        return np.asarray(_warp_affine(image, from_box, box_size, resample), dtype=np.float32)

    pasted = to_box(crop_img)
    region = np.asarray(base.crop((int(x0), int(y0), int(x1), int(y1))))
    if unedited is not None:
        before = to_box(Image.fromarray(unedited))
        replaced = np.minimum(np.abs(pasted - before).max(-1, keepdims=True) / REPLACED, 1)
        # the photo's detail that resampling lost, where the edit did not replace the pixel
        pasted += (1 - replaced) * (region - before)
    blended = region + w[..., None] * (pasted - region)
    out = np.where(w[..., None] > 0, np.clip(np.rint(blended), 0, 255).astype(np.uint8), region)
    base.paste(Image.fromarray(out), (int(x0), int(y0)))
    return base


def flip_landmarks(landmarks, width: int):
    """Landmarks of the horizontally flipped image: ``x -> width - 1 - x``, then relabel.

    Args:
        landmarks: ``(..., 68, 2)`` ndarray or tensor in pixel coordinates.
        width: image width in pixels.
    """
    flipped = landmarks[..., list(FLIP_PERMUTATION_68), :] * 1.0
    flipped[..., 0] = width - 1 - flipped[..., 0]
    return flipped


TURNED_APART = 0.08
"""How far (:func:`~geogan_hf.geometry.face_turn`) two faces must both be turned, opposite
ways, to count as turned apart (:func:`turned_apart`): nearly frontal faces look alike
mirrored or not."""


def turned_apart(landmarks, other, least: float = TURNED_APART) -> bool:
    """Whether two faces are turned opposite ways, each at least ``least``
    (:func:`~geogan_hf.geometry.face_turn`).

    >>> import numpy as np
    >>> points = np.zeros((68, 2)); points[16, 0] = 100.0; points[30, 0] = 60.0
    >>> turned_apart(points, flip_landmarks(points, 200)), turned_apart(points, points)
    (True, False)
    """
    turn = float(face_turn(_check_landmarks(landmarks)))
    other_turn = float(face_turn(_check_landmarks(other)))
    return turn * other_turn < 0 and min(abs(turn), abs(other_turn)) >= least


def mirror_face(face: AlignedFace) -> AlignedFace:
    """``face`` mirrored left to right: the crop flipped, its landmarks relabelled
    (:func:`flip_landmarks`) and its placement in the photo composed with the flip."""
    flip = np.array([[-1.0, 0.0, face.size - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return AlignedFace(
        image=face.image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        landmarks=flip_landmarks(face.landmarks, face.size),
        matrix=face.matrix @ flip,
        size=face.size,
        scale=face.scale,
    )


def turned_like(face: AlignedFace, other: AlignedFace) -> tuple[AlignedFace, bool]:
    """``face``, mirrored (:func:`mirror_face`) where it is turned the other way from
    ``other`` (:func:`turned_apart`), and whether it was."""
    if turned_apart(face.landmarks, other.landmarks):
        return mirror_face(face), True
    return face, False
