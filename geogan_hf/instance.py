"""Instance extraction: the alpha matte and colour of an attribute instance in one face crop.

An *instance* is what an attribute adds to a face: the hairs of a mustache, the frame of a
pair of glasses. It is found in one aligned face crop from that crop and its 68 landmarks
alone (never by comparing two faces, which would mistake every difference of skin tone,
lighting or exposure for the attribute):

1. **Skin model.** The face's own attribute-free skin (the parts of
   :func:`geogan_hf.regions.part_mask` that :data:`~geogan_hf.regions.ATTRIBUTE_SPECS`
   names, e.g. cheeks and nose for a mustache) gives the skin's colour statistics; a
   *local skin field* ``B`` (the colour the skin would have at each pixel, shading
   included) is filled in by normalized convolution of the pixels that look like skin,
   re-estimated a few times.
2. **Instance evidence.** Each pixel's distance to the local skin in units of the skin's
   own spread: luminance, chromaticity and local texture (hair whose colour is close to
   the skin, blond on light skin, black on dark skin, still differs in texture). Thresholds
   sit at the skin's own distance percentiles, so the evidence adapts to each photo.
   Parts that are never the instance (eyes, lips and teeth, nostrils, everything outside
   the face for hair; see ``excluded_parts``) are forced to 0, and so are the pixels of
   ``lookalike_parts`` that look like the part (brows for glasses), except, for a frame,
   within :data:`EDGE_REACH` of its own pixels: a soft dark frame's edges, mixed with the
   skin, have a brow's colour. Where the face's own shading lies (``shading_parts``,
   ``texture_parts``: the lower lip's shadow, the chin and the jaw's edge for a goatee, the
   mouth corners), being darker counts little (:data:`SHADING_DOUBT`; nothing at the
   mouth corners and folds): a pixel there needs hair's fine texture (:func:`hair_texture`:
   strands and stubble vary along the shading's contours, a shadow band or a lip's edge
   only across them) or a colour no shadow of the skin has (:func:`_unlike_shading`).
3. **Matte.** A local instance colour field ``F`` is filled in from the confident
   instance pixels. At the crop's full resolution, alpha is the projection of each pixel
   onto its local colour line ``B -> F`` (the compositing equation
   ``I = alpha F + (1 - alpha) B`` solved for alpha), confined to where the evidence is;
   where ``F`` and ``B`` are too close for the projection to be reliable, the evidence
   itself is used. Alpha is thus resolved at the high resolution (strands and thin frames
   stay sharp), while the fields and the evidence are computed at a small working size.
   Measured against closed-form matting (``pymatting``, on a trimap from the same evidence,
   at the working size; ``benchmarks/matting.py``): closed-form had a lower alpha error on
   procedural mustaches, the projection on goatees and glasses and on average, and only
   the projection resolves alpha at the crop's full resolution. A beard's alpha is denser
   than its projection where the evidence is sure (:data:`BEARD_DENSITY`): ``F`` leans on
   its most distinct pixels, so the projection reads a pixel all hair of the beard's
   typical shade as part skin. A hole inside a beard (sparse stubble the skin field took
   in, a lit patch) is filled with the beard's own strands from beside it
   (:func:`fill_holes`): on a source with bare, lit skin there it showed as a white patch.
4. **Foreground colour.** Where alpha is large, the instance's own colour is recovered
   exactly (``F = B + (I - B) / alpha``, which keeps the hairs' texture); where it is small,
   the smooth field ``F``. A frame's ``F`` leans on its most distinct pixels
   (:data:`FRAME_COLOUR_POWER`): a soft frame shows its own colour only along its core, so
   the rest, mixed with the skin (a dark frame turned red-brown on warm skin), neither
   makes its colour nor reaches alpha 1 in that colour; and it is one colour all round
   (:data:`FRAME_COLOUR_SIGMA`), so a thin rim, mixed all across, takes the thick ones'.
   Where the rims enclose the eyes (:data:`FRAME_ENCLOSED`) that colour is read from the
   rims' cores alone, not from the brows or hair touching them (:data:`FRAME_PURE`). A
   patterned frame (tortoiseshell) keeps its own pixels inside its rims
   (:func:`_patterned_frame`).

Images are float NCHW in [-1, 1]; landmarks normalized ``(N, 68, 2)`` (see
:mod:`geogan_hf.geometry`). Everything here is computed without gradients: it depends on
the input images only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from .geometry import (
    face_turn,
    gaussian_blur,
    max_filter,
    min_filter,
    normalized_to_pixel,
    resample_box,
    resize_image,
)
from .regions import ATTRIBUTE_SPECS, canonical_attribute, of_kind, part_mask, region_mask

WORK_SIZE = 256  # side of the working copy the fields and the evidence are computed on
REGION_GROW = 0.08  # the attribute region is grown by this (inter-ocular distances)...
ACCESSORY_GROW = 0.25  # ... glasses by more: a frame is placed whole, wherever it reaches
REGION_SOFTNESS = 0.3  # soft edge of the region, in inter-ocular distances
FIELD_SIGMA = 0.12  # normalized-convolution scale of the skin and instance fields (iod)
FRAME_COLOUR_SIGMA = 0.3  # ... of a frame's colour: one colour along the whole rim (iod)
TEXTURE_SIGMA = 0.02  # scale of the local-contrast (texture) measure (iod)
SKIN_STEPS = 3  # re-estimations of the local skin field
SKIN_PERCENTILE = 0.9  # evidence threshold: this quantile of the skin's own distances...
THRESHOLD_RANGE = (2.0, 4.0)  # ... within these limits (skin spreads)
LENS_SHAPE = (0.9, 0.65)  # glasses: semi-axes (eye widths) of the elliptic frame around an eye
# the rim is searched between these multiples of that ellipse (a top rim lying close
# above the eye, as rectangular frames' do, is at about 0.6 there)
LENS_SCALES = (0.5, 1.9)
LENS_ANGLES, LENS_STEPS = 96, 56  # polar samples of the rim search
_THETAS = np.linspace(0, 2 * np.pi, LENS_ANGLES, endpoint=False)
# radius steps a rim may move per angle step; then a second contour moving faster, within
# (or just outside) the first (a straight top rim close above the eye moves out fast toward
# its corners: at 2 the contour left it early and ran along the brow, while at 4 alone it
# left a rim's outer corner for the dark edge of a bright hinge beyond it, real pairs 29, 33)
CONTOUR_SLOPE, INNER_SLOPE = 2, 4
FAST_REACH = 0.2  # ... (scale) at most this far outside it
# a third contour reaches this far (scale), less by CORNER_REACH_UP straight up where brows
# lie, and is taken where it lies on a stronger ridge, as strong as a rim: a top rim's
# corner beyond a crease inside the lens (real pairs 30, 35: the second contour followed the
# crease and the rim broke off into the lashes). Taken whole, it followed an arm leaving a
# rim's corner through the weak skin before it (26, 29, 33)
CORNER_REACH, CORNER_REACH_UP = 0.5, 0.3
INNER_PREFERENCE = 0.5  # score per unit scale by which inner ridges win (rims, not brows)
# above the eye a rim rises from the lens while a brow lying on it rises from the rim: there
# the lowest score within RIM_INSIDE (scale) inside a ridge counts this many times against
# it, the more the further up the ray points (a thin rim scores lower than a thick brow)
RIM_RISE, RIM_INSIDE = 1.5, 0.1
RIM_EDGE = 0.6  # a rim extends along a ray while its score is above this share of its peak
RIM_EVENNESS = 1.5  # a rim is at most this many times its typical thickness anywhere...
RIM_TYPICAL = 0.3  # ... this quantile over the angles (brows lying on a top rim thicken it)
RIM_SMOOTHING = 9  # angles of the median filter that smooths a rim's contour
RIM_MIN_SCORE = 1.0  # mean rim score below which no rim encloses the eye (rimless)
# a frame is clearly there where its rim's score reaches this (colour distances of 3 evidence
# thresholds): a frame of any thickness does all round its eyes, a glasses-free face's
# brows, lids and shadows only on parts of the way (AttributeSpec.enclosed)
RIM_CLEAR = 2.0
FRAME_ENCLOSED = 0.5  # enclosure from which a frame's colour is read from its rims' cores...
FRAME_PURE = 0.25  # ... its lightness from this quantile of theirs, toward the far side
# the rims' smoothed contours bite notches into a frame where its parts meet at a sharp
# corner: a nose-side rim and the bridge (real pairs 26, 29, 33: the rim came loose there),
# the bridge's top between the lenses (25, 32, 36: a pinched bridge). What a closing of the
# rims with a disk of this radius (iod) fills, as distinct as the rims (RIM_EDGE), is
# frame; a band beside a straight rim (a thick lens's edge) is not filled
LENS_NOTCH = 0.1
CLEAR_LENS = 0.5  # lenses that dim the skin by less than this are clear (eyelid shadows do)...
# ... unless coloured: a blue or green channel passing this much more than red (through
# clear glass the sockets' shade and the eyes redden the skin, as shadows do), read this
# far (iod) inside the lenses (a blue frame's inner edge is no blue lens)
TINT_HUE, LENS_EDGE = 0.05, 0.03
LENS_MIDLINE = 0.06  # iod: a lens ends at least this far from the nose's ridge (27-30)
NOSE_SIDE = 0.05  # iod: the eyes' nose sides, where a frame's rims may touch them, this far across
RIM_WIDTH = 0.09  # rimless glasses: the frame lies within this (iod) of a lens...
ARM_BAND = 0.08  # ... or within this (iod) of the eyes' height (the arms)
# a frame without its temple arms ends this far (iod) past its rims along the eye line: its
# end-pieces. Beyond lie the arms' stubs, which, fading as an arm leaves the light, were laid
# on another face as a beak or a blob at the end-piece (real pairs 28 and 30, and one
# exemplar's thin frame onto all wild photos); that face's own arms are drawn
# (prior.temple_arms)
END_PIECE_REACH = 0.03
# a worn frame (to be removed) goes on this far (iod) past its rims along the eye line, from
# its top rim down to the arms' band: its end-pieces, past the face's outline too (a
# browline frame's black corner was left standing on the background, real worn pair 19)
WORN_END_PIECE = 0.12
EXCLUDE_GROW = 0.05  # never-instance parts are grown by this (iod): lip borders, eyelids
# a face wears a frame when its rims enclose its eyes nearly all the way round and the frame
# joins its lenses over the nose (wears_frame). Each alone is not enough: brows, lids, eye
# make-up and a cap's shadow make rings round bare eyes (enclosure 0.9 or more on 22 of 446
# crops of glasses-free faces in ../shared/faces, at 256 and 400 px), and shading or a
# fringe can lie across a bare nose (a bridge up to 1.0). Together: those 22 rings' bridges
# are at most 0.56, the five labelled frames' at least 0.88 (enclosure 0.98 or more)
WORN_ENCLOSURE, WORN_BRIDGE = 0.9, 0.75
BRIDGE_SPAN = 0.7  # ... read across this middle share of the way between the eyes' corners
BRIDGE_REACH = 0.5  # ... from this far (iod) above the eyes' centres (not the brows' points:
# on a face with glasses they often lie on the top rims)
BRIDGE_GAPS = 1  # ... over gaps of up to this many pixels (a thin bridge breaks at one)
# iod: a worn frame in front of brows or sideburns reaches this far past its alpha (its soft
# edge; grown by EXCLUDE_GROW, brows lying on a top rim were cut to a pale outline)
WORN_EDGE = 0.01
OUTLINE_SOFTNESS = 0.15  # the face's outline, where an instance may reach past it (face_margin)
HAIR_FINE_SIGMA = 0.5  # hair's fine texture: derivatives at this scale (pixels of the crop)...
CONTOUR_SIGMA = 0.02  # ... along and across the contours of the luminance at this scale (iod),
CONTOUR_MIN = 1.0  # ... and at least this (working pixels)
HAIR_TEXTURE_SIGMA = 0.05  # ... averaged over this (iod)
SMOOTH_FLOOR = 3.0  # texture below this many times the skin's is smooth in any direction
HAIR_ANISOTROPY = (0.16, 0.32)  # texture along / across the contours: shading -> hair
# a shadow's colour over the skin's: log red / green and blue / green ratios within these,
# log green at most this (no shadow is lighter than the skin); this far beyond, not a shadow
SHADOW_TINT = ((-0.05, 0.45), (-0.35, 0.1), 0.0)
# ... the red / green limit rises by this per unit of log darkening, and the blue / green
# one falls by as much beyond a darkening of SHADOW_DEEP (a third of the skin's light): brown
# hair, as dark as that, is as much less blue than the skin (from the first unit on the
# synthetic goatees' matte IoU fell 0.849 -> 0.844)
SHADOW_WARMING, SHADOW_DEEP = 0.1, 1.0
SHADOW_TINT_SOFTNESS = 0.1
# share of the darker-only evidence dropped where the face's shading lies (all of it where
# shading takes any tint): hair too fine or soft to show its texture (a goatee under the
# lip, from a low-resolution exemplar) must not leave a hollow chin
SHADING_DOUBT = 0.75
EDGE_REACH = 0.03  # a frame's soft edge: look-alike pixels within this (iod) of the frame
FRAME_CORE = 0.01  # iod: a frame's rims are all frame this far inside their edges...
FRAME_CORE_PIXELS = 20  # ... where it has this many such pixels at least...
# ... and they are this share of it, from which (to which) they count (a thin or soft
# frame's core is mixed with the skin, lighter and warmer too: the sample breakingbad's
# 0.09-0.11; tortoiseshell 0.23-0.51)
FRAME_CORE_SHARE = (0.15, 0.2)
# correlation of lightness and warmth across a frame's core over which the share of its own
# pixels in its colour rises from 0 to 1 (tortoiseshell 0.64-0.71; black, brown and plum
# frames with reflections -0.65-0.34)
FRAME_PATTERN = (0.4, 0.6)
FRAME_OPACITY = 0.6  # a frame's projected alpha from which it is opaque (divided by this)
TURNED = 0.7  # nose-to-jaw asymmetry (0 frontal, 1 profile) from which a face's far side...
FRAME_MATCH = 0.12  # ... off the face is a frame only within this RGB distance of its colour
EVIDENCE_RAMP = 3.0  # evidence rises from 0 to 1 over this many skin spreads
BRIGHTER_WEIGHT = 0.5  # a pixel brighter than the skin counts this much (highlights)
LIT_TEXTURE = 2.0  # ... and on lit skin as far as it is more textured by this many spreads
CONFIDENT = 0.8  # evidence above which a pixel is taken as instance colour for ``F``
LINE_CONTRAST = 0.12  # |F - B| (RGB, [0, 1]) above which the projection is trusted
COLOUR_POWER = 2  # the instance colour leans on the pixels that differ most from the skin...
FRAME_COLOUR_POWER = 6  # ... a frame's on its most distinct ones (see extract_instance)
LIGHT_INSTANCE_SHARE = 0.7  # lighter confident pixels needed to call an instance light
ALONE_SHARE = 0.05  # an own part with fewer confident pixels than this share of its joined's
LOW_CONTRAST_ALPHA = 0.4  # alpha of full evidence where instance and skin colours agree
ALPHA_FLOOR = 0.08  # projected alpha below this is skin noise
UNMIX_FROM = 0.25  # alpha from which the foreground colour is unmixed per pixel
# a beard's alpha is its projection to this power where the evidence is sure, its colour
# unmixed with it (the projection reads a beard against its most distinct colour,
# COLOUR_POWER)
BEARD_DENSITY = 0.7
# a hole in a beard (a patch of it that the skin field took in, or lit) narrower than twice
# HOLE_REACH (iod) is filled with the beard's own strands from beside it: its density read
# at HOLE_SCALE (iod), closed over HOLE_REACH; the copies from HOLE_DIRECTIONS sides weighted
# by their density to HOLE_SHARPNESS (the densest side's strands, no seams), taken only
# where the evidence reaches HOLE_SURE; nothing filled or taken within HOLE_CLEAR (iod) of
# the lips or another look-alike part (a lip's shadow, copied, made red smears; the lips
# lie between a mustache and a goatee like a hole)
HOLE_REACH, HOLE_SCALE, HOLE_CLEAR, HOLE_SURE = 0.25, 0.05, 0.05, 0.5
HOLE_DIRECTIONS, HOLE_SHARPNESS, HOLE_CELLS = 8, 8, 6
MIN_SPREAD = (0.04, 0.006, 0.004)  # floors of the skin spreads: log-luminance, chroma, texture
GRAY_SPREAD = 2.0 / 255  # channel spread ([0, 1] units) below which an image is grayscale
LIP_SOFTNESS = 0.02  # lipstick: the lips' outline is this soft (iod)...
LIP_GROW = 0.01  # ... and grown by this: within it the lips' own colour says where they end
LIP_SPECK = 0.06  # iod: a part unlike the lips smaller than this square is a highlight on them
# ... or one whose darkest channel is this much above the skin's, where it reaches the lips'
# edge: a highlight adds the light's colour (0.046-0.15 on eight wild photos' lower lips),
# the skin their outline takes in is the skin's (within 0.02; painted, it spilt past a mouth
# corner, blind A/B)
LIP_SHINE = 0.03
LIP_EDGE = 0.01  # iod: the lips' alpha is blurred by this (the pixels' steps made stairs)
OPENING_GROW = 0.03  # iod: a smile's teeth reach this far beyond its inner lip landmarks...
OPENING_SOFTNESS = 0.02  # ... with a soft edge this wide
LIP_FULL = 0.25  # share of the way from the skin's chromaticity to the lips' that is all lip
LIP_CONTRAST = 0.01  # lips this close to the skin in chromaticity: the outline alone
FRINGE_REACH = 0.45  # iod above the brows: hair over a brow that reaches this high is a fringe
FRINGE_FALL = 0.15  # iod: below the brows' band, what has a fringe's colour this close under it
FRINGE_EDGE = 0.015  # iod: the softness of the fringe's edge
LUMA = (0.299, 0.587, 0.114)
SALT_SHARE = 0.2  # a share of the confident pixels on the other side of the skin ...
SALT_SATURATION = 0.4  # ... this much less saturated than the skin: grey or white strands


@dataclass
class InstanceLayers:
    """An instance found in face crops, inside the box of the region that was searched.

    Every map covers the same pixel box ``box = (y0, y1, x0, x1)`` of crops of ``size``
    ``(H, W)`` (the union over the batch of the attribute regions): outside it alpha is 0
    and nothing changes, so nothing is computed there at full resolution.

    Attributes:
        alpha: ``(N, 1, h, w)`` in [0, 1], 1 = fully the instance.
        foreground: ``(N, 3, h, w)`` in [-1, 1], the instance's colour (unpremultiplied;
            meaningful where ``alpha > 0``).
        skin: ``(N, 3, h, w)`` in [-1, 1], the local skin field ``B``: the colour the
            face's skin has, or would have under the instance.
        transmission: ``(N, 3, h, w)`` in [0, 1], what the instance lets through of the
            face behind it: 1 except behind tinted lenses.
        region: ``(N, 1, h, w)`` the (grown, soft) attribute region.
        own_part: ``(N, 1, h, w)`` bool, where ``region`` is the attribute's own, not the
            region it joins (:attr:`~geogan_hf.regions.AttributeSpec.joins`).
        box: ``(y0, y1, x0, x1)`` of the maps in the crop.
        size: ``(H, W)`` of the crop.
        coverage: ``(N,)`` mean alpha over the attribute's own landmark region (not the
            region it joins): how much of the region the instance covers (near 0: the
            face has no such instance).
        joined_coverage: ``(N,)`` the same over the region it joins (0 where none).
        enclosure: ``(N,)`` glasses: the share of the way round the less enclosed eye that a
            rim clearly encloses (:func:`glasses_zones`); 0 for other attributes.
        bridge: ``(N,)`` glasses: how fully the frame joins its lenses over the nose
            (:func:`frame_bridge`); 0 for other attributes.
    """

    alpha: Tensor
    foreground: Tensor
    skin: Tensor
    transmission: Tensor
    region: Tensor
    own_part: Tensor
    box: tuple[int, int, int, int]
    size: tuple[int, int]
    coverage: Tensor
    joined_coverage: Tensor
    enclosure: Tensor
    bridge: Tensor

    def full(self, name: str, fill: float = 0.0) -> Tensor:
        """The map ``name`` (``"alpha"``, ``"foreground"``...) pasted into a crop-sized tensor."""
        part = getattr(self, name)
        out = part.new_full((part.shape[0], part.shape[1], *self.size), fill)
        y0, y1, x0, x1 = self.box
        out[:, :, y0:y1, x0:x1] = part
        return out


def _stack(layers: Sequence[InstanceLayers]) -> InstanceLayers:
    """One :class:`InstanceLayers` of several crops' (same size), in the union of their boxes."""
    boxes = np.array([one.box for one in layers])
    box = (
        int(boxes[:, 0].min()),
        int(boxes[:, 1].max()),
        int(boxes[:, 2].min()),
        int(boxes[:, 3].max()),
    )
    y0, y1, x0, x1 = box

    def union(name: str, fill: float) -> Tensor:
        return torch.cat([one.full(name, fill)[:, :, y0:y1, x0:x1] for one in layers])

    return InstanceLayers(
        alpha=union("alpha", 0.0),
        foreground=union("foreground", 0.0),
        skin=union("skin", 0.0),
        transmission=union("transmission", 1.0),
        region=union("region", 0.0),
        own_part=union("own_part", 0.0),
        box=box,
        size=layers[0].size,
        coverage=torch.cat([one.coverage for one in layers]),
        joined_coverage=torch.cat([one.joined_coverage for one in layers]),
        enclosure=torch.cat([one.enclosure for one in layers]),
        bridge=torch.cat([one.bridge for one in layers]),
    )


