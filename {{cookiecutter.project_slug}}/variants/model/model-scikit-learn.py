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

`make package-model MODEL=path/to/your-model` packs a model trained anywhere into
build/model.tar.gz; without MODEL it packs example_model()'s, trained on data/train.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.tree import DecisionTreeClassifier

from sagemaker_contract import Dataset

MODEL_FILE = "decision-tree-model.joblib"


def example_model(train: Dataset) -> DecisionTreeClassifier:
    return DecisionTreeClassifier(random_state=0).fit(train.features, train.labels)


def save(model: DecisionTreeClassifier, model_dir: Path) -> None:
    joblib.dump(model, model_dir / MODEL_FILE)


def load(model_dir: Path) -> DecisionTreeClassifier:
    return joblib.load(model_dir / MODEL_FILE)


def predict(model: DecisionTreeClassifier, features: np.ndarray) -> np.ndarray:
    return model.predict(features)
