"""The latency benchmark's baseline: the official generator's rebuild and the target check."""

from __future__ import annotations

import subprocess
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


def test_real_pairs_writes_sheets_at_the_photos_own_pixels(tmp_path):
    """``benchmarks/real_pairs.py`` end to end on a pair of package sample faces: the sheets,
    and a native sheet whose source tile is the photo's own pixels, enlarged, not resampled."""
    import numpy as np
    from PIL import Image

    from geogan_hf.samples import load_sample

    for name in ("einstein", "lenna"):
        load_sample(name).image.save(tmp_path / f"{name}.png")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"source": "lenna.png", "exemplar": "einstein.png", "attribute": "Mustache"}\n')
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "real_pairs.py"
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(script), "--pairs", str(pairs), "--output", str(out), "--tile", "96"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "| 1 | Mustache | lenna.png | einstein.png |" in proc.stdout
    assert (out / "Mustache.png").is_file() and (out / "pairs" / "01_Mustache.png").is_file()
    sheet = np.asarray(Image.open(out / "native" / "01_Mustache.png").convert("RGB"))
    tile = (sheet.shape[1] - 8) // 3
    source, result = sheet[16:, :tile], sheet[16:, tile + 4 : 2 * tile + 4]
    assert tile >= 400 and source.shape[0] == tile
    # the photo's own pixel values only (a resampled crop mixes neighbours into new ones);
    # black where the box reaches past the photo's edge
    photo = np.asarray(Image.open(tmp_path / "lenna.png").convert("RGB"))
    own = {tuple(c) for c in photo.reshape(-1, 3)} | {(0, 0, 0)}
    assert {tuple(c) for c in source.reshape(-1, 3)} <= own
    assert (source != result).any(axis=-1).mean() > 0.01  # the mustache is there


def test_cuda_check_runs_every_transfer_on_the_recorded_detections(tmp_path):
    """``benchmarks/cuda_pipeline.py``: ``prepare`` records the detections and results,
    ``check`` (here on the CPU, with dlib hidden as on the GPU machine) runs every transfer
    again from the recorded detections alone and finds the same results and refusals."""
    import os

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "cuda_pipeline.py"
    data = tmp_path / "data"
    hidden = tmp_path / "no_dlib"
    hidden.mkdir()
    (hidden / "dlib.py").write_text('raise ImportError("no dlib on the GPU machine")\n')

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300,
            check=False, env=env,
        )  # fmt: skip

    prepared = run("prepare", str(data), "--side", "256")
    assert prepared.returncode == 0, prepared.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hidden), *sys.path])}
    checked = run("check", str(data), "--device", "cpu", "--runs", "1", env=env)
    assert checked.returncode == 0, checked.stderr
    rows = [line for line in checked.stdout.splitlines() if line.startswith("| astronaut |")]
    rows += [line for line in checked.stdout.splitlines() if line.startswith("| einstein |")]
    assert len(rows) == 11
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[3] == cells[4], row  # the same refusal, or ran on both
        if cells[3] == "ran":
            assert cells[5] == "0", row
    assert "| geometry prior | astronaut + breakingbad, Mustache |" in checked.stdout


def test_blind_ab_hides_which_version_is_which_and_decodes_verdicts(tmp_path):
    """``benchmarks/blind_ab.py``: A/B sheets from two runs' native sheets, each side the
    version its key says, identical pairs kept only as the asked-for controls, the key
    refused inside the reviewers' folder, and verdicts decoded with it."""
    import doctest
    import json

    import blind_ab
    import numpy as np
    from PIL import Image

    tile, rng = 40, np.random.default_rng(0)

    def native(folder: Path, number: int, result: np.ndarray, source: np.ndarray) -> None:
        sheet = np.full((tile + blind_ab.CAPTION, 3 * tile + 2 * blind_ab.GAP, 3), 255, np.uint8)
        for i, t in enumerate((source, result, source[::-1])):
            x = i * (tile + blind_ab.GAP)
            sheet[blind_ab.CAPTION :, x : x + tile] = t
        (folder / "native").mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet).save(folder / "native" / f"{number:02d}_Mustache.png")

    results = {}
    for number in range(1, 7):
        source = rng.integers(0, 256, (tile, tile, 3), dtype=np.uint8)
        old = rng.integers(0, 256, (tile, tile, 3), dtype=np.uint8)
        new = old if number > 2 else rng.integers(0, 256, (tile, tile, 3), dtype=np.uint8)
        native(tmp_path / "old", number, old, source)
        native(tmp_path / "new", number, new, source)
        results[number] = {"old": old, "new": new}
    out, key = tmp_path / "ab", tmp_path / "key.json"
    assert blind_ab.main(["sheets", str(tmp_path / "old"), str(tmp_path / "new"), str(out),
                          "--key", str(key), "--controls", "1"]) == 0  # fmt: skip
    mapping = json.loads(key.read_text())
    numbers = sorted(int(n) for n in mapping)
    assert numbers[:2] == [1, 2] and len(numbers) == 3 and numbers[2] in range(3, 7)
    assert [mapping[str(n)]["identical"] for n in numbers] == [False, False, True]
    assert sorted(p.name for p in out.iterdir()) == [f"pair_{n:02d}.png" for n in numbers]
    for n in numbers:
        sheet = np.asarray(Image.open(out / f"pair_{n:02d}.png").convert("RGB"))
        top = blind_ab.CAPTION + tile + blind_ab.CAPTION
        left, right = sheet[top:, :tile], sheet[top:, tile + blind_ab.GAP :]
        assert np.array_equal(left, results[n][mapping[str(n)]["A"]])
        assert np.array_equal(right, results[n][mapping[str(n)]["B"]])
    # the reviewers' folder must not hold the key
    inside = ["sheets", str(tmp_path / "old"), str(tmp_path / "new"), str(out),
              "--key", str(out / "key.json")]  # fmt: skip
    assert blind_ab.main(inside) == 2 and not (out / "key.json").exists()
    side = {n: {v: s for s, v in mapping[str(n)].items() if s in "AB"} for n in numbers}
    verdicts = (
        f"pair 1: {side[1]['new']}, 4, crisper strands\n"
        f"pair 2: {side[2]['old']}, 3\n"
        f"pair {numbers[2]}: same\n"
        "pair 9: A\n"  # not in the key
    )
    assert blind_ab.tally(mapping, verdicts) == {"new": [1], "old": [2], "same": [numbers[2]]}
    assert doctest.testmod(blind_ab).failed == 0
