"""The latency benchmark's baseline: the official generator's rebuild and the target check."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.append(str(Path(__file__).resolve().parents[1] / "benchmarks"))

import model as model_benchmark
from official_generator import OfficialGenerator


@pytest.fixture(scope="module")
def official() -> OfficialGenerator:
    torch.manual_seed(0)
    return OfficialGenerator().eval()


def test_rebuild_has_the_official_cost(official):
    """Issue 3 quotes 2.90 M parameters and 14.6 GFLOPs for the official transfer path."""
    assert sum(p.numel() for p in official.parameters()) == 2_903_558
    a, b = torch.rand(2, 1, 3, 256, 256) * 2 - 1
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        out = official(a, b)
    assert counter.get_total_flops() / 1e9 == pytest.approx(14.61, abs=0.01)
    assert out.shape == (1, 3, 256, 256)
    assert out.min() >= -1 and out.max() <= 1


def test_rebuild_high_resolution_path_keeps_the_input_size(official):
    a, b = torch.rand(2, 1, 3, 512, 512) * 2 - 1
    with torch.inference_mode():
        out = official(a, b)
    assert out.shape == (1, 3, 512, 512)
    assert out.min() >= -1 and out.max() <= 1


def rows(ratio_256: float, ratio_hr: float, gflops: float) -> list[dict]:
    official = model_benchmark.OFFICIAL
    paper = model_benchmark.PAPER
    return [
        {"model": official, "input": "256", "ratio": 1.0, "gflops": 14.6},
        {"model": paper, "input": "256", "ratio": ratio_256, "gflops": gflops},
        {"model": official, "input": model_benchmark.HR_LABEL, "ratio": 1.0, "gflops": 14.6},
        {"model": paper, "input": model_benchmark.HR_LABEL, "ratio": ratio_hr, "gflops": gflops},
    ]


def test_targets_are_ratios_to_the_official_time():
    met = model_benchmark.target_lines(rows(0.60, 0.79, 16.0))
    assert [": met" in line for line in met] == [True] * 3
    assert "about 133 ms" in met[0] and "about 198 ms" in met[1]
    missed = model_benchmark.target_lines(rows(0.70, 0.81, 16.1))
    assert [": missed" in line for line in missed] == [True] * 3
