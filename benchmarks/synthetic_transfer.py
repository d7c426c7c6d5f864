"""The geometry prior against an earlier version of itself on the synthetic ground truth.

Generates the synthetic benchmark (``geogan_hf.synthetic``) with both lightings, ``hard``
(source and exemplar differ in exposure, white balance, shading and skin tone) and
``mild`` (the benchmark as it was before those were added), and evaluates on each split:

- ``naive paste`` (the unwarped exemplar in the landmark region),
- the prior of a reference commit (default ``0fe4d21``, the last one before the instance
  extraction), run from a temporary ``git worktree`` of that commit in a subprocess, its
  outputs saved and scored here with today's metrics,
- the prior of this checkout,
- the same prior given the exemplar's true matte (``exemplar_mask`` of the synthetic rows):
  an oracle, what a perfect extraction would reach; the rest of its error is the warp,
  the relighting and the compositing.

A last table scores the extraction on the exemplars themselves, against their true matte:
the matte's own error, before any warp (:func:`exemplar_matte`).

Prints one markdown table per lighting and split, and the relative change of region L1 and
skin leakage against the reference. Tune on ``--split validation`` (the training people),
report ``--split eval`` (held-out people).

Usage::

    python benchmarks/synthetic_transfer.py [--reference 0fe4d21] [--size 128]
        [--num-eval 150] [--split eval] [--lighting hard mild]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from _common import cpu_name

from geogan_hf import GeoGAN
from geogan_hf.evaluation import (
    METRICS,
    REGION_THRESHOLD,
    EvalPairs,
    MethodOutput,
    alpha_sad,
    evaluate,
    format_table,
    geometry_prior_method,
    load_eval_pairs,
    mask_iou,
    naive_paste,
    summarize,
)
from geogan_hf.instance import UNMIX_FROM, extract_instance
from geogan_hf.prior import compose_transfer, geometric_prior, upsample, work_size
from geogan_hf.regions import ATTRIBUTE_SPECS, SUPPORTED_ATTRIBUTES
from geogan_hf.runtime import configure_cpu_runtime
from geogan_hf.synthetic import generate_synthetic_dataset

ROOT = Path(__file__).resolve().parent.parent
LENS_OPACITY = 0.9  # the synthetic lenses' tint is at most 0.85 opaque, their frames fully
SHOWN = ("region_l1", "region_psnr", "mask_iou", "alpha_sad", "alpha_mse", "skin_leakage",
         "landmark_nme", "background_psnr")  # fmt: skip

# Run inside the reference worktree: its own prior on the saved pairs, outputs to a file.
REFERENCE_SCRIPT = """
import sys, torch
from geogan_hf.prior import geometric_transfer
pairs = torch.load(sys.argv[1])
images, masks, flows = [], [], []
for i in range(0, len(pairs["attributes"]), 16):
    s = slice(i, i + 16)
    out = geometric_transfer(
        pairs["source"][s], pairs["exemplar"][s], pairs["source_landmarks"][s],
        pairs["exemplar_landmarks"][s], pairs["attributes"][s],
        image_size=max(pairs["source"].shape[-2:]),
    )
    images.append(out.image); masks.append(out.mask); flows.append(out.flow)
torch.save({"image": torch.cat(images), "mask": torch.cat(masks), "flow": torch.cat(flows)},
           sys.argv[2])
"""


def reference_outputs(pairs, reference: str, workdir: Path) -> dict[str, torch.Tensor]:
    """The reference commit's prior on ``pairs`` (its code, in a subprocess)."""
    tree = workdir / "reference"
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), reference],
            check=True,
            capture_output=True,
        )
    inputs, outputs = workdir / "pairs.pt", workdir / "reference_out.pt"
    torch.save(
        {
            "source": pairs.source,
            "exemplar": pairs.exemplar,
            "source_landmarks": pairs.source_landmarks,
            "exemplar_landmarks": pairs.exemplar_landmarks,
            "attributes": list(pairs.attributes),
        },
        inputs,
    )
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run(
        [sys.executable, "-c", REFERENCE_SCRIPT, str(inputs), str(outputs)],
        check=True,
        env=env,
        cwd=tree,
    )
    return torch.load(outputs)


def true_matte_prior(pairs: EvalPairs):
    """The prior-mode :class:`GeoGAN` path (:func:`geometric_prior`, then
    :func:`compose_transfer`) with the exemplar's extracted alpha replaced by its true matte
    (``pairs.exemplar_mask``) and the colour unmixed under it as the extraction does: an
    oracle for the extraction. The flows and the frame's ends are the extraction's own."""
    model = GeoGAN(geometry_prior=True, attributes=SUPPORTED_ATTRIBUTES)
    position = {"next": 0}

    def method(source, exemplar, source_landmarks, exemplar_landmarks, attributes):
        taken = slice(position["next"], position["next"] + len(attributes))
        position["next"] += len(attributes)
        size = work_size(*source.shape[-2:], model.image_size, model.stride)
        prior = geometric_prior(
            source, exemplar, source_landmarks, exemplar_landmarks, list(attributes), size
        )
        found = prior.exemplar
        y0, y1, x0, x1 = found.box
        alpha = pairs.exemplar_mask[taken, :, y0:y1, x0:x1].to(found.alpha)
        pixels = exemplar[:, :, y0:y1, x0:x1]
        unmixed = (found.skin + (pixels - found.skin) / alpha.clamp_min(1e-3)).clamp(-1, 1)
        take = ((alpha - UNMIX_FROM) / (1 - UNMIX_FROM)).clamp(0, 1)
        truth = dataclasses.replace(
            found, alpha=alpha, foreground=torch.lerp(found.foreground, unmixed, take)
        )
        prior = dataclasses.replace(prior, exemplar=truth)
        blended, mask, _ = compose_transfer(source, prior, prior.flow, prior.mirror)
        return MethodOutput(blended.clamp(-1, 1), mask, upsample(prior.flow, source.shape[-2:]))

    return method


