"""Attribute names and the face regions they occupy, built from 68 landmarks.

A region is a union of shapes placed relative to the landmarks (polygons and thick
polylines; offsets in units of the inter-ocular distance ``iod``, the distance between the
eye centres, along the face's own right / down axes), so it follows the face's position,
size and roll. Its signed distance ``d`` (pixels, negative inside) becomes a soft mask with
a smoothstep of width ``softness * iod`` centred on the boundary: exactly 1 deep inside,
exactly 0 beyond half the width outside. The regions:

- ``Mustache``: from the nose base (31-35, widened) down to the upper lip line (48-54,
  slightly lowered), reaching past the mouth corners.
- ``Goatee``: below the lower lip (55-59) between the mouth corners, down to the jaw
  6-10 (slightly below it); covers the chin around 57 and 8. It joins the ``Mustache``
  region (:attr:`AttributeSpec.joins`): a goatee's mustache comes with it.
- ``Eyeglasses``: from the brows (17-26) to the cheekbones (0.35 iod below the eyes), the
  nose bridge (27-28) joining both lenses, out to the temples (0.2 iod beyond the brows).
- ``Bangs``: the forehead above the brows, extrapolated upwards by 0.8 iod (landmarks
  do not reach the hairline), a little wider than the brows.
- ``Smiling``: the mouth and the nasolabial / cheek area around it, from the nose wings
  to just below the lower lip.
- ``Bushy_Eyebrows``: each brow (17-21, 22-26) as a thick line, dilated by 0.12 iod.
- ``Sideburns``: strips in front of the ears along the jaw 0-3 and 13-16, from 0.25 iod
  above points 0 / 16 down to points 3 / 13 (half as wide below 2 / 14), clear of the
  eyes' outer corners.
- ``Wearing_Lipstick``: the lips, outer contour 48-59 minus the inner mouth 60-67.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .align import CHIN_ROOM
from .errors import InvalidArgumentError, UnknownAttributeError
from .geometry import normalized_to_pixel

SUPPORTED_ATTRIBUTES: tuple[str, ...] = (
    "Mustache",
    "Goatee",
    "Eyeglasses",
    "Bangs",
    "Smiling",
    "Bushy_Eyebrows",
    "Sideburns",
    "Wearing_Lipstick",
)


@dataclass(frozen=True)
class AttributeSpec:
    """How an attribute is transferred by the geometry prior.

    Attributes:
        kind: ``"hair"`` (hair on skin: matted from the exemplar), ``"accessory"``
            (glasses: matted, eyes and brows kept), ``"colour"`` (the lips' colour, not
            their pixels) or ``"expression"`` (the exemplar's region, pasted whole).
        skin_parts: face parts (:data:`FACE_PARTS`) that show the face's own skin when it
            wears the attribute: the skin model's reference.
        excluded_parts: face parts that are never the instance.
        lookalike_parts: face parts whose pixels are not the instance where they look like
            the part itself (its own typical colour): lips under a mustache's overhang
            are still the mustache where they are hair-coloured (but brow-coloured pixels
            at a frame's edge are the frame's, :mod:`geogan_hf.instance`).
        shading_parts: face parts where the face's own shading lies (the lower lip's
            shadow, the chin turning away from the light, the jaw's dark edge): there a
            pixel is the instance only where it has hair's fine texture or, inside the
            face outline, a colour no shadow of the skin has, not for being darker alone.
        texture_parts: face parts where shading takes any tint (the creases at the mouth
            corners): there only hair's fine texture makes the instance.
        face_margin: how far (inter-ocular distances) the instance may reach outside the
            face outline; ``None``: no limit. A goatee ends at the jaw line: below it are
            the neck's shadow, the collar and the background.
        absent: instance coverage (:class:`~geogan_hf.instance.InstanceLayers`) below which
            an exemplar does not show the attribute.
        enclosed: accessories: the share of the way round each eye that a frame must
            clearly enclose (``InstanceLayers.enclosure``) for an exemplar to show the
            attribute (brows, lids and shadows cover as much as a thin frame does, but only
            on parts of the way round).
        removal: ``(from, full)`` coverages between which a source's own instance is
            removed not at all to fully: above what shadows and stubble reach.
            Both measured on the labelled real photos (``benchmarks/instance_coverage.py``).
            ``None``: never removed (a fringe's or sideburn's region holds the rest of the
            source's own hair, which stays: removed, it left skin-coloured wedges at the
            temples and a bare strip in front of an ear). An accessory's is not a coverage
            range (a frame covers as little of its region as brows and lids do): a frame
            the source clearly wears (:func:`~geogan_hf.instance.wears_frame`) is filled
            in from around it (:func:`~geogan_hf.compose.remove_frame`).
        own_colour: which of the source's own hair gives the instance its colours when the
            transfer takes the source's own hair colour (:data:`HAIR_COLOURS`), where the
            source shows enough of it: ``"head"``, its hair in the region outside the face;
            ``"brows"``, its own instance where it clearly has one (``removal``'s start),
            else its brows; ``None``: always the exemplar's colours.
        own_colour_by_default: the source's own colours are the default (``"auto"``): a
            fringe of another colour than the rest of the hair reads as a wig. Not for a
            mustache or goatee: in two blind reviews (four reviewers, real pairs 1-24) the
            source's own colours were preferred as often as the exemplar's. They helped
            where the exemplar's colour did not suit the face (a ginger mustache on a
            black-haired man, a brown goatee in a grey beard), and hurt where the brows
            are no guide to the beard (dark brows over a grey beard, light brows that
            left a mustache faint).
        under_head_hair: the instance lies under the source's head hair: where a fringe
            falls over the region (:func:`~geogan_hf.instance.head_hair_in_front`) the
            source is kept as it is, neither its instance removed nor the new one drawn
            (brows: removed, a fringe's strands over them became skin-coloured patches).
        behind_frame: the instance lies behind a pair of glasses (brows under the top rims,
            sideburns under the temple arms): a frame either face clearly wears
            (:func:`~geogan_hf.instance.worn_frames`) is never the instance, and the
            source's stays in front of the new one (taken, an exemplar's top rims were
            pasted as black bars for brows).
        strands: ``(landmark, height, length, curl)``: hair strands radiate from the
            point ``height`` inter-ocular distances above that landmark, are at most
            ``length`` long (as long as the exemplar's look,
            :func:`~geogan_hf.compose.hair_length`) and turn from there by about ``curl``
            radians (a beard's hairs curl and cross, a fringe hangs straight; the texture
            :func:`~geogan_hf.compose.hair_grain` adds); ``None``: not hair.
        stubble: the hair may be stubble: how long its strands are is read from the
            exemplar (a beard's hairs grow out radially); brows and fringes keep
            ``strands``' length (their hairs lie along the brow or are cut: measured
            radially they read as stubble, and brows became speckled, blind review).
        shaded: the instance takes the shade that the source's own pixels show over the
            region beyond its skin field (:func:`~geogan_hf.compose.unseen_shade`): a
            chin in shadow, the face's own stubble. Only for regions on the face's skin: a
            fringe's or sideburn's region holds the source's own hair, no shade.
        lit_skin: the region lies on the face's skin, which the light brightens in patches:
            a pixel lighter than the skin is the instance only as far as it is more
            textured than the skin too (light hair; :data:`~geogan_hf.instance.LIT_TEXTURE`).
        within_outline: the instance lies along the face's outline (sideburns, a beard at the
            jaw): on the source too it reaches no further past the outline than
            ``face_margin``, as it was found in the exemplar; warped from the exemplar's
            outline, sideburns stood out past a narrower face into the background, and a
            frontal goatee on a profile crossed its silhouette and was cut straight at the
            edge of the source's box (held-out real pair 12).
        symmetric: the instance is about symmetric: a side the exemplar shows faint is
            filled in from its mirror image.
        chin_room: inter-ocular distances both faces' crops keep under the chin
            (:func:`~geogan_hf.align.align_face`): :data:`~geogan_hf.align.CHIN_ROOM` for an
            instance that reaches it (a goatee), where FFHQ's square ends at or above a long
            face's or an open mouth's chin; 0 (FFHQ's square) for the others.
        mirrors: the instance is the same object mirrored (a frame): an exemplar turned the
            other way from the source (:func:`~geogan_hf.align.turned_apart`) is mirrored
            before the transfer, so that its near side, seen larger and whole, lands on
            the source's near side (unmirrored, the far lens came out narrow on a turned
            source). Preferred in blind reviews for glasses, not for beards: a beard's own
            asymmetry is part of its instance.
        joins: the attribute whose region the instance reaches into, where the face has
            hair there too: CelebA's goatees nearly all come with a mustache (so do all 6
            photos labelled Goatee in the project's real photo set), and a goatee without
            its mustache is not the instance the exemplar shows. Coverage (``absent``,
            ``removal``) is measured on the attribute's own region (:func:`region_mask`
            with ``joined=False``); in the joined region the source's own instance is
            removed by the joined attribute's ``removal`` range, and only where the
            exemplar has one there (its ``absent``): a goatee from an exemplar without a
            mustache leaves the source's mustache.
        experimental: below the quality bar on real photos (README, ``benchmarks/results/real_pairs.md``).
    """

    kind: str
    skin_parts: tuple[str, ...] = ("cheeks", "nose")
    excluded_parts: tuple[str, ...] = ("eyes", "mouth", "nostrils")
    lookalike_parts: tuple[str, ...] = ("lips",)
    shading_parts: tuple[str, ...] = ()
    texture_parts: tuple[str, ...] = ()
    face_margin: float | None = 0.05
    absent: float = 0.1
    enclosed: float = 0.0
    removal: tuple[float, float] | None = (0.35, 0.6)
    own_colour: str | None = None
    own_colour_by_default: bool = False
    under_head_hair: bool = False
    behind_frame: bool = False
    strands: tuple[int, float, float, float] | None = None
    stubble: bool = False
    shaded: bool = False
    lit_skin: bool = False
    within_outline: bool = False
    symmetric: bool = False
    chin_room: float = 0.0
    mirrors: bool = False
    joins: str | None = None
    experimental: bool = False

    @property
    def bicubic(self) -> bool:
        """Whether the instance's pixels are resampled bicubically on their way to the photo
        (the exemplar's alignment, the warp, the paste): hair's strands, which three bilinear
        passes turned into a haze; not a frame's hard edges, along which bicubic rings (light
        haloes in a blind review)."""
        return self.kind == "hair"


ATTRIBUTE_SPECS: dict[str, AttributeSpec] = {
    "Mustache": AttributeSpec(
        "hair", texture_parts=("mouth_corners", "folds"), absent=0.15, removal=(0.4, 0.6),
        strands=(33, 0.4, 0.12, 0.3), stubble=True, shaded=True, lit_skin=True,
        within_outline=True, symmetric=True, own_colour="brows", experimental=True,
    ),
    "Goatee": AttributeSpec(
        "hair", shading_parts=("chin",), texture_parts=("mouth_corners", "folds"),
        face_margin=0.0, absent=0.15, removal=(0.6, 0.85), strands=(33, 0.4, 0.12, 0.3),
        stubble=True, shaded=True, lit_skin=True, within_outline=True, symmetric=True,
        chin_room=CHIN_ROOM, joins="Mustache", own_colour="brows", experimental=True,
    ),
    # the nostrils' region reaches the nose wings, where a large frame's bottom rims rest
    "Eyeglasses": AttributeSpec(
        "accessory", skin_parts=("cheeks", "nose", "forehead"), excluded_parts=("eyes", "mouth"),
        lookalike_parts=("lips", "brows"), face_margin=0.3, absent=0.08, enclosed=0.7,
        removal=None, mirrors=True, experimental=True,
    ),
    "Bangs": AttributeSpec(
        "hair", skin_parts=("cheeks", "nose"), excluded_parts=("eyes",), lookalike_parts=(),
        face_margin=None, removal=None, strands=(27, 3.0, 0.5, 0.0), own_colour="head",
        own_colour_by_default=True,
    ),
    # an expression moves the source's own face (nothing of it is removed first)
    "Smiling": AttributeSpec(
        "expression", excluded_parts=("eyes",), lookalike_parts=(), removal=None
    ),
    "Bushy_Eyebrows": AttributeSpec(
        "hair", skin_parts=("cheeks", "nose", "forehead"), excluded_parts=("eyes",),
        lookalike_parts=(), strands=(29, 0.0, 0.08, 0.15), under_head_hair=True,
        behind_frame=True,
    ),
    "Sideburns": AttributeSpec(
        "hair", excluded_parts=("eyes", "brows"), lookalike_parts=(), face_margin=0.06,
        removal=None, strands=(27, 3.0, 0.2, 0.15), within_outline=True, symmetric=True,
        behind_frame=True, experimental=True,
    ),
    # a colour replaces the lips' own (recoloured, not removed first)
    "Wearing_Lipstick": AttributeSpec(
        "colour", excluded_parts=("eyes",), lookalike_parts=(), removal=None
    ),
}  # fmt: skip
"""Per attribute: its kind, skin reference and exclusions (see :class:`AttributeSpec`).

