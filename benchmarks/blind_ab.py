"""Blind A/B sheets of two versions' real-pair results, and the tally of reviewers' verdicts.

The project judges a change to the transfer by showing fresh reviewers both versions of each
real pair side by side, unlabelled and in random order, and counting which they prefer
(``benchmarks/results/real_pairs.md``). This is that procedure, on the results that
``real_pairs.py`` records for each version (``results/``: the edited photos and their
boxes):

- ``sheets OLD NEW OUT --key KEY``: for every pair in both runs, ``OUT/pair_NN.png``: the
  source and the exemplar on top, the two results below as ``A`` (left) and ``B`` (right),
  all around the edit at the photos' own pixels (as ``real_pairs.py``'s native sheets), the
  same box for both results (the union of their edits), the order drawn at random
  (``--seed``); and ``OUT/pair_NN_zoom.png``: A and B again, the middle of the box
  enlarged (reviewers shown the sheets alone saw differences of a few levels in fine
  texture on neither side, and chose one side on 34 of 36 choices); and
  ``OUT/pair_NN_photo.png``: A and B as whole photos at normal size (as ``real_pairs.py``'s
  photo sheets: the scale's 4 is "believable at normal size"). Pairs whose two
  results differ nowhere by more than :data:`UNSEEN` levels are unchanged: ``--controls``
  of them are kept as controls (reviewers who call them different are guessing), the rest
  left out. ``KEY`` (JSON, kept out of ``OUT``: reviewers get ``OUT``) says which side is
  which.
  ``--swapped`` writes the same sheets with every pair's sides the other way round.
- ``tally KEY VERDICTS... [KEY VERDICTS...]``: each reviewer's verdicts (text with lines
  like ``pair 13: A, 3, denser stubble``; ``A``, ``B`` or ``same``) decoded with the key
  given before them: the pairs each reviewer found better in the new version, in the old,
  and the same; and how many times each side was chosen and which controls were called
  different, so that a reviewer who chose by side rather than by picture shows. Then, over
  all reviewers, each pair's preference that holds on both sides (:func:`counterbalanced`).

Reviewers choose by side: in the forty-second session four fresh reviewers chose ``B`` on
all 16 of their choices, the same four changed pairs the new version when it was ``B``
and the old one when it was (they gave reasons either way: "fuller, like the exemplar",
"rises into the nostrils"), as reviewers of earlier sessions chose ``B`` on 17 of 19, 13 of
14 and 14 of 16. Drawing the sides at random per pair does not cancel that when every
reviewer sees the same draw. So a change is judged on two sets of sheets, one ``--swapped``
(the same seed), each given to its own reviewers, and only a preference that holds on both
sides counts.

Like the sheets they are made from, the A/B sheets show people's photos: they go to an
ignored folder (``outputs/``), never into the repository.

Usage::

    python benchmarks/real_pairs.py --output outputs/old    # on the old code
    python benchmarks/real_pairs.py --output outputs/new    # on the new code
    python benchmarks/blind_ab.py sheets outputs/old outputs/new outputs/ab1 --key keys/ab1.json
    python benchmarks/blind_ab.py sheets outputs/old outputs/new outputs/ab2 --key keys/ab2.json \
        --swapped
    python benchmarks/blind_ab.py tally keys/ab1.json reviewer1.txt keys/ab2.json reviewer2.txt
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
from real_pairs import native_tiles, photo_row

from geogan_hf.imageio import load_image

CAPTION = 16  # height of a caption above a row of tiles
# two results that differ nowhere by more than this (levels of 255) are the same picture:
# reviewers gave verdicts, mostly for side B, on pairs 1 or 2 levels apart (fortieth
# session of real_pairs.md), which only added noise to the count
UNSEEN = 8
GAP = 4  # pixels between tiles
ZOOM_SIDE = 700  # the zoomed views' side...
ZOOM_MARGIN = 0.15  # ... of the box less this share on each side (the edit's middle)
RECORD = {"source", "exemplar", "box", "source_face", "exemplar_face"}  # real_pairs.save_result
# a verdict is a line that starts with "pair NN" (bullets and bold allowed): a summary line
# saying "the clear one is pair 12: B has a seam" had been read as a verdict for B
VERDICT = re.compile(
    r"^[\s>*-]*pair\s*(\d+)\s*[:,-]?\s*\**\s*(A|B|same)\b", re.IGNORECASE | re.MULTILINE
)


def recorded(folder: Path) -> dict[int, Path]:
    """The recorded results by pair number: ``folder/results/NN_<attribute>.json`` (or
    ``folder`` itself when it holds them)."""
    results = folder / "results" if (folder / "results").is_dir() else folder
    return {int(p.name.split("_", 1)[0]): p for p in sorted(results.glob("[0-9]*_*.json"))}


def shared_box(*boxes: list[int]) -> tuple[int, int, int, int]:
    """The square box around all ``boxes`` (x0, y0, x1, y1), about their union's centre."""
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    half = max(x1 - x0, y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (round(cx - half), round(cy - half), round(cx + half), round(cy + half))


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


def zoom_sheet(left: Image.Image, right: Image.Image) -> Image.Image:
    """A | B, the middle of each tile enlarged to :data:`ZOOM_SIDE`, captioned."""
    inset = round(left.width * ZOOM_MARGIN)
    box = (inset, inset, left.width - inset, left.height - inset)
    sheet = Image.new("RGB", (2 * ZOOM_SIDE + GAP, ZOOM_SIDE + CAPTION), "white")
    ImageDraw.Draw(sheet).text((3, 2), "A (left, enlarged)    B (right, enlarged)", fill="black")
    for i, tile in enumerate((left, right)):
        view = tile.crop(box).resize((ZOOM_SIDE, ZOOM_SIDE), Image.Resampling.BICUBIC)
        sheet.paste(view, (i * (ZOOM_SIDE + GAP), CAPTION))
    return sheet


def make_sheets(
    old: Path, new: Path, out: Path, key: Path, seed: int, controls: int, swapped: bool = False
) -> dict:
    """Write the A/B sheets and the key (see the module docstring); returns the key.
    ``swapped``: every pair's sides the other way round from ``seed``'s draw."""
    if key.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"the key {key} must not be inside {out}: reviewers get that folder")
    old_runs, new_runs = recorded(old), recorded(new)
    numbers = sorted(set(old_runs) & set(new_runs))
    if not numbers:
        raise ValueError(f"no pair has a recorded result in both {old} and {new}")
    rng = random.Random(seed)
    pairs, same = {}, []
    for number in numbers:
        runs = (old_runs[number], new_runs[number])
        a, b = (json.loads(path.read_text()) for path in runs)
        for path, record in zip(runs, (a, b), strict=True):
            if missing := RECORD - record.keys():
                absent = ", ".join(sorted(missing))
                raise ValueError(f"{path} is no real_pairs.py record: no {absent}")
        edited = ("source", "exemplar", "source_face")
        if [a[k] for k in edited] != [b[k] for k in edited]:
            raise ValueError(f"pair {number}: the two runs edited different photos or faces")
        pairs[number] = (a, b["box"], [path.with_suffix(".png") for path in runs])
        old_image, new_image = (
            np.asarray(Image.open(path).convert("RGB"), dtype=np.int16) for path in pairs[number][2]
        )
        if np.abs(old_image - new_image).max() <= UNSEEN:
            same.append(number)
    kept = set(rng.sample(same, min(controls, len(same))))
    out.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for number in numbers:
        if number in same and number not in kept:
            continue
        record, other_box, images = pairs[number]
        box = shared_box(record["box"], other_box)
        faces = (tuple(record["source_face"]), tuple(record["exemplar_face"]))
        # the photos as the pipeline loaded them (upright), the results as it wrote them
        source, exemplar = (load_image(record[k], max_pixels=None) for k in ("source", "exemplar"))
        results = [Image.open(path).convert("RGB") for path in images]
        tiles, _ = native_tiles(source, results, exemplar, box, faces)
        new_left = (rng.random() < 0.5) != swapped
        order = [1, 0] if new_left else [0, 1]  # the (old, new) results' indices as A, B
        left, right = (tiles[1 + k] for k in order)
        sheet = ab_sheet(number, tiles[0], tiles[-1], left, right)
        sheet.save(out / f"pair_{number:02d}.png")
        zoom_sheet(left, right).save(out / f"pair_{number:02d}_zoom.png")
        caption = f"pair {number}: A (left)    B (right), whole photos at normal size"
        photo_row([results[k] for k in order], caption).save(out / f"pair_{number:02d}_photo.png")
        mapping[str(number)] = {
            "A": "new" if new_left else "old",
            "B": "old" if new_left else "new",
            "unchanged": number in same,
        }
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_text(json.dumps(mapping, indent=1) + "\n")
    return mapping


