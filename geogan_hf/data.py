"""Training data: face datasets, unpaired attribute sampling and flip augmentation.

Dataset layout (a Hub dataset, a local ``imagefolder`` or a ``save_to_disk`` folder):

- an image column (auto-detected: the first :class:`datasets.Image` feature);
- one label column per attribute, named like the CelebA attribute (``Mustache``; matched
  case-, space- and underscore-insensitively), or a field of that name in a dict column
  (``{"attributes": {"Mustache": True, ...}}``). Labels may be bools, 0/1 or -1/+1
  numbers, or the same written as strings (CSV metadata); an empty cell is a missing label.
  Datasets without labels (CelebA-HQ images) take them from an attribute file in CelebA's
  ``list_attr_celeba.txt`` format (:func:`read_attributes_file`, :func:`join_attributes`);
- optionally a ``landmarks`` column: 68 ``(x, y)`` points in pixel coordinates of the image
  as :func:`geogan_hf.imageio.load_image` returns it (EXIF orientation applied), as nested
  lists ``(68, 2)``, a flat list of 136 numbers or a JSON string of either; ``None`` marks a
  row without a face. ``geogan-prepare`` (:mod:`geogan_hf.prepare`) writes this column.
  Without it, landmarks are detected once per row when the dataset is built.

Unpaired sampling: per attribute ``y`` the usable rows split into a pool *with* ``y``
(exemplars) and a pool *without* ``y`` (sources). An epoch visits every (attribute, exemplar)
pair once in an order shuffled per epoch; each visit draws its source at random from the
pool without ``y``. Every draw is a pure function of ``(seed, epoch, index)``.

Streaming datasets (:class:`datasets.IterableDataset`) are materialised: the first
``max_rows`` rows (default :data:`DEFAULT_STREAMING_ROWS`) are read into memory with their
images still encoded, then used like a map-style dataset.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import re
import typing
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from huggingface_hub import DatasetCard
from PIL import Image
from tqdm.auto import tqdm

from geogan_hf.align import align_face, flip_landmarks
from geogan_hf.errors import DatasetError, InvalidImageError
from geogan_hf.geometry import pixel_to_normalized
from geogan_hf.imageio import load_image, pil_to_tensor
from geogan_hf.landmarks import detect_faces
from geogan_hf.regions import canonical_attribute

__all__ = [
    "CELEBA_TERMS",
    "DEFAULT_STREAMING_ROWS",
    "SKIP_REASONS",
    "UNREADABLE_SLOTS",
    "AttributeTable",
    "DataTerms",
    "DatasetError",
    "Draw",
    "PairedAttributeDataset",
    "dataset_terms",
    "find_attribute_columns",
    "find_image_column",
    "image_source",
    "is_saved_dataset",
    "join_attributes",
    "load_face_dataset",
    "parse_label",
    "parse_landmarks",
    "read_attributes_file",
]

logger = logging.getLogger(__name__)

DEFAULT_STREAMING_ROWS = 10_000
SKIP_REASONS = ("unreadable_image", "no_face", "missing_label", "bad_landmarks")
NUM_LANDMARKS = 68
_MAX_RETRIES = 20  # redraws when images turn out unreadable at draw time
UNREADABLE_SLOTS = 2 * _MAX_RETRIES  # length of an item's "unreadable_rows"

_TRUE_STRINGS = frozenset({"1", "1.0", "+1", "true", "t", "yes", "y"})
_FALSE_STRINGS = frozenset({"0", "0.0", "-1", "-1.0", "false", "f", "no", "n"})


class Draw(typing.NamedTuple):
    """What ``PairedAttributeDataset[index]`` is made of (row indices of the dataset)."""

    attribute: int
    source_row: int
    exemplar_row: int
    flip_source: bool
    flip_exemplar: bool


def is_saved_dataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    path = Path(path)
    single = (path / datasets.config.DATASET_INFO_FILENAME).is_file() and (
        path / datasets.config.DATASET_STATE_JSON_FILENAME
    ).is_file()
    return single or (path / datasets.config.DATASETDICT_JSON_FILENAME).is_file()


def load_face_dataset(
    dataset_name: str,
    *,
    config_name: str | None = None,
    split: str = "train",
    streaming: bool = False,
    cache_dir: str | None = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """Loads one split of a face dataset.

    Args:
        dataset_name: a Hub dataset id (``"user/celeba-faces"``), a local ``save_to_disk``
            folder (loaded with :func:`datasets.load_from_disk`), or any other local folder
            :func:`datasets.load_dataset` understands, e.g. an ``imagefolder`` with
            ``metadata.jsonl`` / ``metadata.csv`` or a folder of Parquet files.
        config_name: the dataset configuration (Hub datasets with several).
        split: the split to use.
        streaming: return an :class:`datasets.IterableDataset` instead of downloading.
        cache_dir: the ``datasets`` cache folder (default: the ``datasets`` default).

    Returns:
        The split as a :class:`datasets.Dataset` (or :class:`datasets.IterableDataset`).
    """
    if os.path.isdir(dataset_name) and is_saved_dataset(dataset_name):
        loaded = datasets.load_from_disk(dataset_name)
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DatasetError(
                    f"split {split!r} not in {dataset_name}; available splits: {', '.join(loaded)}"
                )
            loaded = loaded[split]
        return loaded.to_iterable_dataset() if streaming else loaded
    # Hub ids and other local folders take the same path: load_dataset infers the builder
    # (imagefolder, parquet, csv, ...) from the files.
    return datasets.load_dataset(
        dataset_name, config_name, split=split, streaming=streaming, cache_dir=cache_dir
    )


def _column_key(name: str) -> str:
    return name.lower().replace("_", "").replace(" ", "").replace("-", "")


def find_image_column(
    features: datasets.Features | None, column_names: Sequence[str], image_column: str | None = None
) -> str:
    """Returns the image column: ``image_column`` if given, else the first Image feature.

    Raises:
        DatasetError: the column does not exist, or there is no Image feature to detect;
            the message lists the available columns.
    """
    available = ", ".join(column_names)
    if image_column is not None:
        if image_column not in column_names:
            raise DatasetError(
                f"image column {image_column!r} not found; available columns: {available}"
            )
        return image_column
    for name, feature in (features or {}).items():
        if isinstance(feature, datasets.Image):
            return name
    raise DatasetError(
        f"no image column found (pass --image_column); available columns: {available}"
    )


def _label_candidates(features: datasets.Features) -> dict[str, str]:
    """Label column paths by comparison key: top-level columns, then fields of dict columns
    (``"attributes.Mustache"``); a top-level column wins over a field of the same name."""
    found: dict[str, str] = {}
    for name, feature in features.items():
        if isinstance(feature, dict):
            for field in feature:
                found.setdefault(_column_key(field), f"{name}.{field}")
    found.update({_column_key(name): name for name in features})
    return found


def find_attribute_columns(features: datasets.Features, attributes: Sequence[str]) -> list[str]:
    """Maps each attribute to its label column (names compared without case, spaces, ``_``).

    Returns:
        Column names, or ``"column.field"`` paths for fields of a dict column.

    Raises:
        UnknownAttributeError: an attribute is not supported.
        DatasetError: a label column is missing; the message lists the available columns.
    """
    by_key = _label_candidates(features)
    columns = []
    for attribute in attributes:
        canonical = canonical_attribute(attribute)
        if _column_key(canonical) not in by_key:
            raise DatasetError(
                f"no label column for attribute {canonical!r}; available columns: "
                f"{', '.join(datasets.Features(features).flatten())}"
            )
        columns.append(by_key[_column_key(canonical)])
    return columns


@dataclasses.dataclass(frozen=True)
class AttributeTable:
    """An attribute file: per line, an image file name and one bool per attribute."""

    path: str
    files: list[str]
    names: list[str]
    values: np.ndarray  # (len(files), len(names)) bool

    @property
    def features(self) -> datasets.Features:
        """The columns :func:`join_attributes` adds."""
        return datasets.Features({name: datasets.Value("bool") for name in self.names})


def read_attributes_file(path: str | os.PathLike) -> AttributeTable:
    """Reads an attribute file in CelebA's ``list_attr_celeba.txt`` format.

    The CelebAMask-HQ ``CelebAMask-HQ-attribute-anno.txt`` has the same format: a line with
    the number of images, a line of attribute names, then ``file v1 v2 ...`` per image with
    ``1`` (has it) and ``-1`` (or ``0``, has not).

    Raises:
        DatasetError: the file is missing or malformed (the message names the line).
    """
    try:
        lines = [line.split() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"cannot read attributes file {path}: {error}") from error
    lines = [line for line in lines if line]
    if len(lines) < 2 or len(lines[0]) != 1 or not lines[0][0].isdigit():
        raise DatasetError(
            f"{path}: not a CelebA attribute file (expected a count line, a header line, "
            f"then 'file v1 v2 ...' lines)"
        )
    names, rows = lines[1], lines[2:]
    if int(lines[0][0]) != len(rows):
        raise DatasetError(f"{path}: the first line says {lines[0][0]} images, {len(rows)} follow")
    values = np.zeros((len(rows), len(names)), dtype=bool)
    for i, row in enumerate(rows):
        if len(row) != len(names) + 1 or not set(row[1:]) <= {"1", "-1", "0"}:
            raise DatasetError(
                f"{path}, line {i + 3}: expected a file name and {len(names)} values of "
                f"1, -1 or 0, got {' '.join(row[:4])} ... ({len(row) - 1} values)"
            )
        values[i] = [v == "1" for v in row[1:]]
    return AttributeTable(str(path), [row[0] for row in rows], names, values)


def _file_stem(value: Any) -> str | None:
    """The file name without extension of an image cell's path, if it has one."""
    path = value.get("path") if isinstance(value, dict) else value
    return PurePath(path.replace("\\", "/")).stem if isinstance(path, str) and path else None


