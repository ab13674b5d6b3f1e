"""Tests of your model module. Yours to change; `make test` runs them with the contract's own."""

from pathlib import Path

import pytest

from sagemaker_contract import read_csv_channel

from {{ cookiecutter.__package_name }} import model

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def train():
    return read_csv_channel("train", DATA / "train")


@pytest.fixture(scope="module")
def validation():
    return read_csv_channel("validation", DATA / "validation")


def accuracy(fitted, data):
    return sum(p == label for p, label in zip(model.predict(fitted, data.features), data.labels)) / len(data)


def test_the_example_model_learns_the_sample_data(train, validation):
    assert accuracy(model.example_model(train), validation) > 0.85


def test_save_and_load_give_the_same_predictions(tmp_path, train, validation):
    fitted = model.example_model(train)
    model.save(fitted, tmp_path)
    loaded = model.load(tmp_path)
    assert list(model.predict(loaded, validation.features)) == list(model.predict(fitted, validation.features))


def test_predict_gives_one_result_per_row(train):
    assert len(model.predict(model.example_model(train), train.features[:7])) == 7
