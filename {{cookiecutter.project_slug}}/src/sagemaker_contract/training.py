"""SageMaker's training contract: what `docker run IMAGE train` does.

1. Read /opt/ml/input/config once (training_job.py): hyperparameters.json (all values are
   strings), inputdataconfig.json and resourceconfig.json. Missing or minimal files are tolerated,
   as local runs write them. Start reading large channels on every CPU (training_data.py), so
   that the reading and the import of the project's module and its libraries overlap.
2. Check the hyperparameters and channels against the project's declaration; report every
   problem at once.
3. Read each channel (CSV, label first, no header), call the project's `fit`, print the metrics
   `evaluate` returns as `<channel>:<name>=<value>` lines, and `save` the model to /opt/ml/model.
4. On any error, write one clear reason to /opt/ml/output/failure (SageMaker shows its first
   1024 characters as FailureReason), keep the traceback in the log, and exit non-zero.
5. On SIGTERM (StopTrainingJob, or MaxRuntimeInSeconds reached; SIGKILL follows 120 s later),
   stop at the next Python instruction, or finish a save that has begun, and exit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from .adapter import TRAINING, UserModule, load_user_module
from .checkpoints import STOP_GRACE_SECONDS, defer_sigterm_to_checkpoints
from .declaration import declaration_problems, parse_hyperparameters
from .errors import ContractError, ProjectError, TrainingStopped
from .memory import MEBIBYTE
from .model_metadata import write_metadata
from .opt_ml import FAILURE_REASON_LIMIT, OptMl
from .project import FRAMEWORK
from .training_data import Dataset, open_csv_channel, read_csv_channel
from .training_job import Cluster, TrainingJob
from .training_watch import phase

log = logging.getLogger("train")

READABLE_INPUT_MODES = ("File", "FastFile")
# Memory kept free for importing the model's libraries while channels are read in the background
# (measured in the image: scikit-learn's import takes about 90 MB, XGBoost's about 30 MB). A
# custom model's imports are unknown, so its channels are read after them.
IMPORT_ROOM = {"scikit-learn": 128 * MEBIBYTE, "xgboost": 64 * MEBIBYTE}
EXIT_FAILED = 1
EXIT_STOPPED = 143  # 128 + SIGTERM, what a process killed by SIGTERM reports.


class _SigtermStop:
    """SIGTERM stops training at once, except during a save, which is allowed to finish, and
    while checkpoints are on, when the running step finishes and writes one first (checkpoints.py)."""

    def __init__(self) -> None:
        self.requested = False
        self._deferring = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self._deferring:
            log.warning("SIGTERM received while saving the model; finishing the save first")
        elif defer_sigterm_to_checkpoints():
            log.warning("SIGTERM received; saving a checkpoint after the current round, then stopping")
            # Should the round outlast the grace period, stop without the checkpoint before SIGKILL.
            signal.signal(signal.SIGALRM, self._handle_grace_over)
            signal.alarm(STOP_GRACE_SECONDS)
        else:
            raise TrainingStopped()

    def _handle_grace_over(self, signum: int, frame: FrameType | None) -> None:
        if not self._deferring:
            raise TrainingStopped()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = signal.signal(signal.SIGTERM, self._handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.alarm(0)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False


def run(opt_ml: OptMl | None = None, user: UserModule | None = None) -> int:
    """Train once, as SageMaker does. Returns the process exit code."""
    opt_ml = opt_ml or OptMl()
    stop = _SigtermStop()
    started = time.monotonic()
    try:
        with stop.installed():
            _train(opt_ml, user, stop)
    except TrainingStopped as stopped:
        reason = "training stopped by SIGTERM (StopTrainingJob or MaxRuntimeInSeconds) before the model was saved"
        return _fail(opt_ml, f"{reason}; {stopped}" if str(stopped) else reason, EXIT_STOPPED)
    except (ContractError, ProjectError) as error:
        return _fail(opt_ml, str(error), EXIT_FAILED)
    except Exception as error:  # noqa: BLE001 - anything from user code must become a reason
        traceback.print_exc()
        return _fail(opt_ml, _describe_crash(error), EXIT_FAILED)
    log.info("training finished in %.1f s; model saved to %s", time.monotonic() - started, opt_ml.model_dir)
    return 0


def _train(opt_ml: OptMl, user: UserModule | None, stop: _SigtermStop) -> None:
    job = TrainingJob.read(opt_ml)
    with _reading_early(job) as early:
        phase("importing the model's module")
        user = (user or load_user_module(TRAINING)).require(TRAINING)
        problems = declaration_problems(user.hyperparameters, user.channels, user.metrics)
        if problems:
            raise ProjectError(f"the declaration in {user.file} is invalid: " + "; ".join(problems))
        hyperparameters, warnings = parse_hyperparameters(job.hyperparameters, user.hyperparameters)
        for warning in warnings:
            log.warning("%s", warning)
        _log_cluster(job.cluster, user)
        datasets = _read_channels(job, user, early)
    log.info(
        "training on %s with %s",
        ", ".join(f"{name}: {len(data)} rows" for name, data in datasets.items() if data is not None),
        json.dumps({k: v for k, v in hyperparameters.items() if v is not None}, default=str),
    )

    assert user.fit is not None and user.evaluate is not None and user.save is not None
    extra = {"job": job} if user.fit_takes_job else {}
    phase(f"running fit() in {Path(user.file).name}")
    model = user.fit(hyperparameters, **_own_shares(datasets, job, user), **extra)

    metrics: dict[str, float] = {}
    for channel, data in datasets.items():
        if data is None:
            continue
        phase(f"running evaluate() in {Path(user.file).name} on channel {channel!r}")
        for name, value in (user.evaluate(model, data) or {}).items():
            metrics[f"{channel}:{name}"] = float(value)
    _print_metrics(metrics, user)

    if not job.cluster.is_leader:
        log.info("not the first host; leaving /opt/ml/model to the first host")
        return
    phase(f"running save() in {Path(user.file).name}")
    with stop.deferred():
        opt_ml.model_dir.mkdir(parents=True, exist_ok=True)
        user.save(model, opt_ml.model_dir)
        if not any(opt_ml.model_dir.iterdir()):
            raise ProjectError(f"save() wrote nothing to {opt_ml.model_dir}; it must write the model there")
        train = datasets[_first_required(user)]
        write_metadata(
            opt_ml.model_dir,
            feature_count=train.feature_count,
            label_kind=train.labels.dtype.kind,
            framework=FRAMEWORK,
        )
        opt_ml.output_data_dir.mkdir(parents=True, exist_ok=True)
        (opt_ml.output_data_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


def _first_required(user: UserModule) -> str:
    return next(channel.name for channel in user.channels if channel.required)


def _log_cluster(cluster: Cluster, user: UserModule) -> None:
    if cluster.world_size > 1 and not user.distributed_training:
        log.warning(
            "%d hosts in resourceconfig.json; this algorithm trains on one instance, so every "
            "host trains on its own copy of the data and only %s saves the model",
            cluster.world_size,
            cluster.hosts[0],
        )


def _own_shares(datasets: dict[str, Dataset | None], job: TrainingJob, user: UserModule) -> dict[str, Dataset | None]:
    """What each host trains on when the hosts train as one job: a ShardedByS3Key channel is this
    host's shard already; of a FullyReplicated one, every host takes every world_size-th row from
    its rank on, so that together they see each row once. Metrics are still on every row."""
    cluster = job.cluster
    if not user.distributed_training or cluster.world_size == 1:
        return datasets
    shares: dict[str, Dataset | None] = {}
    for name, data in datasets.items():
        channel = job.channels.get(name)
        if data is None or channel is None or channel.distribution != "FullyReplicated":
            shares[name] = data
            continue
        shares[name] = data.share(cluster.rank, cluster.world_size)  # held in memory if it fits, else on disk
        log.info(
            "%s is FullyReplicated: this host trains on every %d-th row from row %d (%d of %d rows)",
            name,
            cluster.world_size,
            cluster.rank,
            len(shares[name]),
            len(data),
        )
    return shares


@contextlib.contextmanager
def _reading_early(job: TrainingJob) -> Iterator[dict[str, Dataset]]:
    """The channels whose reading started on every CPU before the model's module is imported, so
    that both happen at once (scikit-learn's import alone takes about 0.7 s). Those not used
    by the time the block ends are stopped. Any problem with a channel is left to the reading
    proper, after the import, which says what is wrong."""
    early: dict[str, Dataset] = {}
    try:
        room = IMPORT_ROOM.get(FRAMEWORK)
        for name, channel in job.channels.items() if room is not None else ():
            if channel.input_mode not in READABLE_INPUT_MODES or channel.record_wrapper != "None":
                continue
            with contextlib.suppress(ContractError):
                dataset = open_csv_channel(name, channel.directory)
                if dataset.start_loading(room):
                    early[name] = dataset
                    room += dataset.in_memory_bytes() * 2  # its children hold it, not this process
        yield early
    finally:
        for dataset in early.values():
            dataset.cancel_loading()


def _read_channels(job: TrainingJob, user: UserModule, early: dict[str, Dataset]) -> dict[str, Dataset | None]:
    declared = {channel.name: channel for channel in user.channels}
    delivered = set(job.channels)
    for name in sorted(delivered - set(declared)):
        log.warning("ignoring channel %r: this algorithm declares %s", name, ", ".join(declared))
    missing = [name for name, channel in declared.items() if channel.required and name not in delivered]
    if missing:
        wanted = ", ".join(f"{c.name} ({'required' if c.required else 'optional'})" for c in user.channels)
        raise ContractError(
            f"the training job has no {' or '.join(repr(m) for m in missing)} channel; "
            f"this algorithm takes the channels {wanted}"
        )
    datasets: dict[str, Dataset | None] = {}
    for name in declared:
        if name not in delivered:
            datasets[name] = None
            continue
        channel = job.channels[name]
        phase(f"reading channel {name!r}")
        if channel.input_mode not in READABLE_INPUT_MODES:
            raise ContractError(
                f"channel {name!r} uses {channel.input_mode} input mode; this algorithm reads files, so use "
                f"{' or '.join(READABLE_INPUT_MODES)}"
            )
        if channel.record_wrapper != "None":
            raise ContractError(
                f"channel {name!r} wraps records as {channel.record_wrapper}; this "
                "algorithm reads plain CSV, so set RecordWrapperType to None"
            )
        if name in early:
            datasets[name] = early.pop(name)
            datasets[name].finish_loading()  # waits for the reading started before the import
        else:
            datasets[name] = read_csv_channel(name, channel.directory)
    widths = {name: data.feature_count for name, data in datasets.items() if data is not None}
    if len(set(widths.values())) > 1:
        raise ContractError(
            "channels disagree on the number of features ("
            + ", ".join(f"{name}: {width}" for name, width in widths.items())
            + "); every channel needs the same columns"
        )
    return datasets


def _print_metrics(metrics: dict[str, float], user: UserModule) -> None:
    declared = {metric.name: metric for metric in user.metrics}
    for name, value in metrics.items():
        metric = declared.get(name)
        # stdout, one line each, in exactly the form the declared regexes match.
        print(metric.line(value) if metric else f"{name}={value:.6g}", flush=True)


def _describe_crash(error: BaseException) -> str:
    """`fit() in model.py line 42 raised ValueError: ...`: where the user's code failed, first."""
    frames = traceback.extract_tb(error.__traceback__)
    user_frames = [f for f in frames if "sagemaker_contract" not in Path(f.filename).parts]
    where = ""
    if user_frames:
        frame = user_frames[0]
        where = f"{frame.name}() in {Path(frame.filename).name} line {frame.lineno} "
        if frame is not user_frames[-1]:
            inner = user_frames[-1]
            where += f"(failing in {Path(inner.filename).name} line {inner.lineno}) "
    message = str(error).strip().splitlines()[0] if str(error).strip() else "(no message)"
    return f"{where}raised {type(error).__name__}: {message}. The full traceback is in the training log."


def _fail(opt_ml: OptMl, reason: str, code: int) -> int:
    reason = " ".join(reason.split())
    if len(reason) > FAILURE_REASON_LIMIT:
        reason = reason[: FAILURE_REASON_LIMIT - 3] + "..."
    log.error("training failed: %s", reason)
    sys.stderr.flush()
    # Written last, after all other output, as the developer guide asks.
    opt_ml.write_failure(reason)
    return code
