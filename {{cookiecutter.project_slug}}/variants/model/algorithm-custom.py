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
from CSV files with the label in the first column and no header. `.batches()` gives the rows a
block at a time, as Datasets too; this skeleton trains and scores from batches, so a channel
larger than the container's memory (which `.features` refuses, naming the memory it needs) trains
as well. `.labels` alone is read even then: they take 8 bytes a row.

This skeleton uses no ML framework: a nearest-centroid classifier in plain NumPy, saved as JSON.
Replace it with your own code, and add what it needs to requirements.in.

Training in steps (epochs, rounds)? `fit(..., job=None)` receives the job (sagemaker_contract's
TrainingJob: hyperparameters, channels, job.cluster), and job.checkpoints() saves and resumes for
managed spot: a checkpoint every 60 s and on SIGTERM, when the job sets CheckpointConfig:

    def fit(hyperparameters, train, validation=None, job=None):
        with job.checkpoints("state", ".npz") as checkpoints:
            saved = checkpoints.latest()         # None, or .round and .path of this host's newest
            state, step = (load_state(saved.path), saved.round) if saved else (initial_state(), 0)
            while step < hyperparameters["epochs"]:
                state, step = train_one_epoch(state, train), step + 1
                checkpoints.step_done(step, lambda path: np.savez(path, **state))
        return state
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sagemaker_contract import Boolean, Categorical, Channel, Dataset, Metric

HYPERPARAMETERS = [
    Categorical(
        "distance",
        ["euclidean", "manhattan"],
        default="euclidean",
        tunable=True,
        description="How far a row is from a class centre.",
    ),
    Boolean("standardize", default=True, tunable=True, description="Scale every feature to unit variance first."),
]

CHANNELS = [
    Channel("train", required=True, description="Labelled rows: CSV, label first, no header."),
    Channel("validation", required=False, description="Held-out rows, same format; scored, not trained on."),
]

METRICS = [
    Metric("train:accuracy", description="Accuracy on the train channel."),
    Metric("validation:accuracy", goal="Maximize", description="Accuracy on the validation channel."),
]

MODEL_FILE = "nearest-centroid.json"


@dataclass
class NearestCentroid:
    classes: list
    centroids: np.ndarray
    scale: np.ndarray
    distance: str

    @property
    def n_features_in_(self) -> int:
        return int(self.centroids.shape[1])


def fit(hyperparameters: dict, train: Dataset, validation: Dataset | None = None) -> NearestCentroid:
    classes = np.unique(train.labels)
    width = train.feature_count
    # Running sums over the batches: per class, and of every feature and its square.
    class_sums, class_counts = np.zeros((len(classes), width)), np.zeros(len(classes))
    sums, squares = np.zeros(width), np.zeros(width)
    for batch in train.batches():
        features = batch.features.astype(np.float64)
        rows_class = np.searchsorted(classes, batch.labels)
        for index in np.unique(rows_class):
            class_sums[index] += features[rows_class == index].sum(axis=0)
        class_counts += np.bincount(rows_class, minlength=len(classes))
        sums += features.sum(axis=0)
        squares += np.square(features).sum(axis=0)
    count = class_counts.sum()
    variance = np.maximum(squares / count - np.square(sums / count), 0.0)
    scale = np.sqrt(variance) if hyperparameters["standardize"] else np.ones(width)
    scale[scale == 0] = 1.0
    centroids = class_sums / class_counts[:, None] / scale
    return NearestCentroid(classes.tolist(), centroids, scale, hyperparameters["distance"])


def evaluate(model: NearestCentroid, data: Dataset) -> dict[str, float]:
    correct = sum(int(np.sum(predict(model, batch.features) == batch.labels)) for batch in data.batches())
    return {"accuracy": correct / len(data)}


def save(model: NearestCentroid, model_dir: Path) -> None:
    document = {
        "classes": model.classes,
        "centroids": model.centroids.tolist(),
        "scale": model.scale.tolist(),
        "distance": model.distance,
    }
    (model_dir / MODEL_FILE).write_text(json.dumps(document))


def load(model_dir: Path) -> NearestCentroid:
    document = json.loads((model_dir / MODEL_FILE).read_text())
    return NearestCentroid(
        document["classes"], np.asarray(document["centroids"]), np.asarray(document["scale"]), document["distance"]
    )


def predict(model: NearestCentroid, features: np.ndarray) -> np.ndarray:
    if np.isnan(features).any():
        raise ValueError("features contain missing values; this model needs every feature")
    differences = features[:, None, :] / model.scale - model.centroids[None, :, :]
    if model.distance == "manhattan":
        distances = np.abs(differences).sum(axis=2)
    else:
        distances = np.square(differences).sum(axis=2)
    return np.asarray(model.classes)[distances.argmin(axis=1)]
