"""Dynamic batching: concurrent requests share one call to the project's predict().

Requests that arrive while a prediction is running wait in a queue; when it finishes, all of
them (up to `max_batch_rows` records) go to predict() as one array and the results are split
back in order. A model gets bigger, cheaper calls under load and no added wait when idle;
`window_seconds` can add a short wait to gather more.

Where predict() runs: a call expected to finish within a few milliseconds runs on the event
loop itself, because handing it to a thread costs more than the call (a thread hop, and the
two threads then take turns on the GIL, up to 5 ms at a time). A slower call, or one whose
duration is not known yet (the first), runs on the worker's one predict thread, so the event
loop keeps answering /ping meanwhile. The expectation is the last call's duration, scaled up
by the rows when a batch is bigger.

If a merged call fails, each request of the batch is retried alone, so one bad request can
neither fail nor delay the answer to another beyond that retry.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

# Calls expected to take less than this run on the event loop. A thread would not answer sooner:
# while it holds the GIL, the event loop waits up to this long (Python's switch interval) anyway.
INLINE_SECONDS = sys.getswitchinterval()


class PredictionError(Exception):
    """predict() broke the contract (e.g. returned the wrong number of results)."""


class _Request:
    __slots__ = ("rows", "future")

    def __init__(self, rows: np.ndarray, future: asyncio.Future[Any]) -> None:
        self.rows = rows
        self.future = future


class BatchingPredictor:
    """Calls `predict(model, rows)` on the event loop or a worker thread, merging concurrent requests."""

    def __init__(
        self,
        model: Any,
        predict: Callable[[Any, np.ndarray], Sequence[Any]],
        *,
        batching: bool = True,
        max_batch_rows: int = 1000,
        window_seconds: float = 0.0,
        inline_seconds: float = INLINE_SECONDS,
    ) -> None:
        self.model = model
        self._predict = predict
        self.batching = batching
        self.max_batch_rows = max(1, max_batch_rows)
        self.window_seconds = max(0.0, window_seconds)
        self.inline_seconds = inline_seconds
        self.batches = 0  # Counters, for tests.
        self.requests = 0
        self.inline_batches = 0
        # The last predict() call: how long it took, on how many rows (None: no call yet).
        self._last_seconds: float | None = None
        self._last_rows = 1
        # Created on first use, inside the server worker: threads and loops don't survive fork.
        self._executor: ThreadPoolExecutor | None = None
        self._pending: collections.deque[_Request] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def predict_now(self, rows: np.ndarray) -> Sequence[Any]:
        """One direct, checked and timed call to predict() (no batching, no thread)."""
        started = time.perf_counter()
        try:
            results = self._predict(self.model, rows)
        finally:
            self._last_seconds = time.perf_counter() - started
            self._last_rows = max(1, len(rows))
        if results is None or len(results) != len(rows):
            count = "None" if results is None else len(results)
            raise PredictionError(
                f"predict() returned {count} results for {len(rows)} records; it must return one per record"
            )
        return results

    def runs_inline(self, rows: int) -> bool:
        """Whether a call on `rows` records is expected to be quick enough for the event loop."""
        if self._last_seconds is None:
            return False
        return self._last_seconds * max(1.0, rows / self._last_rows) < self.inline_seconds

    async def predict(self, rows: np.ndarray) -> Sequence[Any]:
        """Predictions for `rows`, in order; raises whatever predict() raised for them."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._executor = self._executor or ThreadPoolExecutor(1, thread_name_prefix="predict")
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._run())
        request = _Request(rows, loop.create_future())
        self._pending.append(request)
        assert self._wakeup is not None
        self._wakeup.set()
        return await request.future

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
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
        rows = batch[0].rows if len(batch) == 1 else np.concatenate([r.rows for r in batch])
        inline = self.runs_inline(len(rows))
        try:
            if inline:
                results = self.predict_now(rows)
            else:
                loop = asyncio.get_running_loop()
                results = await loop.run_in_executor(self._executor, self.predict_now, rows)
        except Exception as error:  # noqa: BLE001 - handed to the waiting requests
            if len(batch) > 1:
                for request in batch:
                    await self._run_batch([request])
                return
            _settle(batch[0].future, error=error)
            return
        self.inline_batches += inline
        self.batches += 1
        self.requests += len(batch)
        start = 0
        for request in batch:
            end = start + len(request.rows)
            _settle(request.future, result=results[start:end])
            start = end

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)


def _settle(future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
