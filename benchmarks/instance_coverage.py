"""How well instance coverage tells faces with an attribute from faces without, on real photos.

:func:`geogan_hf.instance.extract_instance` reports each face's *coverage* of an attribute
(mean alpha over the attribute's landmark region). The pipeline refuses an exemplar below
the attribute's ``absent`` coverage and removes a source's own instance over its
``removal`` range (:data:`geogan_hf.regions.ATTRIBUTE_SPECS`). This script measures the
coverage on every photo of a labelled photo set (``manifest.csv`` with 0/1 columns
``Mustache``, ``Goatee``, ``Beard``, ``Eyeglasses``; a full beard counts as wearing a
mustache and a goatee) and prints, per attribute, the ROC AUC, the quantiles of the two
groups that those thresholds were read from and the share of each group (and of the women
without the attribute) that the pipeline's check refuses (``absent``; for glasses also
``enclosed``, how much of the way round the eyes a frame must enclose), and for glasses how
many faces a source would be taken as wearing a frame (``instance.wears_frame``: its frame
is removed before the exemplar's is laid on). Few photos wear
glasses, so frames are also drawn on every glasses-free face
(:func:`geogan_hf.synthetic.wear_drawn_eyeglasses`, thin metal to thick acetate) and the share
of those refused is printed. No picture is written.

Usage::

    python benchmarks/instance_coverage.py [--faces ../shared/faces] [--size 256]
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np
import torch
from _common import cpu_name

from geogan_hf.align import align_face
from geogan_hf.errors import GeoGANError
from geogan_hf.geometry import pixel_to_normalized
from geogan_hf.imageio import load_image, pil_to_tensor
from geogan_hf.instance import WORN_BRIDGE, WORN_ENCLOSURE, extract_instance, wears_frame
from geogan_hf.landmarks import detect_faces
from geogan_hf.regions import ATTRIBUTE_SPECS
from geogan_hf.runtime import configure_cpu_runtime
from geogan_hf.synthetic import wear_drawn_eyeglasses

ROOT = Path(__file__).resolve().parent.parent
ATTRIBUTES = ("Mustache", "Goatee", "Eyeglasses")
DRAWN_THICKNESS = (0.03, 0.2)  # drawn rims, a share of a lens's half width
THIN = 0.08  # drawn rims thinner than this are thin (the synthetic benchmark's start here)


def wears(row: dict[str, str], attribute: str) -> bool:
    beard = attribute != "Eyeglasses" and row.get("Beard") == "1"
    return row.get(attribute) == "1" or beard


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a face with the attribute covers more than one without."""
    greater = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return float(greater + ties / 2)


