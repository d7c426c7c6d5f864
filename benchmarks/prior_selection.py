"""Which learned parts to fine-tune on top of the geometry prior, chosen on validation data.

The prior model (``GeoGAN(geometry_prior=True)``) adds three learned corrections to the
geometric transfer: a flow residual, a mask residual and the refinement. Whether each helps
depends on the data, so this study picks the fine-tuning setting the way a user would,
without looking at the held-out people of ``benchmarks/quality.py``:

1. generates the synthetic benchmark with a ``validation`` split: quadruples of the
   *training* people with fresh augmentations and instances (``geogan-synth
   --num-validation``); the training rows are the same as quality.py's (same seed);
2. fine-tunes the prior model with each candidate set of frozen parts (``train_accelerate.py
   --freeze_generator_parts``), same steps and settings as quality.py's prior run;
3. evaluates each on the validation split and prints the table; the choice is the lowest
   region L1 (the quantity the fine-tune is meant to improve), ties to fewer frozen parts.

Usage::

    python benchmarks/prior_selection.py [--steps 167] [--work-dir DIR]

then ``python benchmarks/quality.py --prior-frozen-parts <the choice>``.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import quality
import torch
from _common import cpu_name

from geogan_hf.evaluation import (
    evaluate,
    format_table,
    geometry_prior_method,
    load_eval_pairs,
    model_method,
    summarize,
)
from geogan_hf.model import GeoGAN
from geogan_hf.synthetic import VALIDATION_SPLIT, generate_synthetic_dataset

CANDIDATES = ((), ("mask",), ("flow", "mask"))


def label(frozen: tuple[str, ...]) -> str:
    """Table row name of a candidate."""
    return "fine-tune all parts" if not frozen else f"fine-tune, {' + '.join(frozen)} frozen"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=167, help="fine-tuning steps per candidate")
    parser.add_argument("--num-validation", type=int, default=90)
    parser.add_argument("--work-dir", default=None, help="keep data and runs here")
    own, rest = parser.parse_known_args(argv)
    args = quality.parse_args(rest)  # every other setting as in benchmarks/quality.py
    torch.set_num_threads(args.threads)
    work = Path(own.work_dir or tempfile.mkdtemp(prefix="geogan-selection-"))
    work.mkdir(parents=True, exist_ok=True)
    data = args.data or str(work / "data")
    if args.data is None:
        generate_synthetic_dataset(
            data, size=args.size, num_train=args.num_train, num_eval=args.num_eval,
            num_validation=own.num_validation, attributes=args.attributes, seed=args.seed,
        )  # fmt: skip
    pairs = load_eval_pairs(data, args.size, split=VALIDATION_SPLIT)
    rows = {"geometry prior (no training)": summarize(evaluate(geometry_prior_method, pairs))}
    seconds = {}
    for frozen in CANDIDATES:
        args.prior_frozen_parts = list(frozen)
        output_dir = work / f"run-{'-'.join(frozen) or 'all'}"
        start = time.perf_counter()
        quality.train(args, data, "prior", own.steps, output_dir)
        seconds[label(frozen)] = time.perf_counter() - start
        model = GeoGAN.from_pretrained(str(output_dir))
        rows[label(frozen)] = summarize(evaluate(model_method(model), pairs))
    choice = min(CANDIDATES, key=lambda c: (round(rows[label(c)]["region_l1"], 4), len(c)))

    print("## Fine-tuning the geometry-prior model: which parts to learn (validation split)\n")
    print(
        f"Machine: {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}\n"
    )
    print(
        f"Settings: {args.size} px; {len(pairs)} validation pairs of the training people "
        f"({quality.held_out_faces(data, VALIDATION_SPLIT)}); {own.steps} steps per candidate, "
        f"batch {args.batch_size}, lr {args.learning_rate}, seed {args.seed}\n"
    )
    print(format_table(rows))
    print("\nTraining time (s): " + ", ".join(f"{k}: {v:.0f}" for k, v in seconds.items()))
    print(
        f"\nChoice (lowest validation region L1): {label(choice)} -> "
        f"`python benchmarks/quality.py --prior-frozen-parts {' '.join(choice)}`"
    )


if __name__ == "__main__":
    main()
