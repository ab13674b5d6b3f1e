"""Checkpoints for managed spot training: save now and then, save on SIGTERM, resume at start.

SageMaker creates /opt/ml/checkpoints only when the job sets CheckpointConfig. It copies the
directory to S3 while the job runs and back into a restarted job (after a spot interruption), and
every host of a job shares the same S3 prefix, so each file names its host. Without the directory
every call here is a no-op, and SIGTERM stops training at once as before.

For code that trains in steps (rounds, epochs, batches), in the model module:

    def fit(hyperparameters, train, validation=None, job=None):
        with job.checkpoints() as checkpoints:      # see sagemaker_contract.TrainingJob
            state, step = init_state(), 0
            saved = checkpoints.latest()
            if saved is not None:                   # logs "resuming from checkpoint at round R"
                state, step = read_state(saved.path), saved.round
            while step < total_steps:
                state = train_one_step(state)
                step += 1
                # Every 60 s, and once more when SIGTERM arrives (then training stops there).
                checkpoints.step_done(step, lambda path: write_state(state, path))
        return state

Only the step that is running when SIGTERM arrives finishes (at most STOP_GRACE_SECONDS, well
within the 120 s before SageMaker's SIGKILL); then the checkpoint is written and the job stops.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .errors import TrainingStopped

log = logging.getLogger("train")

CHECKPOINT_INTERVAL_SECONDS = 60.0
# How long a step may keep running after SIGTERM before training stops without a checkpoint:
# SageMaker sends SIGKILL 120 s after SIGTERM, and the save itself needs time too.
STOP_GRACE_SECONDS = 90

# The checkpoints that will save and stop at their next step when SIGTERM arrives (see training.py).
_watching: list[Checkpoints] = []


def defer_sigterm_to_checkpoints() -> bool:
    """Called on SIGTERM: True when a checkpoint will be written at the end of the running step."""
    for checkpoints in _watching:
        checkpoints.stop_requested = True
    return bool(_watching)


@dataclass(frozen=True)
class Checkpoint:
    round: int
    path: Path


class Checkpoints:
    """This host's checkpoints in `directory`: `<name>.<host>.round-<R><suffix>`, the newest kept."""

    def __init__(
        self,
        directory: Path,
        host: str,
        name: str = "checkpoint",
        suffix: str = "",
        interval: float = CHECKPOINT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        self.host = host
        self.name = name
        self.suffix = suffix
        self.interval = interval
        self.clock = clock
        self.stop_requested = False
        self._last_save = clock()
        self._pattern = re.compile(rf"{re.escape(name)}\.{re.escape(host)}\.round-(\d+){re.escape(suffix)}")

    @property
    def enabled(self) -> bool:
        """Whether the job asked for checkpoints (SageMaker made the directory)."""
        return self.directory.is_dir()

    def __enter__(self) -> Checkpoints:
        if self.enabled:
            _watching.append(self)
        self._last_save = self.clock()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self in _watching:
            _watching.remove(self)

    def path_for(self, round_number: int) -> Path:
        return self.directory / f"{self.name}.{self.host}.round-{round_number:08d}{self.suffix}"

    def _saved(self) -> list[Checkpoint]:
        if not self.enabled:
            return []
        found = []
        for path in self.directory.iterdir():
            match = self._pattern.fullmatch(path.name)
            if match and path.is_file():
                found.append(Checkpoint(int(match.group(1)), path))
        return sorted(found, key=lambda checkpoint: checkpoint.round)

    def latest(self, log_resume: bool = True) -> Checkpoint | None:
        """This host's newest checkpoint, or None (logs `resuming from checkpoint at round R`)."""
        saved = self._saved()
        if not saved:
            return None
        if log_resume:
            log.info("resuming from checkpoint at round %d (%s)", saved[-1].round, saved[-1].path.name)
        return saved[-1]

    def due(self) -> bool:
        """Whether to save now: the interval has passed since the last save, or SIGTERM arrived."""
        return self.enabled and (self.stop_requested or self.clock() - self._last_save >= self.interval)

    def save(self, round_number: int, write: Callable[[Path], object]) -> Path:
        """write(path) the state after `round_number` rounds; older checkpoints of this host go.

        Written under a temporary name and renamed, so a SIGKILL mid-write leaves the previous
        checkpoint whole.
        """
        final = self.path_for(round_number)
        partial = final.with_name(f".partial.{final.name}")  # same suffix: it may choose the format
        write(partial)
        os.replace(partial, final)
        for old in self._saved():
            if old.path != final:
                old.path.unlink(missing_ok=True)
        self._last_save = self.clock()
        log.info("checkpoint saved at round %d: %s", round_number, final.name)
        return final

    def stop_if_requested(self, round_number: int) -> None:
        if self.stop_requested:
            raise TrainingStopped(
                f"the checkpoint at round {round_number} is in {self.directory}, and the job resumes from it "
                "when restarted"
            )

    def step_done(self, round_number: int, write: Callable[[Path], object]) -> None:
        """After each step: save when due; after SIGTERM, save and stop (TrainingStopped)."""
        if self.due():
            self.save(round_number, write)
        self.stop_if_requested(round_number)
