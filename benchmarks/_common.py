"""Helpers shared by the benchmark scripts (run them as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import contextlib
import importlib.util
import platform
from pathlib import Path
from types import ModuleType

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    """CPU model from /proc/cpuinfo (falls back to ``platform.processor()``)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def load_app() -> ModuleType:
    """The demo's module (``app.py`` at the repository's root, not an installed package)."""
    spec = importlib.util.spec_from_file_location("geogan_app", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def breakingbad_face() -> Image.Image:
    """The breakingbad sample, cut to the square around its right-hand face (own size)."""
    from geogan_hf.samples import load_sample  # only where used: the other scripts' start-up

    photo = load_sample("breakingbad").image
    return photo.crop((photo.width - photo.height, 0, photo.width, photo.height))
