"""Compositing an exemplar's instance onto a source face: relight, remove, blend.

The instance arrives as :class:`~geogan_hf.instance.InstanceLayers` of the exemplar, warped
onto the source (alpha ``a'``, foreground colour ``F'`` and the exemplar's local skin
``B_e'``); the source's own instance of the attribute, if it has one, as layers of the
source. Then, all at the source crop's resolution:

1. **relight**: ``F'`` takes the change of lighting between the two faces, read from their
   skin: the ratio of the source's local skin field to the exemplar's (both smooth, so the
   ratio is the shading and exposure change, not texture, but also the two skin tones),
   in part (:func:`relight`: hair on a darker skin keeps its contrast to it) and on colour
   less (the instance keeps its own colour: a grey mustache stays grey; on a warmer skin
   hair keeps its colour relative to it), and,
   for facial hair, the shade the source's own pixels show over the region beyond its
   skin field (:func:`unseen_shade`). A grayscale source gets a grayscale instance.
   Before, hair's hue is made steady (its own brightness, the local mean chromaticity:
   :func:`steady_colour`); after, it keeps a natural hue order (:func:`natural_hair`).
2. **detail**: an instance sharper than the source is blurred to its detail; one softer
   (an upscaled low-resolution exemplar) gets strand texture back (:func:`hair_grain`), a
   frame its edges (:func:`sharpen_frame`), so neither looks pasted (:func:`matching_detail`).
3. **remove**: the source's own instance is unmixed to its local skin,
   ``S - a_s (F_s - B_s)``, where the source clearly has one (:func:`remove_instance`; a
   frame it wears is filled in from around it, :func:`remove_frame`), so only the
   exemplar's instance remains.
4. **composite**: ``a' F' + (1 - a') S_clean``; a beard's fine detail is then scaled so
   that it stands out of the source's skin about as far as it stood out of the
   exemplar's (:func:`match_stand_out`).

Images are float NCHW in [-1, 1] (see :mod:`geogan_hf.imageio`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .geometry import gaussian_blur, max_filter, min_filter, resize_image
from .instance import (
    LUMA,
    InstanceLayers,
    is_grayscale,
    luma,
    normalized_convolution,
    wears_frame,
    weighted_mean,
)
from .regions import ATTRIBUTE_SPECS, part_mask

TINT = 0.75  # share of the skin's colour change that the instance takes (it keeps its own)
GLOBAL_SHARE = 0.5  # share of the overall skin-to-skin gain that the instance takes
LOCAL_SHARE = 0.5  # share of the source's shading across the region that the instance takes
GAIN_RANGE = (0.35, 2.8)  # limits of the overall lighting ratio
LOCAL_RANGE = (0.5, 2.0)  # limits of the shading ratio across the region
# a region's own pixels (the lip's shadow, creases, pores) average about this much darker
# than its skin field: only darker than that is a region in a shade the field misses
SHADE_KNEE = 0.9
WHITE_SIZE = 256  # the eye whites are looked for at this size...
WHITE_PIXELS = 6  # ... and trusted from this many pixels on...
WHITE_CONTRAST = 1.05  # ... and where the cheeks' red-to-blue ratio is this many times theirs
DETAIL_SCALE = 0.01  # the finest detail scale compared between two faces (iod)...
BLUR_STEPS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # ... and the blurs tried, in that unit
STRAND_WIDTH = 0.5  # a hair's width, in that unit
STRAND_SAMPLES = (9, 33)  # samples along a strand: at least, at most
STUBBLE = 2.0  # the shortest strand, in that unit: stubble, a dot at a photo's resolution
LENGTH_DETAIL = 4.0  # a hair's length is read from the detail finer than this, in that unit
HAIR_ALPHA = 0.3  # opacity from which an instance is clearly hair (its texture is the hair's)
CURL_SCALE = 10.0  # strands turn (curl) smoothly over this many units: neighbours lie alike
TEXTURE_DETAIL = 0.03  # iod: a beard's fine texture is compared with its skin's at this scale
# strand texture: softer reads as stubble at a photo's resolution, harder (0.4 and 0.8) as a
# printed, knitted pattern (blind review, real pairs 13, 18)
GRAIN_CONTRAST = 0.3  # log-luminance contrast of strands where all the detail is missing...
GRAIN_ALPHA = 0.35  # ... and opacity contrast (skin seen between the hairs)...
STUBBLE_ALPHA = 0.5  # ... stubble's, falling to that as hairs are longer (they lie denser)
FRAME_SHARPEN = 3.0  # a softer exemplar's frame edges are sharpened by this per unit missing...
FRAME_EDGE = 0.015  # ... above the detail at this scale (iod): an unsharp mask of alpha
RIM_REACH = 1.25  # a frame's alpha is averaged along its rims over +-this many rim widths...
RIM_SAMPLES = 9  # ... in this many samples...
RIM_CRISP = 1.0  # ... then its edges are sharpened again by this (an unsharp mask)
COLOUR_SIGMA = 0.15  # scale (iod) over which an instance's hue and saturation are steady
CHROMA_SPREAD = 0.1  # chromaticity (RGB / luminance) by which hair may differ from its local mean
NEVER = (1.0, 2.0)  # a removal range no coverage reaches
WORN_ALPHA = 0.05  # a worn frame is removed where its alpha is above this...
WORN_GROW = 0.6  # ... grown by this many of its rims' widths (its soft edge, a lens's rim)
FILL_MARGIN = 32  # pixels around a hole that its fill reads (its widest scale's reach)
FILL_DETAIL = 1.0  # pixels: a fill's grain is the detail around the hole finer than this...
FILL_GRAIN_REACH = 6.0  # ... as strong as within this many pixels of each filled pixel
OWN_HAIR_SHARE = 0.1  # the source's hair sets the colour where it has this share of the instance's
HAIR_ALPHA_MIN = 0.5  # ... clearly-hair pixels: alpha above this...
HAIR_CONTRAST = 0.12  # ... and, the source's, this far from its skin (RGB distance, [0, 1])
PALETTE_SIZE = 32  # luminance ranks of the source's hair colours
# without a palette, the gain to the source hair's median luminance is kept within this: a
# near-black instance against a few brow pixels gave 13 (stripes glowing orange, real pair
# 46 tried as sideburns); the 24 mustache and goatee pairs' gains lie in 0.42-2.4
OWN_GAIN_RANGE = (1 / 3, 3.0)
CLIPPED = 0.01  # luminance this close to 0 or 1 is clipped (not the hair's own)
HAIR_SPREAD = 1.0  # the source's hair is within this of its median log-luminance...
HAIR_HUE_SPREAD = 0.3  # ... and this of its median chromaticity (RGB / luminance)
LIP_OVERHANG = 0.03  # iod: facial hair covers the source's lips by at most this
# a beard's texture over its skin's (:func:`stand_out`): read where alpha is at least
# STAND_OUT_ALPHA, the skin's where it is under STAND_OUT_SKIN, each from this many pixels
STAND_OUT_ALPHA, STAND_OUT_SKIN, STAND_OUT_PIXELS = 0.5, 0.05, 20
STAND_OUT_GAIN = (0.25, 2.0)  # limits of the gain on a beard's fine detail
# how far a beard stands out at least (as far as its skin: the strand texture given to a
# smoother one, texture_match, does not count less) and, from an exemplar softer than the
# source, at most: the median of the sharp exemplars' beards among the real pairs (their
# range 1.3-3.7; the softer exemplars' own, blurred together, 0.7-3.9, median 1.3)
STAND_OUT_FLOOR, STAND_OUT_TYPICAL = 1.0, 2.4


@torch.no_grad()
def eye_white(image: Tensor, landmarks: Tensor) -> Tensor:
    """``(N, 3)`` the colour of the whites of the eyes, at unit luminance; NaN where not seen.

    The whites are the brightest, least saturated pixels inside the eye outlines. They are
    white in every face, so their colour is the photo's colour cast (white balance, tinted
    light), which the skin cannot tell apart from the person's skin tone. Their brightness
    is not the exposure: lids shade the whites of narrowed eyes.

    Skin is redder than a white under any light, so "whites" no bluer than the cheeks
    (:data:`WHITE_CONTRAST`) were not seen: narrowed eyes (a smile) show lids and skin,
    whose colour taken as the cast turned a grey mustache purplish-brown (except in a
    grayscale photo, where nothing is redder than anything).
    """
    size = (min(image.shape[-2], WHITE_SIZE), min(image.shape[-1], WHITE_SIZE))
    small = resize_image((image.clamp(-1, 1) + 1) / 2, size)
    eyes = part_mask("eyes", landmarks.to(small), size, softness=0.0) > 0.5
    # the cheeks' median colour needs no detail: a quarter of the size (4x cheaper)
    coarse = (max(8, size[0] // 4), max(8, size[1] // 4))
    skin_pixels = resize_image(small, coarse)
    cheeks = part_mask("cheeks", landmarks.to(small), coarse, softness=0.0) > 0.5
    # in a grayscale photo skin is no redder than a white: its whites are taken as seen
    gray = is_grayscale(small * 2 - 1)
    weights = small.new_tensor(LUMA)
    whites = small.new_full((len(small), 3), float("nan"))
    for i, (pixels, inside, skin) in enumerate(zip(small, eyes[:, 0], cheeks[:, 0], strict=True)):
        seen = pixels[:, inside]
        if seen.shape[1] < 4 * WHITE_PIXELS or not skin.any():
            continue
        light = weights @ seen
        saturation = (seen.amax(0) - seen.amin(0)) / seen.amax(0).clamp_min(1e-3)
        keep = (light >= light.quantile(0.7)) & (saturation <= saturation.quantile(0.5))
        if keep.sum() < WHITE_PIXELS:
            continue
        white = seen[:, keep].median(1).values
        cheek = skin_pixels[i][:, skin].median(1).values
        warmth = (cheek[0] / cheek[2].clamp_min(1e-3)) / (white[0] / white[2].clamp_min(1e-3))
        if warmth >= WHITE_CONTRAST or gray[i]:
            whites[i] = white / (weights @ white).clamp_min(1e-3)
    return whites


def relight(
    foreground: Tensor,
    alpha: Tensor,
    source_skin: Tensor,
    exemplar_skin: Tensor,
    gray: Tensor,
    white_ratio: Tensor | None = None,
    shade: Tensor | None = None,
    keep_contrast: Tensor | None = None,
) -> Tensor:
    """The instance colour under the source's light (see the module docstring).

    The lighting ratio ``source skin / exemplar skin`` mixes two things: the shading across
    the region (where the light comes from), and one overall gain (exposure, but also the
    two people's skin tones, which the instance must not take), of which it takes the share
    :data:`GLOBAL_SHARE`: black hair stays dark on paler skin. Hair (``keep_contrast``) on
    a darker source skin takes all of the gain's luminance: it stays as much darker or
    lighter than the skin it lands on as it was on its own (half of it left a grey goatee
    lighter than a dimly lit chin, a chalk-white patch; blind review, real pairs 16 and
    22); teeth and frames are as light on any skin. Hair is seen against the skin it lies
    on: on a skin that turned warmer (red over green) than the light's cast says, it takes
    the skin's whole change of colour, and keeps its hue relative to it (given the eyes'
    neutral cast, a grey goatee read as teal on a warm, dim face: real pair 22; preferred
    blind on 6, 14, 18, 22 and 23, worse on none). On a cooler one (a pale or overexposed
    face) it keeps the cast: taken, the skin's change made a brown brow olive (pair 69), a
    mustache grey-green (11). A tint past white is desaturated, its luminance kept.
    Of the shading, the exemplar's own is undone fully (the instance was seen under it) and
    the source's taken in the share :data:`LOCAL_SHARE`. A ``shade`` the skin field misses
    (:func:`unseen_shade`) darkens it fully.

    Args:
        foreground: ``(N, 3, h, w)`` warped instance colour in [-1, 1].
        alpha: ``(N, 1, h, w)`` the warped instance's alpha (weights the overall gain).
        source_skin: ``(N, 3, h, w)`` the source's local skin field.
        exemplar_skin: ``(N, 3, h, w)`` the exemplar's local skin field, warped likewise.
        gray: ``(N,)`` bool: make the instance grayscale.
        white_ratio: ``(N, 3)`` the source's eye white over the exemplar's
            (:func:`eye_white`): the change of colour cast, which the instance takes fully;
            where NaN (eyes not seen), the skin's colour change is taken in part instead
            (``keep_contrast``: the skin's in full where warmer, see above).
        shade: ``(N, 1, h, w)`` in (0, 1], or ``None`` (none).
        keep_contrast: ``(N,)`` bool: the instance keeps its contrast to the source skin,
            in luminance on a darker one and in colour on a warmer one (see above);
            ``None``: none does.
    """
    f, bs, be = (foreground + 1) / 2, (source_skin + 1) / 2, (exemplar_skin + 1) / 2
    ratio = (bs + 0.02) / (be + 0.02)
    weight = alpha + 1e-6
    overall = weighted_mean(ratio, weight)
    skin_colour = (overall / luma(overall).clamp_min(1e-3)).clamp(0.5, 2.0)
    # the exemplar's shading undone only in part left the lit half of a face lit from one
    # side with lighter hair: a two-tone mustache (real pair 2)
    exemplar_shade = luma(be) / weighted_mean(luma(be), weight)
    source_shade = (ratio * exemplar_shade / overall).clamp(*LOCAL_RANGE)
    overall = overall.clamp(*GAIN_RANGE)
    gain = source_shade**LOCAL_SHARE / exemplar_shade.clamp(*LOCAL_RANGE) * overall**GLOBAL_SHARE
    if keep_contrast is not None:
        # a darker source: the rest of the luminance gain too
        darker = luma(overall).clamp(max=1) ** (1 - GLOBAL_SHARE)
        gain = gain * torch.where(keep_contrast.view(-1, 1, 1, 1), darker, 1.0)
    # the colour part of the gain (white balance, skin hue) only partly: the instance
    # keeps its own colour; hair on a warmer skin all of the skin's (see above)
    gain_l = luma(gain)
    skin_tint = (gain / gain_l.clamp_min(1e-3)).clamp(0.5, 2.0) ** TINT
    if white_ratio is not None:
        cast = white_ratio.clamp(0.5, 2.0)[..., None, None]
        skin_tint = torch.where(cast.isfinite(), cast, skin_tint)
    if keep_contrast is not None:
        warmer = skin_colour[:, :1] * skin_tint[:, 1:2] > skin_tint[:, :1] * skin_colour[:, 1:2]
        skin_tint = torch.where(keep_contrast.view(-1, 1, 1, 1) & warmer, skin_colour, skin_tint)
    gain = gain_l * skin_tint
    out = f * gain if shade is None else f * gain * shade
    if keep_contrast is not None:
        out = torch.where(keep_contrast.view(-1, 1, 1, 1), _in_range(out), out)
    out = torch.where(gray.view(-1, 1, 1, 1), luma(out).expand_as(out), out)
    return out.clamp(0, 1) * 2 - 1


def _in_range(colour: Tensor) -> Tensor:
    """``colour`` (in [0, inf)) with channels past 1 pulled toward its luminance, which is
    kept (up to 1): clipped, a light instance given a warm skin's tint lost its red's
    excess, and so light (a blond goatee darker on a lit chin than on a shaded one)."""
    light = luma(colour).clamp(max=1)
    peak = colour.amax(1, keepdim=True)
    return light + (colour - light) * ((1 - light) / (peak - light).clamp_min(1e-6)).clamp(0, 1)


def unseen_shade(image: Tensor, skin: Tensor, weights: Tensor, sigma: float) -> Tensor:
    """``(N, 1, h, w)`` in (0, 1]: how much darker ``image`` is, at the scale ``sigma``
    (pixels), than its local skin field ``skin`` (:class:`~geogan_hf.instance.InstanceLayers`)
    over the pixels of ``weights``, beyond :data:`SHADE_KNEE`.

    The skin field is read from the skin that no instance covers, so it misses a shade lying
    on the region alone: a chin in shadow under a raised head, the face's own stubble there.
    Relit by the field alone, a dark beard came out lighter than the chin it lands on and
    hardly showed (real pair 21).
    """
    both = torch.cat([luma((image + 1) / 2), luma((skin + 1) / 2)], 1)
    seen, field = normalized_convolution(both, weights, sigma).split(1, dim=1)
    return ((seen + 0.02) / (field + 0.02) / SHADE_KNEE).clamp(max=1)


def steady_colour(foreground: Tensor, alpha: Tensor, sigma: float) -> Tensor:
    """``foreground`` with its own luminance, its chromaticity kept near its local mean.

    Hair varies in brightness, hardly in hue: unmixing a soft or compressed exemplar
    (``F = B + (I - B) / alpha``) amplifies its colour noise into purple and orange
    specks. The mean is weighted by ``alpha**2`` (the clearly-instance pixels) at
    ``sigma`` pixels.
    """
    f = (foreground + 1) / 2
    brightness = luma(f)
    chromaticity = f / brightness.clamp_min(1e-3)
    mean = normalized_convolution(chromaticity, alpha.square() + 1e-6, sigma)
    # each pixel keeps its own hue within CHROMA_SPREAD of the mean (a grey beard's cool
    # strands); specks further out are pulled in
    deviation = chromaticity - mean
    length = (deviation.square().sum(1, keepdim=True) + 1e-12).sqrt()
    steady = mean + deviation * (CHROMA_SPREAD / length.clamp_min(1e-6)).clamp(max=1)
    return (brightness * steady).clamp(0, 1) * 2 - 1


def natural_hair(foreground: Tensor) -> Tensor:
    """``foreground`` with hair's natural hue order red >= green >= blue, luminance kept.

    Black, brown, blond, red and grey hair all keep it; a blue or purple cast left by a
    soft, colour-cast exemplar's unmixing does not.
    """
    f = (foreground + 1) / 2
    r, g, b = f.split(1, dim=1)
    g = torch.minimum(g, r)
    ordered = torch.cat([r, g, torch.minimum(b, g)], 1)
    ordered = ordered * luma(f) / luma(ordered).clamp_min(1e-4)
    return ordered.clamp(0, 1) * 2 - 1


def own_hair_colour(
    foreground: Tensor,
    alpha: Tensor,
    hair: Tensor,
    hair_alpha: Tensor,
    hair_skin: Tensor,
    allowed: Tensor,
    palette: bool = True,
) -> Tensor:
    """``foreground`` painted with the colours of the source's own ``hair`` (its head's hair,
    its brows, its own beard: :attr:`~geogan_hf.regions.AttributeSpec.own_colour`).

    With ``palette``, each pixel keeps its luminance rank among the instance's clearly-hair
    pixels and takes the luminance the source's hair has at that rank, in the source hair's
    median hue: the strands keep their pattern, and dark roots, mid-tones and sheen each
    take the source hair's own (a gain to the mean colour made a black fringe's sheen white
    on a red head). Hand-written: a histogram match per channel
    (``skimage.exposure.match_histograms``) mixes hues. Without, the instance's luminance
    takes one gain, from its median to the source hair's: a few hair pixels (brows) are
    no palette, their darkest and lightest are lashes and skin, which made black specks
    and a grey fringe on a mustache (blind review, real pairs 5 and 6).

    The source's clearly-hair pixels are those where it is ``allowed`` (bool, the shape of
    ``hair``: the head's hair is outside the face outline) with alpha over
    :data:`HAIR_ALPHA_MIN` whose colour stands off its skin (``hair_skin``) by
    :data:`HAIR_CONTRAST` (the head's hair, not a lit forehead the extraction doubts).
    Where it shows fewer than :data:`OWN_HAIR_SHARE` as many as the instance (a bald
    head, a high hairline, hair like the skin), ``foreground`` is kept.
    """
    f, h = (foreground + 1) / 2, (hair + 1) / 2
    out = f.clone()
    contrast = (hair - hair_skin).norm(dim=1, keepdim=True) / 2
    # clipped pixels (a photo's black border, blown highlights) tell nothing of the hair
    clipped = (luma(h) - 0.5).abs() > 0.5 - CLIPPED
    own_hair = (hair_alpha > HAIR_ALPHA_MIN) & (contrast > HAIR_CONTRAST) & allowed & ~clipped
    for i in range(len(f)):
        instance_light = luma(f[i : i + 1])[0, 0]
        reference = instance_light[alpha[i, 0] > HAIR_ALPHA_MIN].sort().values
        own = h[i][:, own_hair[i, 0]]
        own_light = (own.new_tensor(LUMA) @ own).clamp_min(1e-3)
        hue = own / own_light
        if own.shape[1]:
            # far lighter or darker than most of it, or of another hue, is the background
            # around the head; both read 0.02 above black, as the log luminance is
            # elsewhere: a near-black pixel's hue is the photo's noise over its luminance,
            # which put half of a black head's pixels off hue, and with too few left its
            # fringe kept the exemplar's ginger (a sweep of barbershop_16's fringe: 5 of 118)
            steady = (own + 0.02) / (own_light + 0.02)
            hue_off = (steady - steady.median(1, keepdim=True).values).norm(dim=0)
            level = (own_light + 0.02).log()
            light_off = (level - level.median()).abs()
            kept = (light_off <= HAIR_SPREAD) & (hue_off <= HAIR_HUE_SPREAD)
            own_light, hue = own_light[kept], hue[:, kept]
        enough = max(PALETTE_SIZE, OWN_HAIR_SHARE * reference.numel())
        if reference.numel() < PALETTE_SIZE or own_light.numel() < enough:
            continue
        if palette:
            ranks = torch.stack(
                [c.mean() for c in own_light.sort().values.tensor_split(PALETTE_SIZE)]
            )
            rank = torch.searchsorted(reference, instance_light.contiguous()) / reference.numel()
            position = rank * (PALETTE_SIZE - 1)
            low = position.floor().long().clamp(0, PALETTE_SIZE - 2)
            brightness = torch.lerp(ranks[low], ranks[low + 1], position - low)
        else:
            gain = own_light.median() / reference.median().clamp_min(1e-3)
            brightness = instance_light * gain.clamp(*OWN_GAIN_RANGE)
        # one hue (steady_colour): the lightest "hair" pixels, mixed with the skin at the
        # hairline, made reddish streaks in a black fringe
        out[i] = (brightness * hue.median(1).values.view(3, 1, 1)).clamp(0, 1)
    return out * 2 - 1


def sharpness(image: Tensor, sigma: float) -> Tensor:
    """``(N,)`` fine to coarser detail of the luminance: ``E|g - G_s g| / E|G_s g - G_4s g|``.

    A ratio of two bands, so it does not depend on the contrast of what is seen, only on
    how much of the finest detail survives (blur, upscaling and compression remove it).
    """
    g = luma((image + 1) / 2)
    fine, coarse = gaussian_blur(g, sigma), gaussian_blur(g, 4 * sigma)
    return (g - fine).abs().mean((1, 2, 3)) / (fine - coarse).abs().mean((1, 2, 3)).clamp_min(1e-6)


def detail_unit(iod: float) -> float:
    """The finest detail scale (pixels) compared between two faces, for an iod in pixels."""
    return max(0.7, DETAIL_SCALE * iod)


def matching_detail(source_eyes: Tensor, exemplar_eyes: Tensor, iod: float) -> tuple[float, float]:
    """``(blur, missing)``: how the exemplar's fine detail compares with the source's.

    Both are crops of the same part (around the eyes: lashes and lid creases are in every
    face) at the source's scale, ``iod`` its inter-ocular distance in pixels.

    - ``blur``: the Gaussian blur (source pixels) that brings a sharper exemplar's detail
      down to the source's: a pasted instance sharper than the photo around it looks drawn
      on. 0 when the source is as sharp or sharper.
    - ``missing``: the share of the source's fine detail that a softer exemplar lacks (0
      to 1; 0 when it is as sharp or sharper): an upscaled instance is a smooth smudge on
      a sharp photo, so :func:`hair_grain` adds that much strand texture back.
    """
    unit = detail_unit(iod)
    target = float(sharpness(source_eyes, unit))
    blurs = [unit * step for step in BLUR_STEPS]
    levels = [float(sharpness(gaussian_blur(exemplar_eyes, b), unit)) for b in blurs]
    if levels[0] <= target:
        return 0.0, max(0.0, 1 - levels[0] / max(target, 1e-6))
    for (b0, l0), (b1, l1) in zip(zip(blurs, levels), zip(blurs[1:], levels[1:])):
        if l1 <= target:
            return b0 + (b1 - b0) * (l0 - target) / max(l0 - l1, 1e-6), 0.0
    return blurs[-1], 0.0


def _fine_detail(image: Tensor, sigma: float) -> Tensor:
    """``(N, 1, h, w)`` the log-luminance of ``image`` finer than ``sigma`` pixels."""
    lum = torch.log(luma((image + 1) / 2) + 0.02)
    return lum - gaussian_blur(lum, sigma)


def fine_texture(image: Tensor, weights: Tensor, sigma: float) -> Tensor:
    """``(N,)`` the spread (weighted standard deviation over ``weights`` ``(N, 1, h, w)``)
    of the log-luminance of ``image`` finer than ``sigma`` pixels: pores, strands, creases,
    a photo's grain."""
    detail = _fine_detail(image, sigma)
    mean = weighted_mean(detail, weights)
    return weighted_mean((detail - mean).square(), weights).sqrt().flatten()


