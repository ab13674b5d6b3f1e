"""Reading a training channel: CSV, label in the first column, no header.

That is the convention of SageMaker's built-in algorithms. A channel may hold any number of
files, in sub-directories too (File mode keeps the S3 key tree); gzipped files are read
decompressed, recognised by content rather than name. Every problem names the file and line,
and says what to change.

Rows are parsed by numpy's C CSV reader (numpy.loadtxt) a block at a time, straight into one
float32 matrix that grows in place, so reading a channel holds little more than the matrix it
makes. A large channel of plain (not gzipped) files is cut at line ends into a part per CPU,
parsed by forked children at once into one shared matrix (parallel.py). A channel is read
whole when its matrix, and as much again for training on it, fits the memory the container has
left; otherwise it stays on disk and `Dataset.batches()` streams it, for algorithms that train
from batches (XGBoost's external memory, or running sums). Asking a
channel that does not fit for all its rows at once (`.features`) stops with one line giving the
memory it needs and an instance type that has it, before the kernel's OOM killer would.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import itertools
import logging
import math
import mmap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ContractError
from .memory import MEBIBYTE, container_memory_bytes, instance_with_memory, mb, resident_bytes, safety_margin
from .parallel import ChildFailed, Forked, forked_map, usable_cpus

log = logging.getLogger(__name__)

# Rows are parsed this much matrix at a time. numpy's reader holds several times a block while
# parsing it (measured about 4x), so blocks stay small next to the matrix, yet large enough that
# the per-call cost vanishes (4 MB: 87,000 rows of 10 features, 10,000 rows of 100).
BLOCK_BYTES = 4 * MEBIBYTE
CONVERT_ROWS = 65_536  # labels turned into integers this many at a time
# A channel is parsed on several CPUs when each gets at least this much plain CSV: below it,
# forking and counting lines cost more than they save.
PART_MIN_BYTES = 8 * MEBIBYTE
# What a parsing child may hold besides its share of the matrix: numpy's buffers for a block,
# and the pages of the parent's heap it touches (copy on write). Measured about 13 MB.
CHILD_BYTES = 32 * MEBIBYTE
# Training on a matrix is assumed to need as much memory again as the matrix (a decision tree's
# sample indices, sorted feature values and label copies: measured under that for scikit-learn).
TRAINING_ALLOWANCE = 1.0
# How much of the first file is looked at to estimate the bytes per row.
SAMPLE_BYTES = 1024 * 1024


def data_files(directory: Path) -> list[Path]:
    """The channel's data files in a stable order, skipping hidden files (e.g. `.manifest`)."""
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )


def read_csv_channel(name: str, directory: Path) -> Dataset:
    """A channel's files as one Dataset: read now when it fits in memory, else streamed on demand."""
    dataset = open_csv_channel(name, directory)
    dataset.finish_loading()
    return dataset


def open_csv_channel(name: str, directory: Path) -> Dataset:
    """A channel's files as one Dataset, none of its rows read yet (its first row checked)."""
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
    return Dataset(source=str(directory), channel=_Channel.open(name, directory, files))


