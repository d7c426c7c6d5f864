"""Glasses drawn on real glasses-free faces, transferred to real sources: sheets to look at.

The real pairs' glasses exemplars (``real_pairs.py``) are six dark, thick frames clear of the
brows. This draws frames of every kind (thin metal to thick acetate, seven colours, round to
rectangular, a third of them sunglasses: :func:`geogan_hf.synthetic.wear_drawn_eyeglasses`)
on glasses-free photos of a labelled photo set (``manifest.csv``) and transfers each to a few
frontal sources with :class:`~geogan_hf.pipeline.TransferPipeline`. It writes, to a folder
that is never committed (``outputs/drawn_glasses``: the photos' terms forbid redistributing
them or pictures made from them), ``NN.png``: the exemplar's eyes | each source's result
around the eyes, at the photos' own pixels enlarged by whole factors; and on stdout a
markdown skeleton of a table (exemplar, rims' thickness, refused or not) to be filled in by
someone who looked at every sheet.

Usage::

    python benchmarks/drawn_glasses.py [--faces ../shared/faces] [--count 12] [--seed 5]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
from pathlib import Path

import numpy as np
from _common import cpu_name
from PIL import Image, ImageDraw

from geogan_hf import AttributeNotFoundError, TransferPipeline, detect_faces, load_image
from geogan_hf.runtime import configure_cpu_runtime
from geogan_hf.synthetic import wear_drawn_eyeglasses

ROOT = Path(__file__).resolve().parent.parent
FACES = ROOT.parent / "shared" / "faces"
SOURCES = ("wild/deepface_img58.jpg", "wild/d3dfr_015384.jpg")  # frontal glasses-pair sources
THICKNESS = (0.03, 0.2)  # rims, a share of a lens's half width
TILE = 360  # tiles are enlarged (whole factors) to at least this width


def eye_band(photo: Image.Image, landmarks: np.ndarray) -> Image.Image:
    """The band of ``photo`` from above the brows to the nose's middle, temple to temple,
    enlarged by a whole factor to at least :data:`TILE` wide."""
    x0, x1 = landmarks[:, 0].min(), landmarks[:, 0].max()
    iod = np.linalg.norm(landmarks[42:48].mean(0) - landmarks[36:42].mean(0))
    y0, y1 = landmarks[17:27, 1].min() - 0.3 * iod, landmarks[29, 1]
    box = (max(0, int(x0)), max(0, int(y0)), min(photo.width, int(x1) + 1), int(y1) + 1)
    band = photo.crop(box)
    factor = max(1, math.ceil(TILE / band.width))
    return band.resize((band.width * factor, band.height * factor), Image.Resampling.NEAREST)


def sheet(tiles: list[Image.Image], labels: list[str]) -> Image.Image:
    """``tiles`` side by side, each under its label."""
    height = max(t.height for t in tiles) + 14
    out = Image.new("RGB", (sum(t.width for t in tiles), height), "white")
    x = 0
    for tile, label in zip(tiles, labels):
        out.paste(tile, (x, 14))
        ImageDraw.Draw(out).text((x + 3, 1), label, fill="black")
        x += tile.width
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=FACES)
    parser.add_argument("--sources", nargs="+", default=list(SOURCES))
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--output", type=Path, default=ROOT / "outputs" / "drawn_glasses")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    configure_cpu_runtime(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)

    rows = list(csv.DictReader((args.faces / "manifest.csv").open()))
    bare = [r["file"] for r in rows if r["Eyeglasses"] != "1" and r["Sunglasses"] != "1"]
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(bare), size=min(args.count, len(bare)), replace=False)
    sources = [load_image(args.faces / s) for s in args.sources]
    pipe = TransferPipeline(device="cpu")
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores; seed {args.seed}, rims "
        f"{THICKNESS[0]}-{THICKNESS[1]} of a lens's half width; sources {', '.join(args.sources)}\n"
    )
    print("| # | exemplar (drawn on) | rims | refused | score | why |")
    print("|---|---|---:|---|---|---|")
    for number, index in enumerate(sorted(chosen), 1):
        photo = load_image(args.faces / bare[index])
        faces = detect_faces(photo)
        if not faces:
            continue
        thickness = rng.uniform(*THICKNESS)
        exemplar = wear_drawn_eyeglasses(photo, faces[0].landmarks, rng, (thickness,) * 2)
        tiles, labels, refused = [eye_band(exemplar, faces[0].landmarks)], ["exemplar"], []
        for name, source in zip(args.sources, sources):
            try:
                result = pipe(source, exemplar, "Eyeglasses")
            except AttributeNotFoundError as error:  # the check reads the source's crop size
                refused.append(f"{Path(name).stem}: {str(error).split(': ', 1)[1].split(';')[0]}")
                continue
            face = result.source_faces[result.source_face]
            tiles.append(eye_band(result.image, face.landmarks))
            labels.append(Path(name).stem)
        sheet(tiles, labels).save(args.output / f"{number:02d}.png")
        print(f"| {number} | {bare[index]} | {thickness:.3f} | {'; '.join(refused) or 'no'} |  |  |")


if __name__ == "__main__":
    main()