def frame_bridge(
    alpha: Tensor, landmarks: Tensor, box: tuple[int, int, int, int], size: tuple[int, int]
) -> Tensor:
    """``(N,)`` how fully a frame's ``alpha`` ``(N, 1, h, w)`` (on ``box`` of crops of
    ``size``) joins its lenses over the nose: the least, over the columns across the middle
    of the way between the eyes' inner corners (39, 42; :data:`BRIDGE_SPAN`), of the most
    alpha (within :data:`BRIDGE_GAPS` pixels) from :data:`BRIDGE_REACH` above the eyes'
    centres down to the nose (29). 1 where a bridge crosses, 0 where a column is bare;
    ``landmarks`` ``(N, 68, 2)`` normalized. Columns and heights are along and across the
    eye line, not the crop's axes: a crop may be a tilted face's.

    >>> lm = torch.zeros(1, 68, 2)
    >>> lm[0, 36:42, 0], lm[0, 42:48, 0] = -0.3, 0.3  # eyes level, 38.4 px apart
    >>> lm[0, 39, 0], lm[0, 42, 0] = -0.2, 0.2  # their inner corners
    >>> lm[0, 29, 1] = 0.2  # the nose below them
    >>> alpha = torch.zeros(1, 1, 128, 128)
    >>> float(frame_bridge(alpha, lm, (0, 128, 0, 128), (128, 128)))
    0.0
    >>> alpha[..., 60:63, :] = 1.0  # a bar across the nose
    >>> float(frame_bridge(alpha, lm, (0, 128, 0, 128), (128, 128)))
    1.0
    """
    y0, _, x0, _ = box
    points = normalized_to_pixel(landmarks.to(alpha), size) - alpha.new_tensor([x0, y0])
    along = F.normalize(points[:, 42] - points[:, 39], dim=-1)
    across = torch.stack([-along[:, 1], along[:, 0]], -1)
    h, w = alpha.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=alpha.dtype, device=alpha.device),
        torch.arange(w, dtype=alpha.dtype, device=alpha.device),
        indexing="ij",
    )
    grid = torch.stack([xs, ys], -1)  # (h, w, 2) pixels x, y of the box
    near = max_filter(alpha, BRIDGE_GAPS)
    bridges = []
    for a, p, u, v in zip(near[:, 0], points, along, across, strict=True):
        x = (grid - p[39]) @ u  # along the eye line, from the left inner corner
        y = grid @ v
        width = float((p[42] - p[39]) @ u)
        eyes = torch.stack([p[36:42].mean(0), p[42:48].mean(0)])
        top = float((eyes @ v).mean() - BRIDGE_REACH * (eyes[1] - eyes[0]).norm())
        bottom = float(p[29] @ v)
        span = (1 - BRIDGE_SPAN) / 2 * width
        band = (y >= top) & (y <= bottom) & (x >= span) & (x <= width - span)
        columns = (x[band] - span).round().long()
        if width < 1 or columns.numel() == 0:
            bridges.append(alpha.new_zeros(()))
            continue
        most = alpha.new_zeros(int(columns.max()) + 1).scatter_reduce(
            0, columns, a[band], "amax", include_self=True
        )
        bridges.append(most.min())
    return torch.stack(bridges)


