"""An XGBoost model saved anywhere: read whatever its file is called, answered as its maker would.

XGBoost saves JSON or UBJSON (UBJSON by default since 2.1, when the name has no .json or .ubj)
and picks its parser by the file's name, so UBJSON stored as xgboost-model.json fails deep in C++.
XGBoost 1.x also wrote a legacy binary format that XGBoost 3 no longer reads. The first bytes
tell them apart (XGBoost's own loader looks at the same ones), so `make package-model` stores a
model under the name that matches its content and refuses, in one line, what cannot be read.

A model saved by XGBClassifier answers the classes its predict() gives, not probabilities.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xgboost

MODEL_STEM = "xgboost-model"
SUFFIXES = {"json": ".json", "ubj": ".ubj"}
RESAVE = 'load it with the XGBoost that saved it and save it again with booster.save_model("model.json")'
# The legacy binary format: an optional "binf", a 136-byte parameter block, then the objective's
# name as a little-endian uint64 length and its characters (e.g. "binary:logistic").
LEGACY_PARAMETERS = 136


class ModelFormatError(ValueError):
    """A file XGBoost cannot read here; the message is one line saying what to do."""


def model_format(head: bytes, name: str) -> str:
    """ "json" or "ubj" from a file's first bytes (at least 160 of them, when the file has as many)."""
    if head[:1] == b"{":
        if head[1:2].isalpha():  # a UBJSON type marker: XGBoost writes {L<int64 length>learner...
            return "ubj"
        if head[1:].lstrip(b" \t\r\n")[:1] in (b'"', b"}"):
            return "json"
    if _legacy_binary(head):
        raise ModelFormatError(f"{name} is in XGBoost's legacy binary format, which XGBoost 3 cannot read: {RESAVE}")
    raise ModelFormatError(
        f"{name} is not an XGBoost model in JSON or UBJSON (XGBoost saves no other format): {RESAVE}"
    )


def _legacy_binary(head: bytes) -> bool:
    body = head[4:] if head[:4] == b"binf" else head
    objective = body[LEGACY_PARAMETERS + 8 :]
    if len(objective) < 1:
        return False
    (length,) = struct.unpack_from("<Q", body, LEGACY_PARAMETERS)
    name = objective[: min(length, 32)]
    return 0 < length <= 64 and name.isascii() and name.replace(b":", b"").replace(b"_", b"").isalnum()


def read_head(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(4 + LEGACY_PARAMETERS + 8 + 32)


def model_file_name(path: Path) -> str:
    """xgboost-model.json or xgboost-model.ubj: the name that says what `path` holds."""
    return MODEL_STEM + SUFFIXES[model_format(read_head(path), str(path))]


def find_model_file(model_dir: Path) -> Path:
    for suffix in SUFFIXES.values():
        candidate = model_dir / (MODEL_STEM + suffix)
        if candidate.is_file():
            return candidate
    raise ModelFormatError(f"no {MODEL_STEM}.json or {MODEL_STEM}.ubj in {model_dir}; pack it with make package-model")


@dataclass
class XGBoostModel:
    """A booster and what its predictions mean: class names, class indexes, or its raw output."""

    booster: xgboost.Booster
    objective: str
    classes: np.ndarray | None  # the names the example trained with (the booster's `classes` attribute)
    classifier: bool  # saved by XGBClassifier: answer its predict()'s class indexes
    iteration_range: tuple[int, int]  # XGBClassifier predicts with the best iteration early stopping kept

    @property
    def n_features_in_(self) -> int:
        return self.booster.num_features()

    def predict(self, features: np.ndarray) -> np.ndarray:
        output = self.booster.inplace_predict(features, iteration_range=self.iteration_range)
        if self.objective == "multi:softmax":  # already class indexes, as floats
            return output.astype(np.int32)
        if self.classes is not None and output.ndim == 2:
            return self.classes[output.argmax(axis=1)]
        if not self.classifier:
            return output  # a booster trained elsewhere, with no classes: its raw output
        if output.ndim == 2 and self.objective.startswith("multi:"):
            return output.argmax(axis=1)
        return (output > 0.5).astype(np.int64)  # XGBClassifier's threshold, per label for multi-label


def load(model_dir: Path) -> XGBoostModel:
    """The model make package-model packed (xgboost-model.json or .ubj), one thread per prediction."""
    path = find_model_file(model_dir)
    format_ = model_format(read_head(path), path.name)
    booster = xgboost.Booster()
    # A file whose name lies about its content (packed by hand): XGBoost reads a buffer by its content.
    booster.load_model(str(path) if path.suffix == SUFFIXES[format_] else bytearray(path.read_bytes()))
    booster.set_param({"nthread": 1})  # the server runs one worker process per CPU already
    return served(booster)


def served(booster: xgboost.Booster) -> XGBoostModel:
    """A booster with what its predictions mean, read from what it carries."""
    maker = json.loads(booster.attr("scikit_learn") or "{}")
    classes = booster.attr("classes")
    best = booster.attr("best_iteration")
    return XGBoostModel(
        booster=booster,
        objective=json.loads(booster.save_config())["learner"]["objective"]["name"],
        classes=np.asarray(json.loads(classes)) if classes is not None else None,
        classifier=maker.get("_estimator_type") == "classifier",
        iteration_range=(0, int(best) + 1) if best is not None else (0, 0),
    )


def predict(model: XGBoostModel | xgboost.Booster, features: np.ndarray) -> np.ndarray:
    """load()'s model's answers; a bare booster (example_model()'s, before it is saved) is read first."""
    return (served(model) if isinstance(model, xgboost.Booster) else model).predict(features)
