"""Blind A/B sheets of two versions' real-pair results, and the tally of reviewers' verdicts.

The project judges a change to the transfer by showing fresh reviewers both versions of each
real pair side by side, unlabelled and in random order, and counting which they prefer
(``benchmarks/results/real_pairs.md``). This is that procedure, on the ``native`` sheets
(source | result | exemplar at the photos' own pixels) that ``real_pairs.py`` writes for
each version:

- ``sheets OLD NEW OUT --key KEY``: for every pair in both runs, ``OUT/pair_NN.png``: the
  source and the exemplar on top, the two results below as ``A`` (left) and ``B`` (right),
  the same crop for both, the order drawn at random (``--seed``). Pairs whose two results
  are identical are controls: ``--controls`` of them are kept (reviewers who call them
  different are guessing). ``KEY`` (JSON, kept out of ``OUT``: reviewers get ``OUT``) says
  which side is which.
- ``tally KEY VERDICTS...``: each reviewer's verdicts (text with lines like
  ``pair 13: A, 3, denser stubble``; ``A``, ``B`` or ``same``) decoded with the key: the
  pairs each reviewer found better in the new version, in the old, and the same.

Like the sheets they are made from, the A/B sheets show people's photos: they go to an
ignored folder (``outputs/``), never into the repository.

Usage::

    python benchmarks/real_pairs.py --output outputs/old    # on the old code
    python benchmarks/real_pairs.py --output outputs/new    # on the new code
    python benchmarks/blind_ab.py sheets outputs/old outputs/new outputs/ab --key outputs/ab_key.json
    python benchmarks/blind_ab.py tally outputs/ab_key.json reviewer1.txt reviewer2.txt
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CAPTION = 16  # height of a native sheet's caption (real_pairs.native_sheet)
GAP = 4  # pixels between its tiles
VERDICT = re.compile(r"pair\s*(\d+)\s*[:,-]?\s*\**\s*(A|B|same)\b", re.IGNORECASE)


def native_tiles(path: Path) -> tuple[Image.Image, Image.Image, Image.Image]:
    """``(source, result, exemplar)`` tiles of a ``real_pairs.py`` native sheet."""
    sheet = Image.open(path).convert("RGB")
    tile = (sheet.width - 2 * GAP) // 3
    if tile <= 0 or sheet.height != tile + CAPTION:
        raise ValueError(f"{path} is not a native sheet of real_pairs.py ({sheet.size})")
    boxes = [(i * (tile + GAP), CAPTION, i * (tile + GAP) + tile, CAPTION + tile) for i in range(3)]
    source, result, exemplar = (sheet.crop(box) for box in boxes)
    return source, result, exemplar


def sheet_files(folder: Path) -> dict[int, Path]:
    """Native sheets by pair number: ``folder/native/NN_<attribute>.png`` (or ``folder``
    itself when it holds them)."""
    native = folder / "native" if (folder / "native").is_dir() else folder
    return {int(p.name.split("_", 1)[0]): p for p in sorted(native.glob("[0-9]*_*.png"))}


def ab_sheet(number: int, source: Image.Image, exemplar: Image.Image, left: Image.Image,
             right: Image.Image) -> Image.Image:  # fmt: skip
    """Source | exemplar over A | B, captioned."""
    t = source.width
    sheet = Image.new("RGB", (2 * t + GAP, 2 * t + 2 * CAPTION), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((3, 2), f"pair {number}: source (left), exemplar (right)", fill="black")
    sheet.paste(source, (0, CAPTION))
    sheet.paste(exemplar, (t + GAP, CAPTION))
    draw.text((3, t + CAPTION + 2), "A (left)    B (right)", fill="black")
    sheet.paste(left, (0, t + 2 * CAPTION))
    sheet.paste(right, (t + GAP, t + 2 * CAPTION))
    return sheet


def make_sheets(old: Path, new: Path, out: Path, key: Path, seed: int, controls: int) -> dict:
    """Write the A/B sheets and the key (see the module docstring); returns the key."""
    if key.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"the key {key} must not be inside {out}: reviewers get that folder")
    old_files, new_files = sheet_files(old), sheet_files(new)
    numbers = sorted(set(old_files) & set(new_files))
    if not numbers:
        raise ValueError(f"no pair has a native sheet in both {old} and {new}")
    rng = random.Random(seed)
    tiles, same = {}, []
    for number in numbers:
        source, result_old, exemplar = native_tiles(old_files[number])
        _, result_new, _ = native_tiles(new_files[number])
        if result_old.size != result_new.size:
            raise ValueError(f"pair {number}: the two runs' sheets differ in size")
        tiles[number] = (source, exemplar, result_old, result_new)
        if np.array_equal(np.asarray(result_old), np.asarray(result_new)):
            same.append(number)
    kept = set(rng.sample(same, min(controls, len(same))))
    out.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for number in numbers:
        if number in same and number not in kept:
            continue
        source, exemplar, result_old, result_new = tiles[number]
        new_left = rng.random() < 0.5
        left, right = (result_new, result_old) if new_left else (result_old, result_new)
        ab_sheet(number, source, exemplar, left, right).save(out / f"pair_{number:02d}.png")
        mapping[str(number)] = {
            "A": "new" if new_left else "old",
            "B": "old" if new_left else "new",
            "identical": number in same,
        }
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_text(json.dumps(mapping, indent=1) + "\n")
    return mapping


def tally(key: dict, verdicts: str) -> dict[str, list[int]]:
    """One reviewer's ``verdicts`` decoded: ``{"new": [...], "old": [...], "same": [...]}``
    pair numbers (a pair judged twice counts its last verdict; unknown pairs are ignored).

    >>> key = {"3": {"A": "new", "B": "old"}, "5": {"A": "old", "B": "new"}}
    >>> tally(key, "pair 3: A, 4, crisper\\npair 5: same, 3\\npair 9: B")
    {'new': [3], 'old': [], 'same': [5]}
    """
    decided: dict[int, str] = {}
    for number, side in VERDICT.findall(verdicts):
        entry = key.get(str(int(number)))
        if entry is not None:
            decided[int(number)] = "same" if side.lower() == "same" else entry[side.upper()]
    return {v: sorted(n for n, d in decided.items() if d == v) for v in ("new", "old", "same")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sheets = commands.add_parser("sheets", help="write blind A/B sheets and their key")
    sheets.add_argument("old", type=Path, help="real_pairs.py output of the old version")
    sheets.add_argument("new", type=Path, help="real_pairs.py output of the new version")
    sheets.add_argument("out", type=Path, help="folder for the sheets (given to reviewers)")
    sheets.add_argument("--key", type=Path, required=True, help="JSON key, outside OUT")
    sheets.add_argument("--seed", type=int, default=0)
    sheets.add_argument("--controls", type=int, default=2, help="identical pairs kept")
    count = commands.add_parser("tally", help="decode reviewers' verdicts with the key")
    count.add_argument("key", type=Path)
    count.add_argument("verdicts", type=Path, nargs="+", help="one text file per reviewer")
    args = parser.parse_args(argv)
    try:
        if args.command == "sheets":
            mapping = make_sheets(args.old, args.new, args.out, args.key, args.seed, args.controls)
            controls = [n for n, e in mapping.items() if e["identical"]]
            print(f"wrote {len(mapping)} sheets to {args.out} ({len(controls)} identical: "
                  f"{', '.join(controls) or 'none'}); key: {args.key}")  # fmt: skip
            return 0
        key = json.loads(args.key.read_text())
        print("| reviewer | new better | old better | same |")
        print("|---|---|---|---|")
        for path in args.verdicts:
            result = tally(key, path.read_text())
            cells = [", ".join(map(str, result[v])) or "–" for v in ("new", "old", "same")]
            print(f"| {path.stem} | {' | '.join(cells)} |")
        return 0
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