def wears_frame(layers: InstanceLayers) -> Tensor:
    """``(N,)`` bool: the face of ``layers`` (glasses' layers) clearly wears a frame: its
    rims enclose its eyes (:data:`WORN_ENCLOSURE`) and it joins its lenses over the nose
    (:data:`WORN_BRIDGE`). Thin metal and rimless frames, whose bridge is barely seen, do not."""
    return (layers.enclosure >= WORN_ENCLOSURE) & (layers.bridge >= WORN_BRIDGE)


def worn_frames(image: Tensor, landmarks: Tensor) -> Tensor:
    """``(N, 1, H, W)`` the alpha of the frame each face crop of ``image`` clearly wears
    (:func:`wears_frame`), grown by :data:`WORN_EDGE` (its soft edge); 0 where it wears
    none. ``landmarks`` ``(N, 68, 2)`` normalized."""
    layers = extract_instance(image, landmarks, ["Eyeglasses"] * image.shape[0])
    alpha = layers.full("alpha") * wears_frame(layers).view(-1, 1, 1, 1).to(layers.alpha)
    iod = float(_iod_pixels(landmarks.to(alpha), image.shape[-2]).mean())
    grow = max(1, round(WORN_EDGE * iod))
    return max_filter(alpha, grow)


def is_grayscale(image: Tensor) -> Tensor:
    """``(N,)`` bool: in 99 % of the pixels the channels agree within :data:`GRAY_SPREAD`."""
    spread = (image.amax(1) - image.amin(1)) / 2
    # a count, not a quantile: no sort of a megapixel crop on every transfer
    return (spread > GRAY_SPREAD).flatten(1).float().mean(1) <= 0.01


