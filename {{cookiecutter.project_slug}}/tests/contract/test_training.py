"""The training contract, run on the host against a temporary /opt/ml (sagemaker_contract.training)."""

import json
import os
import signal
import time

from sagemaker_contract import training
from sagemaker_contract.metadata import METADATA_FILE

from .conftest import fake_module


def test_success_saves_the_model_prints_metrics_and_writes_no_failure(opt_ml, capsys):
    assert training.run(opt_ml, fake_module()) == 0
    assert json.loads((opt_ml.model_dir / "model.json").read_text()) == {"depth": 3}
    metadata = json.loads((opt_ml.model_dir / METADATA_FILE).read_text())
    assert metadata["feature_count"] == 2 and metadata["label_kind"] == "U" and metadata["framework"]
    assert capsys.readouterr().out.splitlines() == ["train:rows=3", "validation:rows=1"]
    assert json.loads((opt_ml.output_data_dir / "metrics.json").read_text()) == {
        "train:rows": 3.0,
        "validation:rows": 1.0,
    }
    assert not opt_ml.failure_file.exists()


def test_minimal_local_files_are_enough(opt_ml):
    # What a bare local run has: no inputdataconfig/resourceconfig, an empty hyperparameters file.
    opt_ml.input_data_config_file.unlink()
    opt_ml.resource_config_file.unlink()
    opt_ml.hyperparameters_file.write_text("")
    assert training.run(opt_ml, fake_module()) == 0


def test_camel_case_resource_config_of_the_aws_samples_is_read(opt_ml):
    opt_ml.resource_config_file.unlink()
    (opt_ml.config_dir / "resourceConfig.json").write_text(
        json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})
    )
    assert training.run(opt_ml, fake_module()) == 0
    assert not opt_ml.model_dir.exists() or not any(opt_ml.model_dir.iterdir())  # only algo-1 saves


def failure(opt_ml):
    return opt_ml.failure_file.read_text().strip()


def test_bad_hyperparameters_fail_with_one_clear_reason(opt_ml):
    opt_ml.hyperparameters_file.write_text(json.dumps({"depth": "9", "_tuning_objective_metric": "x"}))
    assert training.run(opt_ml, fake_module()) == 1
    assert failure(opt_ml) == "invalid hyperparameters: depth='9' is out of range; expected an integer from 1 to 5"


def test_missing_required_channel_names_the_channels(opt_ml):
    config = json.loads(opt_ml.input_data_config_file.read_text())
    del config["train"]
    opt_ml.input_data_config_file.write_text(json.dumps(config))
    assert training.run(opt_ml, fake_module()) == 1
    assert failure(opt_ml) == (
        "the training job has no 'train' channel; "
        "this algorithm takes the channels train (required), validation (optional)"
    )


def test_pipe_mode_is_refused_with_what_to_use(opt_ml):
    opt_ml.input_data_config_file.write_text(json.dumps({"train": {"TrainingInputMode": "Pipe"}}))
    assert training.run(opt_ml, fake_module()) == 1
    assert (
        failure(opt_ml) == "channel 'train' uses Pipe input mode; this algorithm reads files, so use File or FastFile"
    )


def test_invalid_json_config_names_the_file(opt_ml):
    opt_ml.hyperparameters_file.write_text("{not json")
    assert training.run(opt_ml, fake_module()) == 1
    assert failure(opt_ml).startswith(f"{opt_ml.hyperparameters_file} is not valid JSON")


def test_channels_with_different_columns_are_refused(opt_ml):
    (opt_ml.channel_dir("validation") / "part.csv").write_text("b,7\n")
    assert training.run(opt_ml, fake_module()) == 1
    assert "channels disagree on the number of features (train: 2, validation: 1)" in failure(opt_ml)


def test_a_crash_in_user_code_says_where_and_keeps_the_traceback_in_the_log(opt_ml, capsys):
    def fit(hyperparameters, train, validation=None):
        raise ValueError("Input contains NaN\nsecond line")

    assert training.run(opt_ml, fake_module(fit=fit)) == 1
    reason = failure(opt_ml)
    assert reason.startswith("fit() in test_training.py line ")
    assert reason.endswith("raised ValueError: Input contains NaN. The full traceback is in the training log.")
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_the_failure_reason_fits_in_what_sagemaker_shows(opt_ml):
    def fit(hyperparameters, train, validation=None):
        raise RuntimeError("x" * 5000)

    training.run(opt_ml, fake_module(fit=fit))
    assert len(failure(opt_ml)) <= 1024


def test_save_that_writes_nothing_is_a_failure(opt_ml):
    assert training.run(opt_ml, fake_module(save=lambda model, model_dir: None)) == 1
    assert failure(opt_ml).startswith("save() wrote nothing to")


def test_invalid_declaration_is_reported_before_training(opt_ml):
    from sagemaker_contract.declaration import Integer

    bad = fake_module(HYPERPARAMETERS=[Integer("depth", min_value=1, max_value=5, default=7)])
    assert training.run(opt_ml, bad) == 1
    assert "the declaration in /project/src/fake/model.py is invalid: default of depth='7' is out of range" in failure(
        opt_ml
    )


def test_sigterm_during_fit_stops_training_and_says_so(opt_ml):
    def fit(hyperparameters, train, validation=None):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # interrupted by the handler long before this ends
        raise AssertionError("not stopped")

    started = time.monotonic()
    assert training.run(opt_ml, fake_module(fit=fit)) == training.EXIT_STOPPED
    assert time.monotonic() - started < 4
    assert failure(opt_ml).startswith("training stopped by SIGTERM")
    assert signal.getsignal(signal.SIGTERM) is not None


def test_sigterm_during_save_lets_the_save_finish(opt_ml):
    def save(model, model_dir):
        os.kill(os.getpid(), signal.SIGTERM)
        (model_dir / "model.json").write_text(json.dumps(model))

    assert training.run(opt_ml, fake_module(save=save)) == 0
    assert (opt_ml.model_dir / "model.json").exists()
    assert not opt_ml.failure_file.exists()


def test_the_entry_point_handles_sigterm_before_anything_else(monkeypatch):
    """As PID 1 Python ignores SIGTERM without a handler; the entry point installs one before the
    heavy imports of train and serve, which then install their own."""
    import pytest

    from sagemaker_contract import __main__ as entry

    monkeypatch.setattr(signal, "signal", signal.signal)  # restored after the test
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert entry.main(["no-such-command"]) == 2
        assert signal.getsignal(signal.SIGTERM) is entry._stop_on_sigterm
        with pytest.raises(SystemExit) as stopped:
            entry._stop_on_sigterm(signal.SIGTERM, None)
        assert stopped.value.code == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
