"""Your model package: the one module you edit.

A model package is inference code plus a trained model. SageMaker extracts the model's
model.tar.gz into /opt/ml/model (or the image carries the model itself: see the README), and
the template's `sagemaker_contract` package serves it by calling what this module defines:

    load(model_dir) -> model     read the model, once, when the server starts
    predict(model, features)     one prediction per row of `features` (a float array)
    save(model, model_dir)       used by `make package-model` to pack a model you trained
    example_model(train)         trains the bundled example, as you would in a notebook
    consumed_units(records, predictions) -> int    optional: the units a request bills under
                                 AWS Marketplace's per-inference pricing (default: its records)

This skeleton uses no ML framework: a nearest-centroid classifier in plain NumPy, saved as
JSON. Replace it with your own code, and add what it needs to requirements.in.
`make package-model MODEL=path/to/model-file` packs a model made anywhere into
build/model.tar.gz; without MODEL it packs example_model()'s, trained on data/train.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sagemaker_contract import Dataset

MODEL_FILE = "nearest-centroid.json"


@dataclass
class NearestCentroid:
    classes: list
    centroids: np.ndarray

    @property
    def n_features_in_(self) -> int:
        return int(self.centroids.shape[1])


def example_model(train: Dataset) -> NearestCentroid:
    classes = np.unique(train.labels)
    centroids = np.stack([train.features[train.labels == label].mean(axis=0) for label in classes])
    return NearestCentroid(classes.tolist(), centroids)


def save(model: NearestCentroid, model_dir: Path) -> None:
    document = {"classes": model.classes, "centroids": model.centroids.tolist()}
    (model_dir / MODEL_FILE).write_text(json.dumps(document))


def load(model_dir: Path) -> NearestCentroid:
    document = json.loads((model_dir / MODEL_FILE).read_text())
    return NearestCentroid(document["classes"], np.asarray(document["centroids"], dtype=float))


def predict(model: NearestCentroid, features: np.ndarray) -> np.ndarray:
    if np.isnan(features).any():
        raise ValueError("features contain missing values; this model needs every feature")
    distances = np.square(features[:, None, :] - model.centroids[None, :, :]).sum(axis=2)
    return np.asarray(model.classes)[distances.argmin(axis=1)]