def join_attributes(
    dataset: datasets.Dataset,
    table: AttributeTable,
    *,
    image_column: str | None = None,
    partial: bool = False,
) -> datasets.Dataset:
    """Adds the attribute file's columns (bool) to the dataset, replacing same-named ones.

    Rows are matched by image file name without extension (``0.png`` matches the line of
    ``0.jpg``) when every image has a distinct file name, else by position (row ``i`` takes
    the file's line ``i``).

    Args:
        dataset: a map-style dataset with an image column.
        table: from :func:`read_attributes_file`.
        image_column: the image column; ``None`` detects the first Image feature.
        partial: the dataset is the first rows of a longer one (a truncated stream): matching
            by position then allows fewer rows than the file has.

    Raises:
        DatasetError: images without a line in the file (the message names the first ones),
            or, matched by position, row counts that differ.
    """
    image_column = find_image_column(dataset.features, dataset.column_names, image_column)
    cells = dataset.select_columns([image_column]).with_format("arrow")[:][image_column]
    stems = [_file_stem(cell) for cell in cells.to_pylist()]
    if all(stems) and len(set(stems)) == len(stems):
        line_of = {PurePath(name).stem: i for i, name in enumerate(table.files)}
        missing = [stem for stem in stems if stem not in line_of]
        if missing:
            raise DatasetError(
                f"{table.path}: {len(missing)} of {len(stems)} images have no line in it "
                f"(first: {', '.join(missing[:3])}); lines are matched to images by file "
                f"name without extension"
            )
        lines = np.array([line_of[stem] for stem in stems], dtype=np.int64)
        logger.info("attributes file %s: rows matched by file name", table.path)
    else:
        too_many = len(dataset) > len(table.files)
        if too_many or (not partial and len(dataset) != len(table.files)):
            raise DatasetError(
                f"{table.path} has {len(table.files)} lines and the dataset {len(dataset)} rows; "
                f"the images have no distinct file names, so rows are matched by position and "
                f"the counts must be equal"
            )
        lines = np.arange(len(dataset))
        logger.info("attributes file %s: rows matched by position", table.path)
    replaced = [name for name in table.names if name in dataset.column_names]
    if replaced:
        logger.info("attributes file %s replaces columns %s", table.path, replaced)
        dataset = dataset.remove_columns(replaced)
    labels = datasets.Dataset.from_dict(
        {name: table.values[lines, k] for k, name in enumerate(table.names)},
        features=table.features,
    )
    return datasets.concatenate_datasets([dataset, labels], axis=1)


