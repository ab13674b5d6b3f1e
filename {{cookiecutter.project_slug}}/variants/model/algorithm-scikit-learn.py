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

`train` and `validation` are Datasets: `.features` (rows x columns, float32, what scikit-learn's
trees compute in, so no copy is made) and `.labels`, read from CSV files with the label in the
first column and no header. A decision tree needs every row in memory at once: a channel too
large for the container stops the job before it starts, with the memory it needs and an instance
type that has it.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.tree import DecisionTreeClassifier

from sagemaker_contract import Categorical, Channel, Continuous, Dataset, Integer, Metric

HYPERPARAMETERS = [
    Integer(
        "max_leaf_nodes",
        min_value=2,
        max_value=100_000,
        tunable=True,
        description="Grow the tree with at most this many leaves (unset: unlimited).",
    ),
    Integer(
        "max_depth",
        min_value=1,
        max_value=100,
        tunable=True,
        description="Maximum depth of the tree (unset: grow until leaves are pure).",
    ),
    Categorical(
        "criterion",
        ["gini", "entropy", "log_loss"],
        default="gini",
        tunable=True,
        description="How a split's quality is measured.",
    ),
    Integer(
        "min_samples_leaf",
        min_value=1,
        max_value=10_000,
        default=1,
        tunable=True,
        description="Fewest training rows a leaf may hold.",
    ),
    Continuous(
        "ccp_alpha",
        min_value=0.0,
        max_value=1.0,
        default=0.0,
        tunable=True,
        description="Cost-complexity pruning strength; 0 prunes nothing.",
    ),
    Integer(
        "random_state",
        min_value=0,
        max_value=2**31 - 1,
        default=0,
        description="Seed, so the same data and hyperparameters give the same tree.",
    ),
]

CHANNELS = [
    Channel("train", required=True, description="Labelled rows: CSV, label first, no header."),
    Channel("validation", required=False, description="Held-out rows, same format; scored, not trained on."),
]

METRICS = [
    Metric("train:accuracy", description="Accuracy on the train channel."),
    Metric("validation:accuracy", goal="Maximize", description="Accuracy on the validation channel."),
]

MODEL_FILE = "decision-tree-model.joblib"


def fit(hyperparameters: dict, train: Dataset, validation: Dataset | None = None) -> DecisionTreeClassifier:
    model = DecisionTreeClassifier(**hyperparameters)
    return model.fit(train.features, train.labels)


def evaluate(model: DecisionTreeClassifier, data: Dataset) -> dict[str, float]:
    return {"accuracy": model.score(data.features, data.labels)}


def save(model: DecisionTreeClassifier, model_dir: Path) -> None:
    joblib.dump(model, model_dir / MODEL_FILE)


def load(model_dir: Path) -> DecisionTreeClassifier:
    return joblib.load(model_dir / MODEL_FILE)


def predict(model: DecisionTreeClassifier, features: np.ndarray) -> np.ndarray:
    return model.predict(features)
