"""End-to-end latency of TransferPipeline on real faces, and result grids for people to look at.

Prints a markdown table: median end-to-end latency and its per-stage breakdown (the
geometry prior's own stages: ``flow``, ``instance`` extraction on both faces, ``compose``), for a
512 x 512 and a ~1024 x 1024 photo pair, in geometry-prior mode and learned mode (a
randomly initialised paper-mode GeoGAN, i.e. the cost of the networks), on 2 CPU threads;
the geometry prior also with ``hair_colour="own"`` (the source's brows extracted too).
The pipeline (model and landmark predictor) is built once per mode; each timed call
starts with an empty face-detection cache ("cold": both photos detected), and a second
column reports calls on photos seen before ("warm": detections remembered).

Also writes ``benchmarks/results/pipeline_<attribute>_<exemplar>.png`` grids:
source | exemplar | source crop + landmarks | exemplar crop + landmarks | warped | mask |
flow | result (face close-up), for astronaut + einstein (Mustache) and astronaut +
breakingbad (Mustache, Eyeglasses).

Usage::

    python benchmarks/pipeline.py [--runs 5] [--threads 2] [--no-grids]
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import numpy as np
import torch
from _common import breakingbad_face, cpu_name
from PIL import Image, ImageDraw, ImageOps

from geogan_hf import GeoGAN, TransferPipeline, TransferResult
from geogan_hf.regions import DEFAULT_HAIR_COLOUR, SUPPORTED_ATTRIBUTES
from geogan_hf.runtime import configure_cpu_runtime
from geogan_hf.samples import load_sample

RESULTS = Path(__file__).resolve().parent / "results"
# the pipeline's stages in order; the geometry prior reports the model's own stages (flow,
# instance extraction of both faces, compositing, conversions), paper mode one "model"
STAGES = ("load", "detect", "align", "flow", "instance", "compose", "model", "outputs", "paste")
# (the breakingbad sample's goatee does not show: light stubble on a chin in a spotlight)
GRID_PAIRS = (("einstein", "Mustache"), ("breakingbad", "Mustache"), ("breakingbad", "Eyeglasses"))
TILE = 256


def square_pair(side: int) -> tuple[Image.Image, Image.Image]:
    """Source (astronaut) and exemplar (breakingbad, square around the right-hand face) at ``side``."""
    source = load_sample("astronaut").image.resize((side, side), Image.Resampling.BICUBIC)
    return source, breakingbad_face().resize((side, side), Image.Resampling.BICUBIC)


def time_pipeline(
    pipe: TransferPipeline,
    source: Image.Image,
    exemplar: Image.Image,
    runs: int,
    cold: bool,
    hair_colour: str = DEFAULT_HAIR_COLOUR,
) -> dict[str, float]:
    """Median seconds per stage and end to end over ``runs`` calls (after one warm-up).

    ``"best"`` is the fastest end-to-end call, the least disturbed by other processes.
    """
    pipe(source, exemplar, "Mustache", hair_colour=hair_colour)
    records = []
    for _ in range(runs):
        if cold:
            pipe.clear_cache()
        result = pipe(source, exemplar, "Mustache", hair_colour=hair_colour)
        records.append({**result.timings, "total": result.total_time})
    keys = [key for key in (*STAGES, "total") if key in records[0]]
    medians = {key: statistics.median(r[key] for r in records) for key in keys}
    return {**medians, "best": min(r["total"] for r in records)}


def draw_landmarks(image: Image.Image, landmarks: np.ndarray) -> Image.Image:
    """A copy of ``image`` with the 68 landmarks as dots."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    radius = max(1.0, image.width / 200)
    for x, y in landmarks:
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(0, 255, 0))
    return out


