"""Tests of your model module. Yours to change; `make test` runs them with the contract's own."""

from pathlib import Path

import pytest

from sagemaker_contract import read_csv_channel
from sagemaker_contract.declaration import declaration_problems, parse_hyperparameters

from {{ cookiecutter.__package_name }} import model

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def train():
    return read_csv_channel("train", DATA / "train")


@pytest.fixture(scope="module")
def validation():
    return read_csv_channel("validation", DATA / "validation")


def defaults():
    values, _ = parse_hyperparameters({}, model.HYPERPARAMETERS)
    return values


def test_the_declaration_is_one_sagemaker_accepts():
    assert declaration_problems(model.HYPERPARAMETERS, model.CHANNELS, model.METRICS) == []


def test_fit_learns_the_sample_data(train, validation):
    fitted = model.fit(defaults(), train, validation)
    assert model.evaluate(fitted, validation)["accuracy"] > 0.85


def test_save_and_load_give_the_same_predictions(tmp_path, train, validation):
    fitted = model.fit(defaults(), train, validation)
    model.save(fitted, tmp_path)
    loaded = model.load(tmp_path)
    assert list(model.predict(loaded, validation.features)) == list(model.predict(fitted, validation.features))


def test_predict_gives_one_result_per_row(train):
    fitted = model.fit(defaults(), train)
    assert len(model.predict(fitted, train.features[:7])) == 7