class Dataset:
    """One channel's rows: `features` (rows x columns, float32, column-major) and `labels`, one per row.

    Labels are integers when every label is a whole number, floats when all are numbers, else
    strings. `batches()` gives the rows a block at a time without holding them all.
    """

    def __init__(
        self,
        features: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        source: str = "",
        *,
        channel: _Channel | None = None,
        rows: slice = slice(None),
    ) -> None:
        if channel is None and (features is None or labels is None):
            raise TypeError("a Dataset needs features and labels, or a channel to read them from")
        self._features = features
        self._labels = labels
        self.source = source
        self._channel = channel
        # Of a channel's rows, these only (start and step: every host's share of a replicated channel).
        self._rows = (rows.start or 0, rows.step or 1)
        self._pending: _ParallelRead | None = None  # started by start_loading(), finished by load()

    def share(self, rank: int, hosts: int) -> Dataset:
        """Every `hosts`-th row from row `rank`: one host's share when several train as one job.
        Rows held in memory are taken from them; rows on disk stay there, read a share at a time."""
        if self._features is not None:
            assert self._labels is not None
            rows = slice(rank, None, hosts)
            return Dataset(self._features[rows], self._labels[rows], source=self.source)
        assert self._channel is not None and self._rows == (0, 1)
        shared = Dataset(source=self.source, channel=self._channel, rows=slice(rank, None, hosts))
        shared.finish_loading()
        return shared

    def __repr__(self) -> str:
        held = "in memory" if self._features is not None else "on disk"
        return f"Dataset({self.source or 'arrays'}, {self.feature_count} features, {held})"

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def loaded(self) -> bool:
        """Whether every row's features are held in memory (else they stay on disk until used)."""
        return self._features is not None

    @property
    def feature_count(self) -> int:
        if self._features is not None:
            return int(self._features.shape[1])
        assert self._channel is not None
        return self._channel.width

    @property
    def features(self) -> np.ndarray:
        """Every row's features, read into memory on first use (see `fits_in_memory`)."""
        if self._features is None:
            self.load()
        assert self._features is not None
        return self._features

    @property
    def labels(self) -> np.ndarray:
        """Every row's label; when the features do not fit in memory, only the labels are read."""
        if self._labels is None:
            if self.fits_in_memory():
                self.load()
            else:
                assert self._channel is not None
                try:
                    self._labels = _final_labels([labels for _, labels in self._blocks(strict=True)])
                except _TextLabels:
                    self._channel.text_labels = True  # as load() does; later batches give text too
                    self._labels = _final_labels([labels for _, labels in self._blocks()])
        assert self._labels is not None
        return self._labels

    def in_memory_bytes(self) -> int:
        """The memory the features and labels take (estimated from file sizes until read)."""
        if self._features is not None:
            assert self._labels is not None
            return int(self._features.nbytes + self._labels.nbytes)
        assert self._channel is not None
        return self._estimated_rows() * self._channel.row_bytes

    def _estimated_rows(self) -> int:
        assert self._channel is not None
        start, step = self._rows
        return max(0, math.ceil((self._channel.estimated_rows() - start) / step))

    def _blocks(self, rows: int | None = None, strict: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The channel's blocks (see _Channel.blocks), of this dataset's rows only."""
        assert self._channel is not None
        start, step = self._rows
        if (start, step) == (0, 1):
            yield from self._channel.blocks(rows, strict)
            return
        seen = 0
        for features, labels in self._channel.blocks(rows, strict):
            taken = (np.arange(seen, seen + len(labels)) - start) % step == 0
            seen += len(labels)
            if taken.any():
                yield np.ascontiguousarray(features[taken]), labels[taken]

    def fits_in_memory(self) -> bool:
        """Whether all rows, and as much again for training on them, fit the memory left."""
        if self._features is not None:
            return True
        return _needed(self.in_memory_bytes()) <= memory_left()[0]

    def batches(self, rows: int | None = None) -> Iterator[Dataset]:
        """The rows, up to `rows` at a time (default: about 4 MB of matrix), each batch a Dataset
        held in memory, in the order of `features`. Read from disk again on every call, unless the
        whole channel is in memory already. Numeric labels of batches read from disk are floats:
        match them against `numpy.unique(data.labels)` with `numpy.searchsorted`."""
        if self._features is not None:
            assert self._labels is not None
            rows = rows or max(1, BLOCK_BYTES // (self._features.itemsize * self.feature_count + 8))
            for start in range(0, len(self._labels), rows):
                yield Dataset(self._features[start : start + rows], self._labels[start : start + rows], self.source)
            return
        assert self._channel is not None
        for features, labels in self._blocks(rows):
            yield Dataset(features, labels, self.source)

    def start_loading(self, room: int = 0) -> bool:
        """Start reading every row on all CPUs in the background, when the channel is large enough
        to gain from it and its matrix, as much again for training and `room` more fit the memory
        left; whether it started. `finish_loading()` or `load()` then wait for the rows;
        `cancel_loading()` stops the reading."""
        if self._features is not None or self._pending is not None:
            return False
        assert self._channel is not None
        left, limit, source = memory_left()
        if self._channel.text_labels or self._rows != (0, 1) or _needed(self.in_memory_bytes()) + room > left:
            return False
        self._pending = _ParallelRead.start(self._channel, left - room, limit, source)
        return self._pending is not None

    def finish_loading(self) -> None:
        """Hold every row in memory if they fit, with as much again for training on them (waiting
        for a reading start_loading() began); else leave them on disk, to be streamed by batches()."""
        if not self._finish_pending() and self.fits_in_memory():
            self.load()

    def cancel_loading(self) -> None:
        """Stop a reading started by start_loading() and give back its memory."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.stop()

    def load(self) -> None:
        """Read every row into memory, or stop with the memory it needs (ContractError)."""
        if self._features is not None:
            return
        assert self._channel is not None
        if self._finish_pending():
            return
        left, limit, source = memory_left()
        if _needed(self.in_memory_bytes()) > left:
            raise _too_large(self._channel, self._estimated_rows(), left, limit, source)
        try:
            self._features, self._labels = self._read_all(left, limit, source)
        except _TextLabels:
            self._channel.text_labels = True  # a label further down is text: read them all as text
            self._features, self._labels = self._read_all(left, limit, source)

    def _finish_pending(self) -> bool:
        """Take the rows a reading started by start_loading() parsed, if training on them still
        fits the memory left (memory was taken since: the model's libraries were imported).
        False when there was no such reading, it failed, or the rows no longer fit."""
        pending, self._pending = self._pending, None
        read = pending.finish() if pending is not None else None
        if read is None:
            return False
        features, labels = read
        if int((features.nbytes + labels.nbytes) * TRAINING_ALLOWANCE) > memory_left()[0]:
            return False  # the shared matrix is given back with the last reference to it
        self._features, self._labels = features, labels
        return True

    def _read_all(self, left: int, limit: int, source: str) -> tuple[np.ndarray, np.ndarray]:
        channel = self._channel
        assert channel is not None
        whole = not channel.text_labels and self._rows == (0, 1)
        pending = _ParallelRead.start(channel, left, limit, source) if whole else None
        if pending is not None:
            try:
                read = pending.finish()
            finally:
                pending.stop()
            if read is not None:
                return read
        width = channel.width
        # Column-major (each feature's values contiguous), as scikit-learn's trees read them:
        # otherwise it makes a column-major copy, and splits read a column scattered over the
        # whole matrix. Allocated once from the estimate (pages untouched until filled cost
        # nothing) and compacted in place at the end, so the matrix is never held twice; numeric
        # labels grow alongside by ndarray.resize (realloc remaps large blocks, no copy).
        capacity = int(self._estimated_rows() * 1.1) + channel.block_rows
        columns = np.empty((width, capacity), dtype=np.float32)
        numbers = np.empty(0 if channel.text_labels else capacity, dtype=np.float64)
        texts: list[np.ndarray] = []
        count = 0
        for block, labels in self._blocks(strict=True):
            if count + len(block) > capacity:
                # Longer than estimated (rows much shorter than the first file's): a larger
                # matrix, the rows so far copied over once.
                grown_capacity = max(count + len(block), int(capacity * 1.25))
                if _needed(grown_capacity * channel.row_bytes) + columns.nbytes > left:
                    raise _too_large(channel, grown_capacity, left, limit, source)
                grown = np.empty((width, grown_capacity), dtype=np.float32)
                grown[:, :count] = columns[:, :count]
                columns, capacity = grown, grown_capacity
                if not channel.text_labels:
                    numbers.resize(capacity, refcheck=False)
            columns[:, count : count + len(block)] = block.T
            if channel.text_labels:
                texts.append(labels)
            else:
                numbers[count : count + len(block)] = labels
            count += len(block)
        if count == 0 and self._rows == (0, 1):  # (a host's share of a few rows may be none)
            raise ContractError(f"channel {channel.name!r} has data files under {channel.directory} but no rows")
        # Move each feature's values next to the previous one's, then give back the rest.
        flat = columns.reshape(-1)
        for feature in range(1, width):
            flat[feature * count : (feature + 1) * count] = flat[feature * capacity : feature * capacity + count]
        del flat
        columns.resize((width, count), refcheck=False)
        features = columns.T
        if channel.text_labels:
            return features, np.concatenate(texts)
        numbers.resize(count, refcheck=False)
        return features, _whole_numbers_as_integers(numbers)


def _too_large(channel: _Channel, rows: int, left: int, limit: int, source: str) -> ContractError:
    matrix = rows * channel.row_bytes
    needed = _needed(matrix)
    # What the whole container would need: what it holds already, the data, the margin.
    instance = instance_with_memory(needed + (limit - left))
    advice = f"use an instance type with more memory, e.g. {instance}" if instance else "shard the channel"
    return ContractError(
        f"channel {channel.name!r} is too large for this container's memory: about {rows:,} rows x "
        f"{channel.width} features take {mb(matrix)} in memory and training on them about "
        f"{mb(needed)}, but only {mb(max(left, 0))} is left of {mb(limit)}, {source}; {advice}, "
        "or train from Dataset.batches()"
    )


def memory_left() -> tuple[int, int, str]:
    """Memory this process may still take (limit less what it holds less a margin), the limit,
    and where the limit comes from."""
    limit, source = container_memory_bytes()
    return limit - resident_bytes() - safety_margin(limit), limit, source


def _needed(matrix_bytes: int) -> int:
    return int(matrix_bytes * (1 + TRAINING_ALLOWANCE))


class _ParallelRead:
    """A channel being parsed by a forked child per CPU into one shared matrix, each child a
    group of parts of its files (cut at line ends) into its own rows of the matrix."""

    def __init__(
        self,
        channel: _Channel,
        capacities: list[int],
        offsets: list[int],
        feature_memory: mmap.mmap,
        label_memory: mmap.mmap,
        children: Forked,
    ) -> None:
        self._channel = channel
        self._capacities = capacities
        self._offsets = offsets
        self._feature_memory = feature_memory
        self._label_memory = label_memory
        self._children = children

    @classmethod
    def start(cls, channel: _Channel, left: int, limit: int, source: str) -> _ParallelRead | None:
        """The children started; None when the channel is too small to gain from them, or the
        counting failed (the channel is then read on one CPU, which says what is wrong)."""
        room = left - channel.estimated_rows() * channel.row_bytes
        groups = channel.groups(min(usable_cpus(), max(0, room // CHILD_BYTES)))
        if len(groups) < 2:
            return None
        try:
            # Children count the line ends of their groups first: no group has more rows than
            # that (+1 per part, for a last line without one), so each knows where its rows go.
            capacities = forked_map(_most_rows, groups)
        except (ChildFailed, OSError) as failure:  # OSError: no process could be forked
            log.info("reading %s on one CPU: %s", channel.directory, failure)
            return None
        capacity = sum(capacities)
        if _needed(capacity * channel.row_bytes) > left:
            raise _too_large(channel, capacity, left, limit, source)
        # Mapped shared before the children fork, so their writes land here; a page costs
        # nothing until written.
        feature_memory = mmap.mmap(-1, 4 * channel.width * capacity)
        label_memory = mmap.mmap(-1, 8 * capacity)
        columns = np.frombuffer(feature_memory, dtype=np.float32).reshape(channel.width, capacity)
        labels = np.frombuffer(label_memory, dtype=np.float64)
        offsets = [0, *itertools.accumulate(capacities)][:-1]

        def parse(work: tuple[list[_Part], int, int]) -> int:
            group, offset, most = work
            return channel.parse_into(group, columns, labels, offset, most)

        try:
            children = Forked(parse, list(zip(groups, offsets, capacities)))
        except OSError as failure:
            log.info("reading %s on one CPU: %s", channel.directory, failure)
            return None
        return cls(channel, capacities, offsets, feature_memory, label_memory, children)

    def finish(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Wait for the children: the features (column-major) and labels, or None if one failed."""
        channel = self._channel
        try:
            counts = self._children.results()
        except ChildFailed as failure:
            log.info("reading %s on one CPU: a parallel reader stopped (%s)", channel.directory, failure)
            return None
        count = sum(counts)
        if count == 0:
            raise ContractError(f"channel {channel.name!r} has data files under {channel.directory} but no rows")
        width, capacity = channel.width, sum(self._capacities)
        # Each feature's rows, group after group, moved down next to the previous ones: every
        # move goes to lower addresses than anything not yet moved, so nothing is overwritten.
        flat = np.frombuffer(self._feature_memory, dtype=np.float32)
        labels = np.frombuffer(self._label_memory, dtype=np.float64)
        destination = 0
        for feature in range(width):
            for offset, rows in zip(self._offsets, counts):
                start = feature * capacity + offset
                flat[destination : destination + rows] = flat[start : start + rows]
                destination += rows
        destination = 0
        for offset, rows in zip(self._offsets, counts):
            labels[destination : destination + rows] = labels[offset : offset + rows]
            destination += rows
        _release_after(self._feature_memory, 4 * width * count)
        _release_after(self._label_memory, 8 * count)
        log.info("read channel %r on %d CPUs: %s rows", channel.name, len(counts), f"{count:,}")
        return flat[: width * count].reshape(width, count).T, _whole_numbers_as_integers(labels[:count])

    def stop(self) -> None:
        self._children.stop()


def _release_after(memory: mmap.mmap, used: int) -> None:
    """Give back the pages of a shared mapping past its first `used` bytes."""
    start = -(-used // mmap.PAGESIZE) * mmap.PAGESIZE
    if start < len(memory) and hasattr(mmap, "MADV_REMOVE"):
        with contextlib.suppress(OSError):  # a kernel without it: the pages stay until the matrix goes
            memory.madvise(mmap.MADV_REMOVE, start, len(memory) - start)


def _most_rows(group: list[_Part]) -> int:
    """At most how many rows a group of parts holds: its line ends, plus one per part."""
    lines = 0
    for part in group:
        with _open_range(part) as handle:
            while chunk := handle.buffer.read(BLOCK_BYTES):
                lines += chunk.count(b"\n")
    return lines + len(group)


class _TextLabels(Exception):
    """A label that is not a number after numeric ones: the channel's labels are read as text."""


class _NotFast(Exception):
    """numpy's reader refused a file that may still be valid CSV (e.g. a line of spaces)."""


@dataclass(frozen=True)
class _Part:
    """The bytes start to end of a file, cut at line ends."""

    path: Path
    start: int
    end: int


@dataclass
class _Channel:
    """A channel's files, and what its first row says about all rows."""

    name: str
    directory: Path
    files: tuple[Path, ...]
    width: int
    first_row_at: str
    text_labels: bool
    bytes_per_row: float

    @classmethod
    def open(cls, name: str, directory: Path, files: list[Path]) -> _Channel:
        """Look at the first row: its width is every row's, its label says numbers or text."""
        for path in files:
            shown = _shown(path, directory)
            for number, record in _records(path, shown):
                if _blank(record):
                    continue
                where = f"{shown} line {number}"
                _need_a_feature(record, where)
                return cls(
                    name=name,
                    directory=directory,
                    files=tuple(files),
                    width=len(record) - 1,
                    first_row_at=where,
                    text_labels=not _is_number(record[0]),
                    bytes_per_row=_bytes_per_row(path),
                )
        raise ContractError(f"channel {name!r} has data files under {directory} but no rows")

    @property
    def row_bytes(self) -> int:
        """Memory per row: float32 features, and a label (8 bytes for a number or a reference)."""
        return 4 * self.width + 8

    @property
    def block_rows(self) -> int:
        return max(1, BLOCK_BYTES // self.row_bytes)

    def estimated_rows(self) -> int:
        text_bytes = sum(_text_size(path) for path in self.files)
        return math.ceil(text_bytes / self.bytes_per_row)

    def groups(self, workers: int) -> list[list[_Part]]:
        """The channel's bytes cut into `workers` groups of parts of files, as even as line ends
        allow, in order; none when a file is gzipped (it can only be read from its start) or
        the channel is too small for more than one."""
        sizes = [path.stat().st_size for path in self.files]
        workers = min(workers, sum(sizes) // PART_MIN_BYTES)
        if workers < 2 or any(_is_gzip(path) for path in self.files):
            return []
        ends = list(itertools.accumulate(sizes))
        cuts = [(0, 0)]
        for number in range(1, workers):
            target = sum(sizes) * number // workers
            index = next(index for index, end in enumerate(ends) if end > target)
            cuts.append((index, _line_start_after(self.files[index], target - (ends[index] - sizes[index]))))
        cuts.append((len(self.files) - 1, sizes[-1]))
        groups = []
        for (first, start), (last, end) in zip(cuts, cuts[1:]):
            group = [
                _Part(self.files[index], start if index == first else 0, end if index == last else sizes[index])
                for index in range(first, last + 1)
            ]
            group = [part for part in group if part.end > part.start]
            if group:
                groups.append(group)
        return groups

    def parse_into(self, group: list[_Part], columns: np.ndarray, labels: np.ndarray, offset: int, most: int) -> int:
        """Parse a group's rows into columns[:, offset:] and labels[offset:]; how many there were.
        Raises _NotFast for anything numpy refuses, or for more rows than `most`."""
        count = 0
        for part in group:
            for features, block_labels in self._fast_blocks(part.path, self.block_rows, part):
                if count + len(features) > most:
                    raise _NotFast()
                columns[:, offset + count : offset + count + len(features)] = features.T
                labels[offset + count : offset + count + len(features)] = block_labels
                count += len(features)
        return count

    def blocks(self, rows: int | None = None, strict: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(float32 features, labels) up to `rows` rows at a time, file after file. A text label
        after numeric ones raises _TextLabels when `strict`, a ContractError otherwise (the blocks
        given out so far cannot be changed)."""
        seen = 0
        for path in self.files:
            for block in self._file_blocks(path, rows or self.block_rows, seen, strict):
                seen += len(block[0])
                yield block

    def _file_blocks(
        self, path: Path, rows: int, rows_before: int, strict: bool
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        given = 0
        try:
            for features, labels in self._fast_blocks(path, rows):
                given += len(labels)
                yield features, labels
            return
        except _NotFast:
            pass
        # numpy refused the file: find the line and say what is wrong with it, or, when every
        # line is valid after all (lines of spaces, a text label after numbers), read it slowly.
        text_label_at = self._check(path, rows_before)
        if text_label_at is not None:
            if strict:
                raise _TextLabels()
            raise ContractError(
                f"{text_label_at}: the label is text but earlier labels are numbers; a channel read in "
                "batches needs its labels all numbers or all text"
            )
        yield from self._slow_blocks(path, rows, skip=given)

    def _fast_blocks(self, path: Path, rows: int, part: _Part | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        row_type = np.dtype(
            [("label", object if self.text_labels else np.float64), ("features", np.float32, (self.width,))]
        )
        with _open_text(path) if part is None else _open_range(part) as handle:
            while True:
                try:
                    with warnings.catch_warnings():
                        # "Input line N contained no data": blank lines are skipped, as they should be.
                        warnings.simplefilter("ignore", UserWarning)
                        block = np.loadtxt(
                            handle,
                            dtype=row_type,
                            delimiter=",",
                            quotechar='"',
                            comments=None,
                            max_rows=rows,
                            ndmin=1,
                        )
                except UnicodeDecodeError:
                    raise ContractError(
                        f"{_shown(path, self.directory)} is not UTF-8 text; send CSV files (optionally gzipped)"
                    ) from None
                except ValueError:
                    raise _NotFast() from None
                except (OSError, EOFError) as error:
                    raise ContractError(f"cannot read {_shown(path, self.directory)}: {error}") from None
                if len(block) == 0:
                    return
                labels = block["label"]
                if self.text_labels:
                    labels = np.char.strip(labels.astype(str))
                yield np.ascontiguousarray(block["features"]), np.ascontiguousarray(labels)
                if len(block) < rows:
                    return

    def _check(self, path: Path, rows_before: int) -> str | None:
        """Raise the ContractError for the file's first bad line; return where a text label first
        follows numeric ones (None when there is none)."""
        shown = _shown(path, self.directory)
        text_label_at = None
        for number, record in _records(path, shown):
            if _blank(record):
                continue
            where = f"{shown} line {number}"
            _need_a_feature(record, where)
            if len(record) - 1 != self.width:
                raise ContractError(
                    f"{where} has {len(record) - 1} features but {self.first_row_at} has {self.width}; "
                    "every row needs the same columns"
                )
            bad = next((field for field in record[1:] if not _is_number(field)), None)
            if bad is not None:
                hint = " (is there a header row? remove it)" if rows_before == 0 else ""
                raise ContractError(
                    f"{where}: feature {bad.strip()!r} is not a number{hint}; features must be "
                    "numeric, with the label in the first column"
                )
            if not self.text_labels and text_label_at is None and not _is_number(record[0]):
                text_label_at = where
            rows_before += 1
        return text_label_at

    def _slow_blocks(self, path: Path, rows: int, skip: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The file's rows after the first `skip`, parsed by Python's csv module (already checked)."""
        features: list[list[float]] = []
        labels: list[str] = []

        def block() -> tuple[np.ndarray, np.ndarray]:
            label_array = np.asarray(labels, dtype=str if self.text_labels else np.float64)
            return np.asarray(features, dtype=np.float32).reshape(-1, self.width), label_array

        for _, record in _records(path, _shown(path, self.directory)):
            if _blank(record):
                continue
            if skip:
                skip -= 1
                continue
            labels.append(record[0].strip())
            features.append([float(field) for field in record[1:]])
            if len(labels) == rows:
                yield block()
                features, labels = [], []
        if labels:
            yield block()


def _final_labels(blocks: list[np.ndarray]) -> np.ndarray:
    labels = np.concatenate(blocks) if blocks else np.empty(0)
    return _whole_numbers_as_integers(labels) if labels.dtype.kind == "f" else labels


def _whole_numbers_as_integers(labels: np.ndarray) -> np.ndarray:
    """Integers when every label is a whole number (1.0 and 1 are the same class), else as given.
    Converted in place, a block at a time: the labels are never held twice."""
    for start in range(0, len(labels), CONVERT_ROWS):
        block = labels[start : start + CONVERT_ROWS]
        if not (np.isfinite(block).all() and (block == np.round(block)).all()):
            return labels
    integers = labels.view(np.int64)
    for start in range(0, len(labels), CONVERT_ROWS):
        integers[start : start + CONVERT_ROWS] = labels[start : start + CONVERT_ROWS]
    return integers


def _shown(path: Path, directory: Path) -> Path:
    return path.relative_to(directory.parent)


def _is_gzip(path: Path) -> bool:
    # Sniff rather than trust the name: with CompressionType=Gzip in File mode SageMaker hands
    # over the compressed objects under whatever names they have in S3.
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _open_text(path: Path):  # noqa: ANN202 - a text file object, plain or gzip
    try:
        if _is_gzip(path):
            return gzip.open(path, "rt", encoding="utf-8", newline="")
        return open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed by the caller's with
    except OSError as error:
        raise ContractError(f"cannot read {path}: {error}") from None


class _Range(io.RawIOBase):
    """A file's bytes from where it stands to `length` bytes further."""

    def __init__(self, raw: io.BufferedReader, length: int) -> None:
        self._raw = raw
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer
        wanted = min(len(buffer), self._left)
        if wanted <= 0:
            return 0
        got = self._raw.readinto(memoryview(buffer)[:wanted]) or 0
        self._left -= got
        return got

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_range(part: _Part) -> io.TextIOWrapper:
    raw = open(part.path, "rb")  # noqa: SIM115 - closed with the wrapper
    raw.seek(part.start)
    buffered = io.BufferedReader(_Range(raw, part.end - part.start), BLOCK_BYTES // 4)
    return io.TextIOWrapper(buffered, encoding="utf-8", newline="")


def _line_start_after(path: Path, position: int) -> int:
    """Where the line holding byte `position` ends (the next line starts), or the file's end."""
    if position == 0:
        return 0
    with open(path, "rb") as handle:
        handle.seek(position - 1)
        handle.readline()
        return handle.tell()


def _text_size(path: Path) -> int:
    """The file's size as text. gzip's trailer holds it (modulo 4 GiB: never less than the
    compressed size, and a multi-member file only counts its last member: an estimate)."""
    size = path.stat().st_size
    if size < 18 or not _is_gzip(path):
        return size
    with open(path, "rb") as handle:
        handle.seek(-4, 2)
        return max(int.from_bytes(handle.read(4), "little"), size)


def _bytes_per_row(path: Path) -> float:
    with _open_text(path) as handle:
        try:
            sample = handle.read(SAMPLE_BYTES)
        except (OSError, EOFError, UnicodeDecodeError):
            return 1.0  # the reading itself will say what is wrong with the file
    return max(1.0, len(sample.encode()) / max(1, sample.count("\n")))


def _records(path: Path, shown: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) for every line, by Python's csv module: the reference for errors."""
    try:
        with _open_text(path) as handle:
            yield from enumerate(csv.reader(handle), start=1)
    except UnicodeDecodeError:
        raise ContractError(f"{shown} is not UTF-8 text; send CSV files (optionally gzipped)") from None
    except (OSError, EOFError) as error:
        raise ContractError(f"cannot read {shown}: {error}") from None


def _need_a_feature(record: list[str], where: str) -> None:
    if len(record) < 2:
        raise ContractError(f"{where} has {len(record)} column; rows need the label first, then at least one feature")


def _blank(record: list[str]) -> bool:
    return not record or all(not field.strip() for field in record)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
