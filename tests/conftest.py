"""Shared test set-up: offline Hugging Face / Gradio settings and small thread counts."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import torch

torch.set_num_threads(2)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.samples("astronaut", ...)``: skip unless those sample faces are installed."""
    for marker in item.iter_markers(name="samples"):
        from geogan_hf.samples import available_samples

        missing = sorted(set(marker.args) - set(available_samples()))
        if missing:
            pytest.skip(f"needs the sample faces {', '.join(missing)} (package not installed)")
