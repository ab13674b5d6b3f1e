"""Dynamic batching: merged predict() calls, each request gets its own rows' results."""

import asyncio
import threading
import time

import numpy as np
import pytest

from sagemaker_contract.batching import BatchingPredictor, PredictionError


class CountingModel:
    def __init__(self, delay=0.0):
        self.calls = []
        self.delay = delay
        self.lock = threading.Lock()

    def predict(self, model, features):
        with self.lock:
            self.calls.append(len(features))
        if self.delay:
            time.sleep(self.delay)
        if (features < 0).any():
            raise ValueError("negative feature")
        return features[:, 0] * 10


async def run_concurrently(predictor, requests):
    return await asyncio.gather(*(predictor.predict(rows) for rows in requests), return_exceptions=True)


def requests_of(sizes, start=0):
    out, value = [], start
    for size in sizes:
        out.append(np.arange(value, value + size, dtype=float).reshape(size, 1))
        value += size
    return out


# A slow predict() runs on the predict thread; a quick one on the event loop, once timed.
PATHS = pytest.mark.parametrize("delay", [0.02, 0.0], ids=["thread", "event-loop"])


@PATHS
def test_concurrent_requests_share_calls_and_get_their_own_results(delay):
    model = CountingModel(delay=delay)
    predictor = BatchingPredictor(None, model.predict)

    async def waves():
        results = []
        for wave in range(3):  # the first wave times predict(); later ones may run on the loop
            results += await run_concurrently(predictor, requests_of([1, 3, 2, 1, 5] * 8, start=wave * 1000))
        return results

    results = asyncio.run(waves())
    requests = [r for wave in range(3) for r in requests_of([1, 3, 2, 1, 5] * 8, start=wave * 1000)]
    for rows, result in zip(requests, results):
        assert list(result) == list(rows[:, 0] * 10)
    assert len(model.calls) < len(requests)  # merged
    assert sum(model.calls) == sum(len(r) for r in requests)  # every row predicted exactly once
    assert (predictor.inline_batches > 0) == (delay == 0.0)


def test_batches_never_exceed_the_row_limit_except_a_single_large_request():
    model = CountingModel(delay=0.01)
    predictor = BatchingPredictor(None, model.predict, max_batch_rows=4)
    asyncio.run(run_concurrently(predictor, requests_of([2, 2, 2, 9, 1])))
    assert max(model.calls) == 9 and all(size <= 4 for size in model.calls if size != 9)


def test_with_batching_off_each_request_is_its_own_call():
    model = CountingModel(delay=0.01)
    predictor = BatchingPredictor(None, model.predict, batching=False)
    asyncio.run(run_concurrently(predictor, requests_of([1, 2, 3, 4])))
    assert sorted(model.calls) == [1, 2, 3, 4]


@PATHS
def test_one_bad_request_fails_alone(delay):
    model = CountingModel(delay=delay)
    predictor = BatchingPredictor(None, model.predict)
    requests = requests_of([2, 2, 2])
    requests.insert(2, np.array([[-1.0]]))

    async def timed_then_merged():
        await predictor.predict(requests_of([1], start=100)[0])
        return await run_concurrently(predictor, requests)

    results = asyncio.run(timed_then_merged())
    assert isinstance(results[2], ValueError)
    for index in (0, 1, 3):
        assert list(results[index]) == list(requests[index][:, 0] * 10)


def test_a_window_gathers_requests_that_arrive_close_together():
    model = CountingModel()
    # Requests 5 ms apart (more on a busy machine) and a window a hundred times that: without
    # the window the first would go alone.
    predictor = BatchingPredictor(None, model.predict, window_seconds=0.5)

    async def staggered():
        tasks = []
        for rows in requests_of([1, 1, 1]):
            tasks.append(asyncio.ensure_future(predictor.predict(rows)))
            await asyncio.sleep(0.005)
        return await asyncio.gather(*tasks)

    asyncio.run(staggered())
    assert model.calls == [3]


def test_wrong_result_count_is_a_prediction_error():
    predictor = BatchingPredictor(None, lambda model, rows: [0])
    with pytest.raises(PredictionError, match="returned 1 results for 2 records"):
        predictor.predict_now(np.zeros((2, 1)))


def test_where_predict_runs_follows_how_long_it_took():
    threads = []

    def predict(model, rows):
        threads.append(threading.current_thread())
        time.sleep(0.001 * len(rows))  # 1 ms per record
        return rows[:, 0]

    # A sleep can only overrun: the limit is far above 4 rows' time (a busy machine's overrun
    # included) and far below 1000 rows'.
    predictor = BatchingPredictor(None, predict, inline_seconds=0.5)
    assert not predictor.runs_inline(1)  # not timed yet: the thread
    asyncio.run(predictor.predict(np.zeros((4, 1))))
    assert threads[-1] is not threading.main_thread()
    assert predictor.runs_inline(4)  # about 4 ms, well under 500 ms
    assert not predictor.runs_inline(1000)  # expected about 1 s: the thread
    asyncio.run(predictor.predict(np.zeros((4, 1))))
    assert threads[-1] is threading.main_thread()
