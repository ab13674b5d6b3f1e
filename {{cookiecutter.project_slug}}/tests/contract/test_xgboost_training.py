"""XGBoost across hosts and with checkpoints (sagemaker_contract.xgboost_training); XGBoost projects only."""

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xgboost

from sagemaker_contract import xgboost_training
from sagemaker_contract.checkpoints import Checkpoints
from sagemaker_contract.errors import ContractError, TrainingStopped
from sagemaker_contract.training_job import Cluster


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_a_host_name_that_resolves_late_is_retried():
    clock, answers = Clock(), [OSError("Name or service not known")] * 3 + ["10.0.0.1"]

    def lookup(name):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert xgboost_training.resolve_host("algo-1", 60, lookup, clock, clock.sleep) == "10.0.0.1"
    assert 0 < clock.now < 60 and answers == []


def test_a_host_name_that_never_resolves_is_one_clear_error_after_the_wait():
    clock = Clock()

    def lookup(name):
        raise OSError("Name or service not known")

    with pytest.raises(ContractError) as caught:
        xgboost_training.resolve_host("algo-1", 60, lookup, clock, clock.sleep)
    message = str(caught.value)
    assert message.startswith("host 'algo-1' from resourceconfig.json did not resolve within 60 s")
    assert "security groups" in message and "\n" not in message
    assert 50 <= clock.now <= 60  # waited, but not past the bound


def test_workers_retry_connecting_to_the_tracker_for_the_whole_wait():
    retries = xgboost_training._connect_retries(300)
    assert sum(2 * n for n in range(1, retries + 1)) >= 300 > sum(2 * n for n in range(1, retries))


def test_a_tracker_that_cannot_start_is_one_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cluster = Cluster(hosts=("127.0.0.1", "localhost"), current_host="127.0.0.1")
        with pytest.raises(ContractError) as caught:
            with xgboost_training.collective(cluster, port=port, wait=5):
                pass
    message = str(caught.value)
    assert message.startswith("distributed training among 127.0.0.1, localhost could not start (")
    assert f"every host must reach 127.0.0.1 on TCP port {port}" in message and "\n" not in message


def test_one_host_needs_no_collective():
    with xgboost_training.collective(Cluster(hosts=("algo-1",), current_host="algo-1")):
        assert not xgboost.collective.is_distributed()
        assert xgboost_training.all_labels(np.array([2, 0, 2])).tolist() == [0, 2]


def data(seed, rows=200, classes=3):
    rng = np.random.default_rng(seed)
    features = rng.random((rows, 4)).astype(np.float32)
    labels = (features[:, 0] * classes).astype(int)
    return features, labels


PARAMS = {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "eta": 0.3, "nthread": 1, "seed": 0}


def test_checkpoints_every_round_then_a_restart_resumes_and_finishes_all_rounds(tmp_path, caplog):
    caplog.set_level(logging.INFO, "train")
    features, labels = data(0)
    (tmp_path / "checkpoints").mkdir()
    checkpoints = Checkpoints(tmp_path / "checkpoints", "algo-1", "xgboost", ".ubj", interval=0)
    checkpoints.stop_requested = True  # as SIGTERM does: save after the running round and stop
    with pytest.raises(TrainingStopped, match="round 1 "):
        xgboost_training.train(PARAMS, xgboost.DMatrix(features, label=labels), 8, checkpoints=checkpoints)
    assert [path.name for path in (tmp_path / "checkpoints").iterdir()] == ["xgboost.algo-1.round-00000001.ubj"]

    restarted = Checkpoints(tmp_path / "checkpoints", "algo-1", "xgboost", ".ubj", interval=0)
    booster = xgboost_training.train(PARAMS, xgboost.DMatrix(features, label=labels), 8, checkpoints=restarted)
    assert booster.num_boosted_rounds() == 8
    assert "resuming from checkpoint at round 1 " in caplog.text and "trained 8 of 8 rounds" in caplog.text
    # Resuming changes nothing: the same trees as training all 8 rounds at once.
    whole = xgboost.train(PARAMS, xgboost.DMatrix(features, label=labels), 8)
    assert booster.get_dump() == whole.get_dump()
    assert restarted.latest(log_resume=False).round == 8  # saved every round (interval 0)


