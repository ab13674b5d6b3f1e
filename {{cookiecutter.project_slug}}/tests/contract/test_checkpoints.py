"""The cluster of a job, and checkpoints for managed spot (training_job.py, checkpoints.py, training.py)."""

import json
import logging
import os
import signal
import time

import pytest

from sagemaker_contract import training
from sagemaker_contract.checkpoints import Checkpoints, defer_sigterm_to_checkpoints
from sagemaker_contract.errors import TrainingStopped
from sagemaker_contract.training_job import Cluster, TrainingJob

from stand_ins import fake_module


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"current_host": "algo-2", "hosts": ["algo-1", "algo-2", "algo-3"]}, (("algo-1", "algo-2", "algo-3"), 1, 3)),
        ({"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}, (("algo-1", "algo-2"), 0, 2)),
        ({"current_host": "algo-7"}, (("algo-7",), 0, 1)),
        ({}, (("algo-1",), 0, 1)),
    ],
)
def test_the_cluster_is_read_from_resourceconfig(config, expected):
    cluster = Cluster.from_resource_config({**config, "network_interface_name": "eth1"})
    assert (cluster.hosts, cluster.rank, cluster.world_size) == expected
    assert cluster.is_leader == (cluster.rank == 0)
    assert cluster.current_host == config.get("current_host", "algo-1")


def test_the_job_reads_the_cluster_and_names_checkpoints_after_this_host(opt_ml):
    opt_ml.resource_config_file.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
    job = TrainingJob.read(opt_ml)
    assert (job.cluster.current_host, job.cluster.rank, job.cluster.world_size) == ("algo-2", 1, 2)
    checkpoints = job.checkpoints("xgboost", ".ubj")
    assert checkpoints.directory == opt_ml.root / "checkpoints"
    assert checkpoints.path_for(12).name == "xgboost.algo-2.round-00000012.ubj"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def write_text(text):
    return lambda path: path.write_text(text)


def test_without_the_directory_checkpoints_do_nothing_and_sigterm_is_not_deferred(tmp_path):
    with Checkpoints(tmp_path / "checkpoints", "algo-1", interval=0) as checkpoints:
        assert not checkpoints.enabled and not checkpoints.due() and checkpoints.latest() is None
        assert defer_sigterm_to_checkpoints() is False
    assert not (tmp_path / "checkpoints").exists()


def test_checkpoints_are_due_every_interval_and_keep_only_the_newest_of_this_host(tmp_path, caplog):
    caplog.set_level(logging.INFO, "train")
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    (directory / "state.algo-2.round-00000009").write_text("another host's")
    clock = Clock()
    with Checkpoints(directory, "algo-1", name="state", interval=60, clock=clock) as checkpoints:
        checkpoints.step_done(1, write_text("round 1"))
        assert not any(path.name.startswith("state.algo-1") for path in directory.iterdir())  # not due yet
        clock.now += 59.9
        assert not checkpoints.due()
        clock.now += 0.1
        checkpoints.step_done(2, write_text("round 2"))
        clock.now += 60
        checkpoints.step_done(3, write_text("round 3"))
        clock.now += 30
        checkpoints.step_done(4, write_text("round 4"))  # 30 s after the last save: not due
    names = sorted(path.name for path in directory.iterdir())
    assert names == ["state.algo-1.round-00000003", "state.algo-2.round-00000009"]
    restarted = Checkpoints(directory, "algo-1", name="state")
    latest = restarted.latest()
    assert (latest.round, latest.path.read_text()) == (3, "round 3")
    assert "resuming from checkpoint at round 3" in caplog.text


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint_whole(tmp_path):
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    checkpoints = Checkpoints(directory, "algo-1", interval=0)
    checkpoints.save(1, write_text("good"))

    def crash(path):
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        checkpoints.save(2, crash)
    assert checkpoints.latest().round == 1 and checkpoints.latest().path.read_text() == "good"


def test_after_sigterm_the_next_step_saves_and_stops(tmp_path):
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    with Checkpoints(directory, "algo-1", interval=3600) as checkpoints:
        checkpoints.step_done(1, write_text("1"))
        assert defer_sigterm_to_checkpoints() is True
        with pytest.raises(TrainingStopped, match="the checkpoint at round 2 is in .*checkpoints"):
            checkpoints.step_done(2, write_text("2"))
    assert checkpoints.latest().round == 2
    assert defer_sigterm_to_checkpoints() is False  # no longer watching once the block is left


def stepwise_fit(steps, sigterm_at=None, seen=None):
    """A fit that trains in steps with checkpoints, as the custom template's docstring shows."""

    def fit(hyperparameters, train, validation=None, job=None):
        with job.checkpoints("steps") as checkpoints:
            saved = checkpoints.latest()
            step = saved.round if saved else 0
            if seen is not None:
                seen.append(step)
            while step < steps:
                step += 1
                if step == sigterm_at:
                    os.kill(os.getpid(), signal.SIGTERM)  # arrives while this step runs
                checkpoints.step_done(step, lambda path, done=step: path.write_text(str(done)))
        return {"depth": step}

    return fit


def test_sigterm_with_checkpoints_saves_the_running_step_then_a_restart_resumes(opt_ml, caplog):
    caplog.set_level(logging.INFO, "train")
    (opt_ml.root / "checkpoints").mkdir()
    assert training.run(opt_ml, fake_module(fit=stepwise_fit(10, sigterm_at=4))) == training.EXIT_STOPPED
    assert sorted(path.name for path in (opt_ml.root / "checkpoints").iterdir()) == ["steps.algo-1.round-00000004"]
    reason = opt_ml.failure_file.read_text()
    assert reason.startswith("training stopped by SIGTERM") and "the checkpoint at round 4 is in" in reason
    assert "saving a checkpoint after the current round" in caplog.text
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # the grace-period alarm is off again

    opt_ml.failure_file.unlink()
    seen = []
    assert training.run(opt_ml, fake_module(fit=stepwise_fit(10, seen=seen))) == 0
    assert seen == [4] and "resuming from checkpoint at round 4" in caplog.text
    assert json.loads((opt_ml.model_dir / "model.json").read_text()) == {"depth": 10}


def test_sigterm_without_checkpoints_still_stops_at_once(opt_ml):
    # No /opt/ml/checkpoints: the job asked for none, so nothing is worth finishing the step for.
    assert training.run(opt_ml, fake_module(fit=stepwise_fit(10, sigterm_at=4))) == training.EXIT_STOPPED
    assert opt_ml.failure_file.read_text().strip() == (
        "training stopped by SIGTERM (StopTrainingJob or MaxRuntimeInSeconds) before the model was saved"
    )


def test_a_step_that_outlasts_the_grace_period_is_stopped_without_a_checkpoint(opt_ml, monkeypatch):
    monkeypatch.setattr(training, "STOP_GRACE_SECONDS", 1)
    (opt_ml.root / "checkpoints").mkdir()

    progress = []

    def fit(hyperparameters, train, validation=None, job=None):
        with job.checkpoints() as checkpoints:
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # a step longer than the grace period
                pass
            progress.append("the step outlasted the grace period")
            checkpoints.step_done(1, lambda path: path.write_text("1"))
        return {"depth": 1}

    assert training.run(opt_ml, fake_module(fit=fit)) == training.EXIT_STOPPED
    assert progress == [] and not any((opt_ml.root / "checkpoints").iterdir())
