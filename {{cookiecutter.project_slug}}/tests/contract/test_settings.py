"""Serving settings from the environment (sagemaker_contract.settings)."""

import pytest

from sagemaker_contract.errors import ContractError
from sagemaker_contract.settings import MEBIBYTE, Settings


def test_defaults_follow_sagemaker():
    settings = Settings.from_environ({})
    assert settings.port == 8080
    assert settings.timeout_seconds == 60
    assert settings.max_body_bytes == 1024 * MEBIBYTE  # asynchronous inference's 1 GB
    assert settings.spool_dir == "/tmp/model-server-spool"
    assert settings.workers >= 1


def test_the_body_limit_is_its_own_setting_unless_batch_transform_sets_its_payload():
    assert Settings.from_environ({"MODEL_SERVER_MAX_BODY_MB": "50"}).max_body_bytes == 50 * MEBIBYTE
    batch = {"MODEL_SERVER_MAX_BODY_MB": "50", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"}
    assert Settings.from_environ(batch).max_body_bytes == 20 * MEBIBYTE
    assert Settings.from_environ({"MODEL_SERVER_SPOOL_DIR": "/mnt/spool"}).spool_dir == "/mnt/spool"


def test_environment_overrides():
    settings = Settings.from_environ(
        {
            "SAGEMAKER_BIND_TO_PORT": "9000",
            "MODEL_SERVER_WORKERS": "3",
            "MODEL_SERVER_TIMEOUT": "5",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20",
        }
    )
    assert (settings.port, settings.workers, settings.timeout_seconds) == (9000, 3, 5)
    assert settings.max_body_bytes == 20 * MEBIBYTE


def test_a_smaller_batch_payload_never_lowers_the_realtime_limit_and_zero_means_unlimited():
    assert Settings.from_environ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"}).max_body_bytes == 6 * MEBIBYTE
    assert Settings.from_environ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "0"}).max_body_bytes == 100 * MEBIBYTE


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MODEL_SERVER_WORKERS": "many"},
            "MODEL_SERVER_WORKERS='many' is not a whole number; set it to 1..256 or unset it",
        ),
        ({"SAGEMAKER_BIND_TO_PORT": "70000"}, "SAGEMAKER_BIND_TO_PORT=70000 is out of range"),
        ({"MODEL_SERVER_ACCESS_LOG": "sometimes"}, "MODEL_SERVER_ACCESS_LOG='sometimes' is not a boolean"),
        ({"MODEL_SERVER_SPOOL_DIR": "spool"}, "MODEL_SERVER_SPOOL_DIR='spool' is not an absolute path"),
        ({"MODEL_SERVER_MAX_BODY_MB": "0"}, "MODEL_SERVER_MAX_BODY_MB=0 is out of range"),
    ],
)
def test_nonsense_is_refused_with_the_variable_named(env, message):
    with pytest.raises(ContractError) as caught:
        Settings.from_environ(env)
    assert message in str(caught.value)
