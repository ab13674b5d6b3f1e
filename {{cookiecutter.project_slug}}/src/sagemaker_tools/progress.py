"""Long waits say what they wait for and for how long: one line rewritten in place in a terminal,
plain lines (one a status change) when the output is a CI log or a file.

    with waiting("the server's /ping to answer 200") as wait:
        ...
        wait.update("starting")
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

REFRESH_SECONDS = 1.0  # how often a terminal's line shows the time going on without a new status
LOG_SECONDS = 10.0  # a log gets a line for a new status at most this often (a CI log stays short)


class Waiting:
    def __init__(self, what: str, stream: TextIO) -> None:
        self.what = what
        self.stream = stream
        self.started = time.monotonic()
        self.status = ""
        self.terminal = stream.isatty()
        self._lock = threading.Lock()
        self._width = 0
        self._logged = self.started

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        status = f": {self.status}" if self.status else ""
        return f"waiting for {self.what}{status} ({self.elapsed():.0f} s)"

    def update(self, status: str) -> None:
        """A new status: a terminal's line shows it at once; a log gets a line when it differs from
        the last one and LOG_SECONDS have passed since the last line."""
        with self._lock:
            changed = status != self.status
            self.status = status
            if self.terminal:
                self._rewrite()
            elif changed and time.monotonic() - self._logged >= LOG_SECONDS:
                self._logged = time.monotonic()
                print(self.line(), file=self.stream, flush=True)

    def _rewrite(self) -> None:
        text = self.line()
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def _finish(self, outcome: str) -> None:
        with self._lock:
            text = f"{self.what}: {outcome} after {self.elapsed():.1f} s"
            if self.terminal:
                self.stream.write("\r" + text.ljust(self._width) + "\n")
                self.stream.flush()
            else:
                print(text, file=self.stream, flush=True)


@contextmanager
def waiting(what: str, stream: TextIO | None = None) -> Iterator[Waiting]:
    """Show that `what` is being waited for until the block ends (done, or failed with its error)."""
    wait = Waiting(what, stream or sys.stderr)
    stop = threading.Event()
    ticker = None
    if wait.terminal:
        wait._rewrite()
        ticker = threading.Thread(target=_tick, args=(wait, stop), daemon=True)
        ticker.start()
    else:
        print(wait.line(), file=wait.stream, flush=True)
    try:
        yield wait
    except BaseException:
        stop.set()
        wait._finish("stopped")
        raise
    finally:
        stop.set()
        if ticker is not None:
            ticker.join()
    wait._finish("done")


def _tick(wait: Waiting, stop: threading.Event) -> None:
    while not stop.wait(REFRESH_SECONDS):
        with wait._lock:
            wait._rewrite()
