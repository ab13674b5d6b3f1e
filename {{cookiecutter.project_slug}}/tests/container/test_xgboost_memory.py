"""XGBoost's own memory per row (gradients, predictions, labels) counted before training: a channel
too tall even for external memory stops at once with one line. XGBoost algorithms only.
"""

from __future__ import annotations

import re

from .test_memory import SETTINGS, make_job, train_within, write_rows


def test_a_channel_too_tall_even_for_xgboosts_external_memory_stops_early_in_one_line(image, tmp_path):
    # 2,000,000 rows x 10 features (90 MB of CSV), two classes, in 256 MB: external memory would
    # page out the features, but XGBoost's gradients, predictions and labels (68 bytes a row here)
    # do not fit beside Python and XGBoost. Scaled down from issue 19's 6,000,000 rows in 512 MB.
    data_file = tmp_path / "rows.csv"
    write_rows(data_file, 2_000_000, 10)
    root = make_job(image, tmp_path, "opt_ml", data_file, *SETTINGS)
    result = train_within(image, root, "256m")
    assert result.returncode == 1, f"expected the refusal, got exit {result.returncode}:\n{result.stderr[-3000:]}"
    reason = (root / "output/failure").read_text()
    assert reason.count("\n") == 1
    assert re.fullmatch(
        r"XGBoost cannot train on 'train' \(2,000,000 rows\) in this container's memory, not even with external "
        r"memory: it keeps 68 bytes a row for 2 output\(s\) in memory, 130 MB, but only \d+ MB is left of 256 MB, "
        r"the container's memory limit \(\S+\); use an instance type with more memory, e.g. ml.m5.large \(8 GiB\), "
        r"or more instances \(distributed training shares the rows\)\n",
        reason,
    )
    assert not any((root / "model").iterdir())
