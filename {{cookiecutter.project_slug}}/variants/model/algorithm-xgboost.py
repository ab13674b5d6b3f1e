"""Your algorithm: the one module you edit.

The template's `sagemaker_contract` package does everything SageMaker's container contract
asks for (reading /opt/ml, checking hyperparameters, writing failure reasons, serving HTTP) and
calls what this module defines:

    HYPERPARAMETERS, CHANNELS, METRICS   the declaration: training checks every job against it,
                                         and publishing sends it to SageMaker
    fit(hyperparameters, train, validation) -> model
    evaluate(model, data) -> {"accuracy": 0.97}   printed as `train:accuracy=0.97`, ...
    save(model, model_dir)      write the model into model_dir (it becomes model.tar.gz)
    load(model_dir) -> model    read it back, once, when the server starts
    predict(model, features)    one prediction per row of `features` (a float array)
    consumed_units(records, predictions) -> int    optional: the units a request bills under
                                 AWS Marketplace's per-inference pricing (default: its records)

`train` and `validation` are Datasets: `.features` (rows x columns, float32) and `.labels`, read
from CSV files with the label in the first column and no header. A channel too large for the
container's memory is not read whole: `matrix` below then trains from its batches with XGBoost's
external memory (pages cached on local disk). XGBoost's own memory per row (gradients,
predictions) stays in memory either way: a channel too tall even for that stops the job at
once with the memory it needs and an instance type that has it.

The model is an XGBoost booster saved in XGBoost's own JSON format (not pickle), with the class
names stored in it, so any XGBoost of the same or a newer version can read it.

A job with several instances trains one model on all of them (DISTRIBUTED_TRAINING): `job.cluster`
names the hosts, and each host trains on its shard (ShardedByS3Key) or its share of the rows. A job
with CheckpointConfig (managed spot) saves a checkpoint every minute and on SIGTERM, and resumes
from it when restarted. sagemaker_contract.xgboost_training does both.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np
import xgboost

from sagemaker_contract import Boolean, Channel, Continuous, Dataset, Integer, Metric, TrainingJob, xgboost_training

HYPERPARAMETERS = [
    Integer("num_round", min_value=1, max_value=1000, default=50, tunable=True, description="Boosting rounds."),
    Integer("max_depth", min_value=1, max_value=20, default=6, tunable=True, description="Maximum depth of a tree."),
    Continuous("eta", min_value=0.0, max_value=1.0, default=0.3, tunable=True, description="Learning rate."),
    Continuous(
        "subsample", min_value=0.1, max_value=1.0, default=1.0, tunable=True, description="Share of rows per tree."
    ),
    Continuous(
        "min_child_weight",
        min_value=0.0,
        max_value=100.0,
        default=1.0,
        tunable=True,
        description="Smallest total weight a leaf may hold.",
    ),
    Boolean("early_stopping", default=True, description="Stop when validation loss has not improved for 10 rounds."),
    Integer("seed", min_value=0, max_value=2**31 - 1, default=0, description="Seed, for repeatable training."),
]

CHANNELS = [
    Channel("train", required=True, description="Labelled rows: CSV, label first, no header."),
    Channel("validation", required=False, description="Held-out rows, same format; scored and used to stop early."),
]

METRICS = [
    Metric("train:accuracy", description="Accuracy on the train channel."),
    Metric("validation:accuracy", goal="Maximize", description="Accuracy on the validation channel."),
]

MODEL_FILE = "xgboost-model.json"
DISTRIBUTED_TRAINING = True  # all hosts of a job train one model; SageMaker lets buyers ask for several


def fit(
    hyperparameters: dict, train: Dataset, validation: Dataset | None = None, job: TrainingJob | None = None
) -> xgboost.Booster:
    job = job or TrainingJob()
    with xgboost_training.collective(job.cluster):
        return _fit(hyperparameters, train, validation, job)


def _fit(hyperparameters: dict, train: Dataset, validation: Dataset | None, job: TrainingJob) -> xgboost.Booster:
    classes = xgboost_training.all_labels(train.labels)  # every host's, so all agree on the classes
    params = {
        "objective": "multi:softprob",
        "num_class": len(classes),
        "max_depth": hyperparameters["max_depth"],
        "eta": hyperparameters["eta"],
        "subsample": hyperparameters["subsample"],
        "min_child_weight": hyperparameters["min_child_weight"],
        "seed": hyperparameters["seed"],
        "eval_metric": "mlogloss",
    }
    # In memory or from XGBoost's external memory, whichever fits; stops with one line if neither does.
    held = xgboost_training.in_memory(params, {"train": train, "validation": validation})
    train_matrix = matrix(train, classes, held["train"])
    evals = [(train_matrix, "train")]
    stopping = None
    if validation is not None:
        evals.append((matrix(validation, classes, held["validation"], reference=train_matrix), "validation"))
        stopping = 10 if hyperparameters["early_stopping"] else None
    booster = xgboost_training.train(
        params,
        train_matrix,
        hyperparameters["num_round"],
        evals=evals,
        early_stopping_rounds=stopping,  # then the booster keeps the trees up to the best round only
        checkpoints=job.checkpoints("xgboost", xgboost_training.CHECKPOINT_SUFFIX),
    )
    booster.set_attr(classes=json.dumps(classes.tolist()))
    return booster


def matrix(
    data: Dataset, classes: np.ndarray, in_memory: bool, reference: xgboost.DMatrix | None = None
) -> xgboost.DMatrix:
    """The data as XGBoost reads it: in memory, or streamed from its batches into pages XGBoost
    caches on local disk (external memory)."""
    if in_memory:
        return xgboost.DMatrix(data.features, label=np.searchsorted(classes, data.labels))
    cache = tempfile.mkdtemp(prefix="xgboost-cache-")
    batches = _Batches(data, classes, cache_prefix=f"{cache}/pages")
    if hasattr(xgboost, "ExtMemQuantileDMatrix"):  # XGBoost 3.0 and newer: the recommended form
        external = xgboost.ExtMemQuantileDMatrix(batches, ref=reference)
    else:
        external = xgboost.DMatrix(batches)
    # XGBoost deletes its page files with the matrix; the directory goes after them.
    weakref.finalize(external, shutil.rmtree, cache, ignore_errors=True).atexit = False
    return external


class _Batches(xgboost.DataIter):
    """A Dataset's batches, as XGBoost's external memory reads them (once per pass it makes)."""

    def __init__(self, data: Dataset, classes: np.ndarray, cache_prefix: str) -> None:
        self._data, self._classes, self._batches = data, classes, iter(())
        super().__init__(cache_prefix=cache_prefix)

    def reset(self) -> None:
        self._batches = iter(self._data.batches())

    def next(self, input_data) -> bool:  # noqa: ANN001 - XGBoost's callback
        batch = next(self._batches, None)
        if batch is None:
            return False
        input_data(data=batch.features, label=np.searchsorted(self._classes, batch.labels))
        return True


def evaluate(model: xgboost.Booster, data: Dataset) -> dict[str, float]:
    # Batch by batch, so a channel larger than memory is scored too.
    correct = sum(int(np.sum(predict(model, batch.features) == batch.labels)) for batch in data.batches())
    return {"accuracy": correct / len(data)}


def save(model: xgboost.Booster, model_dir: Path) -> None:
    model.save_model(model_dir / MODEL_FILE)


def load(model_dir: Path) -> xgboost.Booster:
    booster = xgboost.Booster(model_file=str(model_dir / MODEL_FILE))
    # One thread per prediction: the server runs one worker process per CPU already.
    booster.set_param({"nthread": 1})
    return booster


def predict(model: xgboost.Booster, features: np.ndarray) -> np.ndarray:
    probabilities = model.inplace_predict(features)
    classes = model.attr("classes")
    if classes is None or probabilities.ndim != 2:
        return probabilities  # A booster trained elsewhere, without class names: its raw output.
    return np.asarray(json.loads(classes))[probabilities.argmax(axis=1)]