def refused(image: torch.Tensor, points: torch.Tensor, attribute: str) -> tuple[float, bool, bool]:
    """The face's coverage of ``attribute``, whether the pipeline refuses it as exemplar and
    whether, as a source, it wears a frame that is removed (glasses only)."""
    spec = ATTRIBUTE_SPECS[attribute]
    with torch.no_grad():
        # as the pipeline takes an exemplar (a frame without its arms and a worn frame's
        # end-pieces) and, for glasses, a source (the frame it wears, to be removed)
        layers = extract_instance(image, points, attribute, arms=False)
        own = extract_instance(image, points, attribute) if spec.kind == "accessory" else None
    coverage, enclosure = float(layers.coverage[0]), float(layers.enclosure[0])
    worn = own is not None and bool(wears_frame(own)[0])
    return coverage, coverage < spec.absent or enclosure < spec.enclosed, worn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=ROOT.parent / "shared" / "faces")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    configure_cpu_runtime(args.threads)

    rows = list(csv.DictReader((args.faces / "manifest.csv").open()))
    crops = []
    for row in rows:
        try:
            photo = load_image(args.faces / row["file"])
            faces = detect_faces(photo)
        except GeoGANError:
            continue
        if not faces:
            continue
        # cropped as the pipeline crops them: with room under the chin for a goatee
        by_room = {}
        for room in {0.0, *(ATTRIBUTE_SPECS[a].chin_room for a in ATTRIBUTES)}:
            aligned = align_face(photo, faces[0].landmarks, args.size, chin_room=room)
            points = torch.tensor(aligned.landmarks, dtype=torch.float32)
            by_room[room] = (aligned, pixel_to_normalized(points, (args.size, args.size))[None])
        crops.append((row, by_room))

    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores; {len(crops)} of {len(rows)} photos "
        f"with a detected face, {args.size} px crops\n"
    )
    print(
        "| attribute | with / without | AUC | with: min, 10 %, median | without: median, 90 %, max "
        "| absent | refused: with, without, women without | removal |"
    )
    print("|---|---|---:|---|---|---:|---|---|")
    wearing = []
    for attribute in ATTRIBUTES:
        room = ATTRIBUTE_SPECS[attribute].chin_room
        coverage, refusal, worn = np.array(
            [refused(pil_to_tensor(c[room][0].image), c[room][1], attribute) for _, c in crops]
        ).T
        refusal, worn = refusal.astype(bool), worn.astype(bool)
        labels = np.array([wears(row, attribute) for row, _ in crops])
        women = np.array([row.get("Male") == "0" for row, _ in crops]) & ~labels
        pos, neg = coverage[labels], coverage[~labels]
        spec = ATTRIBUTE_SPECS[attribute]
        shares = [f"{np.mean(r):.0%}" for r in (refusal[labels], refusal[~labels], refusal[women])]
        enclosed = f"; rims {spec.enclosed:.0%} round" if spec.enclosed else ""
        removal = (
            f"{spec.removal[0]}–{spec.removal[1]}" if spec.removal else
            f"worn: rims {WORN_ENCLOSURE:.0%} round, bridged {WORN_BRIDGE}"
        )  # fmt: skip
        print(
            f"| {attribute} | {len(pos)} / {len(neg)} | {auc(pos, neg):.3f} | "
            f"{pos.min():.3f}, {np.quantile(pos, 0.1):.3f}, {np.median(pos):.3f} | "
            f"{np.median(neg):.3f}, {np.quantile(neg, 0.9):.3f}, {neg.max():.3f} | "
            f"{spec.absent}{enclosed} | {', '.join(shares)} | {removal} |"
        )
        if spec.kind == "accessory":
            wearing.append(f"{attribute}: {worn[labels].sum()} of {labels.sum()} with, "
                           f"{worn[~labels].sum()} of {(~labels).sum()} without")  # fmt: skip

    print(f"\nSources taken as wearing a frame (its own removed): {'; '.join(wearing)}")

    rng = np.random.default_rng(0)
    bare = [by_room[0.0] for row, by_room in crops if not wears(row, "Eyeglasses")]
    drawn = []
    for aligned, points in bare:
        thickness = rng.uniform(*DRAWN_THICKNESS)
        wearing = wear_drawn_eyeglasses(aligned.image, aligned.landmarks, rng, (thickness,) * 2)
        drawn.append((thickness, *refused(pil_to_tensor(wearing), points, "Eyeglasses")))
    thickness, coverage, refusal, worn = np.array(drawn).T
    by_coverage = coverage < ATTRIBUTE_SPECS["Eyeglasses"].absent
    thin, worn = thickness < THIN, worn.astype(bool)
    print(
        f"\nGlasses drawn on the {len(bare)} glasses-free faces (rims {DRAWN_THICKNESS[0]}–"
        f"{DRAWN_THICKNESS[1]} of a lens's half width), refused (by coverage alone): all "
        f"{np.mean(refusal):.0%} ({np.mean(by_coverage):.0%}); thin, under {THIN} "
        f"({thin.sum()}), {np.mean(refusal[thin]):.0%} ({np.mean(by_coverage[thin]):.0%}); "
        f"thicker ({(~thin).sum()}) {np.mean(refusal[~thin]):.0%} ({np.mean(by_coverage[~thin]):.0%}); "
        f"taken as worn: thin {np.mean(worn[thin]):.0%}, thicker {np.mean(worn[~thin]):.0%}"
    )


if __name__ == "__main__":
    main()
