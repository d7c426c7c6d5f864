"""Tests of the transfer metrics (hand-built cases with known answers) and geogan-eval."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from geogan_hf.errors import DatasetError, ModelLoadError
from geogan_hf.evaluation import (
    METRICS,
    NO_GROUND_TRUTH_METRICS,
    EvalPairs,
    background_psnr,
    build_parser,
    evaluate,
    foldover_ratio,
    format_table,
    geometry_prior_method,
    landmark_nme,
    load_eval_pairs,
    mask_iou,
    naive_paste,
    region_l1,
    region_psnr,
    run,
    summarize,
)
from geogan_hf.geometry import face_turn, identity_flow, pixel_to_normalized

SIZE = 64


def _step_image(width: int = 16) -> torch.Tensor:
    """Left half -1, right half +1, ``(1, 3, 8, width)``."""
    image = -torch.ones(1, 3, 8, width)
    image[..., width // 2 :] = 1
    return image


def test_identical_images_score_perfectly():
    image = torch.rand(2, 3, 16, 16) * 2 - 1
    region = torch.zeros(2, 1, 16, 16)
    region[..., 4:10, 4:10] = 1
    assert torch.equal(region_l1(image, image, region), torch.zeros(2, dtype=torch.float64))
    assert torch.isinf(region_psnr(image, image, region)).all()
    assert torch.isinf(background_psnr(image, image, region)).all()
    assert torch.equal(mask_iou(region, region), torch.ones(2, dtype=torch.float64))


def test_shifted_step_edge_has_the_known_error():
    image = _step_image(16)
    shifted = torch.roll(image, 1, dims=-1)  # the edge moves one column; column 0 wraps
    everywhere = torch.ones(1, 1, 8, 16)
    # Two columns of 16 differ by the full range (2 in [-1, 1], 1 on the [0, 1] scale).
    assert region_l1(shifted, image, everywhere).item() == pytest.approx(2 / 16)
    assert region_psnr(shifted, image, everywhere).item() == pytest.approx(10 * math.log10(8))
    only_edge = torch.zeros_like(everywhere)
    only_edge[..., 8] = 1
    assert region_l1(shifted, image, only_edge).item() == pytest.approx(1.0)
    # Outside column 8 only the wrapped column 0 differs: MSE = 1 / 15.
    assert background_psnr(shifted, image, only_edge).item() == pytest.approx(10 * math.log10(15))


def test_mask_iou_of_overlapping_rectangles():
    a = torch.zeros(1, 1, 10, 10)
    b = torch.zeros(1, 1, 10, 10)
    a[..., 0:4, 0:4] = 1  # 16 px
    b[..., 2:6, 2:6] = 0.8  # 16 px, above the 0.5 threshold; 4 px shared
    assert mask_iou(a, b).item() == pytest.approx(4 / 28)
    assert mask_iou(a, b * 0.5).item() == 0  # 0.4 is below the threshold
    assert mask_iou(torch.zeros_like(a), torch.zeros_like(b)).item() == 1


def _landmarks(n: int = 1) -> torch.Tensor:
    rng = np.random.default_rng(0)
    points = rng.uniform(10, 30, (n, 68, 2))
    points[:, 36], points[:, 45] = (12, 20), (28, 20)  # outer eye corners 16 px apart
    return pixel_to_normalized(torch.as_tensor(points, dtype=torch.float32), (40, 40))


def test_landmark_nme_of_known_flows():
    source = _landmarks()
    shift_px = torch.tensor([4.0, -2.0])
    exemplar = source + shift_px * 2 / 40  # 4 px right, 2 px up
    identity = identity_flow(1, 40, 40)
    assert landmark_nme(identity, source, exemplar).item() == pytest.approx(math.hypot(4, 2) / 16)
    constant = (shift_px * 2 / 40).view(1, 2, 1, 1).expand(1, 2, 40, 40)
    assert landmark_nme(constant, source, exemplar).item() == pytest.approx(0, abs=1e-6)
    assert landmark_nme(identity, source, source).item() == 0


def test_foldover_of_known_flows():
    h, w = 8, 16
    assert foldover_ratio(identity_flow(1, h, w)).item() == 0
    xs = (2 * torch.arange(w) + 1) / w - 1
    mirror = torch.zeros(1, 2, h, w)
    mirror[:, 0] = -2 * xs  # p -> -p along x: everything folds
    assert foldover_ratio(mirror).item() == 1
    fold = torch.zeros(1, 2, h, w)
    fold[:, 0] = xs.abs() - xs  # p -> |p|: the left half folds onto the right
    # Cells between pixel columns 0..6 fold, column 7-8 straddles x = 0 (det 0), 8..14 do not.
    assert foldover_ratio(fold).item() == pytest.approx(7 / 15)


def test_format_table_marks_directions():
    table = format_table({"a": {"region_l1": 0.12345, "region_psnr": 20.0}})
    assert table.splitlines()[0] == "| method | region_l1 ↓ | region_psnr ↑ |"
    assert "| a | 0.1235 | 20.00 |" in table
    assert set(METRICS) >= {"region_l1", "mask_iou", "landmark_nme", "foldover"}


needs_samples = pytest.mark.samples("astronaut", "takeo", "lenna")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    from geogan_hf.synthetic import generate_synthetic_dataset

    path = tmp_path_factory.mktemp("eval") / "data"
    generate_synthetic_dataset(
        path, size=SIZE, num_train=3, num_eval=6, seed=5, show_progress=False
    )
    return path


@needs_samples
def test_prior_beats_naive_paste_on_ground_truth(data_dir):
    pairs = load_eval_pairs(str(data_dir), SIZE)
    assert len(pairs) == 6 and pairs.source.shape == (6, 3, SIZE, SIZE)
    assert 0 < pairs.region.mean() < 0.2
    # the instance's matte on the exemplar, aligned with it: about as much of it as of the
    # ground truth on the source (both crops show their face at the same scale; a goatee's
    # chin is deformed with the face's shape, up to twice as large)
    assert pairs.exemplar_mask.shape == (6, 1, SIZE, SIZE)
    ratio = pairs.exemplar_mask.sum((1, 2, 3)) / pairs.ground_truth_mask.sum((1, 2, 3))
    assert ((ratio > 0.4) & (ratio < 2.5)).all(), ratio
    naive = summarize(evaluate(naive_paste, pairs))
    prior = summarize(evaluate(geometry_prior_method, pairs))
    assert naive["foldover"] == 0 and naive["landmark_nme"] > 0.01
    # (a frame is placed as a flat object before the eyes: where two faces' turns differ,
    # the eye corners behind it are deliberately not landed exactly; prior.frame_map)
    assert prior["landmark_nme"] < 0.25 * naive["landmark_nme"]
    assert prior["region_l1"] < naive["region_l1"]
    assert prior["foldover"] < 0.01
    # The same pairs without their ground truth: the metrics that need none, same values
    # for the flow metrics, background measured outside the (larger) landmark region.
    photos = EvalPairs(
        pairs.source, pairs.exemplar, pairs.source_landmarks, pairs.exemplar_landmarks,
        pairs.attributes,
    )  # fmt: skip
    assert not photos.has_ground_truth and photos.region.sum() > pairs.region.sum()
    real = evaluate(geometry_prior_method, photos).metrics
    assert tuple(real) == NO_GROUND_TRUTH_METRICS and real["landmark_nme"].shape == (6,)
    with_truth = evaluate(geometry_prior_method, pairs).metrics
    np.testing.assert_allclose(real["landmark_nme"], with_truth["landmark_nme"])
    assert np.all(real["background_psnr"] > 30)


@needs_samples
def test_cli_prints_the_table_and_writes_the_grid(data_dir, tmp_path, capsys):
    grid = tmp_path / "grid.png"
    args = ["--model", "prior", "--data", str(data_dir), "--grid", str(grid), "--grid-pairs", "3"]
    assert run(build_parser().parse_args(args)) == 0
    out = capsys.readouterr().out
    assert "| pairs | region_l1 ↓ |" in out and "| Mustache |" in out and "| all |" in out
    with Image.open(grid) as image:
        assert image.width == 5 * SIZE and image.height > 3 * SIZE


@needs_samples
def test_cli_evaluates_a_saved_model_and_rejects_a_bad_one(data_dir, tmp_path, capsys):
    from geogan_hf.model import GeoGAN

    GeoGAN(image_size=SIZE, attributes=("Mustache", "Goatee"), ngf=4, n_blocks=1).save_pretrained(
        tmp_path / "model"
    )
    args = [
        "--model",
        str(tmp_path / "model"),
        "--data",
        str(data_dir),
        "--grid",
        str(tmp_path / "g.png"),
    ]
    assert run(build_parser().parse_args(args)) == 0
    out = capsys.readouterr().out
    assert "| Goatee |" in out and "Eyeglasses" not in out  # only the model's attributes
    (tmp_path / "bad").mkdir()
    with pytest.raises(ModelLoadError):
        run(build_parser().parse_args(["--model", str(tmp_path / "bad"), "--data", str(data_dir)]))
    with pytest.raises(DatasetError, match="not a geogan-synth dataset"):
        run(build_parser().parse_args(["--model", "prior", "--data", str(tmp_path / "bad")]))


@needs_samples
def test_console_script_reports_bad_data_in_one_line(tmp_path, capsys):
    from geogan_hf.cli import eval_main

    assert eval_main(["--model", "prior", "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: evaluation data folder not found") and "\n" not in err


def _write_pairs(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.samples("astronaut", "einstein", "lenna")
def test_cli_evaluates_real_photo_pairs_without_ground_truth(tmp_path, capsys):
    from geogan_hf.samples import load_sample

    astronaut, einstein, lenna = (load_sample(n).path for n in ("astronaut", "einstein", "lenna"))
    listing = _write_pairs(
        tmp_path / "pairs.jsonl",
        [
            {"source": str(astronaut), "exemplar": str(einstein), "attribute": "Mustache"},
            {"source": str(lenna), "exemplar": str(einstein), "attribute": "mustache"},
        ],
    )
    grid = tmp_path / "grid.png"
    args = ["--model", "prior", "--pairs", str(listing), "--size", str(SIZE), "--grid", str(grid)]
    assert run(build_parser().parse_args(args)) == 0
    out = capsys.readouterr().out
    assert "real photos" in out and "| landmark_nme ↓ |" in out and "region_l1" not in out
    row = next(line for line in out.splitlines() if line.startswith("| all |"))
    nme = float(row.split("|")[2])
    assert 0 < nme < 0.05  # the TPS carries the detected landmarks
    with Image.open(grid) as image:  # source | exemplar | result | mask
        assert image.width == 4 * SIZE and image.height > 2 * SIZE


@pytest.mark.samples("einstein", "breakingbad")
def test_photo_pairs_take_the_exemplar_as_the_pipeline_does(tmp_path):
    """Glasses from a face turned the other way are taken mirrored, a mustache is not."""
    from geogan_hf.evaluation import load_photo_pairs
    from geogan_hf.samples import load_sample

    einstein, breakingbad = (str(load_sample(n).path) for n in ("einstein", "breakingbad"))
    rows = [
        {"source": einstein, "exemplar": breakingbad, "attribute": a}
        for a in ("Eyeglasses", "Mustache")
    ]
    pairs = load_photo_pairs(_write_pairs(tmp_path / "pairs.jsonl", rows), SIZE)
    glasses, mustache = pairs.exemplar
    assert torch.equal(glasses, mustache.flip(-1))
    turns = [
        [float(face_turn(p)) for p in landmarks]
        for landmarks in (pairs.source_landmarks, pairs.exemplar_landmarks)
    ]
    assert turns[0][0] * turns[1][0] > 0 and turns[0][1] * turns[1][1] < 0


@pytest.mark.samples("astronaut")
def test_photo_pairs_report_bad_input_in_one_line(tmp_path, capsys):
    from geogan_hf.cli import eval_main
    from geogan_hf.samples import load_sample

    Image.new("RGB", (200, 200), "gray").save(tmp_path / "blank.png")
    face = str(load_sample("astronaut").path)
    cases = [
        ([{"source": face, "exemplar": "blank.png", "attribute": "Mustache"}],
         "error: no face found in the exemplar photo blank.png"),
        ([{"source": face, "exemplar": face, "attribute": "Mohawk"}],
         "error: unknown attribute 'Mohawk'"),
        ([{"source": face}], 'pairs.jsonl:1: expected {"source": PATH'),
        ([{"source": face, "exemplar": 3, "attribute": "Mustache"}], "pairs.jsonl:1: expected"),
        ([], "error: no photo pairs in"),
    ]  # fmt: skip
    for rows, message in cases:
        listing = _write_pairs(tmp_path / "pairs.jsonl", rows)
        assert eval_main(["--model", "prior", "--pairs", str(listing), "--size", "64"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, err