def test_early_stopping_after_a_resume_keeps_the_trees_up_to_the_best_round(tmp_path):
    features, labels = data(1)
    valid_features, valid_labels = data(2, rows=60)
    train_matrix = xgboost.DMatrix(features, label=labels)
    evals = [(xgboost.DMatrix(valid_features, label=valid_labels), "validation")]
    (tmp_path / "checkpoints").mkdir()
    first = xgboost.train(PARAMS, train_matrix, 5)
    first.save_model(str(tmp_path / "checkpoints" / "xgboost.algo-1.round-00000005.ubj"))
    checkpoints = Checkpoints(tmp_path / "checkpoints", "algo-1", "xgboost", ".ubj")
    booster = xgboost_training.train(
        {**PARAMS, "eta": 1.0}, train_matrix, 200, evals=evals, early_stopping_rounds=2, checkpoints=checkpoints
    )
    run = xgboost.train(
        {**PARAMS, "eta": 1.0},
        train_matrix,
        195,
        evals=evals,
        early_stopping_rounds=2,
        xgb_model=first,
        verbose_eval=False,
    )
    assert booster.num_boosted_rounds() == int(run.attr("best_iteration")) + 1 < 200
    assert booster.get_dump() == run[: int(run.attr("best_iteration")) + 1].get_dump()


@pytest.mark.parametrize("lagging", [0, 2], ids=["same round", "another host lagged 2 rounds"])
def test_early_stopping_resumed_mid_patience_stops_where_an_uninterrupted_job_stops(tmp_path, caplog, lagging):
    caplog.set_level(logging.INFO, "train")
    features, labels = data(1)
    valid_features, valid_labels = data(2, rows=60)
    train_matrix = xgboost.DMatrix(features, label=labels)
    evals = [(xgboost.DMatrix(valid_features, label=valid_labels), "validation")]
    params = {**PARAMS, "eta": 1.0}
    uninterrupted = xgboost.train(params, train_matrix, 200, evals=evals, early_stopping_rounds=5, verbose_eval=False)
    best, stopped = int(uninterrupted.attr("best_iteration")), uninterrupted.num_boosted_rounds()
    assert stopped == best + 6 < 200  # stopped by patience: 5 rounds without a better score
    # The job's checkpoint from 2 rounds after the best, with early stopping's record of the best;
    # or one with 2 rounds more, cut back to the round another host reached (what resume() does).
    (tmp_path / "checkpoints").mkdir()
    at = best + 3
    partial = xgboost.train(
        params, train_matrix, at + lagging, evals=evals, early_stopping_rounds=5, verbose_eval=False
    )
    partial.save_model(str(tmp_path / "checkpoints" / f"xgboost.algo-1.round-{at:08d}.ubj"))
    checkpoints = Checkpoints(tmp_path / "checkpoints", "algo-1", "xgboost", ".ubj")
    booster = xgboost_training.train(
        params, train_matrix, 200, evals=evals, early_stopping_rounds=5, checkpoints=checkpoints
    )
    assert f"resuming from checkpoint at round {at} " in caplog.text
    assert f"trained {stopped} of 200 rounds" in caplog.text
    assert booster.get_dump() == uninterrupted[: best + 1].get_dump()


class SigtermDuringRound(Checkpoints):
    """Checkpoints that see SIGTERM arrive while round `round_number` runs."""

    def __init__(self, *args, round_number, **kwargs):
        super().__init__(*args, **kwargs)
        self.round_number, self.rounds_done = round_number, 0

    def due(self):  # asked once after each round
        self.rounds_done += 1
        if self.rounds_done == self.round_number:
            self.stop_requested = True
        return super().due()


def test_sigterm_during_the_last_round_resumes_to_the_uninterrupted_jobs_trees_cut_at_the_best_round(tmp_path, caplog):
    caplog.set_level(logging.INFO, "train")
    features, labels = data(1)
    valid_features, valid_labels = data(2, rows=60)
    train_matrix = xgboost.DMatrix(features, label=labels)
    evals = [(xgboost.DMatrix(valid_features, label=valid_labels), "validation")]
    params = {**PARAMS, "eta": 1.0}
    best = int(
        xgboost.train(params, train_matrix, 200, evals=evals, early_stopping_rounds=5, verbose_eval=False).attr(
            "best_iteration"
        )
    )
    num_round = best + 4  # patience (5) never runs out: all rounds train, the last 3 are cut
    uninterrupted = xgboost_training.train(params, train_matrix, num_round, evals=evals, early_stopping_rounds=5)
    assert uninterrupted.num_boosted_rounds() == best + 1

    (tmp_path / "checkpoints").mkdir()
    checkpoints = SigtermDuringRound(tmp_path / "checkpoints", "algo-1", "xgboost", ".ubj", round_number=num_round)
    with pytest.raises(TrainingStopped, match=f"round {num_round} "):
        xgboost_training.train(
            params, train_matrix, num_round, evals=evals, early_stopping_rounds=5, checkpoints=checkpoints
        )
    restarted = Checkpoints(tmp_path / "checkpoints", "algo-1", "xgboost", ".ubj")
    booster = xgboost_training.train(
        params, train_matrix, num_round, evals=evals, early_stopping_rounds=5, checkpoints=restarted
    )
    assert f"the checkpoint already holds all {num_round} rounds" in caplog.text
    assert booster.num_boosted_rounds() == best + 1
    assert booster.get_dump() == uninterrupted.get_dump()


