"""Reading channels: CSV, label first, no header, many files (sagemaker_contract.training_data)."""

import gzip

import numpy as np
import pytest

from sagemaker_contract.errors import ContractError
from sagemaker_contract.training_data import read_csv_channel


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