The bar on the real photo pairs is a median score of 4 for mustache, goatee and glasses and
3 for the others (the scores are in ``benchmarks/results/real_pairs.md``): bangs, bushy
eyebrows, lipstick and smiling reach it, every other attribute is experimental for now
(glasses since the twenty-seventh session: 3 for most of its 13 reviewers; thirty-eighth
session: 3.5 to 4 for six reviewers scoring each result alone, held-out pairs too)."""

EXPERIMENTAL_ATTRIBUTES: tuple[str, ...] = tuple(
    name for name, spec in ATTRIBUTE_SPECS.items() if spec.experimental
)
"""Attributes offered below the quality bar (see ``benchmarks/results/real_pairs.md``)."""

FACE_PARTS: tuple[str, ...] = (
    "cheeks", "nose", "forehead", "eyes", "brows", "lips", "mouth", "nostrils", "face",
    "chin", "mouth_corners", "folds",
)  # fmt: skip
"""Landmark-defined face parts (:func:`part_mask`): skin references, never-instance areas
and the places where the face's own shading lies (``chin``: from the lower lip, which
shades it, to the jaw line, where the chin turns away; ``mouth_corners``: the creases)."""


def of_kind(
    attributes: Sequence[str], *kinds: str, device: torch.device | None = None
) -> torch.Tensor:
    """``(N, 1, 1, 1)`` bool: which of ``attributes`` (canonical names) are of one of ``kinds``.

    >>> of_kind(["Mustache", "Wearing_Lipstick"], "colour", "expression").flatten().tolist()
    [False, True]
    """
    return torch.tensor(
        [ATTRIBUTE_SPECS[a].kind in kinds for a in attributes], device=device
    ).view(-1, 1, 1, 1)


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


_KEYS = {_key(name): name for name in SUPPORTED_ATTRIBUTES}


HAIR_COLOURS: tuple[str, ...] = ("auto", "own", "exemplar")
"""Whose colours a transferred hair instance takes (its shape and strands are the exemplar's
either way): ``"own"``, the source's own hair's, where its attribute names which
(:attr:`AttributeSpec.own_colour`: a fringe the head's hair, a mustache or goatee the face's
own beard, else its brows); ``"exemplar"``, the exemplar's; ``"auto"``, each attribute's
default (:attr:`AttributeSpec.own_colour_by_default`: a fringe the source's, a mustache or
goatee the exemplar's)."""

DEFAULT_HAIR_COLOUR = "auto"
"""The :data:`HAIR_COLOURS` a transfer uses unless told otherwise."""


def check_hair_colour(value: object) -> str:
    """``value`` if it is one of :data:`HAIR_COLOURS`.

    Raises:
        InvalidArgumentError: it is not.
    """
    if not isinstance(value, str) or value not in HAIR_COLOURS:
        raise InvalidArgumentError(
            f"hair colour must be one of {', '.join(map(repr, HAIR_COLOURS))}, got {value!r}"
        )
    return str(value)


def canonical_attribute(name: str) -> str:
    """The CelebA spelling of an attribute name (case, spaces and underscores ignored).

    Raises:
        UnknownAttributeError: the name is not one of :data:`SUPPORTED_ATTRIBUTES`.
    """
    key = _key(str(name))
    if key not in _KEYS:
        raise UnknownAttributeError(
            f"unknown attribute {name!r}; supported: {', '.join(SUPPORTED_ATTRIBUTES)}"
        )
    return _KEYS[key]


def _segment_distance(points: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance from ``points (P, 2)`` to segments ``a -> b`` ``(E, 2)``: ``(P, E)``."""
    ab = b - a
    ap = points[:, None] - a[None]
    t = ((ap * ab).sum(-1) / ab.square().sum(-1).clamp_min(1e-12)).clamp(0, 1)
    d = ap - t[..., None] * ab
    return (d[..., 0].square() + d[..., 1].square()).sqrt()


def _polygon_sdf(points: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside, even-odd rule) from ``points (P, 2)`` to a polygon."""
    a, b = vertices, vertices.roll(-1, dims=0)
    dist = _segment_distance(points, a, b).amin(dim=1)
    px, py = points[:, None, 0], points[:, None, 1]
    straddles = (a[:, 1] > py) != (b[:, 1] > py)
    x_cross = a[:, 0] + (py - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1] + 1e-12)
    inside = (straddles & (px < x_cross)).sum(dim=1) % 2 == 1
    return torch.where(inside, -dist, dist)


@dataclass(frozen=True)
class _Shape:
    """A polygon (``radius is None``) or a polyline thickened by ``radius`` pixels."""

    vertices: torch.Tensor  # (V, 2) pixels
    radius: float | None = None

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        if self.radius is None:
            return _polygon_sdf(points, self.vertices)
        v = self.vertices
        return _segment_distance(points, v[:-1], v[1:]).amin(dim=1) - self.radius


def _region_shapes(
    attribute: str, lm: torch.Tensor, joined: bool = True
) -> tuple[list[_Shape], list[_Shape]]:
    """Shapes whose union, minus the second list's union, is ``attribute``'s region
    (an attribute name or a face part of :data:`FACE_PARTS`), with the region it joins
    (:attr:`AttributeSpec.joins`) if ``joined``."""
    union, minus = _own_shapes(attribute, lm)
    other = ATTRIBUTE_SPECS[attribute].joins if attribute in ATTRIBUTE_SPECS else None
    if joined and other is not None:
        union = union + _own_shapes(other, lm, joined_to=attribute)[0]
    return union, minus


def _own_shapes(
    attribute: str, lm: torch.Tensor, joined_to: str | None = None
) -> tuple[list[_Shape], list[_Shape]]:
    """The shapes of ``attribute``'s own region (see :func:`_region_shapes`), or of its
    part of the region of the attribute it is ``joined_to``."""
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    iod = (eye_r - eye_l).norm().clamp_min(1e-6)
    right = (eye_r - eye_l) / iod
    down = torch.stack([-right[1], right[0]])

    def at(index, r: float = 0.0, d: float = 0.0) -> torch.Tensor:
        """Landmarks ``index`` moved by ``r`` iod to the right and ``d`` iod down, ``(k, 2)``."""
        return (
            lm[index if isinstance(index, int) else list(index)] + (r * right + d * down) * iod
        ).reshape(-1, 2)

    def poly(*parts: torch.Tensor) -> list[_Shape]:
        return [_Shape(torch.cat(parts))]

    def lines(radius: float, *paths: tuple[torch.Tensor, ...]) -> list[_Shape]:
        return [_Shape(torch.cat(path), float(radius * iod)) for path in paths]

    if attribute == "Mustache":
        # a mustache lies on the upper lip's skin, which ends beside an open mouth's upper
        # lip, not at its corners (lip_level_corners): reaching down to them, the region took
        # in the creases beside the mouth as hair (real pairs 1, 11). A goatee's part goes
        # down to the corners, where it joins the chin
        lip = lm if joined_to else lip_level_corners(lm)

        def above(
            point: torch.Tensor, toward: torch.Tensor, index: int, r: float, d: float
        ) -> torch.Tensor:
            """``point`` moved along the region's edge ``toward`` its neighbour (higher up)
            to no lower than where it lies on the upper lip: the region cut there, never grown."""
            limit = lip[index] + (r * right + d * down) * iod
            excess, rise = (point - limit) @ down, (point - toward) @ down
            return point + (excess / rise.clamp_min(1e-6)).clamp(0, 1)[:, None] * (toward - point)

        return poly(
            at(31, -0.12), at(range(31, 36)), at(35, 0.12),
            above(at(54, 0.15, 0.08), at(35, 0.12), 54, 0.15, 0.08),
            above(at(54, 0.0, 0.04), at(53, 0.0, 0.04), 54, 0.0, 0.04),
            at(range(53, 48, -1), 0.0, 0.04),
            above(at(48, 0.0, 0.04), at(49, 0.0, 0.04), 48, 0.0, 0.04),
            above(at(48, -0.15, 0.08), at(31, -0.12), 48, -0.15, 0.08),
        ), []  # fmt: skip
    if attribute == "Goatee":
        return poly(
            at(48, -0.05), at(range(59, 54, -1), 0.0, 0.05), at(54, 0.05),
            at(range(10, 5, -1), 0.0, 0.05),
        ), []  # fmt: skip
    if attribute == "Eyeglasses":
        return poly(
            at(17, -0.2), at(range(17, 22)), at(27), at(range(22, 27)), at(26, 0.2),
            at(45, 0.25, 0.5), at([46, 47], 0.0, 0.5), at(42, 0.0, 0.4), at(29),
            at(39, 0.0, 0.4), at([40, 41], 0.0, 0.5), at(36, -0.25, 0.5),
        ), []  # fmt: skip
    if attribute == "Bangs":  # up to where a fringe starts: the source's hairline, or above
        return poly(
            at(range(17, 27)), at(26, 0.15, -1.2), at(range(25, 17, -1), 0.0, -1.2),
            at(17, -0.15, -1.2),
        ), []  # fmt: skip
    if attribute == "Smiling":
        return poly(
            at(31, -0.2), at(35, 0.2), at(54, 0.3), at(55, 0.1, 0.15), at(57, 0.0, 0.2),
            at(59, -0.1, 0.15), at(48, -0.3),
        ), []  # fmt: skip
    if attribute == "Bushy_Eyebrows":
        # a brow thins toward its tail (as thick there as at its head, the region took in
        # the hair at the temple as a black blob)
        heads = lines(0.12, (at(range(19, 22), 0.0, 0.04),), (at(range(22, 25), 0.0, 0.04),))
        tails = lines(0.06, (at(range(17, 20), 0.0, 0.04),), (at(range(24, 27), 0.0, 0.04),))
        return heads + tails, []
    if attribute == "Sideburns":
        # clear of the eye corners, which on the far side of a turned face lie next to the
        # jaw line; narrowing over 2-3 (full width to 3, they ended in a blunt dark block)
        return lines(
            0.1,
            (at(0, 0.02, -0.25), at(range(3), 0.08)),
            (at(16, -0.02, -0.25), at(range(16, 13, -1), -0.08)),
        ) + lines(
            0.05, (at(range(2, 4), 0.08),), (at(range(14, 12, -1), -0.08),)
        ), lines(0.22, (at(36), at(36)), (at(45), at(45)))
    if attribute == "Wearing_Lipstick":
        return poly(lm[48:60]), poly(lm[60:68])
    return _part_shapes(attribute, at, poly, lines)


def _part_shapes(part: str, at, poly, lines) -> tuple[list[_Shape], list[_Shape]]:
    """Face parts (see :data:`FACE_PARTS`), built with the helpers of :func:`_region_shapes`."""
    if part == "cheeks":
        # the cheek apples: between the jaw (2, 14), the nose wings (31, 35) and the eyes
        return [
            *poly(at(41, -0.05, 0.32), at(31, -0.12, -0.05), at(31, -0.15, 0.1),
                  at(2, 0.22, -0.05), at(1, 0.25, -0.2), at(36, 0.0, 0.3)),
            *poly(at(46, 0.05, 0.32), at(45, 0.0, 0.3), at(15, -0.25, -0.2),
                  at(14, -0.22, -0.05), at(35, 0.15, 0.1), at(35, 0.12, -0.05)),
        ], []  # fmt: skip
    if part == "nose":
        return lines(0.07, (at(27, 0.0, 0.1), at(range(28, 31)))), []
    if part == "forehead":
        return poly(
            at(19, 0.0, -0.2), at(24, 0.0, -0.2), at(24, 0.0, -0.45), at(19, 0.0, -0.45)
        ), []  # fmt: skip
    if part == "eyes":
        return poly(
            at(36, -0.06), at(37, 0.0, -0.05), at(38, 0.0, -0.05), at(39, 0.06),
            at(40, 0.0, 0.05), at(41, 0.0, 0.05),
        ) + poly(
            at(42, -0.06), at(43, 0.0, -0.05), at(44, 0.0, -0.05), at(45, 0.06),
            at(46, 0.0, 0.05), at(47, 0.0, 0.05),
        ), []  # fmt: skip
    if part == "brows":
        return lines(0.07, (at(range(17, 22), 0.0, 0.02),), (at(range(22, 27), 0.0, 0.02),)), []
    if part == "lips":
        return poly(at(48, -0.02), at(range(49, 54), 0.0, 0.02), at(54, 0.02),
                    at(range(55, 60), 0.0, 0.03)), []  # fmt: skip
    if part == "mouth":  # the opening between the lips
        return poly(at(60, -0.02), at(range(61, 64)), at(64, 0.02), at(range(65, 68))), []
    if part == "mouth_corners":  # the creases at the corners, reaching down the cheek
        return lines(0.09, (at(48, -0.04), at(48, -0.08, 0.12)),
                     (at(54, 0.04), at(54, 0.08, 0.12))), []  # fmt: skip
    if part == "folds":  # the creases from the nose wings down beside the mouth corners
        return lines(0.08, (at(31, -0.1, 0.05), at(48, -0.08)),
                     (at(35, 0.1, 0.05), at(54, 0.08))), []  # fmt: skip
    if part == "chin":  # from the lower lip down to the jaw line and a little past it
        return poly(at(48, -0.1), at(range(59, 54, -1), 0.0, 0.02), at(54, 0.1),
                    at(range(11, 4, -1), 0.0, 0.15)), []  # fmt: skip
    if part == "nostrils":
        # the nose above the line 31-35: nostrils and wings, dark like hair. Between the
        # wings its bottom lies above the line, so that grown (EXCLUDE_GROW, instance.py)
        # it ends 0.03 iod below it: a mustache's hair reaches up to the nose, and a region
        # 0.08 iod below it (0.13 where soft) cut every mustache's top middle away (thin,
        # gapped mustaches); ending at the line, it let the shading under a bare nose in
        # (synthetic skin leakage +16 %). At the wings it reaches below them, where the
        # folds begin
        return poly(at(31, -0.1, 0.02), at(range(32, 35), 0.0, -0.02), at(35, 0.1, 0.02),
                    at(35, 0.1, -0.3), at(31, -0.1, -0.3)), []  # fmt: skip
    # face: the jaw line closed over the forehead (0.6 iod above the brows)
    return poly(
        at(range(17)), at(26, 0.0, -0.6), at(range(25, 17, -1), 0.0, -0.6), at(17, 0.0, -0.6)
    ), []  # fmt: skip


MUSTACHE_DROP = 0.04  # iod: the upper lip's skin ends at most this far below its inner edge
RASTER_STEP = 4  # pixels between the coarse samples that find a mask's soft edge...
RASTER_COARSE_FROM = 4096  # ... in a box of at least this many pixels (smaller: all measured)


def _smoothstep(t: torch.Tensor) -> torch.Tensor:
    t = t.clamp(0, 1)
    return t * t * (3 - 2 * t)


def region_mask(
    attribute: str | Sequence[str],
    landmarks: torch.Tensor,
    size: tuple[int, int],
    softness: float = 0.1,
    grow: float = 0.0,
    joined: bool = True,
) -> torch.Tensor:
    """Soft masks of an attribute's region, rasterised from landmarks.

    Args:
        attribute: one name for the whole batch or one per sample (any spelling
            :func:`canonical_attribute` accepts).
        landmarks: ``(N, 68, 2)`` normalized landmarks.
        size: ``(height, width)`` of the masks.
        softness: width of the soft edge as a fraction of the inter-ocular distance
            (0 = hard edge).
        grow: the region grown (> 0) or shrunk (< 0) by this fraction of the
            inter-ocular distance.
        joined: with the region the attribute joins (:attr:`AttributeSpec.joins`);
            ``False``: its own region only.

    Returns:
        ``(N, 1, H, W)`` masks in ``[0, 1]`` (landmarks' dtype and device).

    Raises:
        UnknownAttributeError: an attribute name is not supported.
    """
    names = [attribute] * len(landmarks) if isinstance(attribute, str) else list(attribute)
    names = [canonical_attribute(n) for n in names]
    return _rasterize(names, landmarks, size, softness, grow, joined)


def lip_level_corners(landmarks: torch.Tensor) -> torch.Tensor:
    """``landmarks`` ``(..., 68, 2)`` in pixels with an open mouth's corners (48, 60 and 54,
    64) moved up to at most :data:`MUSTACHE_DROP` below the upper lip's inner edge (61, 63),
    where a closed mouth's lie: the ends of the upper lip's skin, which a mustache covers
    (an open mouth's corners are the lower jaw's).

    >>> lm = torch.zeros(68, 2)
    >>> lm[42:48, 0] = 100.0  # eyes level, 100 px apart
    >>> lm[[48, 60], 1] = 40.0  # one corner 0.4 iod below the upper lip's inner edge
    >>> lip_level_corners(lm)[[48, 60, 54], 1].tolist()
    [4.0, 4.0, 0.0]
    """
    along = landmarks[..., 42:48, :].mean(-2) - landmarks[..., 36:42, :].mean(-2)
    iod = along.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    down = torch.stack([-along[..., 1], along[..., 0]], -1) / iod
    lifted = landmarks.clone()
    for corners, edge in (((48, 60), 61), ((54, 64), 63)):
        for corner in corners:
            depth = ((landmarks[..., corner, :] - landmarks[..., edge, :]) * down).sum(-1)
            excess = (depth[..., None] - MUSTACHE_DROP * iod).clamp_min(0)
            lifted[..., corner, :] = landmarks[..., corner, :] - excess * down
    return lifted


def part_mask(
    part: str, landmarks: torch.Tensor, size: tuple[int, int], softness: float = 0.1,
    grow: float = 0.0,
) -> torch.Tensor:  # fmt: skip
    """Soft masks ``(N, 1, H, W)`` of a face part of :data:`FACE_PARTS` (as :func:`region_mask`).

    >>> lm = torch.zeros(1, 68, 2)
    >>> part_mask("nose", lm, (8, 8)).shape
    torch.Size([1, 1, 8, 8])
    """
    if part not in FACE_PARTS:
        raise ValueError(f"unknown face part {part!r}; choose one of {', '.join(FACE_PARTS)}")
    return _rasterize([part] * len(landmarks), landmarks, size, softness, grow)


def _rasterize(
    names: list[str], landmarks: torch.Tensor, size: tuple[int, int], softness: float,
    grow: float, joined: bool = True,
) -> torch.Tensor:  # fmt: skip
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"expected (N, 68, 2) landmarks, got shape {tuple(landmarks.shape)}")
    n = landmarks.shape[0]
    if len(names) != n:
        raise ValueError(f"got {len(names)} attributes for {n} faces")
    h, w = size
    dtype = landmarks.dtype if landmarks.is_floating_point() else torch.float32
    pixels = normalized_to_pixel(landmarks.to(dtype), size)
    masks = torch.zeros(n, 1, h, w, dtype=dtype, device=landmarks.device)
    for i, (name, lm) in enumerate(zip(names, pixels)):
        iod = float((lm[42:48].mean(0) - lm[36:42].mean(0)).norm())
        width, offset = softness * iod, grow * iod
        union, minus = _region_shapes(name, lm, joined)
        # Beyond half the soft width outside the union the mask is exactly 0: skip those pixels.
        reach = width / 2 + max(shape.radius or 0.0 for shape in union) + max(offset, 0) + 1
        lo = torch.cat([shape.vertices for shape in union]).amin(0) - reach
        hi = torch.cat([shape.vertices for shape in union]).amax(0) + reach
        x0, y0 = (max(0, int(v)) for v in lo.floor().tolist())
        x1, y1 = min(w, int(hi[0].ceil()) + 1), min(h, int(hi[1].ceil()) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        ys, xs = (torch.arange(a, b, device=landmarks.device, dtype=dtype) for a, b in ((y0, y1), (x0, x1)))
        mask = torch.zeros(len(ys), len(xs), dtype=dtype, device=landmarks.device)
        band = torch.ones_like(mask, dtype=torch.bool)
        if mask.numel() >= RASTER_COARSE_FROM:
            # The signed distance changes by at most the distance moved (1-Lipschitz): where
            # a sample RASTER_STEP - 1 pixels away (on each axis) lies further than half the
            # soft width from the edge, the mask is exactly 0 or 1, so only the band around
            # the edge is measured pixel by pixel (the face's outline: 32 -> 8 ms at 256 px)
            near = _sdf(union, minus, _grid(ys[::RASTER_STEP], xs[::RASTER_STEP])) - offset
            near = near.reshape(len(ys[::RASTER_STEP]), -1)
            rows, cols = (torch.arange(len(v), device=near.device) // RASTER_STEP for v in (ys, xs))
            near = near[rows][:, cols]
            band = near.abs() <= width / 2 + (RASTER_STEP - 1) * math.sqrt(2) + 1e-3
            mask = (near < 0).to(dtype)
        sdf = _sdf(union, minus, _grid(ys, xs)[band.reshape(-1)]) - offset
        mask[band] = _smoothstep(0.5 - sdf / width) if width > 0 else (sdf <= 0).to(dtype)
        masks[i, 0, y0:y1, x0:x1] = mask
    return masks


def _grid(ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """``(len(ys) * len(xs), 2)`` the points (x, y) of a grid, row by row."""
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=1)


def _sdf(union: list[_Shape], minus: list[_Shape], points: torch.Tensor) -> torch.Tensor:
    """Signed distance of ``points (P, 2)`` to the union of shapes, minus the others."""
    sdf = torch.stack([shape.sdf(points) for shape in union]).amin(0)
    if minus:
        sdf = torch.maximum(sdf, -torch.stack([shape.sdf(points) for shape in minus]).amin(0))
    return sdf
