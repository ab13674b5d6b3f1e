"""XGBoost across the job's hosts, with checkpoints: what the XGBoost algorithm's fit() calls.

Only XGBoost projects import this module (it imports xgboost); the rest of the contract never does.

    with xgboost_training.collective(job.cluster):    # one job across hosts; nothing on one host
        classes = xgboost_training.all_labels(train.labels)
        held = xgboost_training.in_memory(params, {"train": train, "validation": validation})
        booster = xgboost_training.train(params, matrix, num_round, evals=..., checkpoints=...)

Across hosts, XGBoost's own collective (Rabit) joins the hosts: the first host runs the tracker,
every host (the first too) is a worker, and each contributes its rows to every histogram, so
together they train one model. Its rank is its place in resourceconfig.json's host list.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost
from xgboost import collective as xgb_collective
from xgboost.tracker import RabitTracker

from .checkpoints import Checkpoints
from .errors import ContractError
from .memory import instance_with_memory, mb
from .training_data import Dataset, memory_left
from .training_job import Cluster

log = logging.getLogger("train")

# The tracker's port on the first host (the one SageMaker's built-in XGBoost uses too).
TRACKER_PORT = 9099
# How long a host waits for its peers: names to resolve, the tracker to listen, every host to join.
PEER_WAIT_SECONDS = 300
CHECKPOINT_SUFFIX = ".ubj"  # XGBoost's binary model format, chosen by the file name

# What XGBoost holds per row however the features are held (external memory pages them out):
# labels, row partitions, and per output (class) gradient and hessian, prediction, and the
# prediction transformed for the evaluation metric. benchmark/xgboost_row_memory.py measured, with
# XGBoost 3.2.0 (hist, the train matrix evaluated every round), in external memory from 1,000,000
# to 2,000,000 rows: 48 bytes a row for binary:logistic (one output), 198 for multi:softprob with
# 10 classes (at 10 features and at 40 alike); from 100,000 to 400,000 rows: 47 for
# reg:squarederror, 81 with 3 classes. About 32 bytes plus 16 per output: rounded up here.
ROW_BYTES = 34
OUTPUT_BYTES = 17
# In memory, XGBoost's own copy of the features too (a DMatrix's value and column index, and each
# value's histogram bin): the same script measured 150 bytes a row at 10 features and 501 at 40
# (binary:logistic, in memory, the numpy matrix not counted), 11.7 bytes a feature.
FEATURE_BYTES = 12
# What a Dataset takes to hold a row it has not read yet: float32 features, and the label.
DATASET_FEATURE_BYTES, DATASET_LABEL_BYTES = 4, 8


def resolve_host(
    name: str,
    wait: float = PEER_WAIT_SECONDS,
    lookup: Callable[[str], str] = socket.gethostbyname,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """The address of host `name`, retried for up to `wait` seconds: SageMaker's host names may
    resolve only after the container starts. ContractError (one line) when it never does."""
    deadline = clock() + wait
    pause = 0.5
    while True:
        try:
            return lookup(name)
        except OSError as error:
            if clock() + pause > deadline:
                raise ContractError(
                    f"host {name!r} from resourceconfig.json did not resolve within {wait:.0f} s ({error}); "
                    "the job's instances must reach each other: check the VPC's subnets and security groups"
                ) from None
        sleep(pause)
        pause = min(pause * 2, 10.0)


def _connect_retries(wait: float) -> int:
    """XGBoost's worker retries connecting to the tracker with pauses of 2, 4, 6, ... s: enough
    retries to cover `wait` seconds (a worker may start well before the first host's tracker)."""
    retries, waited = 0, 0.0
    while waited < wait:
        retries += 1
        waited += 2 * retries
    return retries


@contextlib.contextmanager
def collective(cluster: Cluster, port: int = TRACKER_PORT, wait: float = PEER_WAIT_SECONDS) -> Iterator[None]:
    """Train inside this as one job across the cluster's hosts; on one host it does nothing."""
    if cluster.world_size == 1:
        yield
        return
    leader = resolve_host(cluster.hosts[0], wait)
    worker = {
        "dmlc_communicator": "rabit",
        "dmlc_tracker_uri": leader,
        "dmlc_tracker_port": port,
        "dmlc_task_id": f"{cluster.rank:06d}",
        "dmlc_retry": _connect_retries(wait),
        "dmlc_timeout": int(wait),
    }
    tracker = None
    with contextlib.ExitStack() as stack:
        try:
            if cluster.is_leader:
                # sortby="task" with zero-padded task ids: XGBoost's ranks follow resourceconfig.json's order.
                tracker = RabitTracker(
                    n_workers=cluster.world_size, host_ip=leader, port=port, sortby="task", timeout=int(wait)
                )
                stack.push(_shut_down(tracker, wait))  # runs after the worker below has left
                tracker.start()
            stack.enter_context(xgb_collective.CommunicatorContext(**worker))
        except xgboost.core.XGBoostError as error:
            raise ContractError(
                f"distributed training among {', '.join(cluster.hosts)} could not start ({_first_line(error)}); "
                f"every host must reach {cluster.hosts[0]} on TCP port {port}, and each other"
            ) from error
        log.info(
            "distributed training: rank %d of %d hosts (%s; tracker on %s:%d)",
            xgb_collective.get_rank(),
            xgb_collective.get_world_size(),
            cluster.current_host,
            cluster.hosts[0],
            port,
        )
        yield


def _shut_down(tracker: RabitTracker, wait: float) -> Callable[..., bool]:
    def shut_down(kind: type[BaseException] | None, error: BaseException | None, trace: object) -> bool:
        try:
            if kind is None:
                # Until every worker has left: freed earlier, the tracker would fail the slower ones.
                tracker.wait_for(int(wait))
            tracker.free()
        except xgboost.core.XGBoostError as failure:  # the job's outcome is decided by now: say so, go on
            log.warning("XGBoost's tracker did not shut down cleanly: %s", _first_line(failure))
        return False

    return shut_down


def _first_line(error: BaseException) -> str:
    """XGBoost's errors: a location line, then the reason, then a C++ stack trace."""
    lines = [line.strip(" -") for line in str(error).splitlines() if line.strip(" -")]
    reasons = [line for line in lines if not line.startswith(("[", "Stack trace"))]
    return (reasons or lines or ["no detail"])[0]


@dataclass(frozen=True)
class MatrixRows:
    """One channel as XGBoost will train on it: its rows and features, and whether its Dataset
    holds the features in memory already (then they count in what the process holds)."""

    channel: str
    rows: int
    features: int
    loaded: bool = False


def outputs(params: Mapping[str, Any]) -> int:
    """How many values XGBoost computes per row: one per class for multi:*, else its targets."""
    if str(params.get("objective", "")).startswith("multi:"):
        return int(params.get("num_class", 1))
    return int(params.get("num_target", 1))


def choose_layouts(matrices: Sequence[MatrixRows], outputs: int, left: int, limit: int, source: str) -> dict[str, bool]:
    """For each channel, True to give XGBoost its rows in memory, False for external memory
    (features paged to local disk), the earlier channels first in memory; `left` is the memory the
    process may still take. ContractError, in one line, when even external memory cannot fit:
    XGBoost's own bytes per row (gradients, predictions, ...) do not page out."""
    row_bytes = ROW_BYTES + OUTPUT_BYTES * outputs
    rows = sum(matrix.rows for matrix in matrices)
    floor = rows * row_bytes  # what every layout needs
    if floor > left:
        instance = instance_with_memory(floor + (limit - left))
        advice = f"use an instance type with more memory, e.g. {instance}" if instance else "shard the channels"
        names = " and ".join(repr(matrix.channel) for matrix in matrices)
        raise ContractError(
            f"XGBoost cannot train on {names} ({rows:,} rows) in this container's memory, not even with "
            f"external memory: it keeps {row_bytes} bytes a row for {outputs} output(s) in memory, {mb(floor)}, "
            f"but only {mb(max(left, 0))} is left of {mb(limit)}, {source}; {advice}, or more instances "
            "(distributed training shares the rows)"
        )
    spare = left - floor
    chosen = {}
    for matrix in matrices:
        per_feature = FEATURE_BYTES + (0 if matrix.loaded else DATASET_FEATURE_BYTES)
        cost = matrix.rows * (per_feature * matrix.features + (0 if matrix.loaded else DATASET_LABEL_BYTES))
        chosen[matrix.channel] = cost <= spare
        spare -= cost if chosen[matrix.channel] else 0
    return chosen


def in_memory(params: Mapping[str, Any], datasets: Mapping[str, Dataset | None]) -> dict[str, bool]:
    """For each channel given, whether XGBoost should get its rows in memory (True) or from external
    memory (False), counting XGBoost's own memory per row for `params`' objective; ContractError in
    one line (the memory needed and an instance type that has it) when even external memory for
    all of them cannot fit the container, before the kernel's OOM killer would stop the job."""
    present = {name: data for name, data in datasets.items() if data is not None}
    matrices = [MatrixRows(name, len(data), data.feature_count, data.loaded) for name, data in present.items()]
    left, limit, source = memory_left()  # after len(): the labels are read and held already
    chosen = choose_layouts(matrices, outputs(params), left, limit, source)
    for name, held in chosen.items():
        log.info("%s: %s", name, "in memory" if held else "features in XGBoost's external memory (paged to disk)")
    return chosen


def all_labels(labels: np.ndarray) -> np.ndarray:
    """The sorted distinct labels of every host's rows (each host may see only some classes)."""
    mine = np.unique(labels)
    if not xgb_collective.is_distributed():
        return mine
    every: set[Any] = set()
    for rank in range(xgb_collective.get_world_size()):
        every.update(xgb_collective.broadcast(mine.tolist(), rank))
    return np.asarray(sorted(every), dtype=labels.dtype if labels.dtype.kind != "U" else str)


class _EarlyStoppingAcrossResumes(xgboost.callback.EarlyStopping):
    """XGBoost's early stopping, continued from a checkpoint: the best round and score the resumed
    booster records (early stopping writes them as its attributes) count as already seen, so a
    resumed job stops at the round, and keeps the best round, of a job never interrupted.
    (XGBoost's own starts afresh: it takes the first resumed round for the best.)"""

    def before_training(self, model: xgboost.Booster) -> xgboost.Booster:
        model = super().before_training(model)
        best_iteration, best_score = model.attr("best_iteration"), model.attr("best_score")
        self._carried = None
        if self.starting_round and best_iteration is not None and best_score is not None:
            if int(best_iteration) < self.starting_round:
                self._carried = (int(best_iteration), float(best_score))
        return model

    # XGBoost 2 passes these by position, 3 by keyword.
    def _update_rounds(self, score: Any, name: str, metric: str, model: xgboost.Booster, epoch: int) -> bool:
        if self._carried is not None and not self.stopping_history:
            best_iteration, best_score = self._carried
            self.stopping_history[name] = {metric: [best_score]}
            self.best_scores[name] = {metric: [best_score]}
            self.current_rounds = epoch - 1 - best_iteration  # rounds since the best, before this one
        return super()._update_rounds(score=score, name=name, metric=metric, model=model, epoch=epoch)


class _CheckpointEveryMinute(xgboost.callback.TrainingCallback):
    """Saves the booster when due (every host at the same round) and stops after SIGTERM's save.
    Runs early stopping, if any, first, so that a checkpoint records the best round up to its
    own (XGBoost 2 keeps its callbacks in a set, so their order cannot be relied on)."""

    def __init__(self, checkpoints: Checkpoints, early_stopping: _EarlyStoppingAcrossResumes | None = None) -> None:
        super().__init__()
        self.checkpoints = checkpoints
        self.early_stopping = early_stopping

    def before_training(self, model: xgboost.Booster) -> xgboost.Booster:
        return self.early_stopping.before_training(model) if self.early_stopping else model

    def after_training(self, model: xgboost.Booster) -> xgboost.Booster:
        return self.early_stopping.after_training(model) if self.early_stopping else model

    def after_iteration(self, model: xgboost.Booster, epoch: int, evals_log: Any) -> bool:
        stop_early = bool(self.early_stopping and self.early_stopping.after_iteration(model, epoch, evals_log))
        due = self.checkpoints.due()
        stop = self.checkpoints.stop_requested
        if xgb_collective.is_distributed():
            # Every host saves, and stops, at the same round, so that restarted they agree.
            agreed = xgb_collective.allreduce(np.array([due, stop], dtype=np.int32), xgb_collective.Op.MAX)
            due, stop = bool(agreed[0]), bool(agreed[1])
        rounds = model.num_boosted_rounds()
        if due or stop:
            self.checkpoints.save(rounds, lambda path: model.save_model(str(path)))
        if stop:
            self.checkpoints.stop_requested = True
            self.checkpoints.stop_if_requested(rounds)
        return stop_early


def resume(checkpoints: Checkpoints) -> xgboost.Booster | None:
    """The booster of the newest checkpoint every host has, or None to start from round 0."""
    saved = checkpoints.latest(log_resume=False)
    rounds = saved.round if saved else 0
    if xgb_collective.is_distributed():
        # A host stopped mid-save may lag one checkpoint behind: all resume at the lowest round.
        rounds = int(xgb_collective.allreduce(np.array([rounds], dtype=np.int64), xgb_collective.Op.MIN)[0])
    if saved is None or rounds == 0:
        return None
    log.info("resuming from checkpoint at round %d (%s)", rounds, saved.path.name)
    booster = xgboost.Booster(model_file=str(saved.path))
    if booster.num_boosted_rounds() > rounds:
        attributes = booster.attributes()
        booster = booster[:rounds]  # a slice keeps no attributes: early stopping's are put back
        if int(attributes.get("best_iteration", rounds)) < rounds:
            booster.set_attr(**attributes)
    return booster


def train(
    params: dict[str, Any],
    matrix: xgboost.DMatrix,
    num_round: int,
    evals: Sequence[tuple[xgboost.DMatrix, str]] = (),
    early_stopping_rounds: int | None = None,
    checkpoints: Checkpoints | None = None,
) -> xgboost.Booster:
    """xgboost.train for `num_round` rounds in all, resuming from and writing `checkpoints` when
    the job has them; with early stopping, the booster up to its best round."""
    checkpoints = checkpoints if checkpoints is not None and checkpoints.enabled else None
    start = resume(checkpoints) if checkpoints else None
    done = start.num_boosted_rounds() if start is not None else 0
    if done >= num_round:
        # SIGTERM came during the last round: its checkpoint is the finished job, still uncut.
        log.info("the checkpoint already holds all %d rounds", num_round)
        return _up_to_best_round(start, early_stopping_rounds)
    early_stopping = _EarlyStoppingAcrossResumes(rounds=early_stopping_rounds) if early_stopping_rounds else None
    callbacks = [_CheckpointEveryMinute(checkpoints, early_stopping)] if checkpoints else [early_stopping]
    with checkpoints or contextlib.nullcontext():
        booster = xgboost.train(
            params,
            matrix,
            num_boost_round=num_round - done,
            evals=list(evals),
            xgb_model=start,
            callbacks=[callback for callback in callbacks if callback is not None] or None,
            verbose_eval=False,
        )
    log.info("trained %d of %d rounds", booster.num_boosted_rounds(), num_round)
    return _up_to_best_round(booster, early_stopping_rounds)


def _up_to_best_round(booster: xgboost.Booster, early_stopping_rounds: int | None) -> xgboost.Booster:
    """With early stopping, the booster cut after its best round (the trees after it go)."""
    best = booster.attr("best_iteration")
    if early_stopping_rounds and best is not None:
        return booster[: int(best) + 1]  # best_iteration counts from round 0, resumed or not
    return booster
