"""GeoGAN generator cost: parameters, forward FLOPs and CPU latency, paper and prior modes.

Usage::

    python benchmarks/model.py [--runs 15] [--threads 2] [--default-allocator] [--prior-check]

Prints a markdown table: transfer-path parameters (flow + mask + refinement networks;
the removal module F is training-only), forward GFLOPs (convolutions and matmuls, counted
by ``torch.utils.flop_counter.FlopCounterMode``) and the median / best wall-clock latency
of ``model(source, exemplar, ...)`` at batch 1 with random weights, for a 256 px input and
for a 1024 px input through the high-resolution path, plus the mean CPU time per run
(all threads; it does not grow while the process waits for a busy CPU). A 2048x2048
float32 matmul throughput measured in the same run tells how busy the machine was
(about 190 GFLOP/s with 2 threads on an idle machine of our kind). The process is set up
with :func:`geogan_hf.runtime.configure_cpu_runtime`, as the app and the CLI are;
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
from torch.utils.flop_counter import FlopCounterMode

from geogan_hf import GeoGAN
from geogan_hf.align import align_face
from geogan_hf.geometry import pixel_to_normalized
from geogan_hf.imageio import pil_to_tensor, tensor_to_pil
from geogan_hf.nets import count_parameters
from geogan_hf.runtime import configure_cpu_runtime
from geogan_hf.samples import load_sample

RESULTS = Path(__file__).resolve().parent / "results"
IDLE_MATMUL_GFLOPS = 190.0  # 2048x2048 float32 matmul, 2 threads, idle machine of our kind
# Official generator (wdyin/GeoGAN), reported for a machine like ours: 2 threads, batch 1.
REFERENCE = [
    ("official GeoGAN generator", "256", 2.90, 14.6, 222.0),
    ("official GeoGAN generator", "1024 (HR path)", 2.90, 14.6, 250.0),
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


def timed(fn, runs: int) -> tuple[float, float, float]:
    """Median and best wall-clock ms of ``fn()`` over ``runs`` runs (after a warm-up), and the
    mean CPU ms (process time, all threads: insensitive to waiting on a busy machine)."""
    fn()
    times = []
    cpu_start = time.process_time()
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    cpu = (time.process_time() - cpu_start) * 1000 / runs
    return statistics.median(times), min(times), cpu


def matmul_gflops(runs: int = 5) -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    _, best, _ = timed(lambda: a @ b, runs)
    return 2 * 2048**3 / (best / 1000) / 1e9


def forward_gflops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


@torch.inference_mode()
def benchmark(runs: int) -> list[tuple]:
    rows = []
    for prior in (False, True):
        torch.manual_seed(0)
        model = GeoGAN(geometry_prior=prior).eval()
        params = count_parameters([model.flow_net, model.mask_net, model.refine_net]) / 1e6
        for size, label in ((256, "256"), (1024, "1024 (HR path)")):
            a, la = face("takeo", size)
            b, lb = face("einstein", size)
            fn = lambda m=model, a=a, b=b, la=la, lb=lb: m(a, b, la, lb)  # noqa: E731
            flops = forward_gflops(fn)
            before = matmul_gflops()
            median, best, cpu = timed(fn, runs)
            load = (before + matmul_gflops()) / 2 / IDLE_MATMUL_GFLOPS
            mode = "geogan_hf, prior mode" if prior else "geogan_hf, paper mode"
            rows.append((mode, label, params, flops, median, best, cpu, load))
    return rows


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def prior_check(path: Path, size: int = 256) -> None:
    """Grid: source, exemplar, tone-matched warped exemplar, prior mask, result; one row per case."""
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
        f"median of {args.runs} runs, "
        f"{'tuned' if runtime['tuned_allocator'] else 'default'} glibc allocator; "
        f"{cpu_name()}, torch {torch.__version__}; "
        f"2048x2048 matmul at {throughput:.0f} GFLOP/s during this run\n"
    )
    print(
        "| model | input | params (M) | GFLOPs | median ms | best ms | CPU ms | median ms x load |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for mode, label, params, flops, median, best, cpu, load in rows:
        print(
            f"| {mode} | {label} | {params:.2f} | {flops:.1f} | {median:.0f} | {best:.0f} "
            f"| {cpu:.0f} | {median * load:.0f} |"
        )
    for mode, label, params, flops, median in REFERENCE:
        print(
            f"| {mode} (reported) | {label} | {params:.2f} | {fmt(flops, '.1f')} "
            f"| {median:.0f} | - | - | - |"
        )
    print(
        f"\n'median ms x load' = median x (matmul GFLOP/s around that row / "
        f"{IDLE_MATMUL_GFLOPS}): the "
        "latency scaled to an idle 2-thread machine of our kind, assuming the model slows "
        "down under load like the matmul does (an estimate, not a measurement)."
    )

    if args.prior_check:
        path = RESULTS / "prior_check.png"
        prior_check(path)
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
