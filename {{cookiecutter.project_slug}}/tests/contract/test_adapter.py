"""The one adapter to the project's module (sagemaker_contract.adapter): checked once, in one line."""

import types

import numpy as np
import pytest

from sagemaker_contract.adapter import PACKING, SERVING, TRAINING, adapt
from sagemaker_contract.errors import ClientError, ProjectError
from sagemaker_contract.formats import Formats

from stand_ins import raw_module


def test_a_complete_module_is_adapted_with_everything_the_contract_reads():
    user = adapt(raw_module(MODEL_FILE="model.json", SUPPORTS_BATCHING=False), TRAINING)
    assert user.name == "fake_model" and user.file == "/project/src/fake/model.py"
    assert [item.name for item in user.hyperparameters] == ["depth"]
    assert [channel.name for channel in user.channels] == ["train", "validation"]
    assert user.model_file == "model.json" and user.supports_batching is False and user.trains
    assert not user.fit_takes_job
    assert user.require(SERVING) is user and user.require(PACKING) is user


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"predict": 3}, "predict must be a function, not int"),
        ({"HYPERPARAMETERS": "depth"}, "HYPERPARAMETERS must be a list, not str"),
        ({"MODEL_FILE": 7}, "MODEL_FILE must be a file name, not int"),
        ({"REQUEST_TYPES": ["png"]}, "REQUEST_TYPES must list media types such as 'image/png'"),
        ({"REQUEST_TYPES": ["image/png"]}, "REQUEST_TYPES is set but decode(body, content_type) is not defined"),
        ({"RESPONSE_TYPES": ["application/x-npy"]}, "RESPONSE_TYPES is set but encode(predictions, accept)"),
        ({"consumed_units": 1}, "consumed_units must be a function, not int"),
    ],
)
def test_a_mistyped_name_is_one_line_naming_it(overrides, message):
    with pytest.raises(ProjectError) as caught:
        adapt(raw_module(**overrides), SERVING)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("/project/src/fake/model.py: ")


def test_missing_names_are_listed_for_the_use_that_needs_them():
    module = types.ModuleType("serving_only")
    module.__file__ = "/project/src/serving_only/model.py"
    module.load = module.predict = lambda *args: None
    user = adapt(module, SERVING)
    with pytest.raises(ProjectError, match=r"does not define fit, evaluate, save, HYPERPARAMETERS, CHANNELS, METRICS;"):
        user.require(TRAINING)


def test_the_metering_hook_is_read_when_the_module_defines_it():
    def count_values(records, predictions):
        return records.size

    assert adapt(raw_module(consumed_units=count_values), SERVING).consumed_units is count_values
    assert adapt(raw_module(), SERVING).consumed_units is None


def test_fit_taking_a_job_is_noticed():
    user = adapt(raw_module(fit=lambda hyperparameters, train, validation=None, job=None: {}), TRAINING)
    assert user.fit_takes_job
    user = adapt(raw_module(fit=lambda hyperparameters, train, **more: {}), TRAINING)
    assert user.fit_takes_job


def decode_text(body: bytes, content_type: str):
    words = body.decode().split()
    if not words:
        raise ValueError("no words; send one word per record")
    return np.array([[float(len(word))] for word in words])


def encode_upper(predictions, accept: str) -> bytes:
    return " ".join(str(p).upper() for p in predictions).encode()


def test_payload_hooks_add_formats_without_touching_the_built_in_ones():
    module = raw_module(
        REQUEST_TYPES=["text/plain"], decode=decode_text, RESPONSE_TYPES=["text/x-shout"], encode=encode_upper
    )
    formats = Formats.of(adapt(module))
    assert formats.request_types == ("text/plain", "text/csv", "application/json", "application/jsonlines")
    assert formats.response_type("text/x-shout", "text/plain") == "text/x-shout"
    assert formats.response_type("", "text/plain") == "application/json"  # no Accept: JSON
    assert formats.response_type("", "text/csv") == "text/csv"
    rows = list(formats.decode_slices("text/plain", b"a bb ccc"))
    assert len(rows) == 1 and rows[0].tolist() == [[1.0], [2.0], [3.0]]
    answer = formats.answer("text/x-shout")
    answer.add(["a", "b"])
    answer.add(["c"])
    assert answer.body() == b"A B C"
    with pytest.raises(ClientError) as caught:
        list(formats.decode_slices("text/plain", b"   "))
    assert caught.value.status == 400 and "no words; send one word per record" in caught.value.message


def test_a_renamed_module_stays_importable_under_its_old_name_with_a_warning():
    """Projects made by earlier template versions import sagemaker_contract.datasets in their own
    tests/test_model.py, which updates never touch: that import must keep working."""
    import importlib
    import sys

    from sagemaker_contract import training_data

    sys.modules.pop("sagemaker_contract.datasets", None)
    with pytest.warns(DeprecationWarning, match="sagemaker_contract.datasets is now sagemaker_contract.training_data"):
        old = importlib.import_module("sagemaker_contract.datasets")
    assert old is training_data and old.read_csv_channel is training_data.read_csv_channel


def test_distributed_training_is_declared_with_a_fit_that_sees_the_job():
    user = adapt(raw_module(DISTRIBUTED_TRAINING=True, fit=lambda hyperparameters, train, job=None: {}), TRAINING)
    assert user.distributed_training
    assert not adapt(raw_module(), TRAINING).distributed_training
    with pytest.raises(ProjectError, match="DISTRIBUTED_TRAINING is True but fit\\(\\) takes no `job` argument"):
        adapt(raw_module(DISTRIBUTED_TRAINING=True), TRAINING)
    with pytest.raises(ProjectError, match="DISTRIBUTED_TRAINING must be True or False, not str"):
        adapt(raw_module(DISTRIBUTED_TRAINING="yes"), TRAINING)