@dataclasses.dataclass(frozen=True)
class DataTerms:
    """The terms of a training dataset, as Hub card metadata (``license``, ``license_name``,
    ``license_link``) and the Hub dataset ids the data comes from (``datasets``)."""

    license: str
    license_name: str | None = None
    license_link: str | None = None
    datasets: tuple[str, ...] = ()

    def card_kwargs(self) -> dict[str, Any]:
        """The ``model_card_kwargs`` of :meth:`geogan_hf.model.GeoGAN.generate_model_card`."""
        kwargs = {k: v for k, v in dataclasses.asdict(self).items() if v}
        if self.datasets:
            kwargs["datasets"] = list(self.datasets)
        return kwargs


# CelebA's release agreement: non-commercial research and educational use only. CelebA-HQ
# and CelebAMask-HQ are derived from CelebA under the same terms.
CELEBA_TERMS = DataTerms(
    license="other",
    license_name="celeba-dataset-release-agreement",
    license_link="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
)
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def _is_hub_id(name: str) -> bool:
    return bool(_HUB_ID.match(name)) and not os.path.exists(name)


def _dataset_card(dataset_name: str) -> DatasetCard | None:
    """The dataset's card: ``README.md`` of a local folder, or the Hub card (``None`` if
    there is none or it cannot be fetched)."""
    local = Path(dataset_name) / "README.md"
    try:
        if local.is_file():
            return DatasetCard.load(local)
        if _is_hub_id(dataset_name):
            return DatasetCard.load(dataset_name)
    except (OSError, ValueError) as error:  # offline, not found, bad YAML
        logger.info("no dataset card for %s (%s)", dataset_name, type(error).__name__)
    return None