def test_a_checkpoint_records_the_best_round_early_stopping_found_up_to_it(tmp_path):
    features, labels = data(1)
    evals = [(xgboost.DMatrix(*data(2, rows=60)[:1], label=data(2, rows=60)[1]), "validation")]
    (tmp_path / "checkpoints").mkdir()
    checkpoints = Checkpoints(tmp_path / "checkpoints", "algo-1", "xgboost", ".ubj", interval=0)
    checkpoints.stop_requested = True  # SIGTERM: save after the running round and stop
    with pytest.raises(TrainingStopped, match="round 1 "):
        xgboost_training.train(
            PARAMS, xgboost.DMatrix(features, label=labels), 8, evals=evals, early_stopping_rounds=3,
            checkpoints=checkpoints,
        )  # fmt: skip
    saved = xgboost.Booster(model_file=str(next((tmp_path / "checkpoints").iterdir())))
    assert saved.attr("best_iteration") == "0" and saved.attr("best_score") is not None


WORKER = """
import json, logging, sys, time
import numpy as np, xgboost
from sagemaker_contract import xgboost_training
from sagemaker_contract.training_job import Cluster

logging.basicConfig(level=logging.INFO)
port, host = int(sys.argv[1]), sys.argv[2]
cluster = Cluster(hosts=("127.0.0.1", "localhost"), current_host=host)
rng = np.random.default_rng(cluster.rank)
features = rng.random((100, 4)).astype(np.float32)
labels = np.array([[0, 1], [1, 2]][cluster.rank])[(features[:, 0] * 2).astype(int)]  # some classes per host
with xgboost_training.collective(cluster, port=port, wait=60):
    classes = xgboost_training.all_labels(labels)
    params = {"objective": "multi:softprob", "num_class": len(classes), "max_depth": 3, "nthread": 1}
    matrix = xgboost.DMatrix(features, label=np.searchsorted(classes, labels))
    booster = xgboost_training.train(params, matrix, 5)
    if cluster.rank == 1:
        time.sleep(1)  # the first host leaves first: its tracker must wait for this one
print(json.dumps({"classes": classes.tolist(), "trees": booster.get_dump()}))
"""