def stand_out(image: Tensor, alpha: Tensor, region: Tensor, sigma: float) -> Tensor:
    """``(N,)`` how far an instance's fine texture stands out of its skin's: the median
    absolute log-luminance detail finer than ``sigma`` pixels where ``alpha`` is at least
    :data:`STAND_OUT_ALPHA`, over the same where it is under :data:`STAND_OUT_SKIN` in
    ``region``; NaN where either has fewer than :data:`STAND_OUT_PIXELS` pixels.

    Medians, so that the lips', nostrils' and jaw's edges in the region are not taken for
    the skin's texture (their standard deviation is, :func:`fine_texture`).
    """
    detail = _fine_detail(image, sigma).abs()
    ratios = []
    for d, a, r in zip(detail[:, 0], alpha[:, 0], region[:, 0], strict=True):
        beard, skin = d[a >= STAND_OUT_ALPHA], d[(a < STAND_OUT_SKIN) & (r > 0.5)]
        if min(beard.numel(), skin.numel()) < STAND_OUT_PIXELS:
            ratios.append(float("nan"))
        else:
            ratios.append(float(beard.median() / skin.median().clamp_min(1e-4)))
    return image.new_tensor(ratios)


def match_stand_out(
    image: Tensor, alpha: Tensor, region: Tensor, bounds: Tensor, sigma: float
) -> Tensor:
    """``image``, a composite, with its instance's fine detail (finer than ``sigma`` pixels)
    scaled where ``alpha`` lies, in its proportion: at full alpha by the share that brings
    how far it stands out of the skin around it (:func:`stand_out`) into ``bounds``
    ``(N, 2)`` (low, high; NaN: as it is), within :data:`STAND_OUT_GAIN`. Where ``alpha``
    is 0 the pixels stay as they are.

    Blurred to the eyes' detail and given strand texture (:func:`hair_grain`), beards still
    stood out of a soft photo's skin 2.5 to 5 times as far as of their own: crisp, pasted
    salt-and-pepper on an airbrushed face (real pairs 8, 11, 18), while others, on a face
    with pores and grain, came out a flat patch (3, 12, 22).
    """
    now = stand_out(image, alpha, region, sigma)
    gain = (now.clamp(bounds[:, 0], bounds[:, 1]) / now).nan_to_num(1.0)
    gain = gain.clamp(*STAND_OUT_GAIN).view(-1, 1, 1, 1)
    return (image + (gain - 1) * alpha * (image - gaussian_blur(image, sigma))).clamp(-1, 1)


