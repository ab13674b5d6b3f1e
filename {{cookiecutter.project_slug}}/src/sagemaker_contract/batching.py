"""Dynamic batching: concurrent requests share one call to the project's predict().

Each server worker process runs predict() on one background thread, so the event loop keeps
answering /ping while a model works. Requests that arrive while a prediction is running wait
in a queue; when it finishes, all of them (up to `max_batch_rows` records) go to predict() as
one array and the results are split back in order. A model gets bigger, cheaper calls under
load and no added wait when idle; `window_seconds` can add a short wait to gather more.

If a merged call fails, each request of the batch is retried alone, so one bad request can
neither fail nor delay the answer to another beyond that retry.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np


class PredictionError(Exception):
    """predict() broke the contract (e.g. returned the wrong number of results)."""


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
    ) -> None:
        self.model = model
        self._predict = predict
        self.batching = batching
        self.max_batch_rows = max(1, max_batch_rows)
        self.window_seconds = max(0.0, window_seconds)
        self.batches = 0  # Counters, for tests and the benchmark.
        self.requests = 0
        # Created on first use, inside the server worker: threads and loops don't survive fork.
        self._executor: ThreadPoolExecutor | None = None
        self._pending: collections.deque[_Request] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def predict_now(self, rows: np.ndarray) -> Sequence[Any]:
        """One direct, checked call to predict() (no batching, no thread)."""
        results = self._predict(self.model, rows)
        if results is None or len(results) != len(rows):
            count = "None" if results is None else len(results)
            raise PredictionError(
                f"predict() returned {count} results for {len(rows)} records; it must return one per record"
            )
        return results

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
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, self.predict_now, rows)
        except Exception as error:  # noqa: BLE001 - handed to the waiting requests
            if len(batch) > 1:
                for request in batch:
                    await self._run_batch([request])
                return
            _settle(batch[0].future, error=error)
            return
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
