"""Reading channels: CSV, label first, no header, many files (sagemaker_contract.training_data)."""

import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sagemaker_contract import training, training_data
from sagemaker_contract.errors import ContractError
from sagemaker_contract.training_data import read_csv_channel

from stand_ins import fake_module

MEBIBYTE = 1024 * 1024


def test_reads_every_file_in_path_order_including_subdirectories_and_gzip(tmp_path):
    channel = tmp_path / "train"
    (channel / "part").mkdir(parents=True)
    (channel / "a.csv").write_text("cat,1,2\ndog,3,4\n")
    (channel / "part" / "b.csv").write_text("\ncat,5,6\n")
    with gzip.open(channel / "c.data", "wt") as handle:  # gzip recognised by content
        handle.write("dog,7,8\n")
    (channel / ".manifest").write_text("not data")
    data = read_csv_channel("train", channel)
    # a.csv, c.data, part/b.csv: sorted by path, so the same files always give the same rows.
    assert data.features.tolist() == [[1, 2], [3, 4], [7, 8], [5, 6]]
    assert data.labels.tolist() == ["cat", "dog", "dog", "cat"]
    assert data.feature_count == 2


def test_numeric_labels_become_integers_or_floats(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "x.csv").write_text("1,0.5\n0,0.25\n")
    assert read_csv_channel("t", tmp_path / "t").labels.dtype == np.int64
    (tmp_path / "t" / "x.csv").write_text("1.5,0.5\n0,0.25\n")
    assert read_csv_channel("t", tmp_path / "t").labels.dtype == np.float64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "species,a,b\ncat,1,2\n",
            "train/x.csv line 1: feature 'a' is not a number (is there a header row? remove it)",
        ),
        ("cat,1,2\ndog,3\n", "train/x.csv line 2 has 1 features but train/x.csv line 1 has 2"),
        ("cat\n", "has 1 column"),
        ("\n\n", "has data files under"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path, text, message):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "x.csv").write_text(text)
    with pytest.raises(ContractError) as caught:
        read_csv_channel("train", tmp_path / "train")
    assert message in str(caught.value)


def test_missing_or_empty_channel_says_what_to_check(tmp_path):
    with pytest.raises(ContractError, match="has no directory"):
        read_csv_channel("train", tmp_path / "train")
    (tmp_path / "train").mkdir()
    with pytest.raises(ContractError, match="no data files .* check the S3 prefix"):
        read_csv_channel("train", tmp_path / "train")


def blocks_of(monkeypatch, rows, width):
    """Parse `rows` rows of `width` features at a time."""
    monkeypatch.setattr(training_data, "BLOCK_BYTES", rows * (4 * width + 8))


def test_features_are_float32_and_rows_keep_their_order_across_blocks(tmp_path, monkeypatch):
    blocks_of(monkeypatch, 3, width=2)  # many blocks from a few rows
    channel = tmp_path / "train"
    channel.mkdir()
    rows = [(index % 3, index, index / 4) for index in range(10)]
    (channel / "a.csv").write_text("".join(f"{label},{a},{b}\n" for label, a, b in rows[:7]))
    (channel / "b.csv").write_text("".join(f"{label},{a},{b}\n" for label, a, b in rows[7:]))
    data = read_csv_channel("train", channel)
    # Column-major, as scikit-learn's trees read it (they would copy anything else).
    assert data.features.dtype == np.float32 and data.features.flags["F_CONTIGUOUS"]
    assert data.features.tolist() == [[a, b] for _, a, b in rows]
    assert data.labels.tolist() == [label for label, _, _ in rows] and data.labels.dtype == np.int64


def test_a_channel_longer_than_its_estimate_grows_the_matrix(tmp_path, monkeypatch):
    blocks_of(monkeypatch, 2, width=1)
    monkeypatch.setattr(training_data._Channel, "estimated_rows", lambda channel: 1)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "x.csv").write_text("".join(f"{n % 2},{n}\n" for n in range(9)))
    data = read_csv_channel("t", tmp_path / "t")
    assert data.features.ravel().tolist() == list(range(9)) and data.labels.tolist() == [n % 2 for n in range(9)]


