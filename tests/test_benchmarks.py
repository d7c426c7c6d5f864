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


@pytest.fixture(scope="module")
def real_pairs_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``benchmarks/real_pairs.py`` run once on a pair of package sample faces."""
    from geogan_hf.samples import load_sample

    folder = tmp_path_factory.mktemp("real_pairs")
    for name in ("einstein", "lenna"):
        load_sample(name).image.save(folder / f"{name}.png")
    pairs = folder / "pairs.jsonl"
    pairs.write_text('{"source": "lenna.png", "exemplar": "einstein.png", "attribute": "Mustache"}\n')
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "real_pairs.py"
    out = folder / "out"
    proc = subprocess.run(
        [sys.executable, str(script), "--pairs", str(pairs), "--output", str(out), "--tile", "96"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return folder, proc


def test_real_pairs_writes_sheets_at_the_photos_own_pixels(real_pairs_run):
    """``benchmarks/real_pairs.py`` end to end on a pair of package sample faces: the sheets,
    and a native sheet whose source tile is the photo's own pixels, enlarged, not resampled."""
    import numpy as np
    from PIL import Image

    folder, proc = real_pairs_run
    out = folder / "out"
    assert "| 1 | Mustache | lenna.png | einstein.png |" in proc.stdout
    assert (out / "Mustache.png").is_file() and (out / "pairs" / "01_Mustache.png").is_file()
    sheet = np.asarray(Image.open(out / "native" / "01_Mustache.png").convert("RGB"))
    tile = (sheet.shape[1] - 8) // 3
    source, result = sheet[16:, :tile], sheet[16:, tile + 4 : 2 * tile + 4]
    assert tile >= 400 and source.shape[0] == tile
    # the photo's own pixel values only (a resampled crop mixes neighbours into new ones);
    # black where the box reaches past the photo's edge
    photo = np.asarray(Image.open(folder / "lenna.png").convert("RGB"))
    own = {tuple(c) for c in photo.reshape(-1, 3)} | {(0, 0, 0)}
    assert {tuple(c) for c in source.reshape(-1, 3)} <= own
    assert (source != result).any(axis=-1).mean() > 0.01  # the mustache is there


def test_real_pairs_photo_sheet_shows_the_whole_result_at_normal_size(real_pairs_run):
    """The photo sheet: source | result | exemplar, each whole photo fitted into the normal
    viewing size, the result tile the edited photo itself (not a crop of it)."""
    import numpy as np
    from PIL import Image, ImageOps

    folder, _ = real_pairs_run
    out = folder / "out"
    sheet = np.asarray(Image.open(out / "photo" / "01_Mustache.png").convert("RGB")).astype(float)
    side = (sheet.shape[1] - 8) // 3
    assert sheet.shape[0] == side + 16
    edited = Image.open(out / "results" / "01_Mustache.png").convert("RGB")
    expected = np.asarray(ImageOps.contain(edited, (side, side), Image.Resampling.LANCZOS))
    h, w = expected.shape[:2]
    assert max(h, w) == side  # fitted whole (the sample photo is 512 px, the side too)
    tile = sheet[16 : 16 + h, side + 4 : side + 4 + w]
    assert np.abs(tile - expected).max() == 0
    source = sheet[16 : 16 + h, :w]
    assert np.abs(source - tile).max() > 40  # the source tile is the unedited photo


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


