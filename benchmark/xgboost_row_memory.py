"""XGBoost's memory per row beyond the features, per objective and class count.

    python3 benchmark/xgboost_row_memory.py [--rows 1000000,2000000] [--features 10] [--rounds 3]

Needs numpy and xgboost (the generated project's .venv has both). Each case runs in a fresh
forked process: it trains --rounds rounds (hist, the train matrix also evaluated every round, as
the XGBoost algorithm's fit() does) on --features random float32 features, and a thread samples
the process's anonymous resident memory (RssAnon: file pages XGBoost maps from its page cache are
left out, the kernel can drop them) every 5 ms. The peak less the memory before the matrix was
made, at two row counts, gives bytes per row as the slope, so fixed costs (the model, the quantile
sketch, thread buffers) drop out. Take a million rows or more: below that, the pages external
memory keeps in memory (a bounded number) still grow with the rows and inflate the slope. Two layouts:

- external: an ExtMemQuantileDMatrix (XGBoost's external memory) fed 50,000-row batches: the
  features are paged to disk, what stays per row is XGBoost's own (labels, gradients and
  hessians, predictions, row partitions).
- in memory: a DMatrix made from a float32 numpy matrix already in memory (the matrix itself
  not counted), as `matrix()` in the generated XGBoost algorithm makes it.

Prints one line per case: objective, classes, layout, and bytes per row. sagemaker_contract's
xgboost_training.py encodes these figures (ROW_BYTES_*) in its choice between the two layouts.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import xgboost

BATCH_ROWS = 50_000
CASES = (
    ("binary:logistic", 2),
    ("reg:squarederror", 1),
    ("multi:softprob", 3),
    ("multi:softprob", 10),
)


def anonymous_resident() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


class Peak:
    """The highest RssAnon seen while in the `with` block."""

    def __enter__(self) -> Peak:
        self.peak, self._done = anonymous_resident(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, anonymous_resident())

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, anonymous_resident())


def labels_for(features: np.ndarray, objective: str, classes: int) -> np.ndarray:
    if objective.startswith("reg:"):
        return features[:, 0] * 3 + features[:, 1]
    return np.minimum((features[:, 0] * classes).astype(np.int32), classes - 1).astype(np.float32)


class Batches(xgboost.DataIter):
    def __init__(self, rows: int, width: int, objective: str, classes: int, cache: str) -> None:
        self.rows, self.width, self.objective, self.classes, self.at = rows, width, objective, classes, 0
        super().__init__(cache_prefix=cache)

    def reset(self) -> None:
        self.at = 0

    def next(self, input_data) -> bool:  # noqa: ANN001 - XGBoost's callback
        if self.at >= self.rows:
            return False
        rows = min(BATCH_ROWS, self.rows - self.at)
        features = np.random.default_rng(self.at).random((rows, self.width), dtype=np.float32)
        input_data(data=features, label=labels_for(features, self.objective, self.classes))
        self.at += rows
        return True


def params_for(objective: str, classes: int) -> dict:
    params = {"objective": objective, "max_depth": 6, "tree_method": "hist", "seed": 0}
    if objective.startswith("multi:"):
        params["num_class"] = classes
    return params


def in_child(layout: str, objective: str, classes: int, rows: int, width: int, rounds: int) -> int:
    """measure() in a fresh forked process, so that no case inherits another's freed memory."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            value = measure(layout, objective, classes, rows, width, rounds)
            os.write(write, str(value).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    return int(text)


def measure(layout: str, objective: str, classes: int, rows: int, width: int, rounds: int) -> int:
    with tempfile.TemporaryDirectory() as cache:
        features = labels = None
        if layout == "in memory":
            features = np.random.default_rng(0).random((rows, width), dtype=np.float32)
            labels = labels_for(features, objective, classes)
        start = anonymous_resident()
        with Peak() as peak:
            if layout == "external":
                matrix = xgboost.ExtMemQuantileDMatrix(Batches(rows, width, objective, classes, f"{cache}/pages"))
            else:
                matrix = xgboost.DMatrix(features, label=labels)
            xgboost.train(params_for(objective, classes), matrix, rounds, evals=[(matrix, "train")], verbose_eval=False)
        return peak.peak - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,2000000", help="two row counts, comma-separated")
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layouts", default="external,in memory")
    parser.add_argument("--cases", default="", help="objective:classes,... (default: all four)")
    args = parser.parse_args()
    small, large = (int(value) for value in args.rows.split(","))
    print(
        f"xgboost {xgboost.__version__}, {args.features} features, {args.rounds} rounds, {small:,} and {large:,} rows"
    )
    for layout in args.layouts.split(","):
        cases = [(case.rsplit(":", 1)[0], int(case.rsplit(":", 1)[1])) for case in args.cases.split(",") if case]
        for objective, classes in cases or CASES:
            began = time.monotonic()
            low = in_child(layout, objective, classes, small, args.features, args.rounds)
            high = in_child(layout, objective, classes, large, args.features, args.rounds)
            per_row = (high - low) / (large - small)
            print(
                f"{layout:9} {objective:17} classes={classes:<3} {per_row:6.1f} bytes/row "
                f"({per_row / args.features:.1f} per feature)  [{time.monotonic() - began:.0f} s]",
                flush=True,
            )


if __name__ == "__main__":
    main()