def test_lines_of_spaces_and_empty_fields_are_skipped_as_blank(tmp_path, monkeypatch):
    blocks_of(monkeypatch, 1, width=2)  # numpy's reader gives one row before it balks at the next
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "x.csv").write_text("1,0.5,2\n   \n,,\n0,0.25,3\n")
    data = read_csv_channel("t", tmp_path / "t")
    assert data.features.tolist() == [[0.5, 2], [0.25, 3]] and data.labels.tolist() == [1, 0]


@pytest.mark.parametrize("in_memory", [True, False], ids=["read whole", "on disk"])
def test_a_text_label_after_numbers_makes_every_label_text(tmp_path, monkeypatch, in_memory):
    blocks_of(monkeypatch, 2, width=1)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "x.csv").write_text("1,1\n2,2\n3,3\ncat,4\n")
    if not in_memory:
        limit_memory(monkeypatch, 64)  # nothing left: the channel stays on disk
    data = read_csv_channel("t", tmp_path / "t")
    assert data.fits_in_memory() is in_memory
    assert data.labels.tolist() == ["1", "2", "3", "cat"]
    assert [label for batch in data.batches() for label in batch.labels.tolist()] == ["1", "2", "3", "cat"]


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_a_bad_line_deep_in_a_file_is_named_by_its_line_number(tmp_path, monkeypatch, compress):
    blocks_of(monkeypatch, 4, width=2)  # the bad line is in the third block
    (tmp_path / "train" / "sub").mkdir(parents=True)
    text = "".join(f"1,{n},{n}\n" for n in range(9)) + "\n1,2,x\n"
    if compress:
        (tmp_path / "train" / "sub" / "x.csv").write_bytes(gzip.compress(text.encode()))
    else:
        (tmp_path / "train" / "sub" / "x.csv").write_text(text)
    with pytest.raises(ContractError) as caught:
        read_csv_channel("train", tmp_path / "train")
    assert str(caught.value).startswith("train/sub/x.csv line 11: feature 'x' is not a number;")


def test_a_short_row_in_a_later_file_names_both_files(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "a.csv").write_text("1,1,2\n")
    (tmp_path / "train" / "b.csv").write_text("1,1,2\n0,3\n")
    with pytest.raises(ContractError, match="train/b.csv line 2 has 1 features but train/a.csv line 1 has 2"):
        read_csv_channel("train", tmp_path / "train")


def test_a_damaged_gzip_file_is_named(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "x.gz").write_bytes(gzip.compress(b"1,2,3\n" * 1000)[:-40])
    with pytest.raises(ContractError, match="cannot read train/x.gz"):
        read_csv_channel("train", tmp_path / "train")


def limit_memory(monkeypatch, megabytes):
    """As if the container's limit were `megabytes` more than this process holds now."""
    held = training_data.resident_bytes()
    monkeypatch.setattr(training_data, "container_memory_bytes", lambda: (held + megabytes * MEBIBYTE, "a test"))


