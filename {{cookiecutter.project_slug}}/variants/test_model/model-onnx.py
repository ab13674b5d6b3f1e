"""Tests of your model module. Yours to change; `make test` runs them with the contract's own."""

from pathlib import Path

import numpy as np
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


# --- request bodies the ONNX example reads besides CSV and JSON -----------------------------------
def image(values, image_format="PNG", size=8, mode="L") -> bytes:
    """A digit (64 values, 0 to 16, light on dark as in data/) as an image file."""
    import io

    from PIL import Image

    pixels = np.clip(np.round(np.asarray(values).reshape(8, 8) * 255 / 16), 0, 255).astype(np.uint8)
    picture = Image.fromarray(pixels, "L").resize((size, size), Image.Resampling.NEAREST).convert(mode)
    buffer = io.BytesIO()
    picture.save(buffer, image_format)
    return buffer.getvalue()


def test_a_png_decodes_to_the_records_pixels(validation):
    row = validation.features[0]
    [record] = model.decode(image(row), "image/png")
    assert record.shape == (8, 8)
    assert np.allclose(record.ravel(), row, atol=0.04)  # 0-16, as the model was trained


def test_a_larger_colour_jpeg_is_made_grey_and_8x8(validation):
    [record] = model.decode(image(validation.features[0], "JPEG", 64, "RGB"), "image/jpeg")
    assert record.shape == (8, 8) and np.abs(record.ravel() - validation.features[0]).mean() < 1


def test_an_npy_array_is_a_batch_of_records(validation):
    import io

    buffer = io.BytesIO()
    np.save(buffer, validation.features[:5].astype(np.float32))
    assert model.decode(buffer.getvalue(), "application/x-npy").shape == (5, 64)


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"GIF89a", "image/png", "not a PNG image"),
        (b"\x93NUMPY", "application/x-npy", "not an NPY array"),
    ],
)
def test_bodies_that_are_not_what_they_say_are_a_value_error(body, content_type, reason):
    with pytest.raises(ValueError, match=reason):
        model.decode(body, content_type)