def dataset_terms(dataset_name: str, attributes_file: str | None = None) -> DataTerms:
    """The terms a model trained on this dataset carries, for its card.

    In order: what the dataset's card declares (``license``, ``license_name``,
    ``license_link``; a relative link is resolved on the Hub), else CelebA's terms when the
    dataset, its sources or the attribute file are CelebA's (by name), else ``unknown``.
    ``datasets`` lists the Hub ids: the dataset itself and its card's ``source_datasets``
    (``geogan-prepare`` records them).
    """
    card = _dataset_card(dataset_name)
    meta = card.data.to_dict() if card is not None else {}
    hub_ids = [dataset_name] if _is_hub_id(dataset_name) else []
    hub_ids += [s for s in meta.get("source_datasets") or () if _HUB_ID.match(str(s))]
    hub_ids = list(dict.fromkeys(hub_ids))
    declared = meta.get("license")
    if isinstance(declared, list):
        declared = declared[0] if len(declared) == 1 else None
    if declared and declared != "unknown":
        link = meta.get("license_link")
        if link and "://" not in link:
            link = (
                f"https://huggingface.co/datasets/{dataset_name}/blob/main/{link}"
                if _is_hub_id(dataset_name)
                else None
            )
        return DataTerms(declared, meta.get("license_name"), link, tuple(hub_ids))
    named = " ".join([dataset_name, attributes_file or "", *hub_ids]).lower()
    if "celeba" in named:
        return dataclasses.replace(CELEBA_TERMS, datasets=tuple(hub_ids))
    return DataTerms("unknown", datasets=tuple(hub_ids))