def test_two_hosts_train_one_model_with_ranks_in_host_order(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = Path(xgboost_training.__file__).resolve().parents[1]
    # Both workers on one machine: OpenMP's spinning wait would starve the other one's threads.
    env = {**os.environ, "PYTHONPATH": str(source), "OMP_WAIT_POLICY": "PASSIVE"}
    hosts = {
        host: subprocess.Popen(
            [sys.executable, "-c", WORKER, str(port), host], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for host in ("localhost", "127.0.0.1")  # the worker before the tracker: it must wait for it
    }
    results = {}
    for host, process in hosts.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()[-3000:]
        results[host] = (json.loads(out.decode().splitlines()[-1]), err.decode())
    (leader, leader_log), (worker, worker_log) = results["127.0.0.1"], results["localhost"]
    assert "distributed training: rank 0 of 2 hosts" in leader_log
    assert "distributed training: rank 1 of 2 hosts" in worker_log
    assert leader["classes"] == worker["classes"] == [0, 1, 2]
    assert leader["trees"] == worker["trees"] and len(leader["trees"]) == 5 * 3


# --- in memory, external memory, or a refusal (XGBoost's own memory per row counted) -------------
LIMIT_SOURCE = "the container's memory limit (/sys/fs/cgroup/memory.max)"
MB = 1024 * 1024


@pytest.mark.parametrize(
    ("params", "outputs"),
    [
        ({"objective": "binary:logistic"}, 1),
        ({"objective": "reg:squarederror"}, 1),
        ({"objective": "multi:softprob", "num_class": 3}, 3),
        ({"objective": "multi:softprob", "num_class": 10}, 10),
    ],
)
def test_outputs_per_row_follow_the_objective_and_classes(params, outputs):
    assert xgboost_training.outputs(params) == outputs


@pytest.mark.parametrize(
    ("outputs", "left_mb", "chosen"),
    [
        (1, 400, True),  # 1,000,000 rows x 10: features and XGBoost's copy fit beside its rows
        (1, 100, False),  # only XGBoost's own bytes a row fit: the features page out
        (3, 100, False),
        (10, 400, True),
        (10, 250, False),
    ],
)
def test_a_channel_goes_in_memory_or_to_external_memory_by_what_fits(outputs, left_mb, chosen):
    matrices = [xgboost_training.MatrixRows("train", 1_000_000, 10)]
    layouts = xgboost_training.choose_layouts(matrices, outputs, left_mb * MB, 512 * MB, LIMIT_SOURCE)
    assert layouts == {"train": chosen}


def test_features_already_in_memory_cost_only_xgboosts_copy():
    rows = 1_000_000
    loaded = [xgboost_training.MatrixRows("train", rows, 10, loaded=True)]
    unread = [xgboost_training.MatrixRows("train", rows, 10, loaded=False)]
    left = 170 * MB  # XGBoost's rows and its copy of the features: yes; the Dataset's matrix too: no
    assert xgboost_training.choose_layouts(loaded, 1, left, 512 * MB, LIMIT_SOURCE) == {"train": True}
    assert xgboost_training.choose_layouts(unread, 1, left, 512 * MB, LIMIT_SOURCE) == {"train": False}


def test_the_validation_rows_count_too_and_the_train_channel_is_held_first():
    matrices = [
        xgboost_training.MatrixRows("train", 1_000_000, 10),
        xgboost_training.MatrixRows("validation", 500_000, 10),
    ]
    assert xgboost_training.choose_layouts(matrices, 1, 250 * MB, 512 * MB, LIMIT_SOURCE) == {
        "train": True,
        "validation": False,
    }
    with pytest.raises(ContractError, match=r"^XGBoost cannot train on 'train' and 'validation' \(1,500,000 rows\)"):
        xgboost_training.choose_layouts(matrices, 10, 200 * MB, 512 * MB, LIMIT_SOURCE)


def test_a_channel_too_tall_even_for_external_memory_is_refused_in_one_line():
    # The by-hand case of issue 19: 6,000,000 rows x 10 features, two classes (multi:softprob),
    # a 512 MB container with about 300 MB left once Python, NumPy, XGBoost and the labels are in.
    matrices = [xgboost_training.MatrixRows("train", 6_000_000, 10)]
    with pytest.raises(ContractError) as refused:
        xgboost_training.choose_layouts(matrices, 2, 300 * MB, 512 * MB, LIMIT_SOURCE)
    assert str(refused.value) == (
        "XGBoost cannot train on 'train' (6,000,000 rows) in this container's memory, not even with external "
        "memory: it keeps 68 bytes a row for 2 output(s) in memory, 389 MB, but only 300 MB is left of 512 MB, "
        "the container's memory limit (/sys/fs/cgroup/memory.max); use an instance type with more memory, "
        "e.g. ml.m5.large (8 GiB), or more instances (distributed training shares the rows)"
    )
    # Far larger than any instance: shard instead.
    with pytest.raises(ContractError, match=r"; shard the channels, or more instances"):
        xgboost_training.choose_layouts(
            [xgboost_training.MatrixRows("train", 10**10, 10)], 10, 300 * MB, 512 * MB, LIMIT_SOURCE
        )


def test_in_memory_reads_rows_features_and_the_memory_left_from_the_datasets(tmp_path, monkeypatch):
    from sagemaker_contract.training_data import Dataset

    train = Dataset(np.zeros((1000, 4), dtype=np.float32), np.zeros(1000), "train")
    monkeypatch.setattr(xgboost_training, "memory_left", lambda: (10 * MB, 512 * MB, LIMIT_SOURCE))
    assert xgboost_training.in_memory({"objective": "binary:logistic"}, {"train": train, "validation": None}) == {
        "train": True
    }
    monkeypatch.setattr(xgboost_training, "memory_left", lambda: (1000, 512 * MB, LIMIT_SOURCE))
    with pytest.raises(ContractError, match=r"^XGBoost cannot train on 'train' \(1,000 rows\) .* 51 bytes a row"):
        xgboost_training.in_memory({"objective": "binary:logistic"}, {"train": train})
