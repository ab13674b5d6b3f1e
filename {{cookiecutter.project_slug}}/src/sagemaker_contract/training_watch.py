"""Training in a forked child that the entry process watches, so that no death goes unexplained.

The kernel's OOM killer ends a process with SIGKILL: it cannot write /opt/ml/output/failure, and
SageMaker would show a bare exit code. So `train` forks before anything heavy is imported or read
(the watching parent holds only the interpreter, shared with the child), the child trains, and
the parent waits. When the child dies from a signal, the parent writes the failure reason: what
was running (the child names each phase in a page shared with the parent), and for a SIGKILL
that raised the cgroup's oom_kill count, the memory limit and what to do. The parent passes
SIGTERM on to the child, which saves a checkpoint or stops as before.
"""

from __future__ import annotations

import logging
import mmap
import os
import signal
from collections.abc import Callable
from pathlib import Path

from .memory import container_memory_bytes, instance_with_memory, mb
from .opt_ml import FAILURE_REASON_LIMIT, OptMl

# Where the kernel counts the OOM killer's kills in this container's cgroup (v2, then v1).
OOM_EVENT_FILES = (Path("/sys/fs/cgroup/memory.events"), Path("/sys/fs/cgroup/memory/memory.oom_control"))
PHASE_BYTES = 512
# The child is the one the OOM killer should pick, never the parent that explains its death.
CHILD_OOM_SCORE_ADJ = 500

log = logging.getLogger("train")

_phase: mmap.mmap | None = None  # shared with the watching parent; None when not watched


def phase(what: str) -> None:
    """Name what training is doing now (`reading channel 'train'`, `fit() in model.py`), for
    the failure reason should the process be killed during it. A no-op when not watched."""
    if _phase is not None:
        data = what.encode()[: PHASE_BYTES - 1]
        _phase[:] = data + b"\0" * (PHASE_BYTES - len(data))


def oom_kills(files: tuple[Path, ...] = OOM_EVENT_FILES) -> int | None:
    """The cgroup's count of processes the OOM killer ended, or None where the kernel gives none."""
    for path in files:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


def run_watched(
    train: Callable[[], int],
    opt_ml: OptMl,
    count_oom_kills: Callable[[], int | None] = oom_kills,
    memory_limit: Callable[[], tuple[int, str]] = container_memory_bytes,
) -> int:
    """train() in a forked child; its exit code, or 128 + the signal that killed it, with
    /opt/ml/output/failure saying why."""
    global _phase  # noqa: PLW0603 - the child's one shared page, set before it trains
    shared = mmap.mmap(-1, PHASE_BYTES)
    before = count_oom_kills()
    # SIGTERM waits (pending) until the parent passes it on: none may be lost between fork and handler.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            _phase = shared
            _prefer_me_for_the_oom_killer()
            phase("starting training")
            code = train()
        finally:
            os._exit(code)  # never back into the parent's stack (its caller, a test runner)
    # SIGTERM (StopTrainingJob, spot interruption) reaches this process, PID 1: the child must
    # get it to checkpoint. SIGINT from a terminal reaches both already: the parent waits on.
    previous_term = signal.signal(signal.SIGTERM, lambda signum, frame: _pass_on(pid, signum))
    previous_int = signal.signal(signal.SIGINT, lambda signum, frame: None)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        status = _wait(pid)
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    number = os.WTERMSIG(status)
    running = shared[:].split(b"\0", 1)[0].decode(errors="replace") or "starting training"
    after = count_oom_kills()
    killed_for_memory = number == signal.SIGKILL and before is not None and after is not None and after > before
    _write_failure(opt_ml, _death_reason(number, running, killed_for_memory, memory_limit))
    return 128 + number


def _prefer_me_for_the_oom_killer() -> None:
    try:
        Path("/proc/self/oom_score_adj").write_text(str(CHILD_OOM_SCORE_ADJ))
    except OSError:
        pass  # no /proc (not Linux) or not allowed: the child is still by far the largest process


def _pass_on(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass  # already gone: the wait below reports it


def _wait(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return 0
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            return status


def _death_reason(
    number: int, running: str, killed_for_memory: bool, memory_limit: Callable[[], tuple[int, str]]
) -> str:
    if killed_for_memory:
        limit, source = memory_limit()
        instance = instance_with_memory(limit + 1)
        larger = f"an instance type with more memory (e.g. {instance})" if instance else "more instances"
        return (
            f"training ran out of memory while {running}: the kernel's OOM killer stopped it at the "
            f"memory limit of {mb(limit)}, {source}; use {larger}, or less data per instance "
            "(more instances, or fewer rows)"
        )
    name = signal.Signals(number).name
    return (
        f"training was killed by {name} while {running} (not by the OOM killer); if nothing sent the "
        "signal, the training code crashed: see the training log"
    )


def _write_failure(opt_ml: OptMl, reason: str) -> None:
    if len(reason) > FAILURE_REASON_LIMIT:
        reason = reason[: FAILURE_REASON_LIMIT - 3] + "..."
    log.error("training failed: %s", reason)
    opt_ml.write_failure(reason)
