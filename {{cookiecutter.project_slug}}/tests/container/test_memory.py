"""Training inside a container with a memory limit (`docker run --memory`), on generated data.

A channel is read into a float32 matrix holding little more than itself, so every algorithm
trains a million rows x 10 features inside 512 MB (the reader before issue 12 needed about
650 MB for them, and was killed). On a channel whose matrix is larger than the container's limit,
the decision tree, which needs every row at once, stops with the memory it needs before the OOM
killer would; XGBoost (external memory) and the custom skeleton (running sums) train from batches.
A channel too tall even for XGBoost's external memory (its own bytes a row stay in memory) stops
early in one line, and a fit() the OOM killer ends still leaves a failure reason.
"""

import json
import os
import re

from sagemaker_contract.project import FRAMEWORK, USER_MODULE

from .conftest import LOCAL_USER, docker, make_tree

# Rows repeat a block of distinct lines: quick to write, and learnable (the label follows the
# first feature). "0.25"-style values keep the text close to the matrix in size.
DISTINCT_LINES = 1000


def write_rows(path, rows, width):
    values = ("0.25", "0.5", "0.75", "1.5", "2.5")
    lines = []
    for index in range(DISTINCT_LINES):
        features = [values[(index * (column + 3) + column) % len(values)] for column in range(width)]
        label = "1" if float(features[0]) > 0.6 else "0"
        lines.append(",".join([label, *features]) + "\n")
    block = "".join(lines).encode()
    with open(path, "wb") as handle:
        for _ in range(rows // DISTINCT_LINES):
            handle.write(block)


def link_data(root, data_file):
    target = root / "input/data/train/rows.csv"
    target.unlink()
    os.link(data_file, target)


def train_within(image, root, memory, *options, timeout=300):
    # --memory-swap equal to --memory: no swap, so the limit is the limit.
    return docker("run", "--rm", "--network", "none", "--user", LOCAL_USER, "--memory", memory,
                  "--memory-swap", memory, *options, "-v", f"{root}:/opt/ml", image, "train",
                  timeout=timeout, check=False)  # fmt: skip


def make_job(image, tmp_path, name, data_file, *settings):
    root = tmp_path / name
    seed = tmp_path / f"{name}-seed" / "train"
    seed.mkdir(parents=True)
    (seed / "rows.csv").write_text(open(data_file).readline())
    overrides = [arg for setting in settings for arg in ("--set", setting)]
    docker("run", "--rm", "--network", "none", "--user", LOCAL_USER, "-v", f"{seed.parent}:/data:ro",
           "-v", f"{root}:/opt/ml", image, "local-tree", "/opt/ml", "--data", "/data", *overrides)  # fmt: skip
    link_data(root, data_file)
    return root


# Each framework's quickest settings that still train a real model.
SETTINGS = {"scikit-learn": ("max_leaf_nodes=50",), "xgboost": ("num_round=5", "max_depth=3")}.get(FRAMEWORK, ())


def test_a_million_rows_train_inside_512_mb(image, tmp_path):
    # 1,000,000 rows x 10 features: a 46 MB matrix from 51 MB of CSV, read whole.
    data_file = tmp_path / "rows.csv"
    write_rows(data_file, 1_000_000, 10)
    root = make_job(image, tmp_path, "opt_ml", data_file, *SETTINGS)
    # On two CPUs (CI has two), the channel is parsed by two processes into one shared matrix.
    two_cpus = ["--cpuset-cpus", "0,1"] if len(os.sched_getaffinity(0)) >= 2 else []
    result = train_within(image, root, "512m", *two_cpus)
    assert result.returncode == 0, f"training failed ({result.returncode}):\n{result.stderr[-3000:]}"
    assert "training on train: 1000000 rows" in result.stderr
    if two_cpus:
        assert "read channel 'train' on 2 CPUs: 1,000,000 rows" in result.stderr
    assert any((root / "model").iterdir()) and not (root / "output/failure").exists()


def test_a_channel_larger_than_the_containers_memory(image, tmp_path):
    # 600,000 rows x 100 features: a 234 MB matrix (float32 features, 8-byte labels) for a
    # container allowed 200 MB in all. Wide rows: external memory pages out the features, while
    # XGBoost still keeps tens of bytes a row in memory (gradients, predictions, labels).
    data_file = tmp_path / "rows.csv"
    write_rows(data_file, 600_000, 100)
    root = make_job(image, tmp_path, "opt_ml", data_file, *SETTINGS)
    result = train_within(image, root, "200m", timeout=600)
    if FRAMEWORK == "scikit-learn":
        # The decision tree needs every row at once: the job stops before the OOM killer would.
        assert result.returncode == 1, f"expected the refusal, got exit {result.returncode}:\n{result.stderr[-3000:]}"
        reason = (root / "output/failure").read_text().strip()
        assert re.match(r"channel 'train' is too large for this container's memory: about [\d,]+ rows x 100 ", reason)
        assert "is left of 200 MB, the container's memory limit" in reason and "e.g. ml.m5.large (8 GiB)" in reason
        assert not any((root / "model").iterdir())
    else:
        # XGBoost's external memory, or the custom skeleton's running sums: from batches.
        assert result.returncode == 0, f"training failed ({result.returncode}):\n{result.stderr[-3000:]}"
        assert "training on train: 600000 rows" in result.stderr
        metrics = json.loads((root / "output/data/metrics.json").read_text())
        assert metrics["train:accuracy"] > 0.6  # learnt something: the label follows the first feature
        assert any((root / "model").iterdir()) and not (root / "output/failure").exists()


OOM_MODULE = """import importlib

import numpy as np

real = importlib.import_module(REAL_MODULE)
globals().update((name, value) for name, value in vars(real).items() if not name.startswith("__"))


def fit(hyperparameters, train, validation=None, job=None):
    held = []
    while True:  # 32 MB at a time, every page touched, until the OOM killer ends the process
        held.append(np.ones(4 * 1024 * 1024))
"""


def test_a_fit_killed_by_the_oom_killer_leaves_a_failure_reason(image, tmp_path):
    # The project's own module, but a fit() that takes memory until the kernel kills it: SIGKILL
    # cannot be caught, so the process watching training writes the reason.
    root = make_tree(image, tmp_path / "opt_ml")
    module = tmp_path / "oom_model.py"
    module.write_text(OOM_MODULE.replace("REAL_MODULE", repr(USER_MODULE)))
    module.chmod(0o644)
    result = train_within(
        image, root, "256m", "-v", f"{module}:/opt/program/oom_model.py:ro", "-e", "SAGEMAKER_USER_MODULE=oom_model"
    )
    assert result.returncode == 137, f"expected a SIGKILL, got exit {result.returncode}:\n{result.stderr[-3000:]}"
    reason = (root / "output/failure").read_text()
    assert reason.startswith(
        "training ran out of memory while running fit() in oom_model.py: the kernel's OOM killer stopped it at "
        "the memory limit of 256 MB, the container's memory limit (/sys/fs/cgroup/"
    ), reason
    assert reason.endswith(
        "; use an instance type with more memory (e.g. ml.m5.large (8 GiB)), or less data per instance (more "
        "instances, or fewer rows)\n"
    ), reason
