"""TransferPipeline on a CUDA GPU: the same results as on the CPU, and its latency there.

Two steps, on two machines:

    python benchmarks/cuda_pipeline.py prepare DIR [--side 1024]   # a machine with dlib
    python benchmarks/cuda_pipeline.py check DIR [--runs 7]   # the CUDA machine

``prepare`` writes the photos (package sample faces, 1024 px), the pipeline's face
detections of them and its CPU results to DIR. ``check`` runs every transfer again with
``device="cuda"`` and prints markdown tables: how far each result lies from the CPU's (0-255
levels), and the median latency of the geometry prior and of a randomly initialised
paper-mode model on the GPU. ``check --device cpu`` runs the same on the CPU (every
difference 0: a check of the check). A lent GPU machine has no dlib predictor (126 MB, more than
travels there), so ``check`` takes the recorded detections in place of
:func:`geogan_hf.landmarks.detect_faces`; everything after detection runs on the GPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _common import breakingbad_face, cpu_name
from PIL import Image

import geogan_hf.pipeline
from geogan_hf import GeoGAN, TransferPipeline
from geogan_hf.errors import GeoGANError
from geogan_hf.landmarks import Face
from geogan_hf.regions import SUPPORTED_ATTRIBUTES
from geogan_hf.samples import load_sample

# every attribute from the breakingbad sample (a refusal must be the same on both devices),
# glasses from its native-size crop, a second mustache from einstein
CASES = (
    *(("astronaut", "breakingbad", a) for a in SUPPORTED_ATTRIBUTES),
    ("astronaut", "breakingbad_native", "Eyeglasses"),
    ("einstein", "breakingbad_native", "Eyeglasses"),
    ("astronaut", "einstein", "Mustache"),
)
TIMED = (("breakingbad", "Mustache"), ("breakingbad", "Bangs"), ("breakingbad_native", "Eyeglasses"))


def photos(side: int) -> dict[str, Image.Image]:
    """The photos: astronaut and breakingbad's right-hand face at ``side`` px, that face at
    its own size too (its glasses are refused at 1024 px), and einstein."""
    face = breakingbad_face()
    source = load_sample("astronaut").image
    return {
        "astronaut": source.resize((side, side), Image.Resampling.BICUBIC),
        "breakingbad": face.resize((side, side), Image.Resampling.BICUBIC),
        "breakingbad_native": face,
        "einstein": load_sample("einstein").image,
    }


def _key(photo: Image.Image) -> str:
    return hashlib.sha1(photo.convert("RGB").tobytes()).hexdigest()


def _run(pipe: TransferPipeline, images: dict[str, Image.Image]) -> dict[str, np.ndarray | str]:
    out: dict[str, np.ndarray | str] = {}
    for source, exemplar, attribute in CASES:
        try:
            result = pipe(images[source], images[exemplar], attribute)
            out[f"{source}|{exemplar}|{attribute}"] = np.asarray(result.image)
        except GeoGANError as err:
            out[f"{source}|{exemplar}|{attribute}"] = type(err).__name__
    return out


def prepare(folder: Path, side: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for name, image in photos(side).items():
        image.convert("RGB").save(folder / f"{name}.png")
        images[name] = Image.open(folder / f"{name}.png").convert("RGB")
    pipe = TransferPipeline(device="cpu")
    faces = {
        _key(image): [
            {"box": list(f.box), "landmarks": f.landmarks.tolist(), "score": f.score}
            for f in pipe.detect(image)
        ]
        for image in images.values()
    }
    (folder / "faces.json").write_text(json.dumps(faces))
    results = _run(pipe, images)
    np.savez_compressed(
        folder / "cpu.npz", **{k: v for k, v in results.items() if isinstance(v, np.ndarray)}
    )
    refused = {k: v for k, v in results.items() if isinstance(v, str)}
    (folder / "refused.json").write_text(json.dumps(refused, indent=1))
    print(f"wrote {folder}: {len(images)} photos, {len(results)} transfers ({len(refused)} refused)")


def _timed(pipe: TransferPipeline, source: Image.Image, exemplar: Image.Image, attribute: str,
           runs: int) -> tuple[float, float]:  # fmt: skip
    pipe(source, exemplar, attribute)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        pipe(source, exemplar, attribute)  # its result is on the CPU: the GPU's work is done
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, min(times) * 1000


def check(folder: Path, runs: int, device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("check needs a CUDA GPU (or --device cpu)")
    images = {p.stem: Image.open(p).convert("RGB") for p in folder.glob("*.png")}
    recorded = json.loads((folder / "faces.json").read_text())

    def detect_faces(photo: Image.Image, backend: str = "dlib") -> list[Face]:
        return [
            Face(tuple(f["box"]), np.asarray(f["landmarks"]), f["score"])
            for f in recorded[_key(photo)]
        ]

    geogan_hf.pipeline.detect_faces = detect_faces
    cpu = np.load(folder / "cpu.npz")
    refused = json.loads((folder / "refused.json").read_text())
    pipe = TransferPipeline(device=device)
    print(
        f"machine: {torch.cuda.get_device_name() if device == 'cuda' else device}, host "
        f"{cpu_name()}, torch {torch.__version__}, "
        f"Python {platform.python_version()}; photos {images['astronaut'].width} px (glasses "
        f"from a {images['breakingbad_native'].width} px crop)\n"
    )
    print(f"| source | exemplar | attribute | CPU | {device} | max diff | pixels off > 2 | mean diff |")
    print("|---|---|---|---|---|---:|---:|---:|")
    for key, got in _run(pipe, images).items():
        source, exemplar, attribute = key.split("|")
        cells = f"| {source} | {exemplar} | {attribute} |"
        if key in refused or isinstance(got, str):
            print(f"{cells} {refused.get(key, 'ran')} | {got if isinstance(got, str) else 'ran'} | | | |")
            continue
        diff = np.abs(got.astype(np.int16) - cpu[key].astype(np.int16))
        print(f"{cells} ran | ran | {diff.max()} | {(diff > 2).mean():.3%} | {diff.mean():.4f} |")
    paper = TransferPipeline(GeoGAN(attributes=SUPPORTED_ATTRIBUTES), device=device)
    print(f"\nlatency, median and best of {runs} calls after one warm-up (detections recorded)\n")
    print("| mode | pair | median ms | best ms |\n|---|---|---:|---:|")
    for exemplar, attribute in TIMED:
        times = _timed(pipe, images["astronaut"], images[exemplar], attribute, runs)
        print(f"| geometry prior | astronaut + {exemplar}, {attribute} | {times[0]:.0f} | {times[1]:.0f} |")
    times = _timed(paper, images["astronaut"], images["breakingbad"], "Mustache", runs)
    print(f"| paper mode (random weights) | astronaut + breakingbad, Mustache | {times[0]:.0f} | {times[1]:.0f} |")
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        print(f"\npeak GPU memory allocated: {peak:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("prepare", "check"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--side", type=int, default=1024, help="prepare: the photos' side")
    parser.add_argument("--runs", type=int, default=7, help="timed calls per setting (check)")
    parser.add_argument("--device", default="cuda", help="check: the device to compare (cuda)")
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.folder, args.side)
    else:
        check(args.folder, args.runs, args.device)


if __name__ == "__main__":
    main()
