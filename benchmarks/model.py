"""GeoGAN generator cost: parameters, forward FLOPs and CPU latency, against the official generator.

Usage::

    python benchmarks/model.py [--runs 15] [--threads 2] [--default-allocator] [--prior-check]

Prints a markdown table: transfer-path parameters (flow + mask + refinement networks;
the removal module F is training-only), forward GFLOPs (convolutions and matmuls, counted
by ``torch.utils.flop_counter.FlopCounterMode``) and the median / best wall-clock latency
of ``model(source, exemplar, ...)`` at batch 1 with random weights, for a 256 px input and
for a 1024 px input through the high-resolution path, plus the mean CPU time per run.

The baseline is measured, not only quoted: ``official_generator.py`` rebuilds the official
generator's transfer path (same parameters and FLOPs as the issue's figures), and every
round times it, paper mode and prior mode once each, in rotating order, so the machine's
load falls on all three alike. Issue 3's latency targets (150 ms at 256 and 200 ms on the 1024 path
where the official generator takes 222 and 250 ms) are checked as ratios to it; the
machine's own speed (a 2048x2048 float32 matmul, ~190 GFLOP/s with 2 threads on the
reference machine) is printed for context. The process is set up with
:func:`geogan_hf.runtime.configure_cpu_runtime`, as the app and the CLI are;
``--default-allocator`` leaves glibc's malloc untuned, for comparison.

``--prior-check`` also writes ``benchmarks/results/prior_check.png``: the geometry prior
(a fresh ``GeoGAN(geometry_prior=True)``) on real faces, for looking at.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from _common import cpu_name
from official_generator import OfficialGenerator
from torch.utils.flop_counter import FlopCounterMode

from geogan_hf import GeoGAN
from geogan_hf.align import align_face
from geogan_hf.geometry import pixel_to_normalized
from geogan_hf.imageio import pil_to_tensor, tensor_to_pil
from geogan_hf.nets import count_parameters
from geogan_hf.runtime import configure_cpu_runtime
from geogan_hf.samples import load_sample

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE_MATMUL_GFLOPS = 190.0  # 2048x2048 float32 matmul, 2 threads, the reference machine
OFFICIAL = "official GeoGAN generator, rebuilt"
PAPER = "geogan_hf, paper mode"
HR_LABEL = "1024 (HR path)"
TARGET_MS = {"256": 150.0, HR_LABEL: 200.0}  # issue 3, paper mode, on the reference machine
# Reported in issue 3 for the reference machine: 2 threads, batch 1, random weights.
REPORTED = [
    ("official GeoGAN generator", "256", 2.90, 14.6, 222.0),
    ("official GeoGAN generator", HR_LABEL, 2.90, 14.6, 250.0),
    ("official GeoGAN generator", "1024 (native)", 2.90, None, 6400.0),
    ("StarGAN v2 reference-guided", "256", 70.7, 141.0, 1046.0),
]


def face(name: str, size: int, landmarks=None) -> tuple[torch.Tensor, torch.Tensor]:
    """A real face aligned at ``size`` and its landmarks ``(1, 68, 2)`` in normalized coordinates."""
    sample = load_sample(name)
    if landmarks is None:
        landmarks = sample.landmarks
    if landmarks is None:
        from geogan_hf.landmarks import detect_faces

        landmarks = detect_faces(sample.image)[0].landmarks
    aligned = align_face(sample.image, landmarks, size=size)
    points = pixel_to_normalized(aligned.landmarks, (size, size))
    return pil_to_tensor(aligned.image), torch.as_tensor(points, dtype=torch.float32)[None]


def matmul_gflops(runs: int = 5) -> float:
    """Best 2048x2048 float32 matmul throughput over ``runs`` runs: how fast the machine is now."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best / 1e9


def forward_gflops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def interleaved(fns: dict[str, object], runs: int) -> dict[str, dict[str, float]]:
    """Time several forwards in rounds, so that the machine's load falls on all alike.

    Each round runs every forward once, the order rotating from round to round (no forward
    always follows the same one). Returns per name: median and best wall-clock ms, mean CPU
    ms (process time, all threads) and ``ratio``, the median over rounds of this forward's
    time / the first forward's (the baseline) in the same round.
    """
    names = list(fns)
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu = dict.fromkeys(names, 0.0)
    for round_index in range(runs):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            cpu_start, start = time.process_time(), time.perf_counter()
            fns[name]()
            times[name].append((time.perf_counter() - start) * 1000)
            cpu[name] += (time.process_time() - cpu_start) * 1000 / runs
    baseline = times[names[0]]
    return {
        name: {
            "median": statistics.median(t),
            "best": min(t),
            "cpu": cpu[name],
            "ratio": statistics.median(x / y for x, y in zip(t, baseline)),
        }
        for name, t in times.items()
    }