def _choices(key: dict, verdicts: str) -> dict[int, str]:
    """Each pair's side in one reviewer's ``verdicts``: ``"A"``, ``"B"`` or ``"same"`` (a
    pair judged twice counts its last verdict; pairs not in ``key`` are ignored)."""
    decided: dict[int, str] = {}
    for number, side in VERDICT.findall(verdicts):
        if str(int(number)) in key:
            decided[int(number)] = "same" if side.lower() == "same" else side.upper()
    return decided


def tally(key: dict, verdicts: str) -> dict[str, list[int]]:
    """One reviewer's ``verdicts`` decoded: ``{"new": [...], "old": [...], "same": [...]}``
    pair numbers (a pair judged twice counts its last verdict; unknown pairs are ignored).

    >>> key = {"3": {"A": "new", "B": "old"}, "5": {"A": "old", "B": "new"}}
    >>> tally(key, "pair 3: A, 4, crisper\\npair 5: same, 3\\npair 9: B")
    {'new': [3], 'old': [], 'same': [5]}
    >>> tally(key, "- **pair 3: B**, a seam\\noverall: only pair 5: A shows a seam")
    {'new': [], 'old': [3], 'same': []}
    """
    decided = {
        n: side if side == "same" else key[str(n)][side] for n, side in _choices(key, verdicts).items()
    }
    return {v: sorted(n for n, d in decided.items() if d == v) for v in ("new", "old", "same")}


