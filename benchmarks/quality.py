"""Transfer quality on the synthetic ground truth, and proof that training improves GeoGAN.

Usage::

    python benchmarks/quality.py [--train-minutes 10] [--threads 2] [--size 128]

Steps (all on the CPU):

1. ``geogan_hf.synthetic`` generates the benchmark: training rows from takeo, einstein,
   breakingbad and grace_hopper; evaluation quadruples from the held-out astronaut and
   lenna, each pair's source and exemplar two different people (whole identities held
   out, see that module's docstring for why this split is fair).
2. Four methods are measured on the evaluation pairs with ``geogan_hf.evaluation``:
   (1) naive paste (identity flow + landmark region mask), (2) the geometry prior,
   (3) GeoGAN paper mode (RGB-only flow) trained from scratch, (4) GeoGAN with the
   geometry prior, fine-tuned (its learned heads start at zero, i.e. at the prior).
   (3) and (4) are trained by ``train_accelerate.py`` (a subprocess, the same data loading
   as Hub data) for the same time budget: the number of steps is calibrated by timing
   ``train_accelerate.training_step`` on the settings used, and checkpoints are exported
   along the way for the training curves.
3. Prints the settings, the machine, the metric table and the acceptance targets, and
   writes ``benchmarks/results/quality_curves.png`` (landmark error and region L1 against
   steps) and ``benchmarks/results/quality_grid.png`` (source | exemplar | ground truth |
   result and mask of each method).

The metrics are deterministic for a seed; each training run is done once (the budget is
the point), so the table reports single runs, not medians.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import cpu_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

import train_accelerate as ta  # noqa: E402
from geogan_hf.evaluation import (  # noqa: E402
    EvalPairs,
    EvalResult,
    evaluate,
    format_table,
    geometry_prior_method,
    load_eval_pairs,
    model_method,
    naive_paste,
    save_grid,
    summarize,
)
from geogan_hf.model import GeoGAN  # noqa: E402
from geogan_hf.synthetic import SYNTHETIC_ATTRIBUTES, generate_synthetic_dataset  # noqa: E402

MODES = {"paper": "GeoGAN paper mode (scratch)", "prior": "GeoGAN + prior (fine-tuned)"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="image / model size (default 128)")
    parser.add_argument("--num-train", type=int, default=800, help="synthetic training rows")
    parser.add_argument("--num-eval", type=int, default=90, help="evaluation pairs")
    parser.add_argument("--attributes", nargs="+", default=list(SYNTHETIC_ATTRIBUTES))
    parser.add_argument("--train-minutes", type=float, default=10.0, help="budget per training run")
    parser.add_argument("--steps", type=int, default=None, help="fixed steps (skips calibration)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--ngf", type=int, default=16, help="generator width (official 16)")
    parser.add_argument("--n-blocks", type=int, default=3, help="bottleneck ResBlocks (official 3)")
    parser.add_argument("--ndf", type=int, default=32, help="discriminator width (official 64)")
    parser.add_argument("--n-scales", type=int, default=2, help="discriminator scales (official 3)")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument(
        "--prior-frozen-parts", nargs="*", default=["flow", "mask"], choices=ta.GENERATOR_PARTS,
        help="generator parts kept at the prior in the fine-tune (default: the choice of "
        "prior_selection.py on the validation split, results/prior_selection.md)",
    )  # fmt: skip
    parser.add_argument("--curve-points", type=int, default=6, help="checkpoints per run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid-pairs", type=int, default=6)
    parser.add_argument("--data", default=None, help="reuse a geogan-synth folder")
    parser.add_argument("--work-dir", default=None, help="keep data and runs here")
    parser.add_argument("--results", default=str(RESULTS), help="folder for the PNGs")
    return parser.parse_args(argv)


def train_arguments(args, data: str, mode: str, steps: int, output_dir: Path) -> list[str]:
    """``train_accelerate.py`` arguments of one benchmark run."""
    every = max(1, math.ceil(steps / args.curve_points))
    argv = [
        "--dataset_name", data, "--attributes", *args.attributes,
        "--resolution", str(args.size), "--train_batch_size", str(args.batch_size),
        "--max_train_steps", str(steps), "--learning_rate", str(args.learning_rate),
        "--ngf", str(args.ngf), "--n_blocks", str(args.n_blocks),
        "--ndf", str(args.ndf), "--n_scales", str(args.n_scales),
        # The official schedule scaled to the run: refinement off for the first 10 %,
        # learning rates decayed every 20 %.
        "--alpha_warmup_steps", str(steps // 10),
        "--lr_decay_unit", "steps", "--lr_decay_every", str(max(1, steps // 5)),
        "--checkpointing_steps", str(every), "--save_at_checkpoints",
        "--validation_steps", str(10 * steps + 1), "--report_to", "none",
        "--seed", str(args.seed), "--output_dir", str(output_dir),
    ]  # fmt: skip
    if mode == "prior":
        argv += ["--geometry_prior"]
        if args.prior_frozen_parts:
            argv += ["--freeze_generator_parts", *args.prior_frozen_parts]
    return argv


def held_out_faces(data: str, split: str = "eval") -> str:
    """The faces of an evaluation split, as "source -> exemplar" counts."""
    from collections import Counter

    import datasets

    rows = datasets.load_from_disk(data)[split].select_columns(["source_face", "exemplar_face"])
    pairs = Counter(f"{r['source_face']} -> {r['exemplar_face']}" for r in rows)
    return ", ".join(f"{k}: {v}" for k, v in sorted(pairs.items()))


def calibrate(args, data: str, mode: str, repeats: int = 3) -> float:
    """Median seconds of one ``train_accelerate.training_step`` with the run's settings."""
    from accelerate import Accelerator

    from geogan_hf.data import PairedAttributeDataset, load_face_dataset
    from geogan_hf.model import GeoGANDiscriminator

    targs = ta.parse_args(train_arguments(args, data, mode, 100, Path(tempfile.gettempdir())))
    rows = load_face_dataset(data)
    dataset = PairedAttributeDataset(rows, args.attributes, args.size, show_progress=False)
    batch = ta._collate([dataset[i] for i in range(args.batch_size)])
    generator = GeoGAN(
        image_size=args.size, attributes=tuple(args.attributes), ngf=args.ngf,
        n_blocks=args.n_blocks, geometry_prior=mode == "prior",
    )  # fmt: skip
    discriminator = GeoGANDiscriminator(
        attributes=tuple(args.attributes), ndf=args.ndf, n_scales=args.n_scales
    )
    ta.freeze_generator_parts(generator, targs.freeze_generator_parts)
    trainable = [p for p in generator.parameters() if p.requires_grad]
    opt_g = torch.optim.Adam(trainable, lr=args.learning_rate)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=args.learning_rate)
    accelerator = Accelerator(cpu=True)
    times = []
    for _ in range(repeats + 1):  # the first step warms up
        start = time.perf_counter()
        ta.training_step(
            accelerator, batch, generator, discriminator, opt_g, opt_d,
            alpha=targs.alpha, weights=ta.loss_weights(targs),
        )  # fmt: skip
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def train(args, data: str, mode: str, steps: int, output_dir: Path) -> float:
    """Runs ``train_accelerate.py`` in a subprocess; returns its wall-clock seconds."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, str(ROOT / "train_accelerate.py")]
    command += train_arguments(args, data, mode, steps, output_dir)
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def training_curve(args, pairs: EvalPairs, mode: str, output_dir: Path) -> list[tuple[int, dict]]:
    """``(step, summary)`` at step 0 (fresh model), every exported checkpoint and the end."""
    torch.manual_seed(args.seed)
    fresh = GeoGAN(
        image_size=args.size, attributes=tuple(args.attributes), ngf=args.ngf,
        n_blocks=args.n_blocks, geometry_prior=mode == "prior",
    )  # fmt: skip
    points = [(0, summarize(evaluate(model_method(fresh), pairs)))]
    checkpoints = sorted(
        output_dir.glob("checkpoint-*/export"), key=lambda p: int(p.parent.name[11:])
    )
    for export in checkpoints:
        model = GeoGAN.from_pretrained(str(export))
        points.append(
            (int(export.parent.name[11:]), summarize(evaluate(model_method(model), pairs)))
        )
    return points


def training_pair_nme(args, data: str, model: GeoGAN, count: int = 96) -> tuple[float, float]:
    """Flow landmark NME of the identity flow and of ``model`` on fresh draws of *training*
    identities (a paper-mode model): with the held-out figure, the generalization gap."""
    from geogan_hf.data import PairedAttributeDataset, load_face_dataset
    from geogan_hf.evaluation import landmark_nme

    dataset = PairedAttributeDataset(
        load_face_dataset(data), args.attributes, args.size, seed=args.seed + 1,
        show_progress=False,
    )  # fmt: skip
    items = [dataset[i] for i in range(0, len(dataset), max(1, len(dataset) // count))][:count]
    batch = {k: torch.stack([item[k] for item in items]) for k in items[0]}
    model.eval()
    with torch.no_grad():
        flow = model(batch["source"], batch["exemplar"], attribute=batch["attribute"]).flow
    points = batch["source_landmarks"], batch["exemplar_landmarks"]
    identity = landmark_nme(torch.zeros_like(flow), *points).mean().item()
    return identity, landmark_nme(flow, *points).mean().item()


def component_ablations(model_dir: Path, pairs: EvalPairs) -> dict[str, EvalResult]:
    """The fine-tuned prior model with one learned part switched off: which parts helped."""
    results = {}
    for label, part in (("learned mask residual off", "mask_net"), ("refinement off", None)):
        model = GeoGAN.from_pretrained(str(model_dir))
        if part is None:
            model.alpha = 0.0
        else:
            getattr(model, part).scale_head(0.0)
        results[f"{MODES['prior']}, {label}"] = evaluate(model_method(model), pairs)
    return results


def plot_curves(path: Path, curves: dict[str, list], baselines: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, title in (
        (axes[0], "landmark_nme", "flow landmark error (NME, lower is better)"),
        (axes[1], "region_l1", "region L1 vs ground truth (lower is better)"),
    ):
        for name, points in curves.items():
            ax.plot([s for s, _ in points], [m[metric] for _, m in points], marker="o", label=name)
        for (name, summary), style in zip(baselines.items(), ("--", ":")):
            ax.axhline(summary[metric], linestyle=style, color="grey", label=name)
        ax.set_xlabel("training step")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def targets(summary: dict[str, dict], paper_curve: list) -> list[str]:
    """The acceptance targets with the measured figures."""
    naive, prior = summary["naive paste"], summary["geometry prior"]
    paper, tuned = summary[MODES["paper"]], summary[MODES["prior"]]
    lines = []

    def check(ok: bool, text: str) -> None:
        lines.append(f"- [{'x' if ok else ' '}] {text}")

    drop = 1 - paper["landmark_nme"] / naive["landmark_nme"]
    best = 1 - min(m["landmark_nme"] for _, m in paper_curve) / naive["landmark_nme"]
    check(
        drop >= 0.5,
        f"paper mode: flow landmark error {naive['landmark_nme']:.4f} (identity) -> "
        f"{paper['landmark_nme']:.4f} at the end, a {100 * drop:.1f} % drop (best checkpoint "
        f"{100 * best:.1f} %); target >= 50 %",
    )
    for name, row in (("geometry prior", prior), ("fine-tuned", tuned)):
        gain = 1 - row["region_l1"] / naive["region_l1"]
        check(
            gain >= 0.3,
            f"{name} beats naive paste on region L1 by {100 * gain:.1f} % "
            f"({naive['region_l1']:.4f} -> {row['region_l1']:.4f}); target >= 30 %",
        )
    from geogan_hf.evaluation import METRICS

    worse = [
        f"{m} {tuned[m]:.4f} vs {prior[m]:.4f}"
        for m, higher in METRICS.items()
        if (tuned[m] < prior[m] if higher else tuned[m] > prior[m])
    ]
    check(
        not worse,
        "fine-tuned no worse than the prior on any metric"
        + (f" (worse: {'; '.join(worse)})" if worse else ""),
    )
    check(
        tuned["region_l1"] < prior["region_l1"],
        f"fine-tuned better than the prior on region L1 ({prior['region_l1']:.4f} -> {tuned['region_l1']:.4f})",
    )
    return lines


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="geogan-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    data = args.data
    if data is None:
        data = str(work / "data")
        start = time.perf_counter()
        generate_synthetic_dataset(
            data, size=args.size, num_train=args.num_train, num_eval=args.num_eval,
            attributes=args.attributes, seed=args.seed,
        )  # fmt: skip
        timings["synthetic data"] = time.perf_counter() - start
    pairs = load_eval_pairs(data, args.size)
    keep = list(range(0, len(pairs), max(1, len(pairs) // args.grid_pairs)))[: args.grid_pairs]

    evaluated: dict[str, EvalResult] = {
        "naive paste": evaluate(naive_paste, pairs, keep=keep),
        "geometry prior": evaluate(geometry_prior_method, pairs, keep=keep),
    }
    curves, steps_run = {}, {}
    for mode, name in MODES.items():
        steps = args.steps
        if steps is None:
            seconds = calibrate(args, data, mode)
            steps = max(1, int(0.95 * args.train_minutes * 60 / seconds))
            timings[f"{mode}: calibrated s/step"] = seconds
        output_dir = work / f"run-{mode}"
        timings[f"{mode}: training ({steps} steps)"] = train(args, data, mode, steps, output_dir)
        steps_run[name] = steps
        model = GeoGAN.from_pretrained(str(output_dir))
        evaluated[name] = evaluate(model_method(model), pairs, keep=keep)
        curves[name] = training_curve(args, pairs, mode, output_dir)

    ablations = component_ablations(work / "run-prior", pairs)
    train_identity, train_paper = training_pair_nme(
        args, data, GeoGAN.from_pretrained(str(work / "run-paper"))
    )
    summary = {name: summarize(result) for name, result in evaluated.items()}
    print("## GeoGAN quality on the synthetic ground truth\n")
    print(
        f"Machine: {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}\n"
    )
    print(
        f"Settings: {args.size} px; {len(pairs)} held-out evaluation pairs "
        f"({held_out_faces(data)}) of "
        f"{', '.join(args.attributes)}; training: batch {args.batch_size}, ngf {args.ngf}, "
        f"n_blocks {args.n_blocks}, ndf {args.ndf}, n_scales {args.n_scales}, lr "
        f"{args.learning_rate}, {args.train_minutes:g} min budget per run; steps "
        f"{json.dumps(steps_run)}; prior fine-tune frozen parts: "
        f"{', '.join(args.prior_frozen_parts) or 'none'}; seed {args.seed}; single runs "
        "(deterministic metrics)\n"
    )
    print(format_table(summary))
    for attribute in args.attributes:
        rows = {name: summarize(result, attribute) for name, result in evaluated.items()}
        print(f"\n{attribute}:\n")
        print(format_table(rows))
    print("\nDiagnostics: the fine-tuned model with one learned part switched off:\n")
    print(format_table({name: summarize(result) for name, result in ablations.items()}))
    print(
        "\nPaper mode, flow landmark NME on fresh pairs of the *training* identities: "
        f"identity {train_identity:.4f} -> trained {train_paper:.4f} "
        f"({100 * (1 - train_paper / train_identity):.1f} % drop); held out: "
        f"{summary['naive paste']['landmark_nme']:.4f} -> "
        f"{summary[MODES['paper']]['landmark_nme']:.4f}."
    )
    print("\nTraining curves (step: landmark_nme / region_l1):\n")
    for name, points in curves.items():
        text = ", ".join(f"{s}: {m['landmark_nme']:.4f} / {m['region_l1']:.4f}" for s, m in points)
        print(f"- {name}: {text}")
    print("\nTargets:\n")
    print("\n".join(targets(summary, curves[MODES["paper"]])))
    print("\nTimings (s):\n")
    print("\n".join(f"- {k}: {v:.1f}" for k, v in timings.items()))

    plot_curves(
        results_dir / "quality_curves.png", curves, {k: summary[k] for k in list(summary)[:2]}
    )
    save_grid(results_dir / "quality_grid.png", pairs, evaluated, keep)
    print(f"\nWrote {results_dir / 'quality_curves.png'} and {results_dir / 'quality_grid.png'}")


if __name__ == "__main__":
    main()