def exemplar_matte(pairs: EvalPairs, batch: int = 16) -> dict[str, dict[str, float]]:
    """The extraction's alpha on each exemplar against its true matte: mean ``alpha_sad``
    and ``mask_iou`` per attribute (and over all), inside the region the extraction
    searched (a frame's arms reach past it; the composite draws them on the source).

    A tinted lens is part of the synthetic matte (partly opaque), while the extraction
    takes it as the lenses' transmission, with alpha 0: those pixels are left out.
    """
    layers = [
        extract_instance(
            pairs.exemplar[i : i + batch],
            pairs.exemplar_landmarks[i : i + batch],
            pairs.attributes[i : i + batch],
        )
        for i in range(0, len(pairs), batch)
    ]
    found = torch.cat([layer.full("alpha") for layer in layers])
    searched = torch.cat([layer.full("region") for layer in layers]) > 0.5
    truth = pairs.exemplar_mask
    glasses = torch.tensor(
        [ATTRIBUTE_SPECS[a].kind == "accessory" for a in pairs.attributes]
    ).view(-1, 1, 1, 1)
    tint = glasses & (truth > REGION_THRESHOLD) & (truth < LENS_OPACITY)
    keep = (searched & ~tint).to(found)
    sad, iou = alpha_sad(found * keep, truth * keep), mask_iou(found * keep, truth * keep)
    table = {}
    for name in ["all", *sorted(set(pairs.attributes))]:
        chosen = [i for i, a in enumerate(pairs.attributes) if name in ("all", a)]
        table[name] = {"alpha_sad": float(sad[chosen].mean()), "mask_iou": float(iou[chosen].mean())}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", default="0fe4d21", help="commit of the earlier prior")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--num-eval", type=int, default=150)
    parser.add_argument("--split", default="eval", choices=("eval", "validation"))
    parser.add_argument("--lighting", nargs="+", default=["hard", "mild"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    configure_cpu_runtime(args.threads)

    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores, {args.threads} threads; "
        f"{args.num_eval} pairs per lighting ({args.split} split), {args.size} px; "
        f"reference prior: commit {args.reference}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        try:
            for lighting in args.lighting:
                data = generate_synthetic_dataset(
                    size=args.size,
                    num_train=1,
                    num_eval=args.num_eval if args.split == "eval" else 1,
                    num_validation=args.num_eval if args.split == "validation" else 0,
                    lighting=lighting,
                    show_progress=False,
                )
                pairs = load_eval_pairs(data[args.split], args.size)
                saved = reference_outputs(pairs, args.reference, workdir)
                position = {"next": 0}

                def reference(source, exemplar, sl, el, attributes, saved=saved, at=position):
                    s = slice(at["next"], at["next"] + len(attributes))
                    at["next"] += len(attributes)
                    return MethodOutput(saved["image"][s], saved["mask"][s], saved["flow"][s])

                methods = {
                    "naive paste": naive_paste,
                    f"prior at {args.reference}": reference,
                    "prior (this checkout)": geometry_prior_method,
                    "prior, exemplar's true matte (oracle)": true_matte_prior(pairs),
                }
                rows = {}
                for name, method in methods.items():
                    result = evaluate(method, pairs, batch_size=16)
                    rows[name] = {k: v for k, v in summarize(result).items() if k in SHOWN}
                    for attribute in sorted(set(pairs.attributes)):
                        per = summarize(result, attribute)
                        rows[f"{name}: {attribute}"] = {k: per[k] for k in SHOWN}
                print(f"### lighting: {lighting}\n")
                print(format_table({k: v for k, v in rows.items() if ":" not in k}))
                print()
                print(format_table({k: v for k, v in rows.items() if ":" in k}, "method: attribute"))
                before, after = rows[f"prior at {args.reference}"], rows["prior (this checkout)"]
                oracle = rows["prior, exemplar's true matte (oracle)"]
                for metric in ("region_l1", "skin_leakage"):
                    change = (after[metric] - before[metric]) / before[metric]
                    bound = (oracle[metric] - before[metric]) / before[metric]
                    print(
                        f"\n{metric}: {before[metric]:.4f} -> {after[metric]:.4f} ({change:+.0%}); "
                        f"with the true matte {oracle[metric]:.4f} ({bound:+.0%})"
                    )
                worse = [
                    m for m in SHOWN
                    if (after[m] < before[m]) == METRICS[m] and abs(after[m] - before[m]) > 1e-9
                ]  # fmt: skip
                print(f"metrics worse than the reference: {', '.join(worse) or 'none'}\n")
                print("the extraction on the exemplars, against their true matte:\n")
                print(format_table(exemplar_matte(pairs), "attribute") + "\n")
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(workdir / "reference")],
                capture_output=True,
            )


if __name__ == "__main__":
    main()
