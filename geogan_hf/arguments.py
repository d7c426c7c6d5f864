"""Command-line argument types shared by the console scripts and the training script."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any


def ranged(
    kind: type[int] | type[float], low: float, high: float | None = None
) -> Callable[[str], Any]:
    """An argparse ``type``: a finite ``kind`` (int or float) in ``[low, high]`` (None: open)."""
    noun = "an integer" if kind is int else "a number"
    allowed = f"{noun} >= {low}" if high is None else f"{noun} in [{low}, {high}]"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        if not (math.isfinite(value) and value >= low and (high is None or value <= high)):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text}")
        return value

    return parse
