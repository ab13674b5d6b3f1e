"""Dynamic batching: concurrent requests share one call to the project's predict().

Requests that arrive while a prediction is running wait in a queue; when it finishes, all of
them (up to `max_batch_rows` records) go to predict() as one array and the results are split
back in order. A model gets bigger, cheaper calls under load and no added wait when idle;
`window_seconds` can add a short wait to gather more.

predict() always runs on the worker's one predict thread, never on the event loop: the loop must
stay free to answer /ping within SageMaker's 2 s whatever predict() does (a call that is quick
for most inputs may stall for some). Under load the thread hop costs nothing measurable, since
every hop carries a whole batch.

If anything fails while merging, predicting or splitting a batch, each of its requests is
retried alone, so one bad request can neither fail another nor delay its answer beyond that retry.

A watchdog: a call still running `stuck_seconds` after it started marks the predictor stuck.
From then on it takes no work: the requests waiting for it fail with WorkerStuck at once, and
`on_stuck` is told (server.py then replaces the worker). The thread that is stuck is a daemon, so
it cannot keep the worker's process from exiting.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np


class PredictionError(Exception):
    """predict() broke the contract (e.g. returned the wrong number of results)."""


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
        self._jobs: queue.SimpleQueue[tuple[np.ndarray, asyncio.Future[Any], asyncio.AbstractEventLoop]] | None = None
        self._pending: collections.deque[_Request] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

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
        if self.stuck is not None:
            raise WorkerStuck(self.stuck)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            if self._jobs is None:
                self._jobs = queue.SimpleQueue()
                threading.Thread(target=self._work, name="predict", daemon=True).start()
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._run())
        request = _Request(rows, loop.create_future())
        self._pending.append(request)
        assert self._wakeup is not None
        self._wakeup.set()
        return await request.future

    # --- the predict thread ------------------------------------------------------------------
    def _work(self) -> None:
        assert self._jobs is not None
        while True:
            rows, future, loop = self._jobs.get()
            try:
                outcome: tuple[Any, BaseException | None] = (self.predict_now(rows), None)
            except Exception as error:  # noqa: BLE001 - handed back to the event loop
                outcome = (None, error)
            except BaseException as error:  # noqa: BLE001 - SystemExit and the like, from the user's code
                outcome = (None, PredictionError(f"predict() raised {type(error).__name__}: {error}"))
            try:
                loop.call_soon_threadsafe(_settle_outcome, future, outcome)
            except RuntimeError:  # the loop is closed: the worker is exiting
                return
            del rows, future, outcome

    async def _call(self, rows: np.ndarray) -> Sequence[Any]:
        """predict_now(rows) on the predict thread, watched for overrunning its deadline."""
        assert self._jobs is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        started = time.monotonic()
        watchdog = None
        if self.stuck_seconds is not None:
            watchdog = loop.call_later(self.stuck_seconds, self._overran, future, started, len(rows))
        self._jobs.put((rows, future, loop))
        try:
            return await future
        finally:
            if watchdog is not None:
                watchdog.cancel()

    def _overran(self, future: asyncio.Future[Any], started: float, rows: int) -> None:
        if future.done() or self.stuck is not None:
            return
        self.stuck = (
            f"predict() on {rows} records has been running for {time.monotonic() - started:.1f} s, "
            "past its deadline (MODEL_SERVER_TIMEOUT)"
        )
        while self._pending:
            _settle(self._pending.popleft().future, error=WorkerStuck(self.stuck))
        if self.on_stuck is not None:
            self.on_stuck(self.stuck)

    # --- the batch loop, on the event loop -----------------------------------------------------
    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending and self.stuck is None:
                if self.window_seconds and self.batching:
                    await asyncio.sleep(self.window_seconds)
                await self._run_batch(self._take_batch())
                # Let the answers go out and new requests in before the next batch.
                await asyncio.sleep(0)

    def _take_batch(self) -> list[_Request]:
        batch = [self._pending.popleft()]
        rows = len(batch[0].rows)
        while self.batching and self._pending and rows + len(self._pending[0].rows) <= self.max_batch_rows:
            request = self._pending.popleft()
            batch.append(request)
            rows += len(request.rows)
        return batch

    async def _run_batch(self, batch: list[_Request]) -> None:
        batch = [request for request in batch if not request.future.done()]  # drop timed-out ones
        if not batch:
            return
        try:
            rows = batch[0].rows if len(batch) == 1 else np.concatenate([r.rows for r in batch])
            results = await self._call(rows)
            answers = []
            start = 0
            for request in batch:
                end = start + len(request.rows)
                answers.append(results[start:end])
                start = end
        except Exception as error:  # noqa: BLE001 - handed to the waiting requests
            if len(batch) > 1:
                # Merging, predicting or splitting failed: each request alone, so only the
                # faulty one fails.
                self.retried_alone += len(batch)
                for request in batch:
                    await self._run_batch([request])
                return
            _settle(batch[0].future, error=error)
            return
        self.batches += 1
        self.requests += len(batch)
        for request, answer in zip(batch, answers):
            _settle(request.future, result=answer)

    def close(self) -> None:
        """Nothing to release: the predict thread is a daemon and ends with the process."""


def _settle_outcome(future: asyncio.Future[Any], outcome: tuple[Any, BaseException | None]) -> None:
    result, error = outcome
    _settle(future, result=result, error=error)


def _settle(future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
