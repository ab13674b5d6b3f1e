"""Your model package: the one module you edit.

A model package is inference code plus a trained model. SageMaker extracts the model's
model.tar.gz into /opt/ml/model (or the image carries the model itself: see the README), and
the template's `sagemaker_contract` package serves it by calling what this module defines:

    load(model_dir) -> model     read the model, once, when the server starts
    predict(model, features)     one prediction per record of `features` (batch first)
    save(model, model_dir)       used by `make package-model` to pack a model you trained
    example_model(train)         trains the bundled example, as you would in a notebook
    decode(body, content_type)   request bodies besides CSV and JSON: NPY arrays, PNG and JPEG images
    describe_model(model)        what `docker run IMAGE describe` shows of the loaded model
    consumed_units(records, predictions) -> int    optional: the units a request bills under
                                 AWS Marketplace's per-inference pricing (default: its records)

The model is any ONNX graph (exported from PyTorch, TensorFlow, scikit-learn...), run by ONNX
Runtime (sagemaker_contract/onnx_runtime.py: threads, CPU or GPU, one session per worker).
`make package-model MODEL=path/to/model.onnx` packs one into build/model.tar.gz; without MODEL
it trains the example, a classifier of scikit-learn's 8x8 digit images (data/), and exports it
to ONNX with skl2onnx on your machine (the exporter is in requirements-dev.txt, not the image).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from sagemaker_contract import Dataset
from sagemaker_contract.onnx_runtime import OnnxModel, read_npy

MODEL_FILE = "model.onnx"
# Request bodies read by decode() below, besides CSV and JSON rows of numbers.
NPY = "application/x-npy"
IMAGE_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}
REQUEST_TYPES = [NPY, *IMAGE_FORMATS]
# How an image becomes the model's input: the example's digits are 8x8, grey, 0 (background) to
# 16 (ink). Change these for your model (e.g. (224, 224), "RGB", and a scale of 1 / 255).
IMAGE_SIZE = (8, 8)  # width, height
IMAGE_MODE = "L"  # grey; "RGB" for colour
PIXEL_SCALE = 16 / 255
INVERT = False  # the example's digits are light on dark; True for dark ink on light paper (a scan)
MAX_IMAGE_PIXELS = 40_000_000  # a larger image is refused before it is decoded
MAX_NPY_BYTES = 100 * 1024 * 1024


def example_model(train: Dataset) -> OnnxModel:
    from skl2onnx import to_onnx  # on your machine only (requirements-dev.txt)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Pixels standardised inside the graph: the server sends them as they come (0 to 16).
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    classifier.fit(train.features, train.labels)
    # A free batch dimension: any number of records per call, so concurrent requests can be batched.
    graph = to_onnx(classifier, train.features[:1].astype(np.float32), options={"zipmap": False})
    for value in [*graph.graph.input, *graph.graph.output]:  # named "N" in every input and output
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    return OnnxModel(graph.SerializeToString(), announce=False)


def save(model: OnnxModel, model_dir: Path) -> None:
    (model_dir / MODEL_FILE).write_bytes(model.graph)


def load(model_dir: Path) -> OnnxModel:
    model = OnnxModel((model_dir / MODEL_FILE).read_bytes())
    if len(model.inputs) != 1:
        names = ", ".join(spec.name for spec in model.inputs)
        raise ValueError(f"the graph has {len(model.inputs)} inputs ({names}); predict() feeds one: edit it")
    return model


def predict(model: OnnxModel, features: np.ndarray) -> np.ndarray:
    # The first output, one row per record: the example's class labels (its second output is the
    # probabilities; return `outputs[1]` to answer with those instead).
    outputs = model.run(features)
    return outputs[0]


def describe_model(model: OnnxModel) -> dict:
    return model.description()


def decode(body: bytes, content_type: str) -> np.ndarray:
    """Records from an NPY array (batch first) or one image; ValueError says what is wrong."""
    if content_type == NPY:
        return _npy(body)
    return _image(body, IMAGE_FORMATS[content_type])


def _npy(body: bytes) -> np.ndarray:
    if len(body) > MAX_NPY_BYTES:
        raise ValueError(f"the array is {len(body)} bytes; send at most {MAX_NPY_BYTES}")
    try:
        array = read_npy(body)
    except ValueError as error:
        raise ValueError(f"not an NPY array ({error}); send one array as numpy.save() writes it") from None
    if array.dtype.kind not in "biuf":
        raise ValueError(f"the array's dtype is {array.dtype}; send numbers (float32, float64 or integers)")
    if array.ndim < 2:
        raise ValueError(
            f"the array has shape {array.shape}; send a batch, records first: shape (1, 64) for one record of 64 values"
        )
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError("the array holds NaN or infinite values; send finite numbers")
    return array


def _image(body: bytes, image_format: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(body), formats=[image_format]) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ValueError(f"the image is {width}x{height} pixels; send at most {MAX_IMAGE_PIXELS} pixels")
            pixels = image.convert(IMAGE_MODE).resize(IMAGE_SIZE, Image.Resampling.BOX)  # each pixel: its area's mean
    except UnidentifiedImageError:
        raise ValueError(f"the body is not a {image_format} image") from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:  # truncated or corrupt
        raise ValueError(f"the {image_format} image cannot be decoded: {' '.join(str(error).split())[:120]}") from None
    array = np.asarray(pixels, dtype=np.float32)
    if INVERT:
        array = 255 - array
    array *= PIXEL_SCALE
    return array[np.newaxis]  # one record