def parse_label(value: Any) -> bool | None:
    """Reads an attribute label: bool, 0/1 or -1/+1 (numbers or strings); ``None`` if missing.

    Any other value (``None``, NaN, ``""``, ``2``, ``"maybe"``) counts as a missing label.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float | np.integer | np.floating):
        if value == 1:
            return True
        return False if value in (0, -1) else None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_STRINGS:
            return True
        if text in _FALSE_STRINGS:
            return False
    return None


def parse_landmarks(value: Any) -> np.ndarray | None:
    """Reads one row's landmarks as ``(68, 2)`` float32, or ``None`` for "no face".

    Accepts nested ``(68, 2)`` or flat 136-number sequences, arrays, or their JSON text.

    Raises:
        ValueError: not 68 finite points.
    """
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else None
    if value is None:
        return None
    points = np.asarray(value, dtype=np.float32)
    if points.size != 2 * NUM_LANDMARKS or not np.isfinite(points).all():
        raise ValueError(f"expected {NUM_LANDMARKS} finite (x, y) points, got shape {points.shape}")
    return points.reshape(NUM_LANDMARKS, 2)


def _class_label(feature: datasets.ClassLabel, value: int | None) -> Any:
    """A ClassLabel cell as its name when the name is a label ("-1", "True"), else its index."""
    if value is None or value < 0:
        return None
    name = feature.int2str(value)
    return name if parse_label(name) is not None else value


def _is_list(pa_type: pa.DataType) -> bool:
    return (
        pa.types.is_list(pa_type)
        or pa.types.is_large_list(pa_type)
        or pa.types.is_fixed_size_list(pa_type)
    )


def _list_lengths(array: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)])


def _landmark_column(array: pa.ChunkedArray) -> tuple[np.ndarray, list[str | None]]:
    """Landmarks of a whole column without going through Python objects when possible.

    Returns:
        ``(N, 68, 2)`` float32 (NaN where unusable) and, per row, ``None`` (usable) or the
        skip reason (``"no_face"`` for null, ``"bad_landmarks"``).
    """
    array = array.combine_chunks()
    nested = _is_list(array.type) and _is_list(array.type.value_type)
    flat = _is_list(array.type) and not nested
    numeric_leaf = array.type
    while _is_list(numeric_leaf):
        numeric_leaf = numeric_leaf.value_type
    if not (nested or flat) or not (
        pa.types.is_floating(numeric_leaf) or pa.types.is_integer(numeric_leaf)
    ):
        return _landmark_column_slow(array.to_pylist())

    outer = _list_lengths(array)
    values = pc.list_flatten(array)  # skips null rows
    if len(values) != outer.sum():
        return _landmark_column_slow(array.to_pylist())
    if nested:
        inner = _list_lengths(values)
        values = pc.list_flatten(values)
        if len(values) != inner.sum():
            return _landmark_column_slow(array.to_pylist())
        point_offsets = _offsets(outer)
        if (inner == 2).all():
            value_offsets = 2 * point_offsets
            ok = outer == NUM_LANDMARKS
        else:
            value_offsets = _offsets(inner)[point_offsets]
            odd_points = _offsets(inner != 2)[point_offsets]
            ok = (outer == NUM_LANDMARKS) & (np.diff(odd_points) == 0)
    else:
        value_offsets = _offsets(outer)
        ok = outer == 2 * NUM_LANDMARKS
    numbers = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    out = np.empty((len(array), NUM_LANDMARKS, 2), dtype=np.float32)
    if np.array_equal(np.diff(value_offsets) > 0, ok):  # the usual case: values are contiguous
        out[ok] = numbers.reshape(-1, NUM_LANDMARKS, 2)
    else:
        gather = value_offsets[:-1][ok][:, None] + np.arange(2 * NUM_LANDMARKS)
        out[ok] = numbers[gather].reshape(-1, NUM_LANDMARKS, 2)
    out[~ok] = np.nan
    finite = np.isfinite(out).all(axis=(1, 2))
    is_null = array.is_null().to_numpy(zero_copy_only=False)
    reasons = [
        None if good else ("no_face" if null else "bad_landmarks")
        for good, null in zip(finite, is_null)
    ]
    return out, reasons


def _landmark_column_slow(values: list[Any]) -> tuple[np.ndarray, list[str | None]]:
    out = np.full((len(values), NUM_LANDMARKS, 2), np.nan, dtype=np.float32)
    reasons: list[str | None] = []
    for i, value in enumerate(values):
        try:
            points = parse_landmarks(value)
        except ValueError:
            reasons.append("bad_landmarks")
            continue
        if points is None:
            reasons.append("no_face")
        else:
            out[i] = points
            reasons.append(None)
    return out, reasons


def image_source(value: Any) -> Any:
    """What :func:`load_image` needs from an image cell (``Image(decode=False)`` dict, path, ...)."""
    if isinstance(value, dict):
        return value.get("bytes") or value.get("path")
    return value


def _materialize(
    dataset: datasets.IterableDataset, max_rows: int, show_progress: bool
) -> datasets.Dataset:
    rows = list(
        tqdm(
            itertools.islice(dataset, max_rows + 1),
            desc="Reading streamed rows",
            total=max_rows,
            disable=not show_progress,
        )
    )
    if len(rows) > max_rows:
        logger.warning(
            "streaming dataset: using its first %d rows (raise max_rows to use more)", max_rows
        )
        rows = rows[:max_rows]
    return datasets.Dataset.from_list(rows, features=dataset.features)


class PairedAttributeDataset(torch.utils.data.Dataset):
    """Unpaired (source without y, exemplar with y) draws for GeoGAN training.

    Construction scans the rows once: labels, then landmarks (the landmark column, else
    ``detect_faces`` on every labelled row, with a progress bar; the result is kept for the
    run). Bad rows are skipped and counted in :attr:`skipped`. With a landmark column the
    images are only decoded in ``__getitem__``; an image that turns out unreadable there is
    counted (in this process), never drawn again, and replaced by another draw from the
    same pool.

    Args:
        dataset: a :class:`datasets.Dataset` or :class:`datasets.IterableDataset`.
        attributes: attribute names (CelebA), each with a label column (or a column of
            ``attributes_file``).
        resolution: side of the aligned square crops.
        image_column: the image column; ``None`` detects the first Image feature.
        landmark_column: column of precomputed landmarks; when it is absent (or ``None``),
            landmarks are detected with ``landmark_backend``.
        landmark_backend: ``detect_faces`` backend for rows without precomputed landmarks.
        flip_prob: probability of a horizontal flip, drawn separately for source and exemplar.
        seed: seed of every draw.
        show_progress: show tqdm bars while scanning.
        max_rows: use only the first ``max_rows`` rows; for a streaming dataset, the number
            of rows read into memory (``None``: :data:`DEFAULT_STREAMING_ROWS`).
        attributes_file: labels from a CelebA-format attribute file, joined to the rows by
            :func:`join_attributes` (before ``max_rows`` is applied).

    Raises:
        DatasetError: a missing column, or an attribute with an empty pool.
        UnknownAttributeError: an unsupported attribute name.

    Items are dicts: ``"source"``, ``"exemplar"``: float32 ``(3, R, R)`` in [-1, 1];
    ``"source_landmarks"``, ``"exemplar_landmarks"``: float32 ``(68, 2)`` normalized;
    ``"attribute"``: int64 scalar, index into :attr:`attributes`; ``"unreadable_rows"``:
    int64 ``(UNREADABLE_SLOTS,)``, the rows this draw found unreadable, padded with -1 (see
    :meth:`record_unreadable`).
    """

    def __init__(
        self,
        dataset: datasets.Dataset | datasets.IterableDataset,
        attributes: Sequence[str],
        resolution: int,
        *,
        image_column: str | None = None,
        landmark_column: str | None = "landmarks",
        landmark_backend: str = "dlib",
        flip_prob: float = 0.5,
        seed: int = 0,
        show_progress: bool = True,
        max_rows: int | None = None,
        attributes_file: str | os.PathLike | None = None,
    ) -> None:
        if isinstance(attributes, str):
            attributes = [attributes]
        self.attributes: tuple[str, ...] = tuple(canonical_attribute(a) for a in attributes)
        if not self.attributes:
            raise DatasetError("no attributes given")
        self.resolution = int(resolution)
        self.flip_prob = float(flip_prob)
        self.seed = int(seed)
        self.epoch = 0
        self.landmark_backend = landmark_backend

        if isinstance(dataset, datasets.IterableDataset) and dataset.features is None:
            dataset = dataset._resolve_features()  # reads the first rows to infer the features
        self.image_column = find_image_column(dataset.features, dataset.column_names, image_column)
        table = read_attributes_file(attributes_file) if attributes_file is not None else None
        label_columns = find_attribute_columns(
            dataset.features if table is None else table.features, self.attributes
        )
        if isinstance(dataset.features.get(self.image_column), datasets.Image):
            # Decode ourselves, so that one unreadable file is a skipped row, not a crash.
            dataset = dataset.cast_column(self.image_column, datasets.Image(decode=False))
        streamed = isinstance(dataset, datasets.IterableDataset)
        if streamed:
            dataset = _materialize(dataset, max_rows or DEFAULT_STREAMING_ROWS, show_progress)
        if table is not None:
            dataset = join_attributes(
                dataset, table, image_column=self.image_column, partial=streamed
            )
        if not streamed and max_rows is not None and max_rows < len(dataset):
            dataset = dataset.select(range(max_rows))
        dataset = dataset.with_format(None)
        self._images = dataset.select_columns([self.image_column])
        self.skipped: Counter[str] = Counter()
        self._unreadable: set[int] = set()

        labels, labelled = self._scan_labels(dataset, label_columns)
        if landmark_column is not None and landmark_column in dataset.column_names:
            self.landmarks, reasons = _landmark_column(
                dataset.select_columns([landmark_column]).with_format("arrow")[:][landmark_column]
            )
            self.landmarks_source = f"column {landmark_column!r}"
        else:
            self.landmarks, reasons = self._detect_all(labelled, show_progress)
            self.landmarks_source = f"detected ({landmark_backend})"
        self.skipped["missing_label"] = int((~labelled).sum())
        self.skipped.update(r for r, ok in zip(reasons, labelled) if ok and r is not None)
        self.skipped = +self.skipped  # drop zero counts
        usable = labelled & np.array([r is None for r in reasons], dtype=bool)
        self.num_rows = int(usable.sum())

        self.pools_with: list[np.ndarray] = []
        self.pools_without: list[np.ndarray] = []
        for k, attribute in enumerate(self.attributes):
            with_y = np.flatnonzero(usable & labels[:, k])
            without_y = np.flatnonzero(usable & ~labels[:, k])
            if len(with_y) == 0 or len(without_y) == 0:
                raise DatasetError(
                    f"attribute {attribute!r} needs rows with and without it; usable rows: "
                    f"{len(with_y)} with, {len(without_y)} without ({self.num_skipped} skipped: "
                    f"{dict(self.skipped)})"
                )
            self.pools_with.append(with_y)
            self.pools_without.append(without_y)
        self._offsets = _offsets(np.array([len(p) for p in self.pools_with]))
        self._order_epoch: int | None = None
        self._order = np.empty(0, np.int64)
        logger.info("%s", self.describe())
        if self.num_skipped:
            logger.warning("skipped %d bad rows: %s", self.num_skipped, dict(self.skipped))

    @property
    def num_skipped(self) -> int:
        """Rows skipped so far: at construction, plus images found unreadable in this process
        or reported through :meth:`record_unreadable`."""
        return sum(self.skipped.values())

    def describe(self) -> str:
        """One line: rows used, pool sizes per attribute, skipped rows by reason."""
        pools = ", ".join(
            f"{a}: {len(w)} with / {len(wo)} without"
            for a, w, wo in zip(self.attributes, self.pools_with, self.pools_without)
        )
        return (
            f"{self.num_rows} usable rows (landmarks: {self.landmarks_source}); {pools}; "
            f"skipped {self.num_skipped} {dict(self.skipped)}"
        )

    def _scan_labels(
        self, dataset: datasets.Dataset, columns: list[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Labels ``(N, K)`` bool and, per row, whether every label is present ``(N,)``."""
        top = list(
            dict.fromkeys(c if c in dataset.column_names else c.split(".")[0] for c in columns)
        )
        # flatten: fields of dict columns become "column.field" columns
        table = dataset.select_columns(top).with_format("arrow")[:].flatten()
        features = datasets.Features(dataset.features).flatten()
        labels = np.zeros((len(dataset), len(columns)), dtype=bool)
        present = np.ones(len(dataset), dtype=bool)
        for k, column in enumerate(columns):
            values = table.column(column).to_pylist()
            feature = features[column]
            if isinstance(feature, datasets.ClassLabel):
                values = [_class_label(feature, v) for v in values]
            parsed = [parse_label(v) for v in values]
            labels[:, k] = [v is True for v in parsed]
            present &= np.array([v is not None for v in parsed], dtype=bool)
        return labels, present

    def _detect_all(
        self, labelled: np.ndarray, show_progress: bool
    ) -> tuple[np.ndarray, list[str | None]]:
        """Landmarks of the largest face of every labelled row (unlabelled rows are skipped)."""
        out = np.full((len(labelled), NUM_LANDMARKS, 2), np.nan, dtype=np.float32)
        reasons: list[str | None] = [None] * len(labelled)
        rows = np.flatnonzero(labelled).tolist()
        for row in tqdm(rows, desc="Detecting landmarks", disable=not show_progress):
            try:
                faces = detect_faces(self._read_image(row), self.landmark_backend)
            except InvalidImageError as error:
                logger.debug("row %d: %s", row, error)
                reasons[row] = "unreadable_image"
                continue
            if faces:
                out[row] = faces[0].landmarks
            else:
                reasons[row] = "no_face"
        return out, reasons

    def _read_image(self, row: int) -> Image.Image:
        return load_image(image_source(self._images[row][self.image_column]))

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose draws ``__getitem__`` returns.

        Call it before each epoch; DataLoader workers see it only when they are started after
        the call (the default ``persistent_workers=False``).
        """
        self.epoch = int(epoch)

    def _epoch_order(self) -> np.ndarray:
        if self._order_epoch != self.epoch:
            self._order = np.random.default_rng([self.seed, self.epoch, 0, 2]).permutation(
                len(self)
            )
            self._order_epoch = self.epoch
        return self._order

    def draw(self, index: int) -> Draw:
        """The attribute, rows and flips of item ``index`` in the current epoch."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} draws")
        position = int(self._epoch_order()[index])
        k = int(np.searchsorted(self._offsets, position, side="right") - 1)
        exemplar = self.pools_with[k][position - self._offsets[k]]
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        source = self.pools_without[k][rng.integers(len(self.pools_without[k]))]
        flips = rng.random(2) < self.flip_prob
        return Draw(k, int(source), int(exemplar), bool(flips[0]), bool(flips[1]))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        draw = self.draw(index)
        rng = np.random.default_rng([self.seed, self.epoch, index, 3])
        k = draw.attribute
        found: list[int] = []
        source, source_points = self._load(
            draw.source_row, draw.flip_source, self.pools_without[k], rng, found
        )
        exemplar, exemplar_points = self._load(
            draw.exemplar_row, draw.flip_exemplar, self.pools_with[k], rng, found
        )
        unreadable = torch.full((UNREADABLE_SLOTS,), -1, dtype=torch.long)
        unreadable[: len(found)] = torch.as_tensor(found, dtype=torch.long)
        return {
            "source": source,
            "exemplar": exemplar,
            "source_landmarks": source_points,
            "exemplar_landmarks": exemplar_points,
            "attribute": torch.tensor(k, dtype=torch.long),
            "unreadable_rows": unreadable,
        }

    @property
    def unreadable_rows(self) -> frozenset[int]:
        """Rows known to hold unreadable images (found here or recorded)."""
        return frozenset(self._unreadable)

    def record_unreadable(self, rows: Iterable[int]) -> int:
        """Counts rows found unreadable in another copy of this dataset; returns how many were new.

        DataLoader workers decode images in their own copies, so their findings never reach
        this object's :attr:`skipped` by themselves; each item reports them instead, as
        ``item["unreadable_rows"]`` (row indices, padded with -1). Pass those here (a
        training loop does it for its batches); rows already known count once.
        """
        new = {int(r) for r in rows if r >= 0} - self._unreadable
        self._unreadable |= new
        if new:
            self.skipped["unreadable_image"] += len(new)
        return len(new)

    def _load(
        self,
        row: int,
        flip: bool,
        pool: np.ndarray,
        rng: np.random.Generator,
        found: list[int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Aligned, optionally flipped crop of ``row``; redraws from ``pool`` if it is unreadable.

        Rows found unreadable here are appended to ``found``.
        """
        for _ in range(_MAX_RETRIES):
            if row not in self._unreadable:
                try:
                    return self.aligned(row, flip)
                except InvalidImageError as error:
                    self._unreadable.add(row)
                    self.skipped["unreadable_image"] += 1
                    found.append(row)
                    logger.warning("skipping row %d: %s", row, error)
            row = int(pool[rng.integers(len(pool))])
        raise DatasetError(f"{_MAX_RETRIES} draws in a row found unreadable images")

    def aligned(self, row: int, flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Row ``row`` aligned to the canonical crop: image ``(3, R, R)`` and normalized landmarks.

        Raises:
            InvalidImageError: the row's image cannot be read.
        """
        face = align_face(
            self._read_image(row), self.landmarks[row].astype(np.float64), size=self.resolution
        )
        image, points = face.image, np.asarray(face.landmarks, dtype=np.float64)
        if flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            points = flip_landmarks(points, self.resolution)
        size = (self.resolution, self.resolution)
        normalized = pixel_to_normalized(torch.as_tensor(points, dtype=torch.float32), size)
        return pil_to_tensor(image)[0].float(), normalized