def strand_noise(
    size: tuple[int, int],
    origin: Tensor,
    length: Tensor,
    curl: Tensor,
    unit: float,
    generator: torch.Generator,
) -> Tensor:
    """``(N, 1, h, w)`` zero-mean, unit-variance noise streaked along hair strands.

    Strands run radially from ``origin`` ``(N, 2)`` (pixels x, y of the box): hairs grow
    away from the nose for a beard, down from the crown for bangs; each patch of strands
    is turned from there by a smooth random angle of ``curl`` ``(N,)`` radians (std; over
    :data:`CURL_SCALE` units): beards curl and cross, a fringe hangs straight. White noise
    at the width of one hair (:data:`STRAND_WIDTH` ``unit`` pixels) is averaged along each
    strand's direction over ``length`` ``(N,)`` pixels (a line-integral convolution, which
    no library offers).
    """
    h, w = size
    n = origin.shape[0]
    noise = torch.randn((n, 1, h, w), generator=generator).to(origin)
    noise = gaussian_blur(noise, STRAND_WIDTH * unit)
    direction = _radial(size, origin)
    if bool(curl.any()):  # drawn after the strands' noise: straight strands stay the same
        turn = gaussian_blur(torch.randn((n, 1, h, w), generator=generator), CURL_SCALE * unit)
        turn = turn.to(origin) / turn.std((2, 3), keepdim=True).clamp_min(1e-6).to(origin)
        turn = (curl.view(-1, 1, 1, 1) * turn).permute(0, 2, 3, 1)
        cos, sin, dx, dy = turn.cos(), turn.sin(), direction[..., :1], direction[..., 1:]
        direction = torch.cat([cos * dx - sin * dy, sin * dx + cos * dy], -1)
    streak = torch.zeros_like(noise)
    samples = min(max(STRAND_SAMPLES[0], math.ceil(float(length.amax()) / unit)), STRAND_SAMPLES[1])
    for t in torch.linspace(-1, 1, samples).tolist():
        streak = streak + _shifted(noise, direction * (length.view(-1, 1, 1, 1) * t / 2))
    streak = streak - streak.mean((2, 3), keepdim=True)
    return streak / streak.std((2, 3), keepdim=True).clamp_min(1e-6)


