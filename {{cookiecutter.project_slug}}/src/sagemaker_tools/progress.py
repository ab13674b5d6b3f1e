"""Long waits say what they wait for and for how long (make publish, make release, make benchmark).

    with waiting("publish: my-algorithm validating") as wait:
        while ...:
            wait.update("InProgress (validation sample-data InProgress)")

In a terminal it is one line, rewritten in place: `publish: my-algorithm validating: InProgress · 3m05s`.
Anywhere else (CI logs, a file, a pipe) every change of status is a plain line of its own, and an
unchanged status is repeated every `heartbeat` seconds so a log shows the wait is alive.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Callable, TextIO

HEARTBEAT_SECONDS = 300.0


def elapsed_text(seconds: float) -> str:
    """12s, 3m05s, 1h02m."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def is_terminal(stream: TextIO) -> bool:
    """A terminal a person watches: not a pipe or file, not a CI log, not TERM=dumb."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb" and not os.environ.get("CI")


class Wait:
    """One wait's display; `update(status)` after each poll."""

    def __init__(
        self,
        what: str,
        stream: TextIO,
        terminal: bool,
        clock: Callable[[], float],
        heartbeat: float,
    ) -> None:
        self.what = what
        self.stream = stream
        self.terminal = terminal
        self.clock = clock
        self.heartbeat = heartbeat
        self.started = clock()
        self.status: str | None = None
        self._last_line_at: float | None = None
        self._drawn = False

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def line(self) -> str:
        return f"{self.what}: {self.status} · {elapsed_text(self.elapsed)}"

    def update(self, status: str) -> None:
        now = self.clock()
        changed = status != self.status
        self.status = status
        if self.terminal:
            self.stream.write("\r\x1b[K" + self.line())
            self._drawn = True
        elif changed or self._last_line_at is None or now - self._last_line_at >= self.heartbeat:
            self.stream.write(self.line() + "\n")
            self._last_line_at = now
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:  # leave the last state on screen, and the cursor on a fresh line
            self.stream.write("\n")
            self.stream.flush()


@contextlib.contextmanager
def waiting(
    what: str,
    *,
    stream: TextIO | None = None,
    terminal: bool | None = None,
    clock: Callable[[], float] = time.monotonic,
    heartbeat: float = HEARTBEAT_SECONDS,
) -> Iterator[Wait]:
    """Show a wait on `stream` (stderr by default); `terminal` overrides the detection."""
    stream = stream if stream is not None else sys.stderr
    wait = Wait(what, stream, is_terminal(stream) if terminal is None else terminal, clock, heartbeat)
    try:
        yield wait
    finally:
        wait.close()
