"""The geometry prior: attribute transfer from landmarks alone, no learned weights.

The exemplar is warped onto the source with the landmark thin-plate spline
(:func:`geogan_hf.geometry.tps_flow`); its colours are matched to the source's skin tone
and lighting (gains estimated on skin around the attribute region); the
mask is the landmark region of the attribute (:func:`geogan_hf.regions.region_mask`)
sharpened by where the tone-matched warped exemplar actually differs from the source,
so that only the attribute instance (hair, glasses frame) is pasted and not the
exemplar's skin. Where the exemplar's face is seen at a grazing angle (the far side of a
turned head, strongly stretched by the warp), the prior takes the exemplar's mirror image
instead, warped with the mirrored landmarks (attributes are roughly symmetric).

:class:`geogan_hf.model.GeoGAN` with ``geometry_prior=True`` builds on these functions
(its learned heads start at zero, so a fresh model reproduces :func:`geometric_transfer`
exactly); they are also usable on their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .align import FLIP_PERMUTATION_68
from .errors import InvalidImageError, MissingLandmarksError
from .geometry import (
    flow_jacobian_determinant,
    identity_grid,
    normalized_to_pixel,
    resize_flow,
    tps_flow,
    warp_with_flow,
)
from .regions import canonical_attribute, region_mask

# Sizes are fractions of the image side; colour differences are in [0, 1] intensity units.
REGION_GROW = 0.015  # the landmark regions are grown by about this much
RING_SIGMA = 0.05  # skin reference ring around the region
DIFF_SIGMA = 0.006  # blur of the difference map
TEXTURE_SIGMA = 0.008  # scale of the local contrast (hair texture) measure
TEXTURE_WEIGHT = 2.0  # texture difference counts this much relative to colour difference
DIFF_LOW, DIFF_HIGH = 0.04, 0.12  # difference -> mask ramp (smoothstep)
FILL_SIGMA = 0.008  # gap filling (blur + amplify) of the difference mask
FEATHER_SIGMA = 0.004  # final feathering of the mask
SKIN_SCALE = 0.08  # colour distance below which a warped pixel counts as skin
EYE_HOLE_SCALE = 1.1  # eye ellipse half-length, in half eye widths (corner to corner)
TONE_GRID = 256  # the tone match's skin map is computed on at most this many pixels per side
TPS_GRID = 64  # the landmark TPS is evaluated on at most this many points per side
# Smoothing of the landmark TPS: near-coincident landmarks (inner and outer lip corners of a
# closed mouth) make the exact interpolant fold; 1e-3 removes most folds for < 0.01 NME.
TPS_REGULARIZATION = 1e-3
MIRROR_SIGMA = 0.03  # smoothing of the warp quality maps that choose exemplar or mirror
MIRROR_MARGIN = 0.5  # log-stretch by which the mirror must beat the exemplar to be used
HAIR_TINT = 0.5  # share of the skin colour correction that non-skin pixels take
GAIN_RANGE = (0.4, 2.5)  # per-channel gain limits of the tone match
LUMA = (0.299, 0.587, 0.114)
_ROBUST_STEPS = 3


@dataclass
class TransferOutput:
    """Result of a transfer; every tensor is at the source's resolution.

    Attributes:
        image: final image, ``clamp(blended + residual, -1, 1)``.
        blended: ``a* = mask * warped + (1 - mask) * source``.
        warped: the exemplar warped by ``flow`` (tone-matched when the prior is on).
        mask: ``(N, 1, H, W)`` in [0, 1], 1 = take the warped exemplar.
        flow: backward displacement ``(N, 2, H, W)`` (see :mod:`geogan_hf.geometry`).
        residual: refinement residual added to ``blended`` (zeros for the pure prior).
        prior_flow: landmark TPS flow, when the geometry prior is used.
        prior_mask: prior attribute mask, when the geometry prior is used.
    """

    image: Tensor
    blended: Tensor
    warped: Tensor
    mask: Tensor
    flow: Tensor
    residual: Tensor
    prior_flow: Tensor | None = None
    prior_mask: Tensor | None = None

    def exemplar_mask(self) -> Tensor:
        """The mask moved back into the exemplar's frame (warped by ``-flow``, as the official code).

        ``-flow`` is a first-order inverse of the warp, good for smooth flows; this is the
        mask the removal module F takes with the exemplar.
        """
        return warp_with_flow(self.mask, -self.flow)


@dataclass
class GeometricPrior:
    """Landmark-only transfer quantities at one resolution.

    Attributes:
        flow: TPS backward displacement ``(N, 2, h, w)``.
        region: where the attribute may be pasted ``(N, 1, h, w)``: the source's landmark
            region intersected with the exemplar's, warped.
        mask: region sharpened by the source / warped-exemplar difference ``(N, 1, h, w)``.
        warped: tone-matched warped exemplar ``(N, 3, h, w)``.
        tone: ``(gain, luma_gain)`` of :func:`match_tone`.
        mirror: ``(mirror_flow, weight)`` of :func:`mirror_warp`.
    """

    flow: Tensor
    region: Tensor
    mask: Tensor
    warped: Tensor
    tone: tuple[Tensor, Tensor]
    mirror: tuple[Tensor, Tensor]


def check_image(image: Tensor, role: str) -> None:
    """Raise :class:`InvalidImageError` unless ``image`` is a float ``(N, 3, H, W)`` tensor."""
    if not isinstance(image, Tensor) or image.ndim != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise InvalidImageError(f"{role} must be a (N, 3, H, W) tensor in [-1, 1], got {shape}")
    if not image.is_floating_point():
        raise InvalidImageError(f"{role} must be a float tensor in [-1, 1], got {image.dtype}")


def check_images(source: Tensor, exemplar: Tensor) -> None:
    """:func:`check_image` on both, and one batch size."""
    check_image(source, "source")
    check_image(exemplar, "exemplar")
    if source.shape[0] != exemplar.shape[0]:
        raise InvalidImageError(
            f"source and exemplar batch sizes differ: {source.shape[0]} vs {exemplar.shape[0]}"
        )


def check_landmarks(landmarks: Tensor | None, n: int, role: str) -> Tensor:
    """Return ``landmarks`` as a float tensor ``(N, 68, 2)`` or raise :class:`MissingLandmarksError`."""
    if landmarks is None:
        raise MissingLandmarksError(
            f"the geometry prior needs {role}_landmarks (N, 68, 2) in normalized coordinates"
        )
    landmarks = torch.as_tensor(landmarks)
    if landmarks.ndim == 2:
        landmarks = landmarks[None]
    if landmarks.shape != (n, 68, 2):
        raise MissingLandmarksError(
            f"{role}_landmarks must have shape ({n}, 68, 2), got {tuple(landmarks.shape)}"
        )
    if not torch.isfinite(landmarks).all():
        raise MissingLandmarksError(f"{role}_landmarks contain NaN or infinite values")
    return landmarks


def work_size(height: int, width: int, image_size: int, multiple: int) -> tuple[int, int]:
    """Resolution the networks run at: the input's, scaled down to fit ``image_size``,
    rounded to a multiple of ``multiple`` (the encoder's total stride)."""
    scale = min(1.0, image_size / max(height, width))
    return tuple(max(multiple, round(s * scale / multiple) * multiple) for s in (height, width))


def resize_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize (antialiased when shrinking); returns ``image`` itself at its own size."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    shrink = image.shape[-2] > size[0] or image.shape[-1] > size[1]
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with reflect padding; ``sigma`` in pixels (no-op below 0.3)."""
    if sigma < 0.3:
        return x
    radius = min(math.ceil(3 * sigma), min(x.shape[-2:]) - 1)
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def attribute_region(
    attributes: Sequence[str], landmarks: Tensor, size: tuple[int, int], grow: float
) -> Tensor:
    """Landmark region of each sample's attribute (:func:`region_mask`), grown (``grow > 0``)
    or shrunk (``grow < 0``) by about ``|grow|`` of the image side."""
    region = region_mask(list(attributes), landmarks, size).to(landmarks.dtype)
    blurred = gaussian_blur(region, abs(grow) * min(size))
    return (2 * blurred - float(grow < 0)).clamp(0, 1)


def eye_holes(landmarks: Tensor, size: tuple[int, int]) -> Tensor:
    """Soft ellipses over both eyes ``(N, 1, H, W)``: 1 on the eye, 0 away from it."""
    h, w = size
    pixels = normalized_to_pixel(landmarks, size)
    grid = normalized_to_pixel(identity_grid(1, h, w, device=landmarks.device), size)[0]
    holes = landmarks.new_zeros((landmarks.shape[0], 1, h, w))
    for corner_a, corner_b, eye in ((36, 39, slice(36, 42)), (42, 45, slice(42, 48))):
        axis = pixels[:, corner_b] - pixels[:, corner_a]  # (N, 2)
        rx = EYE_HOLE_SCALE * axis.norm(dim=-1).clamp_min(1e-3) / 2
        u = axis / (2 * rx[:, None] / EYE_HOLE_SCALE)
        v = torch.stack([-u[:, 1], u[:, 0]], dim=-1)
        d = grid[None] - pixels[:, eye].mean(1)[:, None, None]  # (N, H, W, 2)
        along = (d * u[:, None, None]).sum(-1) / rx[:, None, None]
        across = (d * v[:, None, None]).sum(-1) / (0.5 * rx[:, None, None])
        t = ((1.3 - (along**2 + across**2)) / 0.6).clamp(0, 1)
        holes = torch.maximum(holes, (t * t * (3 - 2 * t))[:, None])
    return holes


def _luma(x: Tensor) -> Tensor:
    weights = x.new_tensor(LUMA).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def match_tone(warped: Tensor, source: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Gains matching ``warped`` to ``source`` on the skin pixels ``weight`` selects.

    Lighting and skin tone act multiplicatively on [0, 1] intensities, so the fit is a gain
    per channel, a ratio of weighted means re-estimated a few times with pixels that still
    differ (hair, lips, shadows) down-weighted. Its luminance part alone is the lighting
    change, applied to pixels that are not skin (see :func:`apply_tone`).

    Returns:
        ``(gain (N, 3, 1, 1), luma_gain (N, 1, 1, 1))``.
    """
    a01, b01 = (source + 1) / 2, (warped + 1) / 2
    w = weight
    for _ in range(_ROBUST_STEPS):
        num = (w * a01).sum(dim=(2, 3), keepdim=True)
        den = (w * b01).sum(dim=(2, 3), keepdim=True)
        gain = (num / den.clamp_min(1e-6)).clamp(*GAIN_RANGE)
        error = (a01 - gain * b01).abs().mean(dim=1, keepdim=True)
        w = weight * torch.exp(-((error / (2 * SKIN_SCALE)) ** 2))
    luma_gain = (_luma(num) / _luma(den).clamp_min(1e-6)).clamp(*GAIN_RANGE)
    return gain, luma_gain


def apply_tone(warped: Tensor, source: Tensor, tone: tuple[Tensor, Tensor] | None) -> Tensor:
    """Tone-match ``warped`` to ``source`` pixel by pixel (``warped`` itself when ``tone`` is None).

    Pixels that, once matched, look like the source's skin take the per-channel gain (skin
    tone and lighting); the others (hair, glasses) the luminance gain plus ``HAIR_TINT``
    of the colour part, so that they mostly keep their own colour (a grey mustache stays
    grey) while taking some of the scene's light colour. That skin map is smooth, so above
    ``TONE_GRID`` pixels per side it is computed on a downsampled copy and upsampled.
    """
    if tone is None:
        return warped
    gain, luma_gain = tone
    # twice the [0, 1] intensities: the 1/2 moves onto the one-channel distance, and
    # gain x (warped + 1) - 1 is 2 x (gain x the [0, 1] image) - 1: back in [-1, 1]
    warped2, source2 = warped + 1, source + 1
    size = tuple(warped.shape[-2:])
    small = work_size(*size, TONE_GRID, 1)
    skin_distance = (gain * warped2 - source2).abs().mean(dim=1, keepdim=True) / 2
    skin = torch.exp(-((resize_image(skin_distance, small) / SKIN_SCALE) ** 2))
    skin = upsample(gaussian_blur(skin, DIFF_SIGMA * min(small)), size)
    tint = HAIR_TINT + (1 - HAIR_TINT) * skin
    return (torch.lerp(luma_gain, gain, tint) * warped2 - 1).clamp(-1, 1)


def _local_contrast(image: Tensor, sigma: float) -> Tensor:
    y = _luma((image + 1) / 2)
    return gaussian_blur((y - gaussian_blur(y, sigma)).abs(), 2 * sigma)


def difference_mask(source: Tensor, matched: Tensor, region: Tensor) -> Tensor:
    """``region`` sharpened to where ``matched`` (tone-matched warped exemplar) differs from ``source``.

    The difference is the colour difference plus the excess of local contrast (hair and
    frames are textured, skin is smooth), both in [0, 1] units.
    """
    side = min(source.shape[-2:])
    colour = (matched - source).abs().mean(dim=1, keepdim=True) / 2
    texture = (
        _local_contrast(matched, TEXTURE_SIGMA * side)
        - _local_contrast(source, TEXTURE_SIGMA * side)
    ).clamp_min(0)
    diff = gaussian_blur(colour, DIFF_SIGMA * side) + TEXTURE_WEIGHT * texture
    t = ((diff - DIFF_LOW) / (DIFF_HIGH - DIFF_LOW)).clamp(0, 1)
    t = t * t * (3 - 2 * t)
    # close the small gaps between hairs / frame parts: the attribute is one solid instance
    t = (2 * gaussian_blur(t, FILL_SIGMA * side)).clamp(max=1)
    return gaussian_blur(region * t, FEATHER_SIGMA * side).clamp(0, 1)


def landmark_flow(
    source_landmarks: Tensor, exemplar_landmarks: Tensor, size: tuple[int, int]
) -> Tensor:
    """The landmark TPS flow (:func:`tps_flow`) at ``size``.

    A thin-plate spline is smooth at the pixel scale, so it is evaluated on a grid of at
    most ``TPS_GRID`` per side and upsampled bilinearly (sub-pixel difference, and about
    16x cheaper at 256 px).
    """
    h, w = size
    scale = min(1.0, TPS_GRID / max(h, w))
    coarse = (max(2, round(h * scale)), max(2, round(w * scale)))
    flow = tps_flow(source_landmarks, exemplar_landmarks, coarse, TPS_REGULARIZATION)
    return resize_flow(flow, size)


def _log_stretch(flow: Tensor) -> Tensor:
    """``|log det J|`` of the warp per pixel (0 = no area change), padded to the flow's size."""
    det = flow_jacobian_determinant(flow).clamp_min(1e-3)
    return F.pad(det.log().abs(), (0, 1, 0, 1), mode="replicate")


def mirror_warp(
    source_landmarks: Tensor, exemplar_landmarks: Tensor, flow: Tensor
) -> tuple[Tensor, Tensor]:
    """The mirrored exemplar's warp, and where to use it instead of ``flow``.

    The mirror image of the exemplar, with its landmarks mirrored and relabelled, is warped
    onto the source by TPS; the result is written as a flow on the exemplar itself
    (sampling the mirror at ``s`` is sampling the exemplar at ``(-s_x, s_y)``). The weight is
    1 where that warp stretches the image clearly less than ``flow`` does (the far side of
    a turned face), 0 elsewhere, smooth in between.

    Returns:
        ``(mirror_flow (N, 2, H, W), weight (N, 1, H, W))``.
    """
    n, _, h, w = flow.shape
    flip = torch.tensor([-1.0, 1.0], dtype=flow.dtype, device=flow.device)
    mirrored = exemplar_landmarks[:, list(FLIP_PERMUTATION_68)] * flip
    flow_m = landmark_flow(source_landmarks, mirrored, (h, w)).to(flow.dtype)
    grid = identity_grid(n, h, w, device=flow.device, dtype=flow.dtype).permute(0, 3, 1, 2)
    mirror_flow = torch.cat([-(2 * grid[:, :1] + flow_m[:, :1]), flow_m[:, 1:]], dim=1)
    sigma = MIRROR_SIGMA * min(h, w)
    gain = gaussian_blur(_log_stretch(flow) - _log_stretch(flow_m), sigma) - MIRROR_MARGIN
    return mirror_flow, torch.sigmoid(8 * gain)


def warp_exemplar(
    exemplar: Tensor, flow: Tensor, mirror: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """``warp_with_flow(exemplar, flow)``, cross-faded to the mirror warp where its weight says."""
    warped = warp_with_flow(exemplar, flow)
    if mirror is None:
        return warped
    mirror_flow, weight = mirror
    return torch.lerp(warped, warp_with_flow(exemplar, mirror_flow), weight)


def geometric_prior(
    source: Tensor,
    exemplar: Tensor,
    source_landmarks: Tensor,
    exemplar_landmarks: Tensor,
    attributes: Sequence[str],
) -> GeometricPrior:
    """Landmark TPS flow, tone match and prior mask at the source's resolution.

    Args:
        source: ``(N, 3, H, W)`` in [-1, 1].
        exemplar: ``(N, 3, He, We)`` in [-1, 1] (any size).
        source_landmarks: ``(N, 68, 2)`` normalized coordinates in the source.
        exemplar_landmarks: ``(N, 68, 2)`` normalized coordinates in the exemplar.
        attributes: one attribute name per sample.
    """
    size = tuple(source.shape[-2:])
    attributes = [canonical_attribute(a) for a in attributes]
    flow = landmark_flow(source_landmarks, exemplar_landmarks, size).to(source.dtype)
    mirror = mirror_warp(source_landmarks, exemplar_landmarks, flow)
    warped = warp_exemplar(exemplar, flow, mirror)
    # paste only what lies in the attribute region on both faces (not background
    # showing through a turned-away exemplar's region)
    exemplar_region = attribute_region(
        attributes, exemplar_landmarks, tuple(exemplar.shape[-2:]), -REGION_GROW / 2
    )
    region = attribute_region(attributes, source_landmarks, size, REGION_GROW)
    region = region * warp_exemplar(exemplar_region, flow, mirror)
    glasses = torch.tensor([a == "Eyeglasses" for a in attributes], device=region.device)
    if glasses.any():
        # lenses are see-through: the source's own eyes stay
        holes = eye_holes(source_landmarks, size) * glasses.view(-1, 1, 1, 1)
        region = region * (1 - holes)
    ring = (gaussian_blur(region, RING_SIGMA * min(size)) - region).clamp_min(0)
    tone = match_tone(warped, source, ring)
    matched = apply_tone(warped, source, tone)
    mask = difference_mask(source, matched, region)
    return GeometricPrior(flow, region, mask, matched, tone, mirror)


def blend(
    source: Tensor,
    exemplar: Tensor,
    flow: Tensor,
    mask: Tensor,
    tone: tuple[Tensor, Tensor] | None = None,
    mirror: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Warp ``exemplar`` (:func:`warp_exemplar`), tone-match it (:func:`apply_tone`), blend it into ``source``.

    ``flow``, ``mask`` and ``mirror`` must be at the source's resolution.

    Returns:
        ``(warped, blended)`` with ``blended = mask * warped + (1 - mask) * source``.
    """
    warped = apply_tone(warp_exemplar(exemplar, flow, mirror), source, tone)
    return warped, torch.lerp(source, warped, mask)


def upsample(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of a flow, mask or residual map to ``size`` (itself when already that size)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def geometric_transfer(
    source: Tensor,
    exemplar: Tensor,
    source_landmarks: Tensor,
    exemplar_landmarks: Tensor,
    attribute: str | Sequence[str] = "Mustache",
    image_size: int = 256,
    multiple: int = 8,
) -> TransferOutput:
    """Pure geometric attribute transfer (no learned weights).

    Inputs larger than ``image_size`` get their flow and mask computed on downsampled copies
    and applied, upsampled, at full resolution, exactly as ``GeoGAN(geometry_prior=True)``.

    Args:
        source: ``(N, 3, H, W)`` in [-1, 1].
        exemplar: ``(N, 3, He, We)`` in [-1, 1].
        source_landmarks: ``(N, 68, 2)`` normalized coordinates.
        exemplar_landmarks: ``(N, 68, 2)`` normalized coordinates.
        attribute: one name, or one per sample.
        image_size: largest side the prior is computed at.
        multiple: work sizes are rounded to a multiple of it (the generator's stride).
    """
    check_images(source, exemplar)
    n = source.shape[0]
    source_landmarks = check_landmarks(source_landmarks, n, "source").to(source)
    exemplar_landmarks = check_landmarks(exemplar_landmarks, n, "exemplar").to(source)
    attributes = [attribute] * n if isinstance(attribute, str) else list(attribute)
    size = work_size(*source.shape[-2:], image_size, multiple)
    prior = geometric_prior(
        resize_image(source, size),
        resize_image(exemplar, size),
        source_landmarks,
        exemplar_landmarks,
        attributes,
    )
    return finish_transfer(source, exemplar, prior.flow, prior.mask, None, prior)


def finish_transfer(
    source: Tensor,
    exemplar: Tensor,
    flow: Tensor,
    mask: Tensor,
    residual: Tensor | None,
    prior: GeometricPrior | None = None,
    work: tuple[Tensor, Tensor] | None = None,
) -> TransferOutput:
    """Apply work-resolution ``flow``, ``mask`` and ``residual`` at the source's resolution.

    Args:
        source, exemplar: full-resolution inputs.
        flow, mask, residual: network (or prior) outputs at the work resolution;
            ``residual=None`` means no refinement (zeros, not upsampled or added).
        prior: the geometry prior (tone match, mirror warp, prior flow and mask), if used;
            its mirror flow must include any learned flow residual.
        work: ``(warped, blended)`` already computed by :func:`blend` on these very inputs
            (same size), reused instead of recomputed.
    """
    size = tuple(source.shape[-2:])
    full_flow, full_mask = resize_flow(flow, size), upsample(mask, size)
    if work is None:
        tone = mirror = None
        if prior is not None:
            tone = prior.tone
            mirror = (resize_flow(prior.mirror[0], size), upsample(prior.mirror[1], size))
        work = blend(source, exemplar, full_flow, full_mask, tone, mirror)
    warped, blended = work
    if residual is None:
        image, residual = blended.clamp(-1, 1), torch.zeros_like(blended)
    else:
        residual = upsample(residual, size)
        image = (blended + residual).clamp(-1, 1)
    prior_flow = prior_mask = None
    if prior is not None:
        # the pure prior's flow and mask are the prior's: upsampled once
        prior_flow = full_flow if prior.flow is flow else resize_flow(prior.flow, size)
        prior_mask = full_mask if prior.mask is mask else upsample(prior.mask, size)
    return TransferOutput(
        image=image,
        blended=blended,
        warped=warped,
        mask=full_mask,
        flow=full_flow,
        residual=residual,
        prior_flow=prior_flow,
        prior_mask=prior_mask,
    )
