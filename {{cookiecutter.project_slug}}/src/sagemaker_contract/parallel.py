"""Work on every CPU the container may use: how many there are, and a function run in forked children.

Training reads a large channel on all of them at once (training_data.py). Children are forked,
not spawned: they start in milliseconds with the parent's modules, and shared memory mapped
before the fork is theirs to write into.
"""

from __future__ import annotations

import math
import os
import pickle
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

CGROUP_CPU_FILES = (Path("/sys/fs/cgroup/cpu.max"), Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"))

Item = TypeVar("Item")
Result = TypeVar("Result")


class ChildFailed(Exception):
    """A forked child raised, or died (e.g. killed by the OOM killer): the reason, one line."""


def usable_cpus() -> int:
    """The CPUs this process may run on, fewer when the container's CPU quota is lower (docker --cpus)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def _cgroup_cpu_quota() -> float | None:
    v2, v1 = CGROUP_CPU_FILES
    try:
        quota, period = v2.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(v1.read_text())
        period = int((v1.parent / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


class Forked:
    """function(item) for every item, each in a child forked for it, all running from the start.
    `results()` waits for them; `stop()` (or leaving a `with` block) kills any still running, so
    none outlives what started them, whatever happens to this process meanwhile."""

    def __init__(self, function: Callable[[Item], Result], items: Sequence[Item]) -> None:
        self._children: list[tuple[int, int]] = []  # (pid, read end of its pipe) until collected
        try:
            for item in items:
                read_end, write_end = os.pipe()
                pid = os.fork()
                if pid == 0:  # the child: never returns
                    os.close(read_end)
                    _run_child(function, item, write_end)
                os.close(write_end)
                self._children.append((pid, read_end))
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> Forked:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def results(self) -> list[Result]:
        """The results in the order of the items, once every child has ended; a child that
        raised or died raises ChildFailed."""
        outcomes = []
        while self._children:
            pid, read_end = self._children.pop(0)
            outcomes.append(_collect(pid, read_end))
        failures = [outcome for outcome in outcomes if isinstance(outcome, ChildFailed)]
        if failures:
            raise failures[0]
        return outcomes  # type: ignore[return-value]  # every outcome is a result

    def stop(self) -> None:
        while self._children:
            pid, read_end = self._children.pop()
            os.close(read_end)
            _kill(pid)


def forked_map(function: Callable[[Item], Result], items: Sequence[Item]) -> list[Result]:
    """function(item) for every item in forked children at once, their results in order (see Forked)."""
    with Forked(function, items) as children:
        return children.results()


def _run_child(function: Callable[[Item], Result], item: Item, write_end: int) -> None:
    # The parent's SIGTERM handler must not run here; the parent stops its children itself.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    code = 0
    try:
        message = pickle.dumps((True, function(item)))
    except BaseException as error:  # noqa: BLE001 - everything goes back to the parent as one line
        message = pickle.dumps((False, f"{type(error).__name__}: {error}"))
        code = 1
    try:
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(message)
    finally:
        os._exit(code)  # no atexit handlers, no flushing of the parent's buffers


def _collect(pid: int, read_end: int) -> object:
    try:
        with os.fdopen(read_end, "rb") as pipe:
            message = pipe.read()
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = None  # reaped elsewhere (SIGCHLD ignored, say): its message says how it went
    except BaseException:
        _kill(pid)
        raise
    if status is not None and os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        hint = " (the OOM killer?)" if number == signal.SIGKILL else ""
        return ChildFailed(f"child {pid} was killed by {signal.Signals(number).name}{hint}")
    try:
        succeeded, value = pickle.loads(message)
    except Exception:  # noqa: BLE001 - a truncated message: the child died writing it
        return ChildFailed(f"child {pid} ended without a result")
    return value if succeeded else ChildFailed(value)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ChildProcessError, ProcessLookupError):
        pass  # already ended and reaped