def luma(x: Tensor) -> Tensor:
    """Luminance ``(N, 1, H, W)`` of RGB ``x`` (any range; linear in ``x``)."""
    return (x * x.new_tensor(LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)


def weighted_mean(values: Tensor, weights: Tensor) -> Tensor:
    """``(N, C, 1, 1)`` the mean of ``values`` ``(N, C, H, W)`` over each image, weighted by
    ``weights`` ``(N, 1, H, W)`` (0 where the weights are all 0)."""
    return (values * weights).sum((2, 3), keepdim=True) / weights.sum(
        (2, 3), keepdim=True
    ).clamp_min(1e-6)


def normalized_convolution(values: Tensor, weights: Tensor, sigma: float) -> Tensor:
    """``blur(values * weights) / blur(weights)``, filled in from wider blurs where sparse.

    The weighted local mean of ``values`` at scale ``sigma`` (pixels); where the weights
    near a pixel sum to little (inside a dense instance, far from any skin), the means at
    2, 4 and 8 times the scale take over smoothly, then the global weighted mean. The
    result is smooth, so it is computed on an area-reduced grid (``sigma`` about 2 cells),
    each wider scale on a grid halved again, and upsampled once. Kornia and OpenCV have no
    normalized convolution, hence this.
    """
    h, w = values.shape[-2:]
    factor = max(1, int(sigma // 2))
    weighted = F.avg_pool2d(values * weights, factor, ceil_mode=True)
    weights = F.avg_pool2d(weights, factor, ceil_mode=True)
    total = weighted.sum((2, 3), keepdim=True) / weights.sum((2, 3), keepdim=True).clamp_min(1e-6)
    sigma, size = sigma / factor, weights.shape[-2:]
    out, filled = torch.zeros_like(weighted), torch.zeros_like(weights)
    for level in range(4):
        if level:
            weighted = F.avg_pool2d(weighted, 2, ceil_mode=True)
            weights = F.avg_pool2d(weights, 2, ceil_mode=True)
        local = gaussian_blur(weights, sigma)
        mean = gaussian_blur(weighted, sigma) / local.clamp_min(1e-6)
        if level:
            local = F.interpolate(local, size=size, mode="bilinear", align_corners=False)
            mean = F.interpolate(mean, size=size, mode="bilinear", align_corners=False)
        trust = (local / 0.2).clamp(0, 1) * (1 - filled)
        out, filled = out + trust * mean, filled + trust
        if min(weights.shape[-2:]) < 8:
            break
    out = out + (1 - filled) * total
    return F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)


def _features(unit: Tensor, sigma_texture: float) -> tuple[Tensor, Tensor, Tensor]:
    """(log-luminance, chromaticity (2 ch), texture) of a [0, 1] image."""
    y = luma(unit)
    log_l = torch.log(y + 0.02)
    total = unit.sum(1, keepdim=True) + 0.06
    chroma = torch.cat([unit[:, :1] / total, unit[:, 2:] / total], 1)
    texture = gaussian_blur((y - gaussian_blur(y, sigma_texture)).abs(), sigma_texture)
    return log_l, chroma, texture


def hair_texture(
    full: Tensor, small: Tensor, iod: float, where: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Fine texture along and across the shading's contours: two ``(N, 1, h, w)`` maps at
    the working size of ``small`` (the crop ``full`` resized).

    Shading (the lower lip's shadow, the jaw's dark edge, the lips' own border) is smooth
    along its contours and varies only across them; hair (stubble, strands) varies along
    them as much as across. The crop's finest luminance derivatives (at
    :data:`HAIR_FINE_SIGMA` pixels of ``full``, the crop at its own resolution: the
    working copy would average strands away) are split along and across the contours of
    the luminance smoothed at :data:`CONTOUR_SIGMA` ``iod`` (working pixels; at least
    :data:`CONTOUR_MIN`: strands of a small crop are not contours), and their
    energies averaged over :data:`HAIR_TEXTURE_SIGMA` ``iod``. Only the box of ``where``
    (a working-size mask; default everywhere) is computed at full resolution.
    """
    n, _, h, w = full.shape
    contours = gaussian_blur(luma(small), max(CONTOUR_SIGMA * iod, CONTOUR_MIN))
    cy, cx = torch.gradient(contours, dim=(-2, -1))
    # the contours' orientation as a doubled angle (cos 2a, sin 2a) of the gradient: it
    # interpolates (a and a + pi are one orientation), and where it is unsure (short) the
    # texture splits evenly between along and across
    length2 = (cx.square() + cy.square()).clamp_min(1e-12)
    orientation = torch.cat([(cx.square() - cy.square()) / length2, 2 * cx * cy / length2], 1)
    sigma = HAIR_TEXTURE_SIGMA * iod
    if where is None:
        box = (0, h, 0, w)
    else:  # the mask's box, grown by the averaging's reach
        y0, y1, x0, x1 = _box(where, (h, w))
        reach = math.ceil(3 * sigma * h / small.shape[-2]) + 2
        box = (max(0, y0 - reach), min(h, y1 + reach), max(0, x0 - reach), min(w, x1 + reach))
    y0, y1, x0, x1 = box
    energies = full.new_zeros(n, 2, h, w)
    if y1 - y0 > 2 and x1 - x0 > 2:
        fine = gaussian_blur(luma(full[:, :, y0:y1, x0:x1]), HAIR_FINE_SIGMA)
        gy, gx = torch.gradient(fine, dim=(-2, -1))
        cos2, sin2 = resample_box(orientation, box, (h, w)).split(1, dim=1)
        total = gx.square() + gy.square()
        across = (total + (gx.square() - gy.square()) * cos2 + 2 * gx * gy * sin2) / 2
        energies[:, :, y0:y1, x0:x1] = torch.cat([total - across, across], 1)
    if (h, w) != small.shape[-2:]:
        energies = F.interpolate(energies, size=small.shape[-2:], mode="area")
    along, across = gaussian_blur(energies, sigma).clamp_min(0).sqrt().split(1, dim=1)
    return along, across


def _unlike_shading(
    full: Tensor, small: Tensor, skin: Tensor, reference: Tensor, face: Tensor,
    iod: float, where: Tensor, strict: Tensor,
) -> Tensor:  # fmt: skip
    """``(N, 1, h, w)`` in [0, 1]: how unlike the face's own shading each pixel is.

    1 where the pixel has hair's texture (:func:`hair_texture`: its texture along the
    luminance contours is :data:`HAIR_ANISOTROPY` of the larger of its texture across
    them and :data:`SMOOTH_FLOOR` times the skin's), or, inside the face outline ``face``
    and outside ``strict``, a colour that no shadow of the skin field ``skin`` has: a shadow darkens
    the skin's colour and tints it a little (:data:`SHADOW_TINT`: the red / green and
    blue / green ratios of the pixel to the skin), while grey, black or coloured hair is
    much cooler or warmer, and light hair lighter. Within ``strict`` (the mouth corners,
    where shadows take any tint) and outside the outline (collar, background, neck) only
    texture counts.
    """
    along, across = hair_texture(full, small, iod, torch.maximum(where, reference))
    skin_fine = _reference_quantile(torch.hypot(along, across), reference, 0.5)
    ratio = along / torch.maximum(across, SMOOTH_FLOOR * skin_fine).clamp_min(1e-6)
    low, high = HAIR_ANISOTROPY
    textured = ((ratio - low) / (high - low)).clamp(0, 1)
    tint = torch.log((small + 0.02) / (skin + 0.02))
    red, blue = tint[:, :1] - tint[:, 1:2], tint[:, 2:] - tint[:, 1:2]
    (red_low, red_high), (blue_low, blue_high), lighter = SHADOW_TINT
    # deep shadows in skin are redder and less blue (the light that reaches them went
    # through skin, which lets red through most and blue least): with the red limit alone
    # raised, the darkest pixel of one goatee exemplar's crease under the lip (a tenth of
    # the skin's light) was hair, a black dot under the lip on 36 of 118 wild sources
    darkening = (-tint[:, 1:2]).clamp_min(0)
    red_high = red_high + SHADOW_WARMING * darkening
    blue_low = blue_low - SHADOW_WARMING * (darkening - SHADOW_DEEP).clamp_min(0)
    beyond = [red_low - red, red - red_high, blue_low - blue, blue - blue_high]
    beyond = torch.stack([*beyond, tint[:, 1:2] - lighter])
    coloured = (beyond.amax(0) / SHADOW_TINT_SOFTNESS).clamp(0, 1)
    unlike = torch.maximum(textured, coloured * face * (1 - strict))
    return unlike * unlike * (3 - 2 * unlike)


def shading_plane(values: Tensor, reference: Tensor, steps: int = 3) -> Tensor:
    """``(N, C, H, W)`` the planes ``a + b x + c y`` that fit each channel of ``values``
    over the reference pixels, robustly (reweighted least squares, Tukey weights at three
    robust spreads).

    A face lit from one side is brighter, and often of another hue (a warm key light, a
    cool fill), on that side all the way across: the planes are that gradient, so the
    skin's typical pixels are typical of their own side of the face.

    >>> y, x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    >>> ramp = (0.1 * x - 0.05 * y + 0.3)[None, None]
    >>> torch.allclose(shading_plane(ramp, torch.ones_like(ramp)), ramp, atol=1e-4)
    True

    A dark patch (hair on a tenth of the reference) does not tilt it:

    >>> patched = ramp.clone()
    >>> patched[..., :5, :5] -= 2.0
    >>> torch.allclose(shading_plane(patched, torch.ones_like(ramp)), ramp, atol=1e-3)
    True
    """
    n, c, h, w = values.shape
    y, x = torch.meshgrid(
        torch.linspace(-1, 1, h, device=values.device),
        torch.linspace(-1, 1, w, device=values.device),
        indexing="ij",
    )
    basis = torch.stack([torch.ones_like(x), x, y]).view(1, 1, 3, h * w).to(values)
    flat = values.view(n, c, h * w, 1)
    weights = reference.view(n, 1, 1, h * w).expand(n, c, 1, h * w)
    eye = 1e-6 * torch.eye(3, dtype=values.dtype, device=values.device)
    for _ in range(steps):
        normal = (basis * weights) @ basis.transpose(2, 3) + eye
        coefficients = torch.linalg.solve(normal, (basis * weights) @ flat)
        residual = (flat - basis.transpose(2, 3) @ coefficients).view(n, c, h, w)
        spread = torch.cat([
            _robust_spread(r, reference, 1e-3) for r in residual.split(1, dim=1)
        ], 1)  # fmt: skip
        tukey = (1 - (residual / (3 * spread)).square()).clamp_min(0).square()
        weights = (reference * tukey).view(n, c, 1, h * w)
    return (basis.transpose(2, 3) @ coefficients).view(n, c, h, w)


def _unlike_frame(image: Tensor, colour: Tensor, zone: Tensor) -> Tensor:
    """``(N, 1, h, w)``: how far each pixel of ``zone`` is not a frame of ``colour``
    ``(N, 3, 1, 1)``, by its RGB distance to it (:data:`FRAME_MATCH`)."""
    distance = (image - colour).square().sum(1, keepdim=True).sqrt()
    return zone * (1 - torch.exp(-0.5 * (distance / FRAME_MATCH) ** 2))


def _reference_quantile(values: Tensor, reference: Tensor, q: float) -> Tensor:
    """Per-sample ``q``-quantile ``(N, 1, 1, 1)`` of ``values`` over the reference pixels."""
    out = []
    for v, r in zip(values, reference.expand_as(values)):
        picked = v[r > 0.5]
        out.append((picked if picked.numel() >= 16 else v.flatten()).quantile(q))
    return torch.stack(out).view(-1, 1, 1, 1)


def _light_parts(lighter: Tensor, confident: Tensor, own_part: Tensor) -> Tensor:
    """Whether the instance is light (its lighter confident pixels clearly dominate), per
    pixel, each part by itself (``own_part``: the attribute's own region; the rest: the
    region it joins): a goatee greys before its mustache, so a dark mustache may top a
    light goatee, but a light part over a dark goatee is the lit skin of a bare upper lip.
    Where the own part shows next to nothing (:data:`ALONE_SHARE` of the joined part's
    confident pixels: a mustache alone), the joined part is light by itself."""
    q = 1 - LIGHT_INSTANCE_SHARE
    own, joined = (
        _reference_quantile(lighter, confident * p, q) > 0.5 for p in (own_part, ~own_part)
    )
    total = (confident * own_part).sum((1, 2, 3), keepdim=True)
    alone = total < ALONE_SHARE * (confident * ~own_part).sum((1, 2, 3), keepdim=True)
    return torch.where(own_part, own, joined & (own | alone))


def _line_alpha(pixels: Tensor, skin: Tensor, colour: Tensor, evidence: Tensor) -> Tensor:
    """Each pixel's alpha on its colour line ``skin -> colour`` (all in [0, 1])."""
    line = colour - skin
    length2 = line.square().sum(1, keepdim=True)
    projected = ((pixels - skin) * line).sum(1, keepdim=True) / length2.clamp_min(1e-6)
    projected = ((projected - ALPHA_FLOOR) / (1 - ALPHA_FLOOR)).clamp(0, 1)
    trust = (length2.sqrt() / LINE_CONTRAST).clamp(0, 1)
    # where the instance's colour is too close to the skin's for the projection, the
    # evidence says where it is but not how opaque: it counts for part only
    return torch.lerp(LOW_CONTRAST_ALPHA * evidence, projected, trust)


def fill_holes(
    alpha: Tensor, foreground: Tensor, fillable: Tensor, source: Tensor, reach: int, scale: float
) -> tuple[Tensor, Tensor]:
    """``(alpha, foreground)`` of a beard with its holes filled by its own strands.

    A hole is where the beard's density (``alpha`` blurred at ``scale`` pixels) lies under
    its closing over ``reach`` pixels (what a beard around it would have), as far as it
    does, where ``fillable``. It takes the layers ``reach`` pixels away on
    :data:`HOLE_DIRECTIONS` sides, where ``source`` allows, weighted by their density to
    :data:`HOLE_SHARPNESS` (the densest side's strands: one side alone left seams where
    the side changed, an even mean a haze), at most as dense as the closing. The density,
    the closing and the weights are smooth: computed on a grid of :data:`HOLE_CELLS` cells
    per ``reach`` (a closing over a large face's ``reach`` at full size took 20 ms), and
    only the holes' box is filled. By hand: no installed library inpaints a matte with its
    own texture.

    Args:
        alpha: ``(N, 1, H, W)`` in [0, 1].
        foreground: ``(N, 3, H, W)`` its colour.
        fillable, source: ``(N, 1, H, W)`` in [0, 1]: where holes may be filled, and where
            strands may be copied from.
        reach: pixels; scale: pixels.
    """
    size = alpha.shape[-2:]
    factor = max(1, round(reach / HOLE_CELLS))
    sigma = max(0.5, scale / factor)
    density, copyable = (
        gaussian_blur(F.avg_pool2d(a, factor, ceil_mode=True), sigma)
        for a in (alpha, alpha * source)
    )
    r = max(1, round(reach / factor))
    # a closing by a square: a dilation, then an erosion; no beard beyond the box
    hull = min_filter(max_filter(F.pad(density, (2 * r,) * 4), r), r)
    hull = hull[..., 2 * r : -2 * r, 2 * r : -2 * r]
    angles = [2 * math.pi * k / HOLE_DIRECTIONS for k in range(HOLE_DIRECTIONS)]
    steps = [(round(math.sin(a) * reach), round(math.cos(a) * reach)) for a in angles]
    # each side's density of strands that may be copied, on the grid: the sides' weights
    # and the closing's share of them
    h, w = density.shape[-2:]
    padded = F.pad(copyable, (r, r, r, r))
    sides = torch.cat(
        [padded[..., r + round(dy / factor) : r + round(dy / factor) + h,
                r + round(dx / factor) : r + round(dx / factor) + w] for dy, dx in steps], 1
    )  # fmt: skip
    weights = sides**HOLE_SHARPNESS + 1e-12
    weights = weights / weights.sum(1, keepdim=True)
    gain = (hull / (weights * sides).sum(1, keepdim=True).clamp_min(1e-3)).clamp(max=1)
    hole = ((hull - density) / hull.clamp_min(1e-3)).clamp(0, 1)
    hole = F.interpolate(hole, size=size, mode="bilinear", align_corners=False) * fillable
    ys, xs = torch.nonzero(hole.amax((0, 1)) > 1e-3, as_tuple=True)
    if len(ys) == 0:
        return alpha, foreground
    box = y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    weights, gain = resample_box(torch.cat([weights, gain], 1), box, size).split(
        (HOLE_DIRECTIONS, 1), 1
    )
    # the copies: slices of the layers around the holes' box, zero beyond the crop
    top, left = max(0, y0 - reach), max(0, x0 - reach)
    bottom, right = min(size[0], y1 + reach), min(size[1], x1 + reach)
    strands = (alpha * source)[..., top:bottom, left:right]
    layers = torch.cat([strands, strands * foreground[..., top:bottom, left:right]], 1)
    layers = F.pad(
        layers, (left - x0 + reach, x1 + reach - right, top - y0 + reach, y1 + reach - bottom)
    )
    height, width = y1 - y0, x1 - x0
    copied = sum(
        weights[:, k : k + 1]
        * layers[..., reach + dy : reach + dy + height, reach + dx : reach + dx + width]
        for k, (dy, dx) in enumerate(steps)
    )
    copied_alpha = copied[:, :1] * gain
    colour = copied[:, 1:] / copied[:, :1].clamp_min(1e-6)
    part = alpha[..., y0:y1, x0:x1]
    weight = hole[..., y0:y1, x0:x1] * (copied_alpha > part)
    alpha, foreground = alpha.clone(), foreground.clone()
    alpha[..., y0:y1, x0:x1] = torch.lerp(part, copied_alpha, weight)
    foreground[..., y0:y1, x0:x1] = torch.lerp(foreground[..., y0:y1, x0:x1], colour, weight)
    return alpha, foreground


def _saturation(colour: Tensor) -> Tensor:
    """``(max - min) / max`` over the channels of ``colour`` ``(N, 3, ...)``."""
    top = colour.amax(1, keepdim=True)
    return (top - colour.amin(1, keepdim=True)) / top.clamp_min(1e-6)


def _robust_spread(residual: Tensor, reference: Tensor, floor: float) -> Tensor:
    """Robust standard deviation ``(N, 1, 1, 1)`` on the reference: 1.4826 x median |r|."""
    return (1.4826 * _reference_quantile(residual.abs(), reference, 0.5)).clamp_min(floor)


def _box(mask: Tensor, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` at ``size`` of the pixels where ``mask`` (any size) is non-zero."""
    rows = mask.amax(dim=(0, 1, 3)) > 0
    cols = mask.amax(dim=(0, 1, 2)) > 0
    if not rows.any():
        return 0, 0, 0, 0
    sy, sx = size[0] / mask.shape[-2], size[1] / mask.shape[-1]
    y = rows.nonzero()[:, 0]
    x = cols.nonzero()[:, 0]
    return (
        max(0, int(y[0] * sy) - 1), min(size[0], math.ceil((int(y[-1]) + 1) * sy) + 1),
        max(0, int(x[0] * sx) - 1), min(size[1], math.ceil((int(x[-1]) + 1) * sx) + 1),
    )  # fmt: skip


def _closed_ridge(gain: np.ndarray, slope: int = CONTOUR_SLOPE) -> np.ndarray:
    """Radius index per angle ``(A,)`` of the closed contour through ``gain (A, S)`` with the
    largest total, moving at most ``slope`` radius steps per angle step.

    Dynamic programming over two laps of the angles; the second lap's path is the contour
    (closed without fixing where it starts).
    """
    angles, steps = gain.shape
    offsets = range(-slope, slope + 1)
    total, back = gain[0].copy(), []
    for k in range(1, 2 * angles):
        moves = np.full((len(offsets), steps), -np.inf)
        for row, d in enumerate(offsets):  # predecessor at index j - d
            if d >= 0:
                moves[row, d:] = total[: steps - d]
            else:
                moves[row, :d] = total[-d:]
        best = moves.argmax(0)
        back.append(np.asarray(offsets)[best])
        total = moves[best, np.arange(steps)] + gain[k % angles]
    path = np.empty(2 * angles, dtype=int)
    path[-1] = int(total.argmax())
    for k in range(2 * angles - 1, 0, -1):
        path[k - 1] = path[k] - back[k - 1][path[k]]
    return path[angles:]


def _rim(
    score: np.ndarray, centre: np.ndarray, axes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One lens's rim in ``score (h, w)``, in the eye's elliptic polar frame.

    Returns ``(inner, outer, peak, ridge)``: the rim's inner and outer scale, its score and
    the scale of its ridge per angle of ``LENS_ANGLES`` (low scores on average: no rim
    encloses the eye).
    """
    scales = np.linspace(*LENS_SCALES, LENS_STEPS)
    offsets = np.stack([np.cos(_THETAS), np.sin(_THETAS)], -1)[:, None] * scales[None, :, None]
    points = centre + offsets[..., :1] * axes[0] + offsets[..., 1:] * axes[1]  # (A, S, 2) x, y
    profile = ndimage.map_coordinates(score, [points[..., 1], points[..., 0]], order=1)
    # the lowest score within RIM_INSIDE inside each sample (inside the search: the eye, 0)
    reach = max(1, round(RIM_INSIDE / (scales[1] - scales[0])))
    padded = np.concatenate([np.zeros((LENS_ANGLES, reach)), profile], 1)
    inside = np.min([padded[:, reach - d : reach - d + LENS_STEPS] for d in range(1, reach + 1)], 0)
    # brows lie above the lenses, not beside them (there a weak rim can lie on a plateau)
    upward = np.maximum(-np.sin(_THETAS), 0)[:, None] ** 2
    gain = profile - RIM_RISE * upward * inside - INNER_PREFERENCE * scales
    first = _closed_ridge(gain)
    step = scales[1] - scales[0]
    index, angles = np.arange(LENS_STEPS), np.arange(LENS_ANGLES)
    within = index <= first[:, None] + round(FAST_REACH / step)
    ridge = _closed_ridge(np.where(within, gain, -1e6), INNER_SLOPE)
    peak = profile[angles, ridge]
    # a third contour, reaching further, takes over where it lies on a stronger rim ridge
    further = index <= first[:, None] + np.round((CORNER_REACH - CORNER_REACH_UP * upward) / step)
    wide = _closed_ridge(np.where(further, gain, -1e6), INNER_SLOPE)
    corner = (profile[angles, wide] > peak) & (profile[angles, wide] >= RIM_EDGE * peak.mean())
    ridge = np.where(corner, wide, ridge)
    peak = profile[angles, ridge]
    # the rim's extent along each ray: where the score stays above RIM_EDGE of its peak
    strong = profile >= RIM_EDGE * peak[:, None]
    outside = ~strong & (index >= ridge[:, None])
    inside = ~strong & (index <= ridge[:, None])
    outer = np.where(outside.any(1), outside.argmax(1), LENS_STEPS) - ridge
    inner = ridge - np.where(inside.any(1), LENS_STEPS - 1 - inside[:, ::-1].argmax(1), -1)
    # a rim is about as thick all round: brows or shadows touching it are cut off
    outer = np.minimum(outer, np.maximum(RIM_EVENNESS * np.quantile(outer, RIM_TYPICAL), 1))
    inner = np.minimum(inner, np.maximum(RIM_EVENNESS * np.quantile(inner, RIM_TYPICAL), 1))
    # rims are smooth: a step or spike over a few angles is glare, a shadow or a notch
    smooth = ndimage.median_filter(scales[ridge], RIM_SMOOTHING, mode="wrap")
    inner = ndimage.median_filter(inner * step, RIM_SMOOTHING, mode="wrap")
    outer = ndimage.median_filter(outer * step, RIM_SMOOTHING, mode="wrap")
    return smooth - inner, smooth + outer, peak, scales[ridge]


def glasses_zones(
    score: Tensor, landmarks: Tensor, iod: float, face: Tensor, arms: bool = True
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(lens, frame)`` maps ``(N, 1, h, w)``: inside the lenses, and where a frame can be;
    the ``(N,)`` enclosure: the share of the way round the less enclosed eye where its
    rim's score reaches :data:`RIM_CLEAR`; the ``(N, 1, h, w)`` rims' cores there (the
    most distinct pixel beside the ridge at each such angle); and, with ``arms`` (a worn
    frame), the ``(N, 1, h, w)`` zone of its end-pieces (:data:`WORN_END_PIECE`), which
    the face's outline does not bound.

    Each rim is the strongest closed ridge of ``score`` (instance evidence, unsaturated)
    around an eye, the innermost one preferred (rims, not eyebrows): found by dynamic
    programming in the eye's elliptic polar frame, so a rim broken by glare or hidden in a
    shadow is still closed. The frame can only be on the rims, as thick as they are all
    round, and in a band at the lenses' height inside the ``face``, where the score is
    about the rims' own (the bridge and the arms; beyond the face outline that band holds
    hair and background, and inside it shaded skin; without ``arms``, only as far as
    :data:`END_PIECE_REACH` past the rims). Where no rim
    encloses an eye (rimless glasses), the lens is an ellipse of the usual size and the
    frame a ring of :data:`RIM_WIDTH` around it.
    """
    n, _, h, w = score.shape
    lens = np.zeros((n, h, w), dtype=bool)
    frame = np.zeros((n, h, w), dtype=bool)
    band = np.zeros((n, h, w), dtype=bool)
    pixels = ((landmarks.detach().cpu().numpy() + 1) * np.array([w, h]) - 1) / 2
    grid = np.stack(np.mgrid[:h, :w][::-1], -1).astype(np.float64)  # (h, w, 2) x, y
    values = score.detach().cpu().numpy()[:, 0].astype(np.float64)
    inside_face = face.detach().cpu().numpy()[:, 0] > 0.5
    enclosure = np.zeros(n)
    cores = np.zeros((n, h, w), dtype=bool)
    end_pieces = np.zeros((n, h, w), dtype=bool)
    rim_width = RIM_WIDTH * iod
    for i in range(n):
        eyes = pixels[i, 36:42].mean(0), pixels[i, 42:48].mean(0)
        right = (eyes[1] - eyes[0]) / max(np.linalg.norm(eyes[1] - eyes[0]), 1e-6)
        down = np.array([-right[1], right[0]])
        insides, strengths, clear = [], [], []
        for eye, centre in zip((slice(36, 42), slice(42, 48)), eyes):
            corners = pixels[i, eye][[0, 3]]
            width = max(np.linalg.norm(corners[1] - corners[0]), 1.0)
            axes = np.stack([LENS_SHAPE[0] * width * right, LENS_SHAPE[1] * width * down])
            inner, outer, peak, ridge = _rim(values[i], centre, axes)
            strength = float(peak.mean())
            # the rim's core: the most distinct pixel beside its ridge, where it is clear
            unit = np.stack([np.cos(_THETAS), np.sin(_THETAS)], -1) * ridge[:, None]
            for x, y in np.round((centre + unit @ axes)[peak >= RIM_CLEAR]).astype(int):
                y0, x0 = max(y - 1, 0), max(x - 1, 0)
                near = values[i, y0 : y + 2, x0 : x + 2]
                if near.size:
                    dy, dx = np.unravel_index(near.argmax(), near.shape)
                    cores[i, y0 + dy, x0 + dx] = True
            local = (grid - centre) @ np.linalg.inv(axes)  # elliptic coordinates of each pixel
            scale = np.hypot(local[..., 0], local[..., 1])
            angle = np.arctan2(local[..., 1], local[..., 0]) % (2 * np.pi)
            rim = rim_width / (LENS_SHAPE[1] * width)  # RIM_WIDTH in elliptic scale units
            if strength < RIM_MIN_SCORE:
                inner = np.ones(LENS_ANGLES)
                outer = inner + rim
            insides.append(scale < np.interp(angle, _THETAS, inner, period=2 * np.pi))
            frame[i] |= scale <= np.interp(angle, _THETAS, outer, period=2 * np.pi)
            strengths.append(strength)
            clear.append(float(np.mean(peak >= RIM_CLEAR)))
            # the arms: what is about as distinct from the skin as the rims, at their height
            level = np.abs((grid - centre) @ down) <= ARM_BAND * iod
            band[i] |= level & inside_face[i] & (values[i] >= RIM_EDGE * strength)
        enclosure[i] = min(clear)
        # as distinct as the less distinct rim's ridge at its edge: frame, not skin
        distinct = values[i] >= RIM_EDGE * min(strengths)
        rims = frame[i] & ~(insides[0] | insides[1])
        if min(strengths) >= RIM_MIN_SCORE and rims.any():
            r = max(1, round(LENS_NOTCH * iod))
            disk = np.hypot(*np.mgrid[-r : r + 1, -r : r + 1]) <= r
            # on the rims' box only (a closing stays within r of them): 7 ms -> 2 ms a face
            ys, xs = np.nonzero(rims)
            y0, x0 = max(ys.min() - r, 0), max(xs.min() - r, 0)
            box = np.s_[y0 : ys.max() + r + 1, x0 : xs.max() + r + 1]
            notches = np.zeros_like(rims)
            notches[box] = ndimage.binary_closing(np.pad(rims[box], r), disk)[r:-r, r:-r]
            notches &= distinct
            insides = [inside & ~notches for inside in insides]
            frame[i] |= notches
        lens[i] = insides[0] | insides[1]
        strong = frame[i] & distinct
        offset = grid - (eyes[0] + eyes[1]) / 2
        along = offset @ right
        rim_pixels = strong & ~lens[i]
        if arms and min(strengths) >= RIM_MIN_SCORE and rim_pixels.any():
            # its end-pieces, past the outermost rims, from the top rim down to the arms
            across = offset @ down
            lo, hi = along[rim_pixels].min(), along[rim_pixels].max()
            reach = WORN_END_PIECE * iod
            ends = ((along < lo) & (along >= lo - reach)) | ((along > hi) & (along <= hi + reach))
            end_pieces[i] = ends & (across >= across[rim_pixels].min()) & (across <= ARM_BAND * iod)
            band[i] |= end_pieces[i] & distinct
        elif not arms and strong.any():
            reach = along[strong]
            band[i] &= along >= reach.min() - END_PIECE_REACH * iod
            band[i] &= along <= reach.max() + END_PIECE_REACH * iod
        # ... and joined to the rims (not specks of hair or shadow at the temples)
        labels, _ = ndimage.label(band[i] | frame[i])
        joined = np.unique(labels[frame[i]])
        frame[i] = ndimage.binary_dilation(np.isin(labels, joined[joined > 0]) & ~lens[i])
        # a lens never reaches over the nose's ridge, where a weak rim left its contour
        # open (a tint over the bridge: aligned/stargan_189498's aviators)
        ridge = pixels[i, 30] - pixels[i, 27]
        ridge = ridge / max(np.linalg.norm(ridge), 1e-6)
        offset = grid - pixels[i, 27]
        across = np.abs(offset[..., 0] * ridge[1] - offset[..., 1] * ridge[0])
        lens[i] &= across >= LENS_MIDLINE * iod
    to = score.new_tensor
    return (
        to(lens[:, None].astype(np.float32)), to(frame[:, None].astype(np.float32)),
        to(enclosure.astype(np.float32)), to(cores[:, None].astype(np.float32)),
        to(end_pieces[:, None].astype(np.float32)),
    )  # fmt: skip


def _lens_tint(image: Tensor, skin: Tensor, lens: Tensor, iod: float) -> Tensor:
    """Per-channel transmission ``(N, 3, 1, 1)`` of tinted lenses: the median ratio of what
    is seen through them (:data:`LENS_EDGE` inside ``lens``) to the skin around; 1 (clear)
    within :data:`CLEAR_LENS` of it.

    Through clear glass that ratio is 0.55-0.9 too (the eyes and their sockets' shade), so
    a lens that dims less is tinted only where it is coloured (:data:`TINT_HUE`), and then
    passes its colour, not that dimming: the lilac aviators of a CelebA-HQ exemplar
    (ratio 0.67, 0.60, 0.77) came out clear.
    """
    if not lens.amax() > 0:
        return lens.new_ones(len(lens), 3, 1, 1)  # no lenses (hair): 5 ms a face saved
    reach = max(1, round(LENS_EDGE * iod))
    inside = min_filter(lens, reach)
    ratio = (image + 0.02) / (skin + 0.02)
    tint = torch.cat([_reference_quantile(c, inside, 0.5) for c in ratio.split(1, dim=1)], 1)
    tint = tint.clamp(0.2, 1.0)
    dark = (1 - tint).amax(1, keepdim=True) >= CLEAR_LENS
    coloured = (tint[:, 1:] > tint[:, :1] * (1 + TINT_HUE)).any(1, keepdim=True)
    tint = torch.where(dark, tint, tint / tint.amax(1, keepdim=True))
    seen = inside.amax((2, 3), keepdim=True) > 0
    return torch.where((dark | coloured) & seen, tint, 1.0)


def lip_alpha(
    pixels: Tensor, skin: Tensor, outline: Tensor, mouth: Tensor, iod: float,
    reference: Tensor | None = None,
) -> Tensor:  # fmt: skip
    """``(N, 1, h, w)`` the lips' alpha inside their landmark ``outline``: a pixel is lip as
    far as its chromaticity lies from the local ``skin``'s toward the lips' typical one
    (all lip from :data:`LIP_FULL` of the way). Teeth and skin the outline takes in by
    mistake are not lips, so lipstick does not paint them; a highlight on a lip, as pale
    as a tooth, is, because it lies inside the lip or is small (:data:`LIP_SPECK`), or,
    reaching the outline's edge, has the light's colour added to the skin's
    (:data:`LIP_SHINE`): only what is unlike the lips and reaches the ``mouth``'s opening,
    or the outline's edge as skin, is left out. With lips hardly of another colour than
    the skin (:data:`LIP_CONTRAST`), the outline alone. Its edges are softened by
    :data:`LIP_EDGE`. The lips' typical colour is read in ``reference`` (the outline if
    ``None``). ``pixels`` and ``skin`` in [0, 1], the masks soft in [0, 1], ``iod`` in
    their pixels.

    >>> skin = torch.full((1, 3, 6, 6), 0.6)
    >>> pixels = skin.clone(); pixels[:, :, 1:] = torch.tensor([0.7, 0.3, 0.3]).view(3, 1, 1)
    >>> pixels[:, :, 3, 3] = 0.9  # a highlight on the lip
    >>> mouth = torch.zeros(1, 1, 6, 6); mouth[..., 5, :] = 1  # teeth along the bottom
    >>> pixels[:, :, 5] = 0.9
    >>> lip_alpha(pixels, skin, torch.ones(1, 1, 6, 6), mouth, 1.0)[0, 0, :, 3].tolist()
    [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    """

    def chromaticity(x: Tensor) -> Tensor:
        return x / (x.sum(1, keepdim=True) + 0.06)

    out = []
    references = outline if reference is None else reference
    for p, b, c, s, inside, opening, typical in zip(
        pixels, skin, chromaticity(pixels), chromaticity(skin), outline, mouth, references,
        strict=True,
    ):
        core, lips = inside[0] > 0.5, typical[0] > 0.5
        if not lips.any():
            out.append(inside)
            continue
        direction = c[:, lips].median(1).values - s[:, lips].median(1).values
        length2 = direction.square().sum()
        if length2.sqrt() < LIP_CONTRAST:
            out.append(inside)
            continue
        share = ((c - s) * direction.view(3, 1, 1)).sum(0, keepdim=True) / length2
        t = (share / LIP_FULL).clamp(0, 1)
        likeness = t * t * (3 - 2 * t)
        # the unlike parts enclosed by lip (highlights) are lip; so are those with the
        # light's own colour added (LIP_SHINE) that reach the outline's edge but not the
        # mouth's opening: the lit edge of a full lower lip was left unpainted
        unlike, count = ndimage.label((likeness[0] < 0.5).cpu().numpy() & core.cpu().numpy())
        if count:
            edge = ~ndimage.binary_erosion(core.cpu().numpy(), border_value=0)
            at_opening = ndimage.binary_dilation((opening[0] > 0.5).cpu().numpy())
            labels = np.arange(count + 1)
            sizes = np.bincount(unlike.ravel(), minlength=count + 1)
            white = (p.amin(0) - b.amin(0)).detach().cpu().numpy()
            shine = np.asarray(ndimage.mean(white, unlike, labels)) >= LIP_SHINE
            reaches = np.isin(labels, unlike[at_opening]) | (
                np.isin(labels, unlike[edge]) & ~shine
            )
            kept = labels[reaches & (sizes > (LIP_SPECK * iod) ** 2) & (labels > 0)]
            enclosed = torch.from_numpy((unlike > 0) & ~np.isin(unlike, kept)).to(inside.device)
            likeness = torch.where(enclosed, 1.0, likeness)
        out.append(inside * likeness)
    return gaussian_blur(torch.stack(out), LIP_EDGE * iod)


def lip_mask(
    pixels: Tensor, skin: Tensor, landmarks: Tensor, box: tuple[int, int, int, int],
    size: tuple[int, int],
) -> Tensor:  # fmt: skip
    """:func:`lip_alpha` of the ``pixels`` and local ``skin`` (in [0, 1]) of ``box`` in a
    ``size`` face crop with ``landmarks``: their lips, outline and mouth from the landmarks."""
    work = (min(size[0], WORK_SIZE), min(size[1], WORK_SIZE))
    names = ["Wearing_Lipstick"] * len(landmarks)
    outline = region_mask(names, landmarks, work, LIP_SOFTNESS, LIP_GROW, joined=False)
    mouth = torch.cat([part_mask("mouth", lm[None], work, softness=0.0) for lm in landmarks])
    outline, mouth = (resample_box(m, box, size) for m in (outline, mouth))
    iod = float(_iod_pixels(landmarks, size[0]).mean())
    # on the lips' own box within ``box`` (a mustache's box is several times theirs)
    margin = math.ceil(3 * LIP_EDGE * iod) + 1
    y0, y1, x0, x1 = _box(outline, outline.shape[-2:])
    if y1 <= y0 or x1 <= x0:
        return torch.zeros_like(outline)
    y0, x0 = max(0, y0 - margin), max(0, x0 - margin)
    y1, x1 = min(outline.shape[-2], y1 + margin), min(outline.shape[-1], x1 + margin)
    inside = (..., slice(y0, y1), slice(x0, x1))
    lips = torch.zeros_like(outline)
    lips[inside] = lip_alpha(pixels[inside], skin[inside], outline[inside], mouth[inside], iod)
    return lips


def mouth_opening(
    pixels: Tensor, skin: Tensor, landmarks: Tensor, box: tuple[int, int, int, int],
    size: tuple[int, int],
) -> Tensor:  # fmt: skip
    """``(N, 1, h, w)`` the mouth's opening in ``box`` of a ``size`` face crop with
    ``landmarks`` (``pixels`` and local ``skin`` in [0, 1]): the inner lip outline, grown by
    :data:`OPENING_GROW`, less what has the lips' colour (:func:`lip_alpha` over the whole
    mouth). A smiling mouth's inner landmarks lie on the teeth or on the lips: the teeth
    are what its colour says is not lip."""
    work = (min(size[0], WORK_SIZE), min(size[1], WORK_SIZE))
    outer, inner, mouth = (
        torch.cat([part_mask(part, lm[None], work, softness=soft, grow=grow) for lm in landmarks])
        for part, soft, grow in (
            ("lips", LIP_SOFTNESS, LIP_GROW), ("mouth", OPENING_SOFTNESS, OPENING_GROW),
            ("mouth", 0.0, 0.0),
        )
    )  # fmt: skip
    outer, inner, mouth = (resample_box(m, box, size) for m in (outer, inner, mouth))
    iod = float(_iod_pixels(landmarks, size[0]).mean())
    # the lips' colour is read on the lips alone: a wide smile's teeth fill half the outline
    lips = lip_alpha(pixels, skin, outer, mouth, iod, reference=outer * (1 - mouth))
    return inner * (1 - lips)


def _likeness(
    features: Tensor, part: Tensor, floors: Sequence[float] = (0.08, 0.01, 0.01, 0.01)
) -> Tensor:
    """How much each pixel looks like the typical pixel of ``part`` (log-luminance, chroma
    and, when given, texture; or any channels, with their spreads' ``floors``).

    ``exp(-d^2 / 2)`` with ``d`` the distance to the part's median in units of its own
    robust spread (doubled: the part varies, and a look-alike need not be typical).
    """
    distance = torch.zeros_like(features[:, :1])
    for channel, floor in zip(features.split(1, dim=1), floors):
        median = _reference_quantile(channel, part, 0.5)
        spread = _robust_spread(channel - median, part, floor)
        distance = distance + ((channel - median) / (2 * spread)) ** 2
    return torch.exp(-0.5 * distance)


def far_side(landmarks: Tensor, size: tuple[int, int], turned: Tensor | None = None) -> Tensor:
    """``(N, 1, h, w)``: 1 on the far side of a strongly turned face, 0 elsewhere.

    A face is strongly turned when its turn (:func:`~geogan_hf.geometry.face_turn`) is
    :data:`TURNED` or more; its far side is that of the jaw end nearer the nose,
    beyond the nose tip. ``turned``: other landmarks ``(N, 68, 2)`` whose turn decides
    (the same side of ``landmarks``' face is marked: where an exemplar's far side lands on
    the source). Landmarks normalized.
    """
    h, w = size
    scale = landmarks.new_tensor([w, h]) / 2
    points = (landmarks + 1) * scale
    ref = points if turned is None else (turned.to(points) + 1) * scale
    turn = face_turn(ref)
    jaw = torch.where((turn < 0)[:, None], points[:, 0], points[:, 16])
    right = points[:, 42:48].mean(1) - points[:, 36:42].mean(1)
    side = ((jaw - (points[:, 0] + points[:, 16]) / 2) * right).sum(-1).sign()
    nose = points[:, 30]
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=points.dtype, device=points.device) + 0.5,
        torch.arange(w, dtype=points.dtype, device=points.device) + 0.5,
        indexing="ij",
    )
    across = (xs[None] - nose[:, 0, None, None]) * right[:, 0, None, None] + (
        ys[None] - nose[:, 1, None, None]
    ) * right[:, 1, None, None]
    far = (across * side[:, None, None] > 0) & (turn.abs() >= TURNED)[:, None, None]
    return far[:, None].to(points.dtype)


def _iod_pixels(landmarks: Tensor, size: int) -> Tensor:
    """Inter-ocular distance ``(N,)`` in pixels of a ``size`` crop."""
    eyes = landmarks[:, 42:48].mean(1) - landmarks[:, 36:42].mean(1)
    return eyes.norm(dim=-1) * size / 2


class _Masks(NamedTuple):
    """An attribute's masks on a face crop, from :class:`~geogan_hf.regions.AttributeSpec`."""

    region: Tensor  # the grown, soft region searched, with the region it joins
    own_region: Tensor  # the same without the region it joins
    core: Tensor  # the landmark region
    own: Tensor  # the landmark region without the region it joins: coverage is read here
    reference: Tensor  # the skin reference
    excluded: Tensor  # never the instance
    shading: Tensor  # where the face's own shading lies (any tint included)
    strict: Tensor  # where shading takes any tint


def _between_inner_corners(landmarks: Tensor, size: tuple[int, int]) -> Tensor:
    """``(N, 1, h, w)``: 1 between the eyes' inner corners (39, 42) along the eye line and
    within :data:`NOSE_SIDE` of it across, the nose's side of both eyes; 0 elsewhere."""
    points = normalized_to_pixel(landmarks, size)
    ys, xs = torch.meshgrid(
        *(torch.arange(n, dtype=points.dtype, device=points.device) for n in size), indexing="ij"
    )
    inner, line = points[:, 39, :, None, None], (points[:, 42] - points[:, 39])[..., None, None]
    length = line.norm(dim=1).clamp_min(1e-6)
    dx, dy = xs - inner[:, 0], ys - inner[:, 1]
    along = (dx * line[:, 0] + dy * line[:, 1]) / length
    across = (dy * line[:, 0] - dx * line[:, 1]).abs() / length
    iod = _iod_pixels(landmarks, size[0])[:, None, None]
    band = (along > 0) & (along < length) & (across <= NOSE_SIDE * iod)
    return band.to(landmarks.dtype)[:, None]


def _spec_masks(attributes: Sequence[str], landmarks: Tensor, size: tuple[int, int]) -> _Masks:
    """The masks of :class:`_Masks` (see :class:`~geogan_hf.regions.AttributeSpec`).

    They are soft at the scale of a few pixels, so they are rasterised at half the size and
    upsampled (four times fewer distances to polygons).
    """
    full, size = size, (max(1, size[0] // 2), max(1, size[1] // 2))
    specs = [ATTRIBUTE_SPECS[a] for a in attributes]
    grow = [ACCESSORY_GROW if spec.kind == "accessory" else REGION_GROW for spec in specs]
    region, own_region = (
        torch.cat([
            region_mask(a, lm[None], size, REGION_SOFTNESS, g, joined)
            for a, lm, g in zip(attributes, landmarks, grow, strict=True)
        ])
        for joined in (True, False)
    )  # fmt: skip
    core = region_mask(list(attributes), landmarks, size)
    own = region_mask(list(attributes), landmarks, size, joined=False)
    reference = torch.zeros_like(core)
    excluded = torch.zeros_like(core)
    shading = torch.zeros_like(core)
    strict = torch.zeros_like(core)
    for i, spec in enumerate(specs):
        lm = landmarks[i : i + 1]
        for part in spec.skin_parts:
            reference[i : i + 1] = torch.maximum(reference[i : i + 1], part_mask(part, lm, size))
        for part in spec.excluded_parts:
            part_region = part_mask(part, lm, size, softness=0.1, grow=EXCLUDE_GROW)
            if part == "eyes" and spec.kind == "accessory":
                # a frame's nose-side rims lie close to the eyes' inner corners: there the
                # eyes' grown outline had cut a rim in two (real pairs 27, 31: a hook by
                # the nose). Above and below the eyes it keeps lashes off the top rims
                part_region = part_region * (1 - _between_inner_corners(lm, size))
            excluded[i : i + 1] = torch.maximum(excluded[i : i + 1], part_region)
        for part in spec.shading_parts:
            shading[i : i + 1] = torch.maximum(shading[i : i + 1], part_mask(part, lm, size))
        for part in spec.texture_parts:
            strict[i : i + 1] = torch.maximum(strict[i : i + 1], part_mask(part, lm, size))
        if spec.face_margin is not None:
            face = part_mask("face", lm, size, OUTLINE_SOFTNESS, spec.face_margin)
            excluded[i : i + 1] = torch.maximum(excluded[i : i + 1], 1 - face)
    reference = reference * (1 - region) * (1 - excluded)
    masks = (region, own_region, core, own, reference, excluded, torch.maximum(shading, strict))
    return _Masks(
        *(F.interpolate(m, size=full, mode="bilinear", align_corners=False)
          for m in (*masks, strict))
    )  # fmt: skip


@torch.no_grad()
def extract_instance(
    image: Tensor,
    landmarks: Tensor,
    attribute: str | Sequence[str],
    light_strands: bool = True,
    hidden: Tensor | None = None,
    arms: bool = True,
) -> InstanceLayers:
    """The instance of ``attribute`` in each face crop of ``image`` (see the module docstring).

    Args:
        image: ``(N, 3, H, W)`` aligned face crops in [-1, 1].
        landmarks: ``(N, 68, 2)`` their landmarks, normalized.
        attribute: one name, or one per crop.
        light_strands: a grey or white beard's strands on the other side of the skin from
            its shadows count (:data:`SALT_SHARE`); ``False`` for an instance that is to be
            removed: unmixed to the skin field, a grey beard's strands left an airbrushed
            patch inside the beard around it (real pair 24), its shadows alone do not.
        hidden: ``(N, 1, H, W)`` in [0, 1], what lies in front of the instance and is never
            it (a worn frame over the brows, :func:`worn_frames`), or ``None``.
        arms: a frame's alpha takes its temple arms and its end-pieces past the face's
            outline (:data:`WORN_END_PIECE`: a frame a face wears, to be removed);
            ``False`` for a frame to be laid on another face, which ends at its end-pieces
            (:data:`END_PIECE_REACH`).

    Returns:
        :class:`InstanceLayers` at the crops' resolution.
    """
    n, _, h, w = image.shape
    attributes = [attribute] * n if isinstance(attribute, str) else list(attribute)
    attributes = [canonical_attribute(a) for a in attributes]
    if n > 1:
        # one crop at a time: the scales (its inter-ocular distance) and the box are each
        # crop's own, so a crop's instance does not depend on the batch it comes in
        return _stack([
            extract_instance(
                image[i : i + 1], landmarks[i : i + 1], attributes[i], light_strands,
                None if hidden is None else hidden[i : i + 1], arms,
            )
            for i in range(n)
        ])  # fmt: skip
    landmarks = landmarks.to(image)
    full = (image.clamp(-1, 1) + 1) / 2
    work = (min(h, WORK_SIZE), min(w, WORK_SIZE))
    small = resize_image(full, work)
    iod = float(_iod_pixels(landmarks, work[0]).mean().clamp_min(4.0))
    region, own_region, core, own, reference, excluded, shading, strict = _spec_masks(
        attributes, landmarks, work
    )
    if hidden is not None:
        excluded = torch.maximum(excluded, F.adaptive_max_pool2d(hidden.to(excluded), work))

    log_l, chroma, texture = _features(small, max(0.5, TEXTURE_SIGMA * iod))
    features = torch.cat([log_l, chroma, texture], 1)
    lookalike = torch.zeros_like(excluded)
    lookalike_area = torch.zeros_like(excluded)
    for i, name in enumerate(attributes):
        for part in ATTRIBUTE_SPECS[name].lookalike_parts:
            mask = part_mask(part, landmarks[i : i + 1], work, softness=0.1, grow=EXCLUDE_GROW)
            likeness = _likeness(features[i : i + 1, :3], mask)
            lookalike[i : i + 1] = torch.maximum(lookalike[i : i + 1], mask * likeness)
            lookalike_area[i : i + 1] = torch.maximum(lookalike_area[i : i + 1], mask)
    never, excluded = excluded, torch.maximum(excluded, lookalike)
    sigma = FIELD_SIGMA * iod
    # the reference parts may hold a little hair (a beard reaching the cheeks, a mustache
    # wider than its region): only the pixels that look like the reference's typical
    # pixel count, and they seed the local skin field
    log_colour = torch.cat([log_l, chroma], 1)
    reference = reference * _likeness(
        torch.cat([log_colour - shading_plane(log_colour, reference), texture], 1), reference
    )
    weights = reference.clone()
    allowed = 1 - excluded
    lit_skin = torch.tensor(
        [ATTRIBUTE_SPECS[a].lit_skin for a in attributes], device=image.device
    ).view(-1, 1, 1, 1)
    for _ in range(SKIN_STEPS):
        skin_log_l, skin_chroma, skin_texture = normalized_convolution(
            features, weights, sigma
        ).split((1, 2, 1), dim=1)
        d_l = log_l - skin_log_l
        d_c = chroma - skin_chroma
        d_t = (texture - skin_texture).clamp_min(0)
        spread_l = _robust_spread(d_l, reference, MIN_SPREAD[0])
        d_hue = d_c.square().sum(1, keepdim=True).sqrt()
        spread_c = _robust_spread(d_hue, reference, MIN_SPREAD[1])
        spread_t = _robust_spread(d_t, reference, MIN_SPREAD[2])
        hue = d_hue / spread_c
        # brighter than the skin is a highlight or lit (stubbly) skin unless the colour
        # differs too (grey hair on darker skin): then luminance and texture count
        brighter = torch.where(d_l > 0, (hue / 2).clamp(max=1), 1.0)
        d_l = d_l * torch.where(d_l > 0, BRIGHTER_WEIGHT * brighter, 1.0)
        colour_distance = torch.sqrt((d_l / spread_l) ** 2 + hue**2)
        distance = torch.sqrt(colour_distance**2 + (brighter * d_t / spread_t) ** 2)
        skin_like = torch.exp(-0.5 * (distance / 2.5) ** 2)
        weights = torch.maximum(reference, skin_like * allowed * (1 - core))

    threshold = _reference_quantile(distance, reference, SKIN_PERCENTILE).clamp(*THRESHOLD_RANGE)
    # a lit patch of the face's skin (a chin in a spotlight) is lighter than the shaded skin
    # around and of another hue, but as smooth: it counts as far as it is textured (light
    # hair is); counted, it was pasted as a glowing patch (the breakingbad sample). It stays
    # out of the skin field: there it lifted the field, and shadows beside it became hair.
    smooth = (d_t / (LIT_TEXTURE * spread_t)).clamp(max=1)
    lit = lit_skin & (d_l > 0)
    colour_distance = torch.where(lit, colour_distance * smooth, colour_distance)
    distance = torch.where(
        lit, torch.sqrt(colour_distance**2 + (brighter * d_t / spread_t) ** 2), distance
    )
    rise = ((distance - threshold) / EVIDENCE_RAMP).clamp(0, 1)
    rise = rise * rise * (3 - 2 * rise) * region
    skin = normalized_convolution(small, weights, sigma)
    glasses = rise.new_tensor([ATTRIBUTE_SPECS[a].kind == "accessory" for a in attributes])
    if shading.amax() > 0 or glasses.any():
        face = torch.cat([part_mask("face", lm[None], work) for lm in landmarks])
    if shading.amax() > 0:
        # where the face's own shading lies, what is only darker than the skin is not the
        # instance: there it takes hair's texture, or a colour no shadow of the skin has
        hair = _unlike_shading(full, small, skin, reference, face, iod, region * shading, strict)
        doubt = torch.maximum(SHADING_DOUBT * shading, strict)
        rise = rise * (1 - doubt * (1 - hair))
    evidence = rise * allowed
    lens, enclosure = torch.zeros_like(evidence), glasses.new_zeros(n)
    if glasses.any():
        score = (colour_distance / threshold - 1).clamp_min(0) * region * allowed
        lens, frame, enclosure, cores, ends = glasses_zones(score, landmarks, iod, face, arms)
        # the rims' cores' median colour: a frame's own (its end-pieces', its colour below)
        core_colour = torch.cat(
            [_reference_quantile(c, cores, 0.5) for c in small.split(1, 1)], 1
        )
        enclosure = enclosure * glasses
        glasses = glasses.view(-1, 1, 1, 1)
        frame = gaussian_blur(frame, 0.5)
        # a soft dark frame's edges, its colour mixed with the skin's, have the colour of
        # brows: look-alike pixels this close to the frame's own pixels are its edges
        reach = max(1, round(EDGE_REACH * iod))
        beside = max_filter(evidence, reach)
        relieved = 1 - torch.maximum(never, lookalike * (1 - beside))
        allowed = torch.lerp(allowed, relieved, glasses)
        evidence = rise * allowed
        # the eyes are behind the lenses too (seen through a tint), but not their colour
        lens = gaussian_blur(lens, 0.5) * glasses
        allowed = allowed * (1 - glasses + glasses * frame)
        evidence = evidence * (1 - glasses + glasses * frame)
        # on the far side of a face turned nearly to profile the far lens is seen against the
        # background, and the face's outline (its far brow, jaw and nose) does not bound
        # it: there a frame is what has the colour it has on the near side (a dark
        # background there became a blob of frame)
        far = glasses * far_side(landmarks, work)
        if far.any():
            on_face = (evidence > CONFIDENT).to(small) * evidence * face * (1 - far)
            beyond = _unlike_frame(small, weighted_mean(small, on_face), far)
            allowed, evidence = allowed * (1 - beyond), evidence * (1 - beyond)
        # so are a worn frame's end-pieces, which only the colour of its rims' cores tells
        # from hair beside them: grey hair taken and filled in became a pale blob (worn
        # pairs 9, 13)
        ends = ends * glasses
        if ends.any():
            beyond = _unlike_frame(small, core_colour, ends)
            allowed, evidence = allowed * (1 - beyond), evidence * (1 - beyond)

    tint_area = lens * (1 - excluded)
    if glasses.any():
        # a lens's tint is not read on the nose's side of the eyes' inner corners (where
        # they are not excluded, for the rims): seen through clear lenses, the corners'
        # red and shade had tinted them (synthetic skin leakage +5 %)
        tint_area = tint_area * (1 - _between_inner_corners(landmarks, work))
    tint = _lens_tint(small, skin, tint_area, iod)
    # the instance's colour comes from the pixels that differ from the skin in colour (not
    # only in texture: stubble on skin is mostly skin)
    confident = (evidence > CONFIDENT).to(small) * evidence
    # an instance is darker than its skin (black, brown hair; frames) or lighter (grey,
    # white): lighter when the lighter confident pixels clearly dominate; the others (lit
    # skin, shadows next to a light beard) do not make its colour
    lighter = (log_l > skin_log_l).to(small)
    own_part = own_region >= 0.5 * region
    light_instance = _light_parts(lighter, confident, own_part)
    # a soft frame is seen in its own colour only along its core: elsewhere it is mixed
    # with the skin, and its colour leans on the core alone
    power = torch.where(glasses.view(-1, 1, 1, 1) > 0, FRAME_COLOUR_POWER, COLOUR_POWER)
    colour_weight = (colour_distance / threshold) ** power
    side = torch.where(light_instance, lighter, 1 - lighter)
    other = confident * colour_weight * (1 - side) * own_part
    confident = confident * colour_weight * side
    foreground = normalized_convolution(small, confident + 1e-4 * evidence, sigma)
    # a white or grey beard is light strands and the shadows between them: the pixels on
    # the other side of the skin are strands too where they are many and nearly neutral
    # (a lit chin's pixels are as coloured as its skin)
    other_colour = weighted_mean(small, other)
    skin_colour = weighted_mean(skin, reference)
    share = other.sum((1, 2, 3)) / (other + confident * own_part).sum((1, 2, 3)).clamp_min(1e-6)
    salt = (
        torch.tensor(light_strands, device=image.device)
        & of_kind(attributes, "hair", device=image.device)
        & (share >= SALT_SHARE).view(-1, 1, 1, 1)
        & (_saturation(other_colour) <= SALT_SATURATION * _saturation(skin_colour))
    )
    if glasses.any():
        # ... and a frame is one colour all round: a thin, soft bottom rim, all of it mixed
        # with the skin, takes the colour of the thicker rims' cores
        frame_colour = normalized_convolution(
            small, confident + 1e-4 * evidence, FRAME_COLOUR_SIGMA * iod
        )
        # where the rims are clear most of the way round, their cores' median colour, as
        # dark (light) as their darker (lighter) quarter, the purest: the brows, lashes or
        # hair touching a rim had made one lens of a brown or red frame black
        # (drawn_glasses.md), and the median alone a real frame's thin rims, mixed with the
        # skin at the working size, see-through (blind A/B)
        core_luma, core_skin = luma(core_colour), _reference_quantile(luma(skin), cores, 0.5)
        darker, lighter = (
            _reference_quantile(luma(small), cores, q) for q in (FRAME_PURE, 1 - FRAME_PURE)
        )
        target = torch.where(core_luma < core_skin, darker, lighter)
        core = (core_colour * target / core_luma.clamp_min(1e-3)).clamp(0, 1)
        ridged = (enclosure >= FRAME_ENCLOSED).view(-1, 1, 1, 1)
        frame_colour = torch.where(ridged, core, frame_colour)
        foreground = torch.lerp(foreground, frame_colour, glasses)

    # full resolution, inside the region's box: project each pixel on its colour line
    # skin -> foreground
    searched = region * allowed
    # the box is the whole region's (a source's box is where a warped frame may land)
    box = _box(region * (1 - excluded), (h, w))
    if box[1] <= box[0] or box[3] <= box[2]:
        box = (0, 1, 0, 1)  # no region inside the crop: one pixel, alpha 0
    y0, y1, x0, x1 = box
    pixels = full[:, :, y0:y1, x0:x1]
    skin_hr = resample_box(skin, box, (h, w))
    fg_hr = resample_box(foreground, box, (h, w))
    evidence_hr = resample_box(evidence, box, (h, w))
    searched_hr = resample_box(searched, box, (h, w))
    region_hr = resample_box(region, box, (h, w))
    gate = (2 * max_filter(evidence_hr, 1)).clamp(max=1) * searched_hr
    if hidden is not None:
        gate = gate * (1 - hidden[..., y0:y1, x0:x1].to(gate))
    alpha = _line_alpha(pixels, skin_hr, fg_hr, evidence_hr) * gate
    if salt.any():
        strands = _line_alpha(pixels, skin_hr, other_colour, evidence_hr) * gate
        light = salt & (strands > alpha)
        fg_hr = torch.where(light, other_colour.expand_as(fg_hr), fg_hr)
        alpha = torch.where(light, strands, alpha)
    # the instance colour leans on a beard's most distinct pixels (COLOUR_POWER), so a pixel
    # all hair of its typical shade is projected as part skin: on a lighter source the beard
    # came out see-through ("pink skin showing through", "washed out"), and the synthetic
    # beards' alpha lay under their true matte. Denser where the evidence is sure (not on a
    # crease, a lip's shadow or a look-alike, where a power alone thickened drawn lines),
    # the same pixels' colours unmixed at that alpha: closer to the true matte, and
    # preferred blind on 11 real pairs by both reviewers, the projection on 3 (twenty-fifth
    # session of real_pairs.md). The coverage keeps the projection: the attributes' ranges
    # were measured on it
    projected = alpha
    beard = torch.tensor(
        [ATTRIBUTE_SPECS[a].stubble for a in attributes], device=image.device
    ).view(-1, 1, 1, 1)
    denser = torch.lerp(alpha, alpha.clamp(0, 1) ** BEARD_DENSITY, evidence_hr.clamp(0, 1))
    alpha = torch.where(beard, denser, alpha)
    unmixed = (skin_hr + (pixels - skin_hr) / alpha.clamp_min(1e-3)).clamp(0, 1)
    take = ((alpha - UNMIX_FROM) / (1 - UNMIX_FROM)).clamp(0, 1)
    foreground_hr = torch.lerp(fg_hr, unmixed, take)
    if beard.any():
        # a beard's patch that its skin field took in (sparse stubble) or a lit patch left
        # a hole, where the source's bare, often lit skin showed as a white patch inside the
        # beard (real pair 18); filled, preferred blind on 4 pairs by all four reviewers,
        # worse on 1 (twenty-sixth session of real_pairs.md)
        hr_iod = iod * h / work[0]
        clear = max(1, round(HOLE_CLEAR * iod))
        near = max_filter(torch.maximum(never, lookalike_area), clear)
        away = searched_hr * (1 - resample_box(near, box, (h, w))).clamp(0, 1)
        source = away * (evidence_hr >= HOLE_SURE).to(alpha)
        filled = fill_holes(
            alpha, foreground_hr, away, source,
            max(1, round(HOLE_REACH * hr_iod)), max(0.5, HOLE_SCALE * hr_iod),
        )  # fmt: skip
        alpha = torch.where(beard, filled[0], alpha)
        foreground_hr = torch.where(beard, filled[1], foreground_hr)
    # colour and expression attributes take the whole region, as it is
    whole = of_kind(attributes, "colour", "expression", device=image.device)
    alpha = torch.where(whole, searched_hr, alpha)
    colour = of_kind(attributes, "colour", device=image.device)
    if colour.any():
        alpha = torch.where(colour, lip_mask(pixels, skin_hr, landmarks, box, (h, w)), alpha)
    # an expression's instance is what the source lacks: the mouth's opening (the source's
    # own face is moved to the expression, prior.expression_targets)
    expression = of_kind(attributes, "expression", device=image.device)
    if expression.any():
        opening = mouth_opening(pixels, skin_hr, landmarks, box, (h, w))
        alpha = torch.where(expression, opening, alpha)
    foreground_hr = torch.where(whole, pixels, foreground_hr)
    measured = torch.where(beard, projected, alpha)
    coverage, joined_coverage = (
        (measured * resample_box(part, box, (h, w))).sum((1, 2, 3))
        / part.sum((1, 2, 3)).mul(h * w / (work[0] * work[1])).clamp_min(1e-6)
        for part in (own, (core - own).clamp_min(0))
    )
    lens_hr = resample_box(lens, box, (h, w))
    own_part_hr = resample_box(own_part.to(region), box, (h, w)) > 0.5
    # a joined part that shows less than its own attribute's exemplars do is not there
    # (the shading under a nose is no mustache)
    absent = alpha.new_tensor(
        [ATTRIBUTE_SPECS[j].absent if (j := ATTRIBUTE_SPECS[a].joins) else 0.0 for a in attributes]
    ).view(-1, 1, 1, 1)
    alpha = torch.where(own_part_hr | (joined_coverage.view(-1, 1, 1, 1) >= absent), alpha, 0.0)
    # a frame is opaque: where its projected alpha is partial, its colour is close to the
    # skin's (brown acetate on warm skin), glare lies on it or the photo is soft, and
    # composited at that alpha its rims came out thin and washed out (the coverage above
    # keeps the projection's alpha: the attributes' ranges were measured on it)
    opaque = (alpha / FRAME_OPACITY).clamp(max=1)
    alpha = torch.where(glasses.view(-1, 1, 1, 1) > 0, opaque, alpha)
    bridge = alpha.new_zeros(n)
    if glasses.any():
        foreground_hr = _patterned_frame(pixels, foreground_hr, opaque, glasses, iod * h / work[0])
        bridge = frame_bridge(alpha, landmarks, box, (h, w)) * glasses.view(-1)
    return InstanceLayers(
        alpha=alpha,
        foreground=foreground_hr * 2 - 1,
        skin=skin_hr * 2 - 1,
        transmission=1 - lens_hr * (1 - tint),
        region=region_hr,
        own_part=own_part_hr,
        box=box,
        size=(h, w),
        coverage=coverage,
        joined_coverage=joined_coverage,
        enclosure=enclosure,
        bridge=bridge,
    )


def _patterned_frame(
    pixels: Tensor, foreground: Tensor, opaque: Tensor, glasses: Tensor, iod: float
) -> Tensor:
    """``foreground`` ``(N, 3, h, w)`` in [0, 1] with a patterned frame's core in its own
    pixels' colours (``pixels``); ``opaque``: the frame's alpha; ``iod`` in pixels.

    A frame's colour is its rims' darker quarter, and a pixel lighter than that is read as
    part skin and made opaque in it: a tortoiseshell frame came out black (real pairs 27
    and 31). Inside its rims (:data:`FRAME_CORE` from their edges) a pixel is all frame,
    but lighter for one of two reasons: the frame's own pattern (tortoiseshell, horn:
    lighter is warmer amber), or a reflection (it adds the light's colour: lighter is
    greyer or cooler, on black and plum frames), which taken as the frame's colour made
    it patchy and streaked (blind A/B, thirty-fifth session of
    ``benchmarks/results/real_pairs.md``). So a frame's core takes its pixels as far as
    its lighter pixels are its warmer ones (:data:`FRAME_PATTERN`: the correlation of
    log luminance and log red-over-blue across the core) and the frame is thick enough to
    have a core of its own (:data:`FRAME_CORE_SHARE`).
    """
    reach = max(1, round(FRAME_CORE * iod))
    core = min_filter(opaque, reach)
    out = foreground.clone()
    for i in range(len(pixels)):
        inside = core[i, 0] > 0.99
        if glasses.view(-1)[i] <= 0 or inside.sum() < FRAME_CORE_PIXELS:
            continue
        own = pixels[i][:, inside] + 0.02
        light = (own.new_tensor(LUMA) @ own).log()
        warmth = (own[0] / own[2]).log()
        pattern = float(torch.corrcoef(torch.stack([light, warmth]))[0, 1].nan_to_num(0.0))
        thick = float(inside.sum() / (opaque[i, 0] > 0.5).sum())
        share = _ramp(pattern, FRAME_PATTERN) * _ramp(thick, FRAME_CORE_SHARE)
        out[i] = torch.lerp(foreground[i], pixels[i], core[i] * share)
    return out


def _ramp(value: float, bounds: tuple[float, float]) -> float:
    """0 below ``bounds[0]``, 1 above ``bounds[1]``, linear between."""
    return min(max((value - bounds[0]) / (bounds[1] - bounds[0]), 0.0), 1.0)


def head_hair_in_front(image: Tensor, landmarks: Tensor) -> Tensor:
    """``(N, 1, H, W)`` in [0, 1]: the head's hair that falls over the brows of the upright
    face crops ``image`` ``(N, 3, H, W)`` in [-1, 1], with ``landmarks`` (normalized).

    The hair is a fringe's (``"Bangs"``) instance. Its pieces outside the brows' own band
    that reach :data:`FRINGE_REACH` above the brows are the head's hair: a brow reaches
    nowhere near that high. Within :data:`FRINGE_FALL` under them (the strands go on over
    the brow), what has their colour is too; a brow of the hair's colour under them is
    taken with them, as behind the hair it is hidden. It is 1 there, not the fringe's
    alpha (which fades over the brows with its region's edge), only its edges softened by
    :data:`FRINGE_EDGE`: where hair is kept, it is kept whole.
    """
    n, _, h, w = image.shape
    alpha = extract_instance(image, landmarks, ["Bangs"] * n, light_strands=False).full("alpha")
    band = part_mask("brows", landmarks.to(alpha), (h, w), softness=0.0, grow=0.03) > 0.5
    rgb = (image.clamp(-1, 1) + 1) / 2
    hair = (alpha[:, 0] > 0.5).cpu().numpy()
    points = (landmarks.double().cpu() + 1) * torch.tensor([w, h], dtype=torch.float64) / 2
    iods = _iod_pixels(landmarks, h).tolist()  # the crops are square
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    front = torch.zeros_like(alpha)
    for i, iod in enumerate(iods):
        up = points[i, 27] - points[i, 8]
        up = (up / up.norm()).numpy()
        brows = float((points[i, 17:27].numpy() @ up).mean())
        height = (xs * up[0] + ys * up[1] - brows) / iod
        pieces, count = ndimage.label(hair[i] & ~band[i, 0].cpu().numpy())
        if not count:
            continue
        top = ndimage.maximum(height, pieces, index=np.arange(1, count + 1))
        fringe = np.isin(pieces, 1 + np.flatnonzero(top >= FRINGE_REACH))
        if not fringe.any():
            continue
        part = torch.from_numpy(fringe).to(rgb)[None, None]
        alike = _likeness(rgb[i : i + 1], part, floors=(0.03,) * 3)[0, 0].cpu().numpy()
        under = np.zeros_like(fringe)
        for step in range(1, max(1, round(FRINGE_FALL * iod)) + 1):  # the crop is upright
            under[step:] |= fringe[:-step]
        seen = torch.from_numpy(fringe | (under & (alike > 0.5))).to(alpha)
        front[i, 0] = gaussian_blur(seen[None, None], FRINGE_EDGE * iod)[0, 0]
    return front
