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

`make package-model MODEL=path/to/model` packs a booster or XGBClassifier trained anywhere (saved
with `save_model(...)`, not pickle) into build/model.tar.gz, as xgboost-model.json or .ubj after
what the file holds (XGBoost saves UBJSON when the name has no .json); without MODEL it packs
example_model()'s, trained on data/train. sagemaker_contract.xgboost_model reads it back: a model
XGBClassifier saved answers the classes its predict() gives.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xgboost

from sagemaker_contract import Dataset, xgboost_model

MODEL_FILE = "xgboost-model.json"  # make package-model names a UBJSON model xgboost-model.ubj


def example_model(train: Dataset) -> xgboost.Booster:
    classes = np.unique(train.labels)
    params = {"objective": "multi:softprob", "num_class": len(classes), "max_depth": 4, "eta": 0.3, "seed": 0}
    booster = xgboost.train(params, xgboost.DMatrix(train.features, label=np.searchsorted(classes, train.labels)), 50)
    booster.set_attr(classes=json.dumps(classes.tolist()))  # predict() answers these names
    return booster


def save(model: xgboost.Booster, model_dir: Path) -> None:
    model.save_model(model_dir / MODEL_FILE)


def load(model_dir: Path) -> xgboost_model.XGBoostModel:
    return xgboost_model.load(model_dir)


def predict(model: xgboost_model.XGBoostModel | xgboost.Booster, features: np.ndarray) -> np.ndarray:
    return xgboost_model.predict(model, features)
