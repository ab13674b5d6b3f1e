"""Training in a watched child (sagemaker_contract.training_watch): a death by signal, the OOM
killer's above all, leaves a failure reason instead of a bare exit code."""

import functools
import os
import signal
import time

from sagemaker_contract import training, training_watch
from sagemaker_contract.memory import MEBIBYTE

from stand_ins import fake_module

EVENTS = "low 0\nhigh 0\nmax 12\noom 1\noom_kill {kills}\noom_group_kill 0\n"  # cgroup v2's memory.events
LIMIT = (512 * MEBIBYTE, "the container's memory limit (/sys/fs/cgroup/memory.max)")


def killed_in_fit(events_file, kills_after):
    """A fit() the kernel kills with SIGKILL, having counted `kills_after` OOM kills by then."""

    def fit(hyperparameters, train, validation=None):
        events_file.write_text(EVENTS.format(kills=kills_after))
        os.kill(os.getpid(), signal.SIGKILL)

    return fit


def watched(opt_ml, tmp_path, kills_after):
    events = tmp_path / "memory.events"
    events.write_text(EVENTS.format(kills=0))
    user = fake_module(fit=killed_in_fit(events, kills_after))
    return training_watch.run_watched(
        lambda: training.run(opt_ml, user),
        opt_ml,
        count_oom_kills=functools.partial(training_watch.oom_kills, (tmp_path / "missing", events)),
        memory_limit=lambda: LIMIT,
    )


def test_a_fit_killed_by_the_oom_killer_writes_what_ran_the_limit_and_what_to_do(opt_ml, tmp_path):
    assert watched(opt_ml, tmp_path, kills_after=1) == 128 + signal.SIGKILL == 137
    assert opt_ml.failure_file.read_text() == (
        "training ran out of memory while running fit() in model.py: the kernel's OOM killer stopped it at "
        "the memory limit of 512 MB, the container's memory limit (/sys/fs/cgroup/memory.max); use an "
        "instance type with more memory (e.g. ml.m5.large (8 GiB)), or less data per instance (more "
        "instances, or fewer rows)\n"
    )


def test_a_sigkill_that_is_not_the_oom_killers_says_so(opt_ml, tmp_path):
    assert watched(opt_ml, tmp_path, kills_after=0) == 137
    reason = opt_ml.failure_file.read_text()
    assert reason.startswith("training was killed by SIGKILL while running fit() in model.py (not by the OOM killer)")


def test_a_child_that_exits_passes_its_code_on_and_its_own_reason_stays(opt_ml, tmp_path):
    assert training_watch.run_watched(lambda: training.run(opt_ml, fake_module()), opt_ml) == 0
    assert not opt_ml.failure_file.exists()
    failing = fake_module(fit=lambda hyperparameters, train, validation=None: 1 / 0)
    assert training_watch.run_watched(lambda: training.run(opt_ml, failing), opt_ml) == 1
    assert "raised ZeroDivisionError" in opt_ml.failure_file.read_text()


def test_sigterm_to_the_parent_reaches_the_training_child(opt_ml, tmp_path):
    def fit(hyperparameters, train, validation=None):
        os.kill(os.getppid(), signal.SIGTERM)  # as `docker stop` signals PID 1, the parent
        time.sleep(10)  # SIGTERM, passed on, stops training here; else fit() returns and the job succeeds

    assert training_watch.run_watched(lambda: training.run(opt_ml, fake_module(fit=fit)), opt_ml) == 143
    assert opt_ml.failure_file.read_text().startswith("training stopped by SIGTERM")


def test_oom_kills_are_read_from_cgroup_v2_or_v1_and_none_without_either(tmp_path):
    v2, v1 = tmp_path / "memory.events", tmp_path / "memory.oom_control"
    v2.write_text(EVENTS.format(kills=3))
    v1.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert training_watch.oom_kills((v2, v1)) == 3
    assert training_watch.oom_kills((tmp_path / "none", v1)) == 2
    assert training_watch.oom_kills((tmp_path / "none",)) is None
