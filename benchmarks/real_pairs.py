"""Transfers on real photo pairs, as contact sheets for people to look at and score.

Runs every pair of one or more ``pairs.jsonl`` files (paths relative to each file) through
:class:`~geogan_hf.pipeline.TransferPipeline`: by default ``../shared/faces/pairs.jsonl``,
then ``benchmarks/real_pairs_more.jsonl`` (pairs of the same photos for the attributes the
first has none of, lipstick and smiling, the exemplars chosen by their CelebA labels;
numbered on from the first file's). ``benchmarks/real_pairs_heldout.jsonl`` (16 mustache
and goatee pairs: bearded exemplars and beardless male sources that no other pair uses in
that role, drawn at random; then 12 glasses pairs: the five exemplars that wear glasses
onto sources that wear none and that no glasses pair uses, drawn at random) is not in the
default run: no change is tuned on it, it is run to see whether what was tuned on the
others holds (``--pairs benchmarks/real_pairs_heldout.jsonl``).
``benchmarks/real_pairs_fresh.jsonl`` (16 mustache and goatee pairs from eight full-beard
photos labelled ``Mustache`` that no beard pair uses as an exemplar, onto sources of the
default beard pairs drawn at random: whether what was tuned on the default pairs' eight
beards holds on beards it never saw) is not in it either.
``benchmarks/real_pairs_worn.jsonl`` (the five photos that wear glasses: 20 glasses pairs
between them, a source's own frame removed before the exemplar's is laid on; 20 brows
and sideburns pairs with them as exemplars or sources, which lie behind a frame; 10 bangs
pairs likewise) is not in it either (``--pairs benchmarks/real_pairs_worn.jsonl``).
It writes, to an output folder that is never committed
(``outputs/real_pairs`` by default, ignored by git: the photos' terms forbid redistributing
them or pictures made from them):

- ``<attribute>.png``: one row per pair: source | exemplar | result | source zoom | result
  zoom (3x the edited region, capped) | alpha matte (the model's mask on the source crop);
- ``pairs/<NN>_<attribute>.png``: one file per pair, larger: source | exemplar | alpha over
  source zoom | result zoom | exemplar zoom (the exemplar's own region, for comparison);
- ``native/<NN>_<attribute>.png``: source | result | exemplar around the edit, at the
  photos' own pixels (enlarged by a whole factor only, never reduced; the exemplar's region
  scaled to the source's): the sheets reduce a large face's zoom to fit a tile, which
  hides what a viewer of the photo sees, a hazy goatee or a frame's ringing (seventeenth
  session of ``benchmarks/results/real_pairs.md``);
- ``photo/<NN>_<attribute>.png``: source | result | exemplar, each whole photo fitted into
  a :data:`PHOTO_SIDE` square (reduced or enlarged, smoothly), as a phone or a chat shows a
  shared photo: the scale's 4 is "believable at normal size, flaws only when zoomed", and
  every other sheet is a zoom;
- ``results/<NN>_<attribute>.png`` and ``.json``: the edited photo, its photos and boxes,
  for ``blind_ab.py`` to set two versions side by side;
- a markdown skeleton of the score table on stdout (pair, files, time, instance coverage
  of the exemplar and of the source), to be
  filled in by someone who looked at every sheet (``benchmarks/results/real_pairs.md``).

Usage::

    python benchmarks/real_pairs.py [--pairs PATH...] [--output DIR] [--attribute NAME] [--tile 256]
        [--hair-colour auto|own|exemplar]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from _common import cpu_name
from PIL import Image, ImageDraw, ImageOps

from geogan_hf import GeoGANError, TransferPipeline, TransferResult
from geogan_hf.regions import DEFAULT_HAIR_COLOUR, HAIR_COLOURS
from geogan_hf.runtime import configure_cpu_runtime

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PAIRS = ROOT.parent / "shared" / "faces" / "pairs.jsonl"
MORE_PAIRS = ROOT / "benchmarks" / "real_pairs_more.jsonl"
DEFAULT_OUTPUT = ROOT / "outputs" / "real_pairs"
ZOOM = 3
NATIVE_SIDE = 400  # a native sheet's tiles are enlarged (whole factors) to at least this
PHOTO_SIDE = 512  # a whole photo at normal size: about as a phone or a chat shows it
COLUMNS = ("source", "exemplar", "result", "source zoom", "result zoom", "alpha")


def fit(image: Image.Image, side: int, label: str) -> Image.Image:
    """``image`` fitted into a ``side`` x ``side`` tile with a caption."""
    image = ImageOps.contain(image.convert("RGB"), (side, side - 14), Image.Resampling.LANCZOS)
    tile = Image.new("RGB", (side, side), "white")
    tile.paste(image, ((side - image.width) // 2, 14))
    ImageDraw.Draw(tile).text((3, 1), label, fill="black")
    return tile


def edit_box(result: TransferResult) -> tuple[int, int, int, int]:
    """Photo box around the edited region (the face's box when none), square, padded."""
    region = result.edit_region()
    if not region.any():
        x0, y0, x1, y1 = result.source_faces[result.source_face].box
    else:
        ys, xs = np.nonzero(region)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    half = max(x1 - x0, y1 - y0) * 0.6 + 4
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (round(cx - half), round(cy - half), round(cx + half), round(cy + half))


def zoom(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """``box`` of ``image`` enlarged ``ZOOM`` times (nearest: shows the real pixels)."""
    crop = image.crop(box)
    return crop.resize((crop.width * ZOOM, crop.height * ZOOM), Image.Resampling.NEAREST)


def sheet_row(result: TransferResult, side: int, title: str) -> Image.Image:
    box = edit_box(result)
    tiles = [
        fit(result.source, side, "source"),
        fit(result.exemplar, side, "exemplar"),
        fit(result.image, side, "result"),
        fit(zoom(result.source, box), side, "source zoom"),
        fit(zoom(result.image, box), side, f"result zoom ({ZOOM}x)"),
        fit(result.mask, side, "alpha (source crop)"),
    ]
    row = Image.new("RGB", (side * len(tiles), side + 16), "white")
    ImageDraw.Draw(row).text((3, 2), title, fill="black")
    for i, t in enumerate(tiles):
        row.paste(t, (i * side, 16))
    return row


def face_boxes(result: TransferResult) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The edited face's box in the source photo and the exemplar face's in its photo."""
    return (
        result.source_faces[result.source_face].box,
        result.exemplar_faces[result.exemplar_face].box,
    )


def exemplar_box(
    box: tuple[int, int, int, int], source_face: tuple[float, ...], exemplar_face: tuple[float, ...]
) -> tuple[int, ...]:
    """The exemplar photo's box matching the source photo's ``box``: moved and scaled with
    the two face boxes."""
    scale = (exemplar_face[2] - exemplar_face[0]) / max(source_face[2] - source_face[0], 1)
    return tuple(
        round(exemplar_face[i % 2] + (box[i] - source_face[i % 2]) * scale) for i in range(4)
    )


def pair_sheet(result: TransferResult, side: int, title: str) -> Image.Image:
    """Two rows of three ``side`` tiles: the photos and alpha, then the zooms."""
    box = edit_box(result)
    tiles = [
        fit(result.source, side, "source"),
        fit(result.exemplar, side, "exemplar"),
        fit(result.mask, side, "alpha (source crop)"),
        fit(zoom(result.source, box), side, "source zoom"),
        fit(zoom(result.image, box), side, "result zoom"),
        fit(zoom(result.exemplar, exemplar_box(box, *face_boxes(result))), side, "exemplar zoom"),
    ]
    sheet = Image.new("RGB", (3 * side, 2 * side + 16), "white")
    ImageDraw.Draw(sheet).text((3, 2), title, fill="black")
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % 3) * side, 16 + (i // 3) * side))
    return sheet


def native_tiles(
    source: Image.Image,
    results: list[Image.Image],
    exemplar: Image.Image,
    box: tuple[int, int, int, int],
    faces: tuple[tuple[float, ...], tuple[float, ...]],
) -> tuple[list[Image.Image], int]:
    """``box`` of the source photo, of each result and the exemplar's matching region
    (resized to the source's), enlarged alike by a whole factor (nearest: the photos' own
    pixels) to at least :data:`NATIVE_SIDE`; and that factor."""
    side = box[2] - box[0]
    factor = max(1, -(-NATIVE_SIDE // side))
    crops = [source.crop(box), *(r.crop(box) for r in results)]
    matching = exemplar.crop(exemplar_box(box, *faces))
    crops.append(matching.resize((side, side), Image.Resampling.LANCZOS))
    tile = side * factor
    return [c.resize((tile, tile), Image.Resampling.NEAREST) for c in crops], factor


def native_sheet(result: TransferResult, title: str) -> Image.Image:
    """Source | result | exemplar around the edit, at the photos' own pixels (see the module
    docstring); the exemplar's matching region is resized to the source's."""
    tiles, factor = native_tiles(
        result.source, [result.image], result.exemplar, edit_box(result), face_boxes(result)
    )
    tile = tiles[0].width
    sheet = Image.new("RGB", (3 * tile + 8, tile + 16), "white")
    ImageDraw.Draw(sheet).text((3, 2), f"{title} ({factor}x)", fill="black")
    for i, enlarged in enumerate(tiles):
        sheet.paste(enlarged, (i * (tile + 4), 16))
    return sheet


def photo_row(photos: list[Image.Image], title: str) -> Image.Image:
    """``photos`` side by side, each whole, fitted into :data:`PHOTO_SIDE` (normal size)."""
    side = (PHOTO_SIDE, PHOTO_SIDE)
    tiles = [ImageOps.contain(p.convert("RGB"), side, Image.Resampling.LANCZOS) for p in photos]
    sheet = Image.new("RGB", (len(tiles) * (PHOTO_SIDE + 4) - 4, PHOTO_SIDE + 16), "white")
    ImageDraw.Draw(sheet).text((3, 2), title, fill="black")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, (i * (PHOTO_SIDE + 4), 16))
    return sheet


def photo_sheet(result: TransferResult, title: str) -> Image.Image:
    """Source | result | exemplar, whole, at normal size (:func:`photo_row`)."""
    photos = [result.source, result.image, result.exemplar]
    return photo_row(photos, f"{title} (source | result | exemplar)")


def save_result(result: TransferResult, folder: Path, stem: str, pair: dict, base: Path) -> None:
    """The edited photo (``stem.png``) and what ``blind_ab.py`` needs to show it beside
    another version's (``stem.json``: the photos, the edit's box, the two face boxes)."""
    result.image.save(folder / f"{stem}.png")
    source_face, exemplar_face = face_boxes(result)
    record = {
        "source": str((base / pair["source"]).resolve()),
        "exemplar": str((base / pair["exemplar"]).resolve()),
        "attribute": result.attribute,
        "box": list(edit_box(result)),
        "source_face": list(source_face),
        "exemplar_face": list(exemplar_face),
    }
    (folder / f"{stem}.json").write_text(json.dumps(record) + "\n")


def error_row(side: int, title: str, message: str) -> Image.Image:
    row = Image.new("RGB", (side * len(COLUMNS), 48), "white")
    draw = ImageDraw.Draw(row)
    draw.text((3, 2), title, fill="black")
    draw.text((3, 22), f"error: {message}", fill=(180, 0, 0))
    return row


def stack(rows: list[Image.Image]) -> Image.Image:
    width = max(r.width for r in rows)
    out = Image.new("RGB", (width, sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=Path, nargs="+", default=[DEFAULT_PAIRS, MORE_PAIRS])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--attribute", default=None, help="only the pairs of this attribute")
    parser.add_argument("--only", type=int, nargs="*", default=None, help="pair numbers (1-based)")
    parser.add_argument("--tile", type=int, default=256, help="tile side of the sheets")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--hair-colour", choices=HAIR_COLOURS, default=DEFAULT_HAIR_COLOUR,
        help="whose colours hair takes (TransferPipeline's hair_colour)",
    )  # fmt: skip
    args = parser.parse_args()
    configure_cpu_runtime(args.threads)
    torch.manual_seed(0)

    lines = [
        (path.parent, json.loads(s))
        for path in args.pairs
        for s in path.read_text().splitlines()
        if s.strip()
    ]
    for folder in ("pairs", "native", "photo", "results"):
        (args.output / folder).mkdir(parents=True, exist_ok=True)
    pipe = TransferPipeline(device="cpu")
    rows: dict[str, list[Image.Image]] = {}
    table = []
    for number, (base, pair) in enumerate(lines, 1):
        attribute = pair["attribute"]
        if args.attribute and attribute != args.attribute:
            continue
        if args.only and number not in args.only:
            continue
        title = f"{number:02d} {attribute}: {pair['source']} <- {pair['exemplar']}"
        if pair.get("note"):
            title += f" ({pair['note']})"
        start = time.perf_counter()
        try:
            result = pipe(
                base / pair["source"], base / pair["exemplar"], attribute,
                hair_colour=args.hair_colour,
            )  # fmt: skip
        except GeoGANError as err:
            rows.setdefault(attribute, []).append(error_row(args.tile, title, str(err)))
            table.append((number, attribute, pair, "error", f"error: {err}"))
            print(f"{title}: error: {err}", flush=True)
            continue
        seconds = time.perf_counter() - start
        row = sheet_row(result, args.tile, title)
        rows.setdefault(attribute, []).append(row)
        pair_sheet(result, 400, title).save(
            args.output / "pairs" / f"{number:02d}_{attribute}.png"
        )
        native_sheet(result, title).save(args.output / "native" / f"{number:02d}_{attribute}.png")
        photo_sheet(result, title).save(args.output / "photo" / f"{number:02d}_{attribute}.png")
        save_result(result, args.output / "results", f"{number:02d}_{attribute}", pair, base)
        coverage = (  # (a model in paper mode reports none)
            "–" if getattr(result, "coverage", None) is None
            else f"{result.coverage:.2f} / {result.source_coverage:.2f}"
        )
        table.append((number, attribute, pair, f"{seconds * 1000:.0f} ms", coverage))
        print(f"{title}: {seconds * 1000:.0f} ms", flush=True)
    for attribute, attr_rows in rows.items():
        path = args.output / f"{attribute}.png"
        stack(attr_rows).save(path)
        print(f"wrote {path}")

    print(f"\nmachine: {cpu_name()}, {os.cpu_count()} cores, {args.threads} torch threads")
    print("| # | attribute | source | exemplar | time | coverage (exemplar / source) | score | why |")
    print("|---|---|---|---|---|---|---|---|")
    for number, attribute, pair, seconds, detail in table:
        print(
            f"| {number} | {attribute} | {Path(pair['source']).name} | "
            f"{Path(pair['exemplar']).name} | {seconds} | {detail} |  |  |"
        )


if __name__ == "__main__":
    main()