def test_blind_ab_hides_which_version_is_which_and_decodes_verdicts(real_pairs_run, tmp_path):
    """``benchmarks/blind_ab.py`` on two runs of ``real_pairs.py`` (the second's result
    altered, as a changed transfer would): each A/B side is the version its key says, at
    the same box; a pair the same in both runs, or differing by no more than
    ``blind_ab.UNSEEN`` levels, is kept only as the asked-for control; the key is refused
    inside the reviewers' folder; verdicts are decoded with it."""
    import doctest
    import json
    import shutil

    import blind_ab
    import numpy as np
    from PIL import Image

    folder, _ = real_pairs_run
    runs = {}
    for version in ("old", "new"):
        results = tmp_path / version / "results"
        shutil.copytree(folder / "out" / "results", results)
        for suffix in (".png", ".json"):  # pairs 2, 3: the same transfer, unchanged by the change
            for other in ("02", "03"):
                shutil.copy(results / f"01_Mustache{suffix}", results / f"{other}_Mustache{suffix}")
        runs[version] = results
    altered = np.asarray(Image.open(runs["new"] / "01_Mustache.png")).copy()
    record = json.loads((runs["new"] / "01_Mustache.json").read_text())
    x0, y0, x1, y1 = record["box"]
    altered[max(y0, 0) : y1, max(x0, 0) : x1] //= 2  # the new version's edit: darker
    Image.fromarray(altered).save(runs["new"] / "01_Mustache.png")
    # pair 3 changed by a few levels, under what a reviewer can see: unchanged too
    nudged = np.asarray(Image.open(runs["new"] / "03_Mustache.png")).astype(int)
    nudged[max(y0, 0) : y1, max(x0, 0) : x1] += blind_ab.UNSEEN
    Image.fromarray(nudged.clip(0, 255).astype(np.uint8)).save(runs["new"] / "03_Mustache.png")

    out, key = tmp_path / "ab", tmp_path / "key.json"
    args = ["sheets", str(tmp_path / "old"), str(tmp_path / "new"), str(out), "--key", str(key)]
    assert blind_ab.main([*args, "--controls", "0"]) == 0
    assert sorted(json.loads(key.read_text())) == ["1"]
    both = ["sheets", *args[1:3], str(tmp_path / "ab2"), "--key", str(tmp_path / "key2.json")]
    assert blind_ab.main([*both, "--controls", "2"]) == 0
    assert {n: e["unchanged"] for n, e in json.loads((tmp_path / "key2.json").read_text()).items()} == {
        "1": False, "2": True, "3": True,
    }  # fmt: skip
    assert blind_ab.main([*args, "--controls", "1", "--seed", "3"]) == 0
    mapping = json.loads(key.read_text())
    assert len(mapping) == 2 and mapping["1"]["unchanged"] is False
    control, dropped = ("2", "3") if "2" in mapping else ("3", "2")
    sheet = np.asarray(Image.open(out / "pair_01.png").convert("RGB")).astype(int)
    tile = (sheet.shape[1] - blind_ab.GAP) // 2
    top = tile + 2 * blind_ab.CAPTION
    left, right = sheet[top:, :tile], sheet[top:, tile + blind_ab.GAP :]
    darker = "A" if left.sum() < right.sum() else "B"
    assert mapping["1"][darker] == "new" and not np.array_equal(left, right)
    # the source on top, at the results' box: outside its edit the old result is the photo
    source = sheet[blind_ab.CAPTION : blind_ab.CAPTION + tile, :tile]
    old_tile = right if darker == "A" else left
    assert (np.abs(source - old_tile).sum(-1) == 0).mean() > 0.5
    # the reviewers' folder must not hold the key
    inside = [*args[:4], "--key", str(out / "key.json")]
    assert blind_ab.main(inside) == 2 and not (out / "key.json").exists()
    side = {v: s for s, v in mapping["1"].items() if s in ("A", "B")}
    verdicts = f"pair 1: {side['new']}, 4, crisper strands\npair {control}: same\npair 9: A\n"
    assert blind_ab.tally(mapping, verdicts) == {"new": [1], "old": [], "same": [int(control)]}
    # the enlarged views: A and B as on the sheet, the middle of the box
    zoom = np.asarray(Image.open(out / "pair_01_zoom.png").convert("RGB")).astype(int)
    views = zoom[blind_ab.CAPTION :, : blind_ab.ZOOM_SIDE], zoom[blind_ab.CAPTION :, -blind_ab.ZOOM_SIDE :]
    assert ("A" if views[0].sum() < views[1].sum() else "B") == darker
    assert (out / f"pair_0{control}_zoom.png").exists()
    assert not (out / f"pair_0{dropped}_zoom.png").exists()
    # the whole photos at normal size: A and B as on the sheet
    photo = np.asarray(Image.open(out / "pair_01_photo.png").convert("RGB")).astype(int)
    wholes = photo[16:, : photo.shape[1] // 2 - 2], photo[16:, photo.shape[1] // 2 + 2 :]
    assert ("A" if wholes[0].sum() < wholes[1].sum() else "B") == darker
    assert not (out / f"pair_0{dropped}_photo.png").exists()
    # a reviewer who calls the control different is counted, by side
    guessed = blind_ab.sides(mapping, f"pair 1: {side['new']}\npair {control}: B\n")
    assert guessed["controls"] == [int(control)] and guessed["A"] + guessed["B"] == 2
    # the same draw with every pair's sides the other way round, for other reviewers
    swapped_key = tmp_path / "swapped.json"
    swap = ["sheets", *args[1:3], str(tmp_path / "ab_swapped"), "--key", str(swapped_key)]
    assert blind_ab.main([*swap, "--controls", "1", "--seed", "3", "--swapped"]) == 0
    swapped = json.loads(swapped_key.read_text())
    assert set(swapped) == set(mapping)
    assert all(swapped[n]["A"] == mapping[n]["B"] for n in mapping)
    flipped = np.asarray(Image.open(tmp_path / "ab_swapped" / "pair_01.png").convert("RGB")).astype(int)
    assert np.array_equal(flipped[top:, :tile], right) and np.array_equal(flipped[top:, -tile:], left)
    # reviewers who chose by side: "B" on both sets is no preference; the new version on
    # both sides is
    by_side, by_picture = tmp_path / "by_side.txt", tmp_path / "by_picture.txt"
    by_side.write_text("pair 1: B\n")
    by_picture.write_text(f"pair 1: {side['old']}\n")  # the swapped set: new is on old's side
    first = tmp_path / "first.txt"
    first.write_text(f"pair 1: {side['new']}\n")
    files = [str(key), str(by_side), str(swapped_key), str(by_side)]
    assert blind_ab.counterbalanced(
        [(mapping, "pair 1: B"), (swapped, "pair 1: B")]
    ) == {"new": [], "old": [], "side": [], "none": [1]}
    assert blind_ab.main(["tally", *files]) == 0
    assert blind_ab.main(["tally", str(key), str(first), str(swapped_key), str(by_picture)]) == 0
    assert blind_ab.counterbalanced(
        [(mapping, first.read_text()), (swapped, by_picture.read_text())]
    )["new"] == [1]
    assert blind_ab.main(["tally", str(by_side)]) == 2  # verdicts before any key
    assert doctest.testmod(blind_ab).failed == 0


def test_sweep_lays_one_exemplar_on_every_photo_and_shows_what_changed(tmp_path, capsys):
    """``benchmarks/sweep.py`` on a folder of package sample faces and a faceless picture:
    a close-up of each transfer, in the same box whatever the transfer did, on a sheet; the
    faceless one listed as refused with its message; against an earlier sweep, the crops
    that differ (most first, side by side) and only those; a bad attribute, a missing
    exemplar or a missing folder of photos is refused before any photo is run."""
    import shutil

    import numpy as np
    import sweep
    from PIL import Image

    from geogan_hf.samples import load_sample

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "lenna"):
        load_sample(name).image.save(photos / f"{name}.png")
    Image.new("RGB", (96, 96), (120, 140, 160)).save(photos / "wall.png")
    exemplar = tmp_path / "einstein.png"
    load_sample("einstein").image.save(exemplar)
    args = [str(exemplar), "mustache", "--photos", str(photos), "--tile", "120"]

    assert sweep.main([*args, "--output", str(tmp_path / "old")]) == 0
    out = capsys.readouterr().out
    assert "2 transferred" in out and "1 refused" in out
    assert "| wall.png | refused (NoFaceError) |" in out
    crops = sorted(p.name for p in (tmp_path / "old" / "crops").iterdir())
    assert crops == ["astronaut.png", "lenna.png"]
    assert (tmp_path / "old" / "sheet_0.png").is_file()

    # an earlier sweep whose lenna crop differs: only lenna is reported and shown
    earlier = tmp_path / "earlier"
    shutil.copytree(tmp_path / "old", earlier)
    lenna = np.asarray(Image.open(earlier / "crops" / "lenna.png")).copy()
    lenna[:10, :10] = 255 - lenna[:10, :10]
    Image.fromarray(lenna).save(earlier / "crops" / "lenna.png")
    assert sweep.main([*args, "--output", str(tmp_path / "new"), "--against", str(earlier)]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 crops changed" in out and "lenna (" in out and "astronaut (" not in out
    assert Image.open(tmp_path / "new" / "changed.png").width == 2 * (120 + sweep.GAP) + sweep.GAP

    assert sweep.main([str(exemplar), "Hat", "--photos", str(photos)]) == 2
    assert "unknown attribute 'Hat'" in capsys.readouterr().err
    bad = ["--output", str(tmp_path / "bad")]
    missing = tmp_path / "einstien.png"
    assert sweep.main([str(missing), "mustache", "--photos", str(photos), *bad]) == 2
    assert "einstien.png" in capsys.readouterr().err
    assert sweep.main([str(exemplar), "mustache", "--photos", str(tmp_path / "fotos"), *bad]) == 2
    assert "'" + str(tmp_path / "fotos") + "' is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