def counterbalanced(reviews: list[tuple[dict, str]]) -> dict[str, list[int]]:
    """Each pair's preference over several reviewers' ``(key, verdicts)``: ``"new"`` or
    ``"old"`` where that version was chosen more often than the other and by reviewers who
    saw it on both sides (``A`` and ``B``), so that choosing by side cannot make it;
    ``"side"`` where the choices lean one way but only from one side; ``"none"`` for the
    rest (all "same", or as many choices each way).

    >>> one = {"3": {"A": "new", "B": "old"}, "5": {"A": "old", "B": "new"}}
    >>> two = {"3": {"A": "old", "B": "new"}, "5": {"A": "new", "B": "old"}}
    >>> counterbalanced([(one, "pair 3: A\\npair 5: B"), (two, "pair 3: B\\npair 5: B")])
    {'new': [3], 'old': [], 'side': [], 'none': [5]}
    >>> counterbalanced([(one, "pair 3: B\\npair 5: B"), (two, "pair 3: same\\npair 5: same")])
    {'new': [], 'old': [], 'side': [3, 5], 'none': []}
    """
    picks: dict[int, list[tuple[str, str]]] = {}  # pair -> (version, side) of each choice
    for key, verdicts in reviews:
        for number, side in _choices(key, verdicts).items():
            chosen = picks.setdefault(number, [])
            if side != "same":
                chosen.append((key[str(number)][side], side))
    result: dict[str, list[int]] = {"new": [], "old": [], "side": [], "none": []}
    for number, chosen in sorted(picks.items()):
        new = sum(version == "new" for version, _ in chosen)
        old = len(chosen) - new
        if new == old:
            result["none"].append(number)
            continue
        lead = "new" if new > old else "old"
        both = len({side for version, side in chosen if version == lead}) == 2
        result[lead if both else "side"].append(number)
    return result


