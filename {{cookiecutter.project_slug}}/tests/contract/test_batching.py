"""Dynamic batching: merged predict() calls, each request gets its own rows' results; the watchdog."""

import asyncio
import threading
import time

import numpy as np
import pytest

from sagemaker_contract.batching import BatchingPredictor, WorkerStuck
from sagemaker_contract.errors import PredictionError


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


PATHS = pytest.mark.parametrize("delay", [0.02, 0.0], ids=["slow", "quick"])


@PATHS
def test_concurrent_requests_share_calls_and_get_their_own_results(delay):
    model = CountingModel(delay=delay)
    predictor = BatchingPredictor(None, model.predict)

    async def waves():
        results = []
        for wave in range(3):
            results += await run_concurrently(predictor, requests_of([1, 3, 2, 1, 5] * 8, start=wave * 1000))
        return results

    results = asyncio.run(waves())
    requests = [r for wave in range(3) for r in requests_of([1, 3, 2, 1, 5] * 8, start=wave * 1000)]
    for rows, result in zip(requests, results):
        assert list(result) == list(rows[:, 0] * 10)
    assert len(model.calls) < len(requests)  # merged
    assert sum(model.calls) == sum(len(r) for r in requests)  # every row predicted exactly once


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

    async def after_a_first_call():
        await predictor.predict(requests_of([1], start=100)[0])
        return await run_concurrently(predictor, requests)

    results = asyncio.run(after_a_first_call())
    assert isinstance(results[2], ValueError)
    for index in (0, 1, 3):
        assert list(results[index]) == list(requests[index][:, 0] * 10)
    assert predictor.retried_alone == len(requests)


@pytest.mark.parametrize("exit_kind", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_a_base_exception_from_one_request_fails_it_alone(exit_kind):
    # sys.exit() and the like in the project's predict(): not Exceptions, yet only the request
    # that raised it may fail, and the predict thread must live on for the next requests.
    def exits_on_negatives(model, features):
        time.sleep(0.01)  # the requests queue up behind the first call and meet in one batch
        if (features < 0).any():
            raise exit_kind("predict() gave up")
        return features[:, 0] * 10

    predictor = BatchingPredictor(None, exits_on_negatives)
    requests = requests_of([2, 2, 2])
    requests.insert(1, np.array([[-1.0]]))

    async def after_a_first_call():
        first = asyncio.ensure_future(predictor.predict(requests_of([1], start=100)[0]))
        await asyncio.sleep(0)
        results = await run_concurrently(predictor, requests)
        await first
        return results, await predictor.predict(requests_of([1], start=7)[0])

    results, later = asyncio.run(after_a_first_call())
    assert isinstance(results[1], PredictionError) and f"raised {exit_kind.__name__}" in str(results[1])
    for index in (0, 2, 3):
        assert list(results[index]) == list(requests[index][:, 0] * 10)
    assert predictor.retried_alone >= 2  # the faulty request did share a batch, then went alone
    assert list(later) == [70.0]


def test_requests_that_cannot_be_merged_are_predicted_alone():
    # A model whose feature count the server does not know: requests of different widths meet
    # in one batch, and merging them fails. Each is then predicted alone: the valid ones are
    # answered, the odd one gets the model's own error, and nobody waits for a timeout.
    def one_feature_only(model, features):
        if features.shape[1] != 1:
            raise ValueError(f"X has {features.shape[1]} features, but the model expects 1")
        time.sleep(0.01)
        return features[:, 0] * 10

    predictor = BatchingPredictor(None, one_feature_only)
    requests = requests_of([2, 1, 3])
    requests.insert(1, np.zeros((2, 3)))

    async def concurrently():
        return await asyncio.wait_for(run_concurrently(predictor, requests), 5)

    results = asyncio.run(concurrently())
    assert isinstance(results[1], ValueError) and "expects 1" in str(results[1])
    for index in (0, 2, 3):
        assert list(results[index]) == list(requests[index][:, 0] * 10)


def test_predict_never_runs_on_the_event_loop_thread():
    # However quick it was last time: a call that stalls must not stop the loop answering /ping.
    threads = []

    def predict(model, rows):
        threads.append(threading.current_thread())
        return rows[:, 0]

    predictor = BatchingPredictor(None, predict)

    async def many_quick_calls():
        for _ in range(50):
            await predictor.predict(np.zeros((1, 1)))

    asyncio.run(many_quick_calls())
    assert len(threads) == 50 and threading.main_thread() not in threads


def test_the_event_loop_keeps_running_while_predict_stalls():
    def stalls(model, rows):
        time.sleep(0.5)
        return rows[:, 0]

    predictor = BatchingPredictor(None, stalls)
    ticks = []

    async def ticking_while_predicting():
        async def tick():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        ticker = asyncio.ensure_future(tick())
        await predictor.predict(np.zeros((1, 1)))
        ticker.cancel()

    asyncio.run(ticking_while_predicting())
    gaps = [later - earlier for earlier, later in zip(ticks, ticks[1:])]
    assert len(ticks) > 20 and max(gaps) < 0.2, f"the loop stood still for {max(gaps):.2f} s"


def test_a_stuck_predict_marks_the_predictor_stuck_and_fails_what_waits():
    release = threading.Event()
    told = []

    def hangs_on_negative(model, rows):
        if (rows < 0).any():
            release.wait(10)
        return rows[:, 0]

    predictor = BatchingPredictor(None, hangs_on_negative, stuck_seconds=0.2, on_stuck=told.append)

    async def scenario():
        stuck = asyncio.ensure_future(predictor.predict(np.array([[-1.0]])))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(predictor.predict(np.array([[1.0]])))
        await asyncio.sleep(0.4)  # past stuck_seconds
        assert waiting.done() and isinstance(waiting.exception(), WorkerStuck)
        assert not stuck.done()  # its caller's own deadline answers it (504), not the watchdog
        with pytest.raises(WorkerStuck):
            await predictor.predict(np.array([[2.0]]))
        stuck.cancel()

    try:
        asyncio.run(scenario())
    finally:
        release.set()
    assert len(told) == 1 and "predict() on 1 records has been running for" in told[0]
    assert "past its deadline (MODEL_SERVER_TIMEOUT)" in predictor.stuck


def test_a_slow_predict_within_its_deadline_is_not_stuck():
    def slow(model, rows):
        time.sleep(0.3)
        return rows[:, 0]

    told = []
    predictor = BatchingPredictor(None, slow, stuck_seconds=1, on_stuck=told.append)
    assert list(asyncio.run(predictor.predict(np.ones((2, 1))))) == [1.0, 1.0]
    assert predictor.stuck is None and not told


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