def _radial(size: tuple[int, int], origin: Tensor) -> Tensor:
    """``(N, h, w, 2)`` unit vectors (x, y) pointing away from ``origin`` ``(N, 2)`` (pixels)."""
    h, w = size
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=origin.dtype, device=origin.device),
        torch.arange(w, dtype=origin.dtype, device=origin.device),
        indexing="ij",
    )
    direction = torch.stack([xs, ys], -1)[None] - origin[:, None, None, :]
    return direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-6)


def _shifted(image: Tensor, shift: Tensor) -> Tensor:
    """``image`` ``(N, C, h, w)`` read ``shift`` ``(N, h, w, 2)`` pixels (x, y) away, bilinearly."""
    h, w = image.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=image.dtype, device=image.device),
        torch.arange(w, dtype=image.dtype, device=image.device),
        indexing="ij",
    )
    scale = image.new_tensor([2 / w, 2 / h])
    grid = (torch.stack([xs, ys], -1) + 0.5 + shift) * scale - 1
    return F.grid_sample(
        image, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )


def hair_length(
    image: Tensor, alpha: Tensor, origin: Tensor, longest: Tensor, unit: float
) -> Tensor:
    """``(N,)`` how long (pixels) the hairs of an instance ``alpha`` look in the photo
    ``image`` ``(N, 3, h, w)`` it was found in, at most ``longest``.

    The luminance detail (finer than :data:`LENGTH_DETAIL` ``unit``) where the instance is
    clearly hair (:data:`HAIR_ALPHA`) is correlated with itself shifted along the strands
    (radially from ``origin`` ``(N, 2)``, as in :func:`strand_noise`) and across them, by
    up to ``longest`` in steps of about ``unit``: it decorrelates by half at about half a
    hair's length along, and at the photo's blur across. A soft photo blurs both alike (a
    hair is far thinner than its pixels), so only the excess along counts: stubble is as
    long as it is wide (it gets
    :data:`STUBBLE`), longer hair streaks along the strands.
    """
    lum = torch.log((luma(image) + 1) / 2 + 0.02)
    detail = lum - gaussian_blur(lum, LENGTH_DETAIL * unit)
    weight = alpha * (alpha > HAIR_ALPHA)
    power = (weight * detail * detail).sum((1, 2, 3)).clamp_min(1e-12)
    along = _radial(tuple(alpha.shape[-2:]), origin)
    across = torch.stack([-along[..., 1], along[..., 0]], -1)
    reach = float(longest.amax())  # half the longest hair, and the blur around it
    steps = min(max(2, math.ceil(reach / unit)), STRAND_SAMPLES[1])
    step = reach / steps
    halves = []
    for direction in (along, across):
        correlation = torch.stack([
            (weight * detail * _shifted(detail, direction * (k * step))).sum((1, 2, 3)) / power
            for k in range(steps + 1)
        ], 1)  # fmt: skip
        below = correlation < 0.5
        first = torch.where(below.any(1), below.float().argmax(1), steps).clamp_min(1)
        c0 = correlation.gather(1, (first - 1)[:, None])[:, 0]
        c1 = correlation.gather(1, first[:, None])[:, 0]
        position = (first - 1) + ((c0 - 0.5) / (c0 - c1).clamp_min(1e-6)).clamp(0, 1)
        halves.append(position * step)
    length = 2 * (halves[0].square() - halves[1].square()).clamp_min(0).sqrt()
    return torch.minimum(length.clamp_min(STUBBLE * unit), longest)


