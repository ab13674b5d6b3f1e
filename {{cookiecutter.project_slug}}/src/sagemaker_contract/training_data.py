"""Reading a training channel: CSV, label in the first column, no header.

That is the convention of SageMaker's built-in algorithms. A channel may hold any number of
files, in sub-directories too (File mode keeps the S3 key tree); gzipped files are read
decompressed, recognised by content rather than name. Every problem names the file and line,
and says what to change.
"""

from __future__ import annotations

import csv
import gzip
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ContractError


@dataclass(frozen=True)
class Dataset:
    """One channel's rows: `features` is a float array (rows x columns), `labels` one per row."""

    features: np.ndarray
    labels: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def feature_count(self) -> int:
        return int(self.features.shape[1])


def data_files(directory: Path) -> list[Path]:
    """The channel's data files in a stable order, skipping hidden files (e.g. `.manifest`)."""
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )


def _is_gzip(path: Path) -> bool:
    # Sniff rather than trust the name: with CompressionType=Gzip in File mode SageMaker hands
    # over the compressed objects under whatever names they have in S3.
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _lines(path: Path) -> Iterator[str]:
    try:
        opener = gzip.open if _is_gzip(path) else open
        with opener(path, "rt", encoding="utf-8", newline="") as handle:  # type: ignore[operator]
            yield from handle
    except UnicodeDecodeError:
        raise ContractError(f"{path} is not UTF-8 text; send CSV files (optionally gzipped)") from None
    except (OSError, EOFError) as error:
        raise ContractError(f"cannot read {path}: {error}") from None


def read_csv_channel(name: str, directory: Path) -> Dataset:
    """Read every file of a channel into one Dataset."""
    if not directory.is_dir():
        raise ContractError(
            f"channel {name!r} has no directory {directory}; give the training job a {name!r} "
            "channel (inputdataconfig.json lists the channels SageMaker delivered)"
        )
    files = data_files(directory)
    if not files:
        raise ContractError(
            f"channel {name!r} has no data files under {directory}; check the S3 prefix given for this channel"
        )
    labels: list[str] = []
    rows: list[list[float]] = []
    width: int | None = None
    first_row_at = ""
    for path in files:
        shown = path.relative_to(directory.parent)
        for number, record in enumerate(csv.reader(_lines(path)), start=1):
            if not record or all(not field.strip() for field in record):
                continue
            where = f"{shown} line {number}"
            if len(record) < 2:
                raise ContractError(
                    f"{where} has {len(record)} column; rows need the label first, then at least one feature"
                )
            if width is None:
                width, first_row_at = len(record) - 1, where
            elif len(record) - 1 != width:
                raise ContractError(
                    f"{where} has {len(record) - 1} features but {first_row_at} has {width}; "
                    "every row needs the same columns"
                )
            try:
                features = [float(field) for field in record[1:]]
            except ValueError:
                bad = next(f for f in record[1:] if not _is_number(f))
                hint = " (is there a header row? remove it)" if not rows else ""
                raise ContractError(
                    f"{where}: feature {bad.strip()!r} is not a number{hint}; features must be "
                    "numeric, with the label in the first column"
                ) from None
            labels.append(record[0].strip())
            rows.append(features)
    if not rows:
        raise ContractError(f"channel {name!r} has data files under {directory} but no rows")
    return Dataset(np.asarray(rows, dtype=np.float64), _label_array(labels), source=str(directory))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _label_array(labels: list[str]) -> np.ndarray:
    """Numbers when every label is a number (integers when all are whole), else strings."""
    try:
        numbers = [float(label) for label in labels]
    except ValueError:
        return np.asarray(labels, dtype=str)
    if all(math.isfinite(n) and n.is_integer() for n in numbers):
        return np.asarray(numbers, dtype=np.int64)
    return np.asarray(numbers, dtype=np.float64)