def tile(image: Image.Image, label: str) -> Image.Image:
    """``image`` fitted into a TILE x TILE square with a caption."""
    image = ImageOps.contain(image.convert("RGB"), (TILE, TILE - 16), Image.Resampling.LANCZOS)
    out = Image.new("RGB", (TILE, TILE), "white")
    out.paste(image, ((TILE - image.width) // 2, 16))
    ImageDraw.Draw(out).text((4, 2), label, fill="black")
    return out


def face_closeup(image: Image.Image, result: TransferResult) -> Image.Image:
    """The edited face's box, enlarged by half its size, cut out of ``image``."""
    x0, y0, x1, y1 = result.source_faces[result.source_face].box
    pad = 0.5 * max(x1 - x0, y1 - y0)
    return image.crop((int(x0 - pad), int(y0 - pad), int(x1 + pad), int(y1 + pad)))


def result_grid(result: TransferResult) -> Image.Image:
    """source | exemplar | crops with landmarks | warped | mask | flow | before / after close-ups."""
    tiles = [
        tile(result.source, "source"),
        tile(result.exemplar, "exemplar"),
        tile(draw_landmarks(result.source_crop, result.source_landmarks), "source crop"),
        tile(draw_landmarks(result.exemplar_crop, result.exemplar_landmarks), "exemplar crop"),
        tile(result.warped, "warped exemplar"),
        tile(result.mask, "mask"),
        tile(result.flow_rgb, "flow"),
        tile(face_closeup(result.source, result), "source (face)"),
        tile(face_closeup(result.image, result), f"result: {result.attribute}"),
    ]
    grid = Image.new("RGB", (TILE * len(tiles), TILE), "white")
    for i, t in enumerate(tiles):
        grid.paste(t, (i * TILE, 0))
    return grid


def write_grids(pipe: TransferPipeline) -> list[Path]:
    """Result grids of the acceptance pairs on the full-size sample photos."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    source = load_sample("astronaut").image
    paths = []
    for exemplar, attribute in GRID_PAIRS:
        result = pipe(source, load_sample(exemplar).image, attribute)
        paths.append(RESULTS / f"pipeline_{attribute.lower()}_{exemplar}.png")
        result_grid(result).save(paths[-1])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed calls per setting")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--no-grids", action="store_true", help="skip the result grids")
    args = parser.parse_args()
    configure_cpu_runtime(args.threads)
    torch.manual_seed(0)

    pipes = {
        "geometry prior": TransferPipeline(device="cpu"),
        "paper mode (random weights)": TransferPipeline(
            GeoGAN(attributes=SUPPORTED_ATTRIBUTES), device="cpu"
        ),
    }
    # (mode label, pipeline, hair colour)
    modes = [
        ("geometry prior", pipes["geometry prior"], DEFAULT_HAIR_COLOUR),
        ('geometry prior, hair_colour="own"', pipes["geometry prior"], "own"),
        ("paper mode (random weights)", pipes["paper mode (random weights)"], DEFAULT_HAIR_COLOUR),
    ]
    rows = []
    for side in (512, 1024):
        source, exemplar = square_pair(side)
        for mode, pipe, colour in modes:
            for cold in (True, False):
                t = time_pipeline(pipe, source, exemplar, args.runs, cold, colour)
                rows.append((side, mode, "cold" if cold else "warm", t))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores, {args.threads} torch threads, "
        f"torch {torch.__version__}; load average at the end {load:.1f}"
    )
    print(
        f"pair: astronaut (source) + breakingbad right-hand face (exemplar), square photos; "
        f"Mustache; median of {args.runs} runs; cold = faces detected in both photos, "
        f"warm = detections of the same photos remembered\n"
    )
    print("| photos | mode | detection | median ms | best ms | " + " | ".join(STAGES) + " |")
    print("|---|---|---|---|---|" + "---|" * len(STAGES))
    for side, mode, cache, t in rows:
        stages = " | ".join(f"{t[s] * 1000:.0f}" if s in t else "–" for s in STAGES)
        total, best = t["total"] * 1000, t["best"] * 1000
        print(f"| {side}x{side} | {mode} | {cache} | **{total:.0f}** | {best:.0f} | {stages} |")

    if not args.no_grids:
        for path in write_grids(pipes["geometry prior"]):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