def sides(key: dict, verdicts: str) -> dict[str, int | list[int]]:
    """How often one reviewer chose each side (``"A"``, ``"B"``: counts) and the controls
    (unchanged pairs) they called different (``"controls"``: pair numbers).

    >>> key = {"3": {"A": "new", "B": "old", "unchanged": False},
    ...        "5": {"A": "old", "B": "new", "unchanged": True}}
    >>> sides(key, "pair 3: B, crisper\\npair 5: B, softer")
    {'A': 0, 'B': 2, 'controls': [5]}
    """
    decided = _choices(key, verdicts)
    controls = [n for n, d in decided.items() if d != "same" and key[str(n)].get("unchanged")]
    return {
        "A": sum(d == "A" for d in decided.values()),
        "B": sum(d == "B" for d in decided.values()),
        "controls": sorted(controls),
    }


def _reviews(files: list[Path]) -> list[tuple[str, dict, str]]:
    """``(reviewer, key, verdicts)`` of ``tally``'s files: each verdicts file decoded with
    the key (a JSON file) given before it."""
    reviews, key = [], None
    for path in files:
        text = path.read_text()
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError:
            loaded = None
        if isinstance(loaded, dict):
            key = loaded
        elif key is None:
            raise ValueError(f"{path}: verdicts before any key")
        else:
            reviews.append((path.stem, key, text))
    if not reviews:
        raise ValueError("no verdicts after the key")
    return reviews


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sheets = commands.add_parser("sheets", help="write blind A/B sheets and their key")
    sheets.add_argument("old", type=Path, help="real_pairs.py --output of the old version")
    sheets.add_argument("new", type=Path, help="real_pairs.py --output of the new version")
    sheets.add_argument("out", type=Path, help="folder for the sheets (given to reviewers)")
    sheets.add_argument("--key", type=Path, required=True, help="JSON key, outside OUT")
    sheets.add_argument("--seed", type=int, default=0)
    sheets.add_argument("--controls", type=int, default=2, help="unchanged pairs kept")
    sheets.add_argument(
        "--swapped", action="store_true", help="every pair's sides the other way round"
    )
    count = commands.add_parser("tally", help="decode reviewers' verdicts with the keys")
    count.add_argument(
        "files", type=Path, nargs="+",
        help="a key (JSON), then one text file per reviewer of its sheets; then another key...",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        if args.command == "sheets":
            mapping = make_sheets(
                args.old, args.new, args.out, args.key, args.seed, args.controls, args.swapped
            )
            controls = [n for n, e in mapping.items() if e["unchanged"]]
            print(f"wrote {len(mapping)} sheets to {args.out} ({len(controls)} unchanged: "
                  f"{', '.join(controls) or 'none'}); key: {args.key}")  # fmt: skip
            return 0
        reviews = _reviews(args.files)
        print("| reviewer | new better | old better | same | chose A / B | controls called different |")
        print("|---|---|---|---|---|---|")
        for name, key, text in reviews:
            result, chosen = tally(key, text), sides(key, text)
            cells = [", ".join(map(str, result[v])) or "–" for v in ("new", "old", "same")]
            cells.append(f"{chosen['A']} / {chosen['B']}")
            cells.append(", ".join(map(str, chosen["controls"])) or "–")
            print(f"| {name} | {' | '.join(cells)} |")
        both = counterbalanced([(key, text) for _, key, text in reviews])
        labels = {"new": "new better", "old": "old better", "side": "from one side only",
                  "none": "no preference"}  # fmt: skip
        summary = "; ".join(f"{labels[v]}: {', '.join(map(str, both[v])) or '–'}" for v in labels)
        print(f"\nover all reviewers, a preference held on both sides: {summary}")
        return 0
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
