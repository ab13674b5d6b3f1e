"""Dynamic batching: concurrent requests share one call to the project's predict().

Requests that arrive while a prediction is running wait in a queue; when it finishes, all of
them (up to `max_batch_rows` records) go to predict() as one array and the results are split
back in order. A model gets bigger, cheaper calls under load and no added wait when idle;
`window_seconds` can add a short wait to gather more.

predict() always runs on the worker's one predict thread, never on the event loop: the loop must
stay free to answer /ping within SageMaker's 2 s whatever predict() does (a call that is quick
for most inputs may stall for some). The thread takes the batches itself, so under load it goes
from one batch to the next without being woken for each, and the loop hears back once a batch.

If anything fails while merging, predicting or splitting a batch (SystemExit and other exceptions
that are not Exceptions included), each of its requests is retried alone, so one bad request can
neither fail another nor delay its answer beyond that retry.

A watchdog: a call still running `stuck_seconds` after it started marks the predictor stuck.
From then on it takes no work: the requests waiting for it fail with WorkerStuck at once, and
`on_stuck` is told (server.py then replaces the worker). The thread that is stuck is a daemon, so
it cannot keep the worker's process from exiting.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

from .errors import PredictionError

WATCH_SECONDS = 0.25  # how often the watchdog looks at the call running on the predict thread


class WorkerStuck(Exception):
    """A predict() call overran its deadline; this worker takes no more work and is replaced."""


class _Request:
    __slots__ = ("rows", "future")

    def __init__(self, rows: np.ndarray, future: asyncio.Future[Any]) -> None:
        self.rows = rows
        self.future = future


class BatchingPredictor:
    """Calls `predict(model, rows)` on a worker thread, merging concurrent requests."""

    def __init__(
        self,
        model: Any,
        predict: Callable[[Any, np.ndarray], Sequence[Any]],
        *,
        batching: bool = True,
        max_batch_rows: int = 1000,
        window_seconds: float = 0.0,
        stuck_seconds: float | None = None,
        on_stuck: Callable[[str], None] | None = None,
    ) -> None:
        self.model = model
        self._predict = predict
        self.batching = batching
        self.max_batch_rows = max(1, max_batch_rows)
        self.window_seconds = max(0.0, window_seconds)
        self.stuck_seconds = stuck_seconds
        self.on_stuck = on_stuck
        self.stuck: str | None = None  # why this predictor takes no more work
        self.batches = 0  # Counters, for tests and the worker's exit line.
        self.requests = 0
        self.retried_alone = 0
        # Created on first use, inside the server worker: threads and loops don't survive fork.
        self._pending: collections.deque[_Request] = collections.deque()  # appended on the loop, taken on the thread
        self._work_waiting: threading.Event | None = None  # set when there are requests to take
        self._loop: asyncio.AbstractEventLoop | None = None
        # The call on the predict thread now: when it started and on how many records (None: idle).
        self._running: tuple[float, int] | None = None

    def predict_now(self, rows: np.ndarray) -> Sequence[Any]:
        """One direct, checked call to predict() (no batching, no thread)."""
        results = self._predict(self.model, rows)
        if results is None or not hasattr(results, "__len__") or len(results) != len(rows):
            count = "None" if results is None else len(results) if hasattr(results, "__len__") else "no list"
            raise PredictionError(
                f"predict() returned {count} results for {len(rows)} records; it must return one per record"
            )
        return results

    async def predict(self, rows: np.ndarray) -> Sequence[Any]:
        """Predictions for `rows`, in order; raises whatever predict() raised for them."""
        return await self.submit(rows)

    def submit(self, rows: np.ndarray) -> asyncio.Future[Sequence[Any]]:
        """A future for the predictions of `rows` (cancel it to give up on them).

        Call it from the worker's event loop. A future rather than a coroutine: awaiting it with a
        timeout needs no task of its own, which is a tenth of a small request's cost.
        """
        if self.stuck is not None:
            raise WorkerStuck(self.stuck)
        loop = asyncio.get_running_loop()
        if self._work_waiting is None or self._loop is not loop:
            self._start(loop)
        assert self._work_waiting is not None
        request = _Request(rows, loop.create_future())
        self._pending.append(request)
        if not self._work_waiting.is_set():  # the thread is idle (or about to be): wake it
            self._work_waiting.set()
        return request.future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._work_waiting = threading.Event()
        threading.Thread(target=self._work, args=(loop, self._work_waiting), name="predict", daemon=True).start()
        if self.stuck_seconds is not None:
            loop.call_later(WATCH_SECONDS, self._watch, loop)

    # --- the predict thread: takes batches itself, so a busy thread needs no waking per batch ------
    def _work(self, loop: asyncio.AbstractEventLoop, work_waiting: threading.Event) -> None:
        while self._loop is loop:
            work_waiting.wait()
            work_waiting.clear()
            while self._pending and self.stuck is None:
                if self.window_seconds and self.batching:
                    time.sleep(self.window_seconds)
                settled = self._run_batch(self._take_batch())
                try:
                    loop.call_soon_threadsafe(self._deliver, settled)
                except RuntimeError:  # the loop is closed: the worker is exiting
                    return

    def _take_batch(self) -> list[_Request]:
        batch = [self._pending.popleft()]
        rows = len(batch[0].rows)
        while self.batching and self._pending and rows + len(self._pending[0].rows) <= self.max_batch_rows:
            request = self._pending.popleft()
            batch.append(request)
            rows += len(request.rows)
        return batch

    def _run_batch(self, batch: list[_Request]) -> list[tuple[_Request, Any, BaseException | None]]:
        """On the predict thread: each request of the batch with its result or its error."""
        batch = [request for request in batch if not request.future.done()]  # drop timed-out ones
        if not batch:
            return []
        try:
            rows = batch[0].rows if len(batch) == 1 else np.concatenate([r.rows for r in batch])
            self._running = (time.monotonic(), len(rows))
            try:
                results = self.predict_now(rows)
            finally:
                self._running = None
            settled: list[tuple[_Request, Any, BaseException | None]] = []
            start = 0
            for request in batch:
                end = start + len(request.rows)
                settled.append((request, results[start:end], None))
                start = end
        except BaseException as error:  # noqa: BLE001 - handed to the waiting requests
            # BaseException too (SystemExit, KeyboardInterrupt, GeneratorExit...): here it can only
            # come from the project's code. Python delivers signals to the main thread alone, where
            # the server's own handlers (SIGTERM, SIGINT) run; this thread never sees them.
            if len(batch) > 1:
                # Merging, predicting or splitting failed: each request alone, so only the
                # faulty one fails.
                self.retried_alone += len(batch)
                return [outcome for request in batch for outcome in self._run_batch([request])]
            if not isinstance(error, Exception):
                error = PredictionError(f"predict() raised {type(error).__name__}: {error}")
            return [(batch[0], None, error)]
        self.batches += 1
        self.requests += len(batch)
        return settled

    @staticmethod
    def _deliver(settled: list[tuple[_Request, Any, BaseException | None]]) -> None:
        """On the event loop: hand each request its result."""
        for request, result, error in settled:
            _settle(request.future, result=result, error=error)

    # --- the watchdog, on the event loop --------------------------------------------------------
    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every WATCH_SECONDS (one timer for the worker, not one per call): is a call stuck?"""
        running = self._running
        assert self.stuck_seconds is not None
        if running is not None and time.monotonic() - running[0] > self.stuck_seconds:
            self._overran(*running)
        if self.stuck is None and not loop.is_closed():
            loop.call_later(WATCH_SECONDS, self._watch, loop)

    def _overran(self, started: float, rows: int) -> None:
        self.stuck = (
            f"predict() on {rows} records has been running for {time.monotonic() - started:.1f} s, "
            "past its deadline (MODEL_SERVER_TIMEOUT)"
        )
        while self._pending:
            _settle(self._pending.popleft().future, error=WorkerStuck(self.stuck))
        if self.on_stuck is not None:
            self.on_stuck(self.stuck)

    def close(self) -> None:
        """Nothing to release: the predict thread is a daemon and ends with the process."""


def _settle(future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
