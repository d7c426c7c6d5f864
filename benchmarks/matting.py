"""How the instance's alpha is resolved: colour-line projection against closed-form matting.

On real faces wearing procedural instances with a known alpha (``geogan_hf.synthetic``,
the training faces, ``mild`` lighting), compares:

- ``projection`` (what :func:`geogan_hf.instance.extract_instance` does): each pixel
  projected on its local skin -> instance colour line at the crop's resolution;
- ``closed-form``: ``pymatting``'s closed-form matting (Levin et al.) on a trimap made from
  the same evidence (instance above 0.9, skin below 0.1 or outside the searched region,
  unknown in between), solved at the working size and upsampled bilinearly.

Prints alpha SAD (sum of absolute errors / 1000, matting benchmarks' unit) and MSE inside
the attribute's region, and the median time per crop (projection: the whole extraction;
closed-form: its matting step alone, on top of the same evidence). ``pymatting`` is a benchmark-only
dependency: ``pip install pymatting==1.1.16``.

Usage::

    python benchmarks/matting.py [--size 256] [--per-attribute 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from _common import cpu_name

import geogan_hf.instance as instance
from geogan_hf.geometry import pixel_to_normalized
from geogan_hf.regions import region_mask
from geogan_hf.runtime import configure_cpu_runtime
from geogan_hf.synthetic import Instance, SyntheticGenerator, load_base_faces

FACES = ("takeo", "einstein", "breakingbad", "grace_hopper")


def closed_form(image: torch.Tensor, evidence: torch.Tensor, searched: torch.Tensor) -> np.ndarray:
    """Closed-form alpha at the evidence's size from a trimap made of the evidence."""
    from pymatting import estimate_alpha_cf

    trimap = np.full(evidence.shape[-2:], 0.5)
    e, s = evidence[0, 0].numpy(), searched[0, 0].numpy()
    trimap[e > 0.9] = 1.0
    trimap[(e < 0.1) | (s < 0.05)] = 0.0
    small = F.interpolate(image, size=evidence.shape[-2:], mode="bilinear", antialias=True)
    rgb = ((small[0].permute(1, 2, 0).numpy() + 1) / 2).astype(np.float64).clip(0, 1)
    return estimate_alpha_cf(rgb, trimap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--per-attribute", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    configure_cpu_runtime(args.threads)

    faces = load_base_faces(args.size, FACES)
    generator = SyntheticGenerator(faces, args.size, seed=5, lighting="mild")
    rows: dict[str, dict[str, list[float]]] = {}
    for attribute in ("Mustache", "Goatee", "Eyeglasses"):
        for k in range(args.per_attribute):
            face = faces[k % len(faces)]
            if attribute in face.attributes:
                continue
            image, truth = generator.draw(
                face.image,
                Instance(attribute, k),
                generator.template_flow(face.landmarks, attribute),
            )
            image = image[None] * 2 - 1
            points = pixel_to_normalized(
                torch.tensor(face.landmarks, dtype=torch.float32), (args.size,) * 2
            )[None]
            region = region_mask(attribute, points, (args.size,) * 2, grow=0.1) > 0
            start = time.perf_counter()
            layers = instance.extract_instance(image, points, attribute)
            projection_time = time.perf_counter() - start
            projected = layers.full("alpha")[0, 0]
            # the same evidence and region, to build the closed-form trimap
            evidence, searched = _evidence(image, points, attribute)
            start = time.perf_counter()
            matte = closed_form(image, evidence, searched)
            alpha_cf = F.interpolate(
                torch.from_numpy(matte)[None, None].float(), size=(args.size,) * 2, mode="bilinear"
            )[0, 0] * (F.interpolate(searched, size=(args.size,) * 2, mode="bilinear")[0, 0] > 0)
            closed_time = time.perf_counter() - start
            for name, alpha, seconds in (
                ("projection", projected, projection_time),
                ("closed-form", alpha_cf, closed_time),
            ):
                row = rows.setdefault(f"{attribute}: {name}", {"sad": [], "mse": [], "ms": []})
                row["sad"].append(float((alpha - truth[0]).abs().sum() / 1000))
                row["mse"].append(float((alpha - truth[0])[region[0, 0]].square().mean()))
                row["ms"].append(seconds * 1000)

    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores, {args.threads} threads; "
        f"{args.size} px crops of {', '.join(FACES)} wearing procedural instances\n"
    )
    print("| attribute: method | crops | alpha SAD ↓ | alpha MSE ↓ | median ms |")
    print("|---|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(
            f"| {name} | {len(row['sad'])} | {np.mean(row['sad']):.3f} | "
            f"{np.mean(row['mse']):.4f} | {statistics.median(row['ms']):.0f} |"
        )


def _evidence(image: torch.Tensor, points: torch.Tensor, attribute: str):
    """The evidence and searched region :func:`extract_instance` computed (read from its
    local variables when it returns, so the comparison uses exactly its trimap inputs)."""
    code = getattr(instance.extract_instance, "__wrapped__", instance.extract_instance)
    tracer_frames = []

    def tracer(frame, event, arg):
        if event == "return" and frame.f_code is code.__code__:
            tracer_frames.append(dict(frame.f_locals))
        return tracer

    sys.settrace(tracer)
    try:
        with torch.no_grad():
            code(image, points, attribute)
    finally:
        sys.settrace(None)
    local = tracer_frames[-1]
    return local["evidence"], local["searched"]


if __name__ == "__main__":
    main()
