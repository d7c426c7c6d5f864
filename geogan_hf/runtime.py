"""Where and how GeoGAN runs: the device ``"auto"`` picks, and CPU settings (threads, allocator).

:func:`resolve_device` turns ``"auto"`` into CUDA when present, else Apple's MPS (Apple
silicon GPUs), else the CPU.

GeoGAN's full-resolution layers allocate and free tensors of several MB at every forward.
glibc's malloc serves such blocks with ``mmap`` (or trims them off the heap) and returns
them to the OS on ``free``, so a forward can pay page faults on fresh memory again and
again: in fresh processes on our 2-core machine the 256 px paper-mode forward took 179-223
ms (best of 15, four processes) untuned and 175-189 ms tuned. Raising the mmap and trim
thresholds keeps those blocks in the heap for reuse. This is process-wide, so the library never does it on
import: the app, the CLI and the benchmarks call :func:`configure_cpu_runtime` at start-up,
and so can any program that embeds the pipeline.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import torch

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024**2  # glibc's maximum on 64-bit: blocks below it come from the heap
TRIM_THRESHOLD = 512 * 1024**2  # free heap kept before returning memory to the OS
TOP_PAD = 64 * 1024**2  # extra heap requested at each growth


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else MPS (Apple silicon), else CPU; any other value
    as a torch device."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def tune_allocator() -> bool:
    """Keep freed large blocks in glibc's heap for reuse; return whether it applied.

    A no-op (returns False) where the C library is not glibc (macOS, Windows, musl).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    settings = (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (_M_TOP_PAD, TOP_PAD),
    )
    return all(libc.mallopt(option, value) == 1 for option, value in settings)


def configure_cpu_runtime(threads: int | None = None, allocator: bool = True) -> dict[str, object]:
    """Settings for CPU inference; returns what was set (for logs and benchmark tables).

    Args:
        threads: torch intra-op threads; None keeps torch's default (one per core).
        allocator: apply :func:`tune_allocator`.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    return {
        "threads": torch.get_num_threads(),
        "tuned_allocator": tune_allocator() if allocator else False,
    }
