"""``geogan-prepare``: add 68-point landmarks and face boxes to a face dataset, once.

Training reads the ``landmarks`` column instead of running a face detector on every row
(see :mod:`geogan_hf.data` for the column's convention). This command runs
:func:`~geogan_hf.landmarks.detect_faces` on every row with ``datasets.map`` (``--num_proc``
processes) and writes three columns:

- ``landmarks``: ``(68, 2)`` float32 (x, y) pixel coordinates of the largest face, or null;
- ``face_box``: ``(x0, y0, x1, y1)`` float32 pixels of that face, or null;
- ``has_face``: bool.

Rows without a face (or with an unreadable image) are dropped, or kept with
``has_face=False`` and null landmarks under ``--keep_faceless``; either way they are
counted. ``--attributes_file`` first adds the label columns of a CelebA-format attribute
file (:func:`geogan_hf.data.join_attributes`). The result is saved with ``save_to_disk``
(``--output_dir``, with a ``README.md`` dataset card naming the source dataset and its
licence, which training copies into the model card) and/or pushed to the Hub
(``--push_to_hub user/name``).

Example::

    geogan-prepare --dataset_name flwrlabs/celeba --dataset_config_name img_align+identity+attr \
        --output_dir data/celeba-landmarks --num_proc 8
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
from pathlib import Path
from typing import Any

import datasets
from huggingface_hub import DatasetCard, DatasetCardData

from geogan_hf.arguments import ranged
from geogan_hf.data import (
    dataset_terms,
    find_image_column,
    image_source,
    join_attributes,
    load_face_dataset,
    read_attributes_file,
)
from geogan_hf.errors import DatasetError, InvalidImageError
from geogan_hf.imageio import load_image
from geogan_hf.landmarks import LANDMARK_BACKENDS, detect_faces

__all__ = ["PrepareStats", "build_parser", "prepare_dataset", "run"]

logger = logging.getLogger(__name__)

LANDMARK_COLUMN = "landmarks"
BOX_COLUMN = "face_box"
HAS_FACE_COLUMN = "has_face"
_STATUS_COLUMN = "_geogan_prepare_status"
_OK, _NO_FACE, _UNREADABLE = "ok", "no_face", "unreadable_image"

_NEW_FEATURES = {
    LANDMARK_COLUMN: datasets.List(datasets.List(datasets.Value("float32"), length=2), length=68),
    BOX_COLUMN: datasets.List(datasets.Value("float32"), length=4),
    HAS_FACE_COLUMN: datasets.Value("bool"),
    _STATUS_COLUMN: datasets.Value("string"),
}


@dataclasses.dataclass
class PrepareStats:
    """Row counts of one preparation run."""

    rows: int
    with_face: int
    no_face: int
    unreadable_image: int
    kept: int

    def describe(self) -> str:
        """One line for people."""
        return (
            f"{self.rows} rows: {self.with_face} with a face, {self.no_face} without a face, "
            f"{self.unreadable_image} unreadable; {self.kept} kept"
        )


def _annotate(batch: dict[str, list[Any]], image_column: str, backend: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {name: [] for name in _NEW_FEATURES}
    for value in batch[image_column]:
        try:
            faces = detect_faces(load_image(image_source(value)), backend)
            status = _OK if faces else _NO_FACE
        except InvalidImageError as error:
            logger.warning("unreadable image: %s", error)
            faces, status = [], _UNREADABLE
        face = faces[0] if faces else None
        out[LANDMARK_COLUMN].append(None if face is None else face.landmarks.tolist())
        out[BOX_COLUMN].append(None if face is None else list(face.box))
        out[HAS_FACE_COLUMN].append(face is not None)
        out[_STATUS_COLUMN].append(status)
    return out


def prepare_dataset(
    dataset: datasets.Dataset,
    *,
    image_column: str | None = None,
    landmark_backend: str = "dlib",
    keep_faceless: bool = False,
    num_proc: int | None = None,
    batch_size: int = 16,
) -> tuple[datasets.Dataset, PrepareStats]:
    """Adds ``landmarks``, ``face_box`` and ``has_face`` columns (replacing existing ones).

    Args:
        dataset: a map-style dataset with an image column.
        image_column: the image column; ``None`` detects the first Image feature.
        landmark_backend: ``detect_faces`` backend.
        keep_faceless: keep rows without a face (``has_face=False``) instead of dropping them.
        num_proc: processes for ``datasets.map``.
        batch_size: rows per ``map`` batch.

    Returns:
        The enriched dataset and the row counts.
    """
    image_column = find_image_column(dataset.features, dataset.column_names, image_column)
    image_feature = dataset.features[image_column]
    existing = [name for name in _NEW_FEATURES if name in dataset.column_names]
    if existing:
        logger.info("replacing existing columns %s", existing)
        dataset = dataset.remove_columns(existing)
    if isinstance(image_feature, datasets.Image):
        # Undecoded cells: an unreadable file is counted instead of failing the map.
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    features = datasets.Features({**dataset.features, **_NEW_FEATURES})
    dataset = dataset.map(
        functools.partial(_annotate, image_column=image_column, backend=landmark_backend),
        batched=True,
        batch_size=batch_size,
        features=features,
        num_proc=num_proc if num_proc and num_proc > 1 else None,
        desc="Detecting landmarks",
    )
    statuses = list(dataset[_STATUS_COLUMN])
    if not keep_faceless:
        dataset = dataset.filter(
            lambda has_face: has_face, input_columns=HAS_FACE_COLUMN, desc="Dropping faceless rows"
        )
    dataset = dataset.remove_columns(_STATUS_COLUMN).cast_column(image_column, image_feature)
    stats = PrepareStats(
        rows=len(statuses),
        with_face=statuses.count(_OK),
        no_face=statuses.count(_NO_FACE),
        unreadable_image=statuses.count(_UNREADABLE),
        kept=len(dataset),
    )
    return dataset, stats


def write_dataset_card(
    output_dir: str, dataset_name: str, attributes_file: str | None, stats: PrepareStats
) -> None:
    """A ``README.md`` card for the prepared folder: the source's licence and Hub ids, so that
    a model trained on the folder names them (:func:`geogan_hf.data.dataset_terms`)."""
    terms = dataset_terms(dataset_name, attributes_file)
    card_data = DatasetCardData(
        license=terms.license,
        license_name=terms.license_name,
        license_link=terms.license_link,
        source_datasets=list(terms.datasets) or None,
    )
    labels = f" with the labels of `{attributes_file}`" if attributes_file else ""
    text = (
        f"---\n{card_data.to_yaml()}\n---\n\n# Faces with 68-point landmarks\n\n"
        f"`{dataset_name}`{labels}, prepared with `geogan-prepare` (geogan_hf): "
        f"{stats.describe()}. The source's terms apply.\n"
    )
    DatasetCard(text).save(Path(output_dir) / "README.md")


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``geogan-prepare``."""
    parser = argparse.ArgumentParser(
        prog="geogan-prepare",
        description="Add 68-point landmarks and face boxes to a face dataset for training.",
    )
    parser.add_argument(
        "--dataset_name",
        required=True,
        help="Hub dataset id, local imagefolder (metadata.jsonl/csv) or save_to_disk folder",
    )
    parser.add_argument("--dataset_config_name", default=None, help="dataset configuration")
    parser.add_argument("--split", default="train", help="split to prepare (default: train)")
    parser.add_argument("--image_column", default=None, help="default: the first Image feature")
    parser.add_argument(
        "--attributes_file",
        default=None,
        help="labels from a CelebA-format attribute file (list_attr_celeba.txt, "
        "CelebAMask-HQ-attribute-anno.txt), matched to the images by file name or row",
    )
    parser.add_argument("--output_dir", default=None, help="save_to_disk folder for the result")
    parser.add_argument("--push_to_hub", default=None, metavar="REPO", help="Hub dataset repo id")
    parser.add_argument("--private", action="store_true", help="create the Hub repo private")
    parser.add_argument(
        "--landmark_backend", default="dlib", choices=LANDMARK_BACKENDS, help="default: dlib"
    )
    parser.add_argument(
        "--keep_faceless",
        action="store_true",
        help="keep rows without a face (has_face=False, null landmarks) instead of dropping them",
    )
    parser.add_argument(
        "--num_proc", type=ranged(int, 1), default=1, help="processes for datasets.map"
    )
    parser.add_argument("--cache_dir", default=None, help="datasets cache folder")
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs ``geogan-prepare``; returns the exit code."""
    if args.output_dir is None and args.push_to_hub is None:
        raise DatasetError("give --output_dir and/or --push_to_hub")
    dataset = load_face_dataset(
        args.dataset_name,
        config_name=args.dataset_config_name,
        split=args.split,
        cache_dir=args.cache_dir,
    )
    if args.attributes_file is not None:
        table = read_attributes_file(args.attributes_file)
        dataset = join_attributes(dataset, table, image_column=args.image_column)
    dataset, stats = prepare_dataset(
        dataset,
        image_column=args.image_column,
        landmark_backend=args.landmark_backend,
        keep_faceless=args.keep_faceless,
        num_proc=args.num_proc,
    )
    print(stats.describe())
    logger.info("%s", stats.describe())
    if args.output_dir is not None:
        dataset.save_to_disk(args.output_dir)
        write_dataset_card(args.output_dir, args.dataset_name, args.attributes_file, stats)
        print(f"saved to {args.output_dir}")
    if args.push_to_hub is not None:
        dataset.push_to_hub(args.push_to_hub, split=args.split, private=args.private or None)
        print(f"pushed to https://huggingface.co/datasets/{args.push_to_hub}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(build_parser().parse_args()))
