"""One exemplar onto every photo of a folder, as sheets of result close-ups to look through.

The scored pairs (``real_pairs.py``) show how good a transfer is; a sweep shows where it
breaks. One exemplar's attribute goes onto every photo of a folder (by default the 121
wild photos of ``../shared/faces/wild``), and the close-ups of the edits, 24 to a sheet,
let a person see at a glance what goes wrong again and again: a goatee exemplar's lip
crease drawn as a black dot under 36 of 118 lips, a frame's arm stub as a beak at its
end-piece, a lipstick's highlight left unpainted (``benchmarks/results/real_pairs.md``,
thirty-third and thirty-fourth sessions). It writes, to a folder that is never committed
(the photos' terms forbid redistributing them or pictures made from them;
``outputs/sweeps/...`` by default):

- ``crops/<photo>.png``: the edit of each photo, cropped to the band of the source face's
  box where the attribute lies (:data:`BANDS`: the same box whatever the transfer did, so
  two sweeps' crops compare pixel for pixel) and scaled to ``--tile`` pixels wide;
- ``sheet_<k>.png``: the crops, ``--per-sheet`` to a sheet, four to a row;
- with ``--against OLD`` (an earlier sweep's folder): ``changed.png``, the crops that differ
  from OLD's (``--levels``), old | new side by side, the most changed first (``--per-sheet``
  of them), so a change's reach shows at once;
- a markdown table on stdout: each photo refused with its message (a
  :class:`~geogan_hf.errors.GeoGANError`) and, with ``--against``, the changed ones.

A photo that raises anything else is a bug: it is listed as a crash and the script exits 1.

Usage::

    python benchmarks/sweep.py EXEMPLAR ATTRIBUTE [--photos DIR] [--output DIR]
        [--against OLD] [--tile 360] [--per-sheet 24] [--hair-colour auto|own|exemplar]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from geogan_hf import GeoGANError, TransferPipeline
from geogan_hf.errors import InvalidArgumentError
from geogan_hf.imageio import load_image
from geogan_hf.regions import DEFAULT_HAIR_COLOUR, HAIR_COLOURS, canonical_attribute
from geogan_hf.runtime import configure_cpu_runtime

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PHOTOS = ROOT.parent / "shared" / "faces" / "wild"
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
COLUMNS = 4
GAP = 4
# the band of a face's box (its top and bottom, in box heights) where each attribute lies;
# the box is widened by a tenth on each side (the cheeks, a frame's ends)
BANDS = {
    "Eyeglasses": (0.15, 0.6), "Bushy_Eyebrows": (0.05, 0.5), "Sideburns": (0.1, 0.9),
    "Bangs": (-0.3, 0.5), "Wearing_Lipstick": (0.55, 0.95), "Smiling": (0.45, 1.0),
    "Mustache": (0.5, 1.05), "Goatee": (0.5, 1.05),
}


def close_up(
    image: Image.Image, box: tuple[int, int, int, int], width: int, label: str
) -> Image.Image:
    """``box`` of ``image`` scaled to ``width`` pixels wide, ``label`` written on it."""
    crop = image.convert("RGB").crop(box)
    height = max(1, round(width * crop.height / crop.width))
    crop = crop.resize((width, height), Image.Resampling.LANCZOS)
    ImageDraw.Draw(crop).text((3, 3), label, fill=(255, 255, 0))
    return crop


def sheet(tiles: list[Image.Image], columns: int = COLUMNS) -> Image.Image:
    """``tiles`` in rows of ``columns``, each cell as large as the largest tile."""
    width, height = max(t.width for t in tiles), max(t.height for t in tiles)
    rows = (len(tiles) + columns - 1) // columns
    out = Image.new("RGB", (columns * (width + GAP), rows * (height + GAP)), "white")
    for i, tile in enumerate(tiles):
        out.paste(tile, ((i % columns) * (width + GAP), (i // columns) * (height + GAP)))
    return out


def changed(old: Path, new: Path, levels: int) -> float:
    """The share of the crops ``old`` and ``new``'s pixels that differ by more than
    ``levels`` (1 where their sizes differ: the face was found elsewhere)."""
    a, b = (np.asarray(Image.open(p).convert("RGB"), dtype=np.int16) for p in (old, new))
    return 1.0 if a.shape != b.shape else float((np.abs(a - b).max(-1) > levels).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("exemplar", type=Path)
    parser.add_argument("attribute")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--against", type=Path, default=None, help="an earlier sweep's folder")
    parser.add_argument("--levels", type=int, default=8, help="a crop changed by more than this")
    parser.add_argument("--tile", type=int, default=360, help="close-ups' width")
    parser.add_argument("--per-sheet", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--hair-colour", choices=HAIR_COLOURS, default=DEFAULT_HAIR_COLOUR,
        help="whose colours hair takes (TransferPipeline's hair_colour)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    # what is wrong with the command is said once, before any photo is run (a misspelt
    # exemplar path had been "refused" on each of 121 photos)
    try:
        attribute = canonical_attribute(args.attribute)
        exemplar = load_image(args.exemplar, role="exemplar")  # decoded once, for every photo
        if not args.photos.is_dir():
            raise InvalidArgumentError(f"--photos {str(args.photos)!r} is not a folder")
    except GeoGANError as err:
        print(f"sweep.py: {err}", file=sys.stderr)
        return 2
    configure_cpu_runtime(args.threads)
    torch.manual_seed(0)
    output = args.output or ROOT / "outputs" / "sweeps" / f"{attribute}_{args.exemplar.stem}"
    (output / "crops").mkdir(parents=True, exist_ok=True)
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)

    pipe = TransferPipeline(device="cpu")
    tiles, refused, crashed, times = [], [], [], []
    for number, photo in enumerate(photos, 1):
        start = time.perf_counter()
        try:
            result = pipe(photo, exemplar, attribute, hair_colour=args.hair_colour)
        except GeoGANError as err:
            refused.append((photo.name, type(err).__name__, str(err)))
            continue
        except Exception as err:  # anything but a GeoGANError is a bug: listed, exit 1
            crashed.append((photo.name, repr(err)))
            continue
        times.append(time.perf_counter() - start)
        x0, y0, x1, y1 = result.source_faces[result.source_face].box
        top, bottom = BANDS[attribute]
        width, height = x1 - x0, y1 - y0
        box = (x0 - 0.1 * width, y0 + top * height, x1 + 0.1 * width, y0 + bottom * height)
        tile = close_up(result.image, tuple(round(v) for v in box), args.tile, photo.stem[:40])
        tile.save(output / "crops" / f"{photo.stem}.png")
        tiles.append(tile)
        print(f"{number}/{len(photos)} {photo.name}: {times[-1] * 1000:.0f} ms", file=sys.stderr)
    for k in range(0, len(tiles), args.per_sheet):
        sheet(tiles[k : k + args.per_sheet]).save(output / f"sheet_{k // args.per_sheet}.png")

    print(f"{attribute} from {args.exemplar.name} onto {len(photos)} photos of {args.photos}:")
    print(f"{len(tiles)} transferred (median {1000 * float(np.median(times or [0])):.0f} ms), "
          f"{len(refused)} refused, {len(crashed)} crashed; sheets in {output}\n")  # fmt: skip
    if refused or crashed:
        print("| photo | outcome | message |\n|---|---|---|")
        for name, kind, message in refused:
            print(f"| {name} | refused ({kind}) | {message} |")
        for name, message in crashed:
            print(f"| {name} | **crashed** | {message} |")
    if args.against is not None:
        pairs = [
            (args.against / "crops" / p.name, p)
            for p in sorted((output / "crops").glob("*.png"))
            if (args.against / "crops" / p.name).is_file()
        ]
        shares = [(changed(old, new, args.levels), old, new) for old, new in pairs]
        moved = sorted((s for s in shares if s[0] > 0), key=lambda s: -s[0])
        names = ", ".join(f"{new.stem} ({100 * share:.1f} %)" for share, _, new in moved)
        print(f"\nagainst {args.against}: {len(moved)} of {len(pairs)} crops changed by more "
              f"than {args.levels} levels, most first (share of their pixels): "
              f"{names or 'none'}")  # fmt: skip
        if moved:
            shown = [(old, new) for _, old, new in moved[: args.per_sheet]]
            side = [sheet([Image.open(old), Image.open(new)], 2) for old, new in shown]
            sheet(side, min(2, len(side))).save(output / "changed.png")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
