"""The training contract, run on the host against a temporary /opt/ml (sagemaker_contract.training)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sagemaker_contract import training, training_data
from sagemaker_contract.model_metadata import METADATA_FILE

from stand_ins import fake_module


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


@pytest.fixture
def sigterm_fallback():
    """Catches a SIGTERM that no handler of the code under test takes, so that it cannot kill pytest:
    a test whose code failed to install its handler then fails with a message. Yields the SIGTERMs
    it caught, and restores the handler pytest had."""
    caught = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))
    try:
        yield caught
    finally:
        signal.signal(signal.SIGTERM, previous)


STOPPED_REASON = "training stopped by SIGTERM (StopTrainingJob or MaxRuntimeInSeconds) before the model was saved"


def test_sigterm_during_fit_interrupts_fit_at_once_and_says_so(opt_ml, sigterm_fallback):
    progress = []

    def fit(hyperparameters, train, validation=None):
        progress.append("fit started")
        os.kill(os.getpid(), signal.SIGTERM)
        # Training's handler raises in here; a handler that only took note would let fit run on.
        time.sleep(5)
        progress.append("fit went on after SIGTERM")
        return {"depth": 1}

    ours = signal.getsignal(signal.SIGTERM)
    assert training.run(opt_ml, fake_module(fit=fit)) == training.EXIT_STOPPED == 143
    assert progress == ["fit started"], "fit was not interrupted by SIGTERM"
    assert sigterm_fallback == [], "training had no SIGTERM handler of its own"
    assert failure(opt_ml) == STOPPED_REASON
    assert not opt_ml.model_dir.exists() or not any(opt_ml.model_dir.iterdir())
    assert signal.getsignal(signal.SIGTERM) is ours  # the handler from before training is back


def test_sigterm_during_save_lets_the_save_finish(opt_ml, sigterm_fallback, caplog):
    def save(model, model_dir):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)  # a save under way: stopping here would leave no model, or half of one
        (model_dir / "model.json").write_text(json.dumps(model))

    assert training.run(opt_ml, fake_module(save=save)) == 0
    assert json.loads((opt_ml.model_dir / "model.json").read_text()) == {"depth": 3}
    assert (opt_ml.model_dir / METADATA_FILE).is_file()  # written after save(), still in the deferred part
    assert (opt_ml.output_data_dir / "metrics.json").is_file()
    assert not opt_ml.failure_file.exists()
    assert sigterm_fallback == [], "training had no SIGTERM handler of its own"
    assert "SIGTERM received while saving the model; finishing the save first" in caplog.text


def test_the_entry_point_exits_143_on_sigterm_before_train_or_serve_take_over():
    """As PID 1 Python ignores SIGTERM without a handler; the entry point installs one before the
    heavy imports of train and serve, which then install their own. The process below ignores
    SIGTERM as PID 1 does, then runs the entry point with a stand-in command that gets SIGTERM."""
    script = (
        "import os, signal, sys, time, types\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)  # PID 1 in a container: no handler, no effect\n"
        "from sagemaker_contract import __main__ as entry\n"
        "def slow_start():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(5)\n"
        "    print('went on after SIGTERM')\n"
        "    return 0\n"
        "stand_in = types.ModuleType('sagemaker_contract.describe')\n"
        "stand_in.main = slow_start\n"
        "sys.modules['sagemaker_contract.describe'] = stand_in\n"
        "sys.exit(entry.main(['describe']))\n"
    )
    source = Path(training.__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(source)},
    )
    assert (result.returncode, result.stdout) == (143, ""), result.stderr[-2000:]


def test_a_fit_that_takes_the_job_receives_it_read_from_opt_ml(opt_ml):
    opt_ml.resource_config_file.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
    seen = []

    def fit(hyperparameters, train, validation=None, job=None):
        seen.append(job)
        return {"depth": hyperparameters["depth"]}

    assert training.run(opt_ml, fake_module(fit=fit)) == 0
    (job,) = seen
    assert (job.cluster.rank, job.cluster.world_size, job.cluster.is_leader) == (1, 2, False)
    assert job.hyperparameters == {"depth": "3"} and set(job.channels) == {"train", "validation"}
    assert job.channels["train"].directory == opt_ml.channel_dir("train")


def test_a_fastfile_channel_is_read_like_a_file_channel(opt_ml):
    config = json.loads(opt_ml.input_data_config_file.read_text())
    config["train"]["TrainingInputMode"] = "FastFile"  # SageMaker mounts the data where File copies it
    opt_ml.input_data_config_file.write_text(json.dumps(config))
    assert training.run(opt_ml, fake_module()) == 0
    assert json.loads((opt_ml.output_data_dir / "metrics.json").read_text())["train:rows"] == 3.0


def distributed_module(seen):
    def fit(hyperparameters, train, validation=None, job=None):
        seen.append((train.labels.tolist(), validation.labels.tolist()))
        return {"depth": 1}

    return fake_module(fit=fit, DISTRIBUTED_TRAINING=True)


def test_hosts_training_as_one_job_take_their_share_of_replicated_rows(opt_ml, capsys, caplog):
    (opt_ml.channel_dir("train") / "part.csv").write_text("a,1,2\nb,3,4\na,5,6\nc,7,8\nb,9,9\n")
    for host, expected in (("algo-1", ["a", "a", "b"]), ("algo-2", ["b", "c"])):
        opt_ml.resource_config_file.write_text(json.dumps({"current_host": host, "hosts": ["algo-1", "algo-2"]}))
        seen = []
        assert training.run(opt_ml, distributed_module(seen)) == 0
        assert seen[0][0] == expected
        assert "train:rows=5" in capsys.readouterr().out  # metrics are on every row
    assert "trains on its own copy" not in caplog.text


@pytest.mark.parametrize("memory", ["plenty", "the share only", "too little"])
def test_a_replicated_channel_too_large_for_memory_is_shared_from_disk(opt_ml, monkeypatch, memory):
    # 30,000 rows x 2 features: a 480 KB matrix, 160 KB for each of 3 hosts.
    rows = range(30_000)
    (opt_ml.channel_dir("train") / "part.csv").write_text("".join(f"{n % 2},{n},{n / 4}\n" for n in rows))
    (opt_ml.channel_dir("validation") / "part.csv").write_text("1,1,1\n")  # algo-2's share: no rows
    hosts = ["algo-1", "algo-2", "algo-3"]
    opt_ml.resource_config_file.write_text(json.dumps({"current_host": "algo-2", "hosts": hosts}))
    # What is left: the whole matrix and as much again; one host's share twice over; nothing.
    left = {"plenty": 2 * 480_000 + 100_000, "the share only": 2 * 160_000 + 100_000, "too little": 0}[memory]
    monkeypatch.setattr(training_data, "memory_left", lambda: (left, 10**9, "a test"))
    seen = []

    def fit(hyperparameters, train, validation=None, job=None):
        seen.append(repr(train).rsplit(", ", 1)[1])
        seen.append([row for batch in train.batches(rows=7_000) for row in batch.features[:, 0].tolist()])
        seen.append(train.labels.tolist())
        return {"depth": 1}

    assert training.run(opt_ml, fake_module(fit=fit, DISTRIBUTED_TRAINING=True)) == 0
    held, features, labels = seen
    assert held == ("on disk)" if memory == "too little" else "in memory)")
    assert features == list(range(1, 30_000, 3)) and labels == [n % 2 for n in range(1, 30_000, 3)]


def test_a_sharded_channel_is_this_hosts_shard_already(opt_ml):
    config = json.loads(opt_ml.input_data_config_file.read_text())
    config["train"]["S3DistributionType"] = "ShardedByS3Key"
    opt_ml.input_data_config_file.write_text(json.dumps(config))
    opt_ml.resource_config_file.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
    seen = []
    assert training.run(opt_ml, distributed_module(seen)) == 0
    assert seen == [(["a", "b", "a"], [])]  # every train row; validation's one row went to algo-1


def test_a_single_host_algorithm_on_many_hosts_trains_on_every_row_and_warns(opt_ml, caplog):
    opt_ml.resource_config_file.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
    seen = []

    def fit(hyperparameters, train, validation=None):
        seen.append(len(train))
        return {"depth": 1}

    assert training.run(opt_ml, fake_module(fit=fit)) == 0
    assert seen == [3] and "every host trains on its own copy of the data" in caplog.text