@torch.inference_mode()
def benchmark(runs: int) -> list[dict]:
    """Rows for the official rebuild, paper mode and prior mode at 256 and through the 1024 path."""
    torch.manual_seed(0)
    models = {
        OFFICIAL: OfficialGenerator().eval(),
        PAPER: GeoGAN().eval(),
        "geogan_hf, prior mode": GeoGAN(geometry_prior=True).eval(),
    }
    rows = []
    for size, label in ((256, "256"), (1024, HR_LABEL)):
        a, la = face("takeo", size)
        b, lb = face("einstein", size)
        fns = {
            name: (lambda m=m, a=a, b=b: m(a, b))
            if name == OFFICIAL
            else (lambda m=m, a=a, b=b, la=la, lb=lb: m(a, b, la, lb))
            for name, m in models.items()
        }
        timing = interleaved(fns, runs)
        for name, model in models.items():
            nets = (
                [model] if name == OFFICIAL else [model.flow_net, model.mask_net, model.refine_net]
            )
            rows.append(
                {
                    "model": name,
                    "input": label,
                    "params": count_parameters(nets) / 1e6,
                    "gflops": forward_gflops(fns[name]),
                    **timing[name],
                }
            )
    return rows


def target_lines(rows: list[dict]) -> list[str]:
    """The issue's latency and FLOP targets, checked against the official rebuild's time."""
    lines = []
    official_gflops = next(r["gflops"] for r in rows if r["model"] == OFFICIAL)
    reported_ms = {
        label: ms for model, label, *_, ms in REPORTED if model == "official GeoGAN generator"
    }
    for label, target in TARGET_MS.items():
        reported = reported_ms[label]
        row = next(r for r in rows if r["model"] == PAPER and r["input"] == label)
        verdict = "met" if row["ratio"] <= target / reported else "missed"
        lines.append(
            f"- paper mode, {label}: {row['ratio']:.3f} x the official generator's time "
            f"(target {target:.0f} / {reported:.0f} ms = {target / reported:.3f}): {verdict}; "
            f"about {row['ratio'] * reported:.0f} ms on the reference machine"
        )
    paper = next(r["gflops"] for r in rows if r["model"] == PAPER)
    verdict = "met" if paper <= 1.1 * official_gflops else "missed"
    lines.append(
        f"- FLOPs: {paper:.2f} G against the official {official_gflops:.2f} G "
        f"(target <= +10 % = {1.1 * official_gflops:.2f} G): {verdict}"
    )
    return lines


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def prior_check(path: Path, size: int = 256) -> None:
    """Grid: source, exemplar, warped exemplar, prior alpha, result; one row per case."""
    cases = [("einstein", "Mustache"), ("breakingbad", "Goatee"), ("breakingbad", "Eyeglasses")]
    model = GeoGAN(geometry_prior=True, attributes=sorted({c[1] for c in cases})).eval()
    source, source_landmarks = face("astronaut", size)
    rows = []
    with torch.inference_mode():
        for exemplar_name, attribute in cases:
            exemplar, exemplar_landmarks = face(exemplar_name, size)
            out = model(source, exemplar, source_landmarks, exemplar_landmarks, attribute=attribute)
            tiles = [
                source,
                exemplar,
                out.warped,
                out.mask.expand(-1, 3, -1, -1) * 2 - 1,
                out.image,
            ]
            rows.append(torch.cat(tiles, dim=3))
    path.parent.mkdir(parents=True, exist_ok=True)
    tensor_to_pil(torch.cat(rows, dim=2)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--default-allocator", action="store_true", help="do not tune glibc's malloc"
    )
    parser.add_argument("--prior-check", action="store_true")
    args = parser.parse_args()
    runtime = configure_cpu_runtime(args.threads, allocator=not args.default_allocator)

    throughput = matmul_gflops()
    rows = benchmark(args.runs)
    print(
        f"GeoGAN generator forward, batch 1, random weights, {args.threads} threads, "
        f"median of {args.runs} rounds (each model once per round, in rotating order), "
        f"{'tuned' if runtime['tuned_allocator'] else 'default'} glibc allocator; "
        f"{cpu_name()}, torch {torch.__version__}; "
        f"2048x2048 matmul at {throughput:.0f} GFLOP/s before the run\n"
    )
    print(
        "| model | input | params (M) | GFLOPs | median ms | best ms | CPU ms "
        "| x official (median of rounds) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['input']} | {r['params']:.2f} | {r['gflops']:.1f} "
            f"| {r['median']:.0f} | {r['best']:.0f} | {r['cpu']:.0f} | {r['ratio']:.3f} |"
        )
    for model, label, params, flops, median in REPORTED:
        print(
            f"| {model} (reported, reference machine) | {label} | {params:.2f} "
            f"| {fmt(flops, '.1f')} | {median:.0f} | - | - | - |"
        )
    print(
        "\nTargets (issue 3) as ratios to the official generator's rebuild, timed in the same "
        "rounds: its reported 222 / 250 ms are from the reference machine (2 threads, 2048x2048 "
        f"matmul ~{REFERENCE_MATMUL_GFLOPS:.0f} GFLOP/s), where the targets are 150 / 200 ms; "
        "'about N ms' assumes the ratio carries over to that machine."
    )
    print("\n".join(target_lines(rows)))

    if args.prior_check:
        path = RESULTS / "prior_check.png"
        prior_check(path)
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