def hair_grain(
    foreground: Tensor,
    alpha: Tensor,
    amount: Tensor,
    origin: Tensor,
    length: Tensor,
    curl: Tensor,
    unit: float,
    blur: Tensor | None = None,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """``(foreground, alpha)`` with strand texture where the instance lacks the photo's detail.

    Hair seen at a photo's full resolution is strands and the skin between them: the
    luminance of ``foreground`` and the opacity ``alpha`` both vary along the strand
    noise (:func:`strand_noise`), by :data:`GRAIN_CONTRAST` and :data:`GRAIN_ALPHA` times
    ``amount`` ``(N,)`` in [0, 1] (:attr:`~geogan_hf.prior.GeometricPrior.grain`: the
    detail a softer exemplar lacks, :func:`matching_detail`, or the texture a beard lacks
    against the skin it lands on), the opacity more for stubble (:data:`STUBBLE_ALPHA`);
    ``origin``, ``length`` (:func:`hair_length`) and ``curl`` as for :func:`strand_noise`;
    ``blur`` ``(N,)``: the strands are as soft as the photo (:func:`matching_detail`), or
    ``None``.
    Seeded: the same inputs give the same picture.
    """
    amount = amount.view(-1, 1, 1, 1)
    if float(amount.amax()) <= 0:
        return foreground, alpha
    generator = torch.Generator().manual_seed(seed)
    noise = strand_noise(tuple(alpha.shape[-2:]), origin, length, curl, unit, generator)
    if blur is not None:
        noise = torch.cat([_softened(n[None], float(b)) for n, b in zip(noise, blur, strict=True)])
    # bounded: a few strands far out in the noise's tail would glitter
    noise = torch.tanh(noise)
    # a strand is denser and darker than the hair's mean colour, skin shows between strands
    # (lighter strands would take the mean colour's hue to glowing red or purple)
    f = (foreground + 1) / 2 * torch.exp(-GRAIN_CONTRAST * amount * noise.clamp_min(0))
    # longer hairs lie over each other: as much less skin shows between them as they are
    # longer, down to what any hair shows
    sparse = (STUBBLE * unit / length.clamp_min(1e-6)).clamp(max=1).view(-1, 1, 1, 1)
    contrast = (STUBBLE_ALPHA * sparse).clamp_min(GRAIN_ALPHA)
    alpha = alpha * (1 + contrast * amount * noise)
    return f.clamp(0, 1) * 2 - 1, alpha.clamp(0, 1)


def _softened(noise: Tensor, blur: float) -> Tensor:
    """Unit-variance ``noise`` blurred by ``blur`` pixels (none below 0.3), still zero-mean
    and of unit variance."""
    if blur < 0.3:
        return noise
    noise = gaussian_blur(noise, blur)
    noise = noise - noise.mean()
    return noise / noise.std().clamp_min(1e-6)


def rim_width(alpha: Tensor) -> Tensor:
    """``(N,)`` a frame's typical rim width (pixels) in ``alpha`` ``(N, 1, h, w)``: a band's
    area over half its perimeter, ``2 sum(alpha) / sum(|grad alpha|)``."""
    dy, dx = torch.gradient(alpha, dim=(-2, -1))
    perimeter = (dx.abs() + dy.abs()).sum((1, 2, 3))
    return 2 * alpha.sum((1, 2, 3)) / perimeter.clamp_min(1e-6)


def smooth_rims(alpha: Tensor) -> Tensor:
    """``alpha`` ``(N, 1, h, w)`` of a frame averaged along its rims, its opacity and edges kept.

    A frame's extracted and warped alpha has notches, brow hairs on its top rim, a lumpy
    end-piece and wobble of a pixel or two, which make rims look hand-drawn. Averaging
    along the local edge direction (the structure tensor's) over :data:`RIM_REACH` rim
    widths (:func:`rim_width`) removes them and keeps each rim's thickness across it
    (an isotropic blur and threshold erased thin bottom rims); the wobble it averages out
    softens the rim a little, so each rim's peak opacity is restored and its edges are
    sharpened again (:data:`RIM_CRISP`). Corners come out slightly rounded. A
    line-integral convolution along an orientation field, which no installed library
    offers (as :func:`strand_noise`).
    """
    out = []
    # the filter (rim widths, edge directions, opacity gains) is read from alpha as it is;
    # the gradient flows through the averaging itself, never through 0 / 0 or atan2(0, 0)
    guides = alpha.detach()
    for frame, guide, width in zip(alpha, guides, rim_width(guides).tolist(), strict=True):
        frame, guide = frame[None], guide[None]
        reach = RIM_REACH * width
        dy, dx = torch.gradient(guide, dim=(-2, -1))
        tensor = gaussian_blur(torch.cat([dx * dx, dx * dy, dy * dy], 1), max(0.5, reach / 2))
        normal = 0.5 * torch.atan2(2 * tensor[:, 1:2], tensor[:, :1] - tensor[:, 2:])
        along = torch.cat([-normal.sin(), normal.cos()], 1).permute(0, 2, 3, 1)
        steps = torch.linspace(-1, 1, RIM_SAMPLES).tolist()
        weights = [1 - abs(t) / 2 for t in steps]
        smooth = sum(w * _shifted(frame, along * (reach * t)) for w, t in zip(weights, steps))
        smooth = smooth / sum(weights)
        r = max(1, round(width))
        peak = max_filter(guide, r) / max_filter(smooth.detach(), r)
        smooth = (smooth * peak.nan_to_num(1.0).clamp(1, 2)).clamp(0, 1)
        crisp = smooth + RIM_CRISP * (smooth - gaussian_blur(smooth, max(0.5, width / 3)))
        out.append(crisp.clamp(0, 1))
    return torch.cat(out)


def sharpen_frame(alpha: Tensor, missing: Tensor, sigma: float) -> Tensor:
    """``alpha`` of a frame with the edges a softer exemplar lacked: an unsharp mask,
    ``alpha + FRAME_SHARPEN * missing * (alpha - G_sigma alpha)``, clamped to [0, 1].

    A frame from a soft exemplar has soft edges, and on a sharper photo it looks laid over
    the face. An unsharp mask crisps its edges and keeps a faint, thin part of the rim (a
    local peak of alpha); a contrast curve on alpha (lower alphas to 0) detached a bottom
    rim from its lens (real pair 26). ``missing`` ``(N,)``: :func:`matching_detail`'s.
    """
    amount = FRAME_SHARPEN * missing.view(-1, 1, 1, 1)
    return (alpha + amount * (alpha - gaussian_blur(alpha, sigma))).clamp(0, 1)


def remove_instance(
    image: Tensor, layers: InstanceLayers, attributes: list[str], exemplar: InstanceLayers
) -> Tensor:
    """``image`` with its own instance removed, where it clearly has one.

    Hair is unmixed to the local skin. How much is removed ramps with the instance's
    coverage over the attribute's ``removal`` range
    (:class:`~geogan_hf.regions.AttributeSpec`): shadows and stubble that look a little
    like an instance are left alone. In the region an attribute joins (a goatee's
    mustache), by that attribute's own range, and only where the ``exemplar``'s instance
    reaches into it (its coverage there is above the joined attribute's ``absent``): a
    goatee without a mustache leaves the source's mustache. A frame the source clearly
    wears (:func:`~geogan_hf.instance.wears_frame`) is filled in from around it
    (:func:`remove_frame`): kept, the exemplar's frame was laid over it, two pairs of
    glasses.
    """
    specs = [ATTRIBUTE_SPECS[a] for a in attributes]
    weight = _removal(layers.coverage, image.new_tensor([s.removal or NEVER for s in specs]))
    joined = [ATTRIBUTE_SPECS[s.joins] if s.joins else None for s in specs]
    if any(joined):
        ranges = image.new_tensor([(j.removal if j else None) or NEVER for j in joined])
        absent = image.new_tensor([j.absent if j else 1.0 for j in joined])
        shown = (exemplar.joined_coverage.to(image) >= absent).to(image)
        weight = torch.where(
            layers.own_part,
            weight,
            _removal(layers.joined_coverage, ranges) * shown.view(-1, 1, 1, 1),
        )
    change = layers.alpha * (layers.skin - layers.foreground) * weight
    clean = (image + change).clamp(-1, 1)
    frames = image.new_tensor([s.kind == "accessory" for s in specs], dtype=torch.bool)
    frames = frames & wears_frame(layers).to(frames.device)
    if frames.any():
        clean = torch.where(frames.view(-1, 1, 1, 1), remove_frame(image, layers.alpha), clean)
    return clean


def frame_cover(alpha: Tensor) -> Tensor:
    """``(N, 1, h, w)`` bool: where a worn frame of ``alpha`` is removed: above
    :data:`WORN_ALPHA`, grown by :data:`WORN_GROW` of its rims' widths (its soft edge)."""
    out = []
    for a in alpha:
        grow = max(1, round(WORN_GROW * float(rim_width(a[None]))))
        out.append(max_filter((a[None] > WORN_ALPHA).to(a), grow) > 0)
    return torch.cat(out)


def fill_in(image: Tensor, mask: Tensor) -> Tensor:
    """``image`` ``(N, C, H, W)`` with the pixels where ``mask`` ``(N, 1, H, W)`` is true
    filled in from around them: each takes the mean of the pixels near it that the mask does
    not cover (:func:`~geogan_hf.instance.normalized_convolution` at a pixel's scale, wider
    where the hole is), and the grain of the pixels around it (:func:`_grain_like`).
    Computed on the mask's box only; pixels outside it are kept as they are. A biharmonic
    fill (``skimage.restoration.inpaint_biharmonic``), which carries the surroundings'
    gradients on into the hole, left grey ghosts of a removed frame's dark edges (blind
    A/B, thirty-seventh session of ``real_pairs.md``).
    """
    out = image.clone()
    h, w = mask.shape[-2:]
    for i in range(image.shape[0]):
        ys, xs = torch.nonzero(mask[i, 0], as_tuple=True)
        if len(ys) == 0:
            continue
        y0, y1 = max(int(ys.min()) - FILL_MARGIN, 0), min(int(ys.max()) + FILL_MARGIN + 1, h)
        x0, x1 = max(int(xs.min()) - FILL_MARGIN, 0), min(int(xs.max()) + FILL_MARGIN + 1, w)
        patch, hole = image[i : i + 1, :, y0:y1, x0:x1], mask[i : i + 1, :, y0:y1, x0:x1]
        known = (~hole).to(patch)
        mean = normalized_convolution(patch, known, FILL_DETAIL)
        filled = mean + _grain_like(patch, known, mean)
        out[i : i + 1, :, y0:y1, x0:x1] = torch.where(hole, filled, patch)
    return out


def _grain_like(image: Tensor, known: Tensor, mean: Tensor) -> Tensor:
    """Seeded noise ``(1, C, h, w)`` as strong, channel by channel, as the fine detail of
    ``image (1, C, h, w)`` where ``known`` around each pixel (its difference from ``mean``,
    the known pixels' normalized convolution at :data:`FILL_DETAIL`).

    A fill is the mean of what lies around it: smooth, where the photo has pores, grain and
    compression noise; a removed frame's band read as a smudge ("ghosts where the old glasses
    were", in every blind review of the worn-frame pairs). The noise is white at a pixel's
    scale, shared by the channels (the detail of skin is mostly its lightness).
    """
    detail = (image - mean).abs() * known
    # from the mean absolute detail (the standard deviation of normal noise is sqrt(pi / 2)
    # times it): a lid's, a lash's or a rim's edge beside the hole left speckles as a root
    # mean square (the worn-frame pair 14's lens)
    strength = normalized_convolution(detail, known, FILL_GRAIN_REACH) * math.sqrt(math.pi / 2)
    generator = torch.Generator().manual_seed(0)  # the same fill on every call
    noise = torch.randn((1, 1, *image.shape[-2:]), generator=generator).to(image)
    noise = gaussian_blur(noise, FILL_DETAIL / 2)
    return noise / noise.std().clamp_min(1e-6) * strength


def remove_frame(image: Tensor, alpha: Tensor) -> Tensor:
    """``image`` with a frame of ``alpha`` (both ``(N, ., h, w)``) filled in from around it
    (:func:`frame_cover`, :func:`fill_in`).

    A frame is thin, and what lies under it (a brow, a lid, an eye's corner, the nose's
    skin) goes on at both its sides. Unmixed to the smooth skin field as hair is, a rim
    crossing a brow would be skin-coloured there. Pixels the frame does not reach are kept
    as they are.
    """
    return fill_in(image, frame_cover(alpha))


def _removal(coverage: Tensor, ranges: Tensor) -> Tensor:
    """``(N, 1, 1, 1)`` how much of an own instance of ``coverage`` ``(N,)`` is removed:
    0 to 1 over ``ranges`` ``(N, 2)``, smoothly."""
    weight = ((coverage - ranges[:, 0]) / (ranges[:, 1] - ranges[:, 0])).clamp(0, 1)
    return (weight * weight * (3 - 2 * weight)).view(-1, 1, 1, 1)


def off_the_lips(alpha: Tensor, lips: Tensor, iod: float) -> Tensor:
    """``alpha`` of facial hair kept off the source's ``lips`` (their alpha,
    :func:`~geogan_hf.instance.lip_mask`) deeper than :data:`LIP_OVERHANG` (pixels: ``iod``).

    A mustache rests on the upper lip's edge. The landmarks of an open, screaming or
    smiling mouth lie off the lips' edges by a few pixels, in the exemplar or in the source,
    and the flow that carries them put the mustache's lower part over the source's upper
    lip (real pair 11). What looks like lips is never a mustache in the exemplar either
    (``lookalike_parts``); a long mustache hanging over the lip is cut at it.
    """
    r = round(LIP_OVERHANG * iod)
    covered = min_filter(lips, r) if r >= 1 else lips
    return alpha * (1 - covered)


def composite(background: Tensor, foreground: Tensor, alpha: Tensor) -> Tensor:
    """``alpha * foreground + (1 - alpha) * background``."""
    return torch.lerp(background, foreground, alpha)