def many_rows(path, rows, width=4, compress=False):
    line = ",".join(["1"] + ["0.5"] * width) + "\n" + ",".join(["0"] + ["2.25"] * width) + "\n"
    text = (line * (rows // 2)).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text) if compress else text)


def test_a_channel_larger_than_memory_stays_on_disk_and_streams_in_batches(tmp_path, monkeypatch):
    many_rows(tmp_path / "train" / "a.csv", 20_000)
    many_rows(tmp_path / "train" / "b.csv", 10_000, compress=True)
    whole = read_csv_channel("train", tmp_path / "train")
    limit_memory(monkeypatch, 64 + 1)  # the margin and 1 MB: not 30,000 rows x 24 bytes, twice
    data = read_csv_channel("train", tmp_path / "train")
    assert not data.fits_in_memory()
    batches = list(data.batches(rows=7_000))
    assert [len(batch) for batch in batches] == [7_000, 7_000, 6_000, 7_000, 3_000]
    assert np.array_equal(np.concatenate([batch.features for batch in batches]), whole.features)
    assert np.array_equal(np.concatenate([batch.labels for batch in batches]), whole.labels)
    # Labels alone are read without the features; len() needs only them.
    assert len(data) == 30_000 and data.labels.dtype == np.int64
    with pytest.raises(ContractError) as caught:
        _ = data.features
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("channel 'train' is too large for this container's memory: about 30,")
    assert "use an instance type with more memory, e.g. ml.m5.large (8 GiB)" in message


def test_the_estimate_reads_the_size_of_gzipped_files_from_their_trailer(tmp_path):
    many_rows(tmp_path / "train" / "a.gz", 100_000, compress=True)
    data = read_csv_channel("train", tmp_path / "train")
    estimate = data._channel.estimated_rows() * data._channel.row_bytes
    assert 0.9 * data.in_memory_bytes() < estimate < 1.1 * data.in_memory_bytes()


def test_a_job_whose_fit_needs_every_row_stops_before_memory_runs_out(opt_ml, monkeypatch):
    (opt_ml.channel_dir("train") / "part.csv").unlink()
    many_rows(opt_ml.channel_dir("train") / "big.csv", 40_000, width=2)
    limit_memory(monkeypatch, 64 + 1)
    module = fake_module(fit=lambda hyperparameters, train, validation=None: {"depth": train.features.shape[1]})
    assert training.run(opt_ml, module) == 1
    reason = opt_ml.failure_file.read_text()
    assert reason.startswith("channel 'train' is too large for this container's memory")
    assert not opt_ml.model_dir.exists() or not any(opt_ml.model_dir.iterdir())


# VmHWM: a process's own peak (getrusage's ru_maxrss would start from pytest's, through exec).
# Children forked to parse on several CPUs report how much their memory grew from the fork on
# (their share of the shared matrix and their own buffers): the matrix counts once in reality,
# but in both the parent's peak and the children's growth here.
READ_AND_MEASURE = """
import json, sys
from pathlib import Path
from sagemaker_contract import parallel, training_data
def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
training_data.usable_cpus = lambda: int(sys.argv[2])
grown = []
class Measured(parallel.Forked):
    def __init__(self, function, items):
        def measured(item):
            start = status("VmRSS")
            return function(item), status("VmHWM") - start
        super().__init__(measured, items)
    def results(self):
        results = super().results()
        grown.append([growth for _, growth in results])
        return [result for result, _ in results]
def measured_map(function, items):
    with Measured(function, items) as children:
        return children.results()
training_data.Forked, training_data.forked_map = Measured, measured_map
before = status("VmHWM")
data = training_data.read_csv_channel("train", Path(sys.argv[1]))
print(json.dumps({
    "before": before,
    "peak": status("VmHWM"),
    "children": grown,
    "matrix": data.features.nbytes + data.labels.nbytes,
}))
"""


@pytest.mark.parametrize("cpus", [1, 2, 3])
def test_reading_holds_little_more_than_the_matrix_it_makes(tmp_path, cpus):
    # 600,000 rows x 10 features: a 27 MB matrix from 30 MB of CSV. The goal: the peak
    # while reading is at most the matrix + 25% + a fixed overhead (the blocks being parsed, and
    # on several CPUs what each parsing child holds besides its share of the matrix).
    many_rows(tmp_path / "train" / "a.csv", 600_000, width=10)
    code = textwrap.dedent(READ_AND_MEASURE)
    source = str(Path(training_data.__file__).parents[1])
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "train"), str(cpus)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": source},
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["matrix"] == 600_000 * (10 * 4 + 8)
    assert figures["peak"] - figures["before"] <= 1.25 * figures["matrix"] + 16 * MEBIBYTE
    # Two rounds of children, one after the other: counting lines, then parsing into the matrix.
    counting, parsing = figures["children"] or [[], []]
    assert len(counting) == len(parsing) == (0 if cpus == 1 else cpus)
    assert max(counting, default=0) <= training_data.CHILD_BYTES
    assert sum(parsing) - (figures["matrix"] if parsing else 0) <= cpus * training_data.CHILD_BYTES
