"""The HTTP contract, exercised in-process through the ASGI interface (sagemaker_contract.app)."""

import asyncio
import json
import re
import threading
import time
import tracemalloc

import numpy as np
import pytest

from sagemaker_contract import formats
from sagemaker_contract.admission import MemoryBudget, plan, request_cost
from sagemaker_contract.app import InferenceApp, ModelState
from sagemaker_contract.batching import BatchingPredictor
from sagemaker_contract.settings import MEBIBYTE, Settings

from .test_formats import large_shapes


def sum_rows(model, features):
    if np.isnan(features).any():
        raise ValueError("Input X contains NaN.")
    return features.sum(axis=1)


def make_app(predict=sum_rows, feature_count=3, budget=None, **settings):
    state = ModelState(predictor=BatchingPredictor(None, predict), feature_count=feature_count)
    return InferenceApp(state, Settings(**settings), budget)


def call(app, method, path, headers=None, body=b"", chunks=None, hang_up=False):
    """One request through the app; returns (status, headers, body). After its body the client
    waits for the answer, as a connection does, or with hang_up=True hangs up."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    parts = chunks if chunks is not None else [body]
    messages = [{"type": "http.request", "body": part, "more_body": i < len(parts) - 1} for i, part in enumerate(parts)]
    sent = []

    async def receive():
        if messages:
            return messages.pop(0)
        if not hang_up:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    if not sent:
        return None, {}, b""  # no answer: the client had hung up
    start = sent[0]
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def invoke(app, body, content_type="text/csv", accept=None, **options):
    headers = {"Content-Type": content_type}
    if accept is not None:
        headers["Accept"] = accept
    return call(app, "POST", "/invocations", headers, body, **options)


def test_ping_is_200_and_empty_once_the_model_is_loaded():
    assert call(make_app(), "GET", "/ping")[::2] == (200, b"")


def test_ping_explains_why_the_model_is_not_loaded():
    app = InferenceApp(ModelState(error="no model files in /opt/ml/model"), Settings())
    status, _, body = call(app, "GET", "/ping")
    assert status == 503 and body == b"model not loaded: no model files in /opt/ml/model\n"
    assert invoke(app, b"1,2,3")[0] == 503


@pytest.mark.parametrize(
    ("content_type", "body", "accept", "expected_type", "expected"),
    [
        ("text/csv", b"1,2,3\n4,5,6", None, b"text/csv", b"6.0\n15.0\n"),
        ("application/json", b"[[1,2,3],[4,5,6]]", None, b"application/json", b'{"predictions":[6.0,15.0]}'),
        ("application/jsonlines", b"[1,2,3]\n[4,5,6]", None, b"application/jsonlines", b"6.0\n15.0\n"),
        ("text/csv", b"1,2,3", "application/json", b"application/json", b'{"predictions":[6.0]}'),
        ("application/json", b"[1,2,3]", "text/csv", b"text/csv", b"6.0\n"),
    ],
)
def test_invocations_in_every_format(content_type, body, accept, expected_type, expected):
    status, headers, answer = invoke(make_app(), body, content_type, accept)
    assert (status, headers[b"content-type"], answer) == (200, expected_type, expected)


@pytest.mark.parametrize(
    ("request_options", "status", "message"),
    [
        ({"body": b"1,2,3", "content_type": "image/png"}, 415, "Content-Type 'image/png' is not supported"),
        ({"body": b"1,2,3", "accept": "image/png"}, 406, "Accept 'image/png' asks for nothing"),
        ({"body": b"one,two,three"}, 400, "is not a number"),
        ({"body": b"1,2"}, 400, "records have 2 features; this model takes 3"),
        ({"body": b""}, 400, "empty body"),
        ({"body": b"1,,3"}, 400, "the model rejected the records: Input X contains NaN."),
    ],
)
def test_client_mistakes_get_4xx_with_one_line(request_options, status, message):
    app = make_app()
    body = request_options.pop("body")
    got, headers, answer = invoke(app, body, **request_options)
    assert got == status
    assert headers[b"content-type"].startswith(b"text/plain")
    assert message in answer.decode() and answer.decode().count("\n") == 1
    assert invoke(app, b"1,2,3")[0] == 200  # and the app still answers


def test_bodies_up_to_the_limit_pass_and_larger_ones_are_413():
    app = make_app(max_payload_mb=6)
    row = b"1,2,3\n"
    fits = row * (6 * MEBIBYTE // len(row))
    status, _, answer = invoke(app, fits)
    assert status == 200 and answer.count(b"\n") == fits.count(b"\n")
    too_big = fits + row * 2
    assert invoke(app, too_big)[0] == 413
    # Without Content-Length (chunked), the limit still holds while reading.
    status, _, answer = invoke(app, b"", chunks=[fits, row * 2])
    assert status == 413 and b"over the 6291456 byte limit" in answer


def test_a_declared_oversized_body_is_refused_before_it_is_read():
    app = make_app()
    headers = {"Content-Type": "text/csv", "Content-Length": str(7 * MEBIBYTE)}
    status, _, _ = call(app, "POST", "/invocations", headers, b"1,2,3")
    assert status == 413


def test_wrong_methods_and_paths():
    app = make_app()
    assert call(app, "GET", "/invocations")[0] == 405
    assert call(app, "POST", "/ping")[0] == 405
    assert call(app, "GET", "/models")[0] == 404


def test_execution_parameters_for_batch_transform():
    status, headers, body = call(make_app(workers=3, max_payload_mb=20), "GET", "/execution-parameters")
    assert status == 200 and headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"MaxConcurrentTransforms": 3, "BatchStrategy": "MultiRecord", "MaxPayloadInMB": 20}


def broken(model, features):
    raise RuntimeError("secret-internal-detail at /srv/seller/model.py")


REQUEST_ID = re.compile(r"\(request id ([0-9a-f]{12})\)")


def test_a_broken_predict_is_a_500_with_a_request_id_and_the_details_only_in_the_log(caplog):
    app = make_app(predict=broken)
    with caplog.at_level("ERROR", logger="serve"):
        status, headers, body = invoke(app, b"1,2,3")
    assert status == 500 and headers[b"content-type"].startswith(b"text/plain")
    text = body.decode()
    assert text.startswith("internal error while predicting (request id ") and text.count("\n") == 1
    assert "secret" not in text and "RuntimeError" not in text
    request_id = REQUEST_ID.search(text).group(1)
    logged = [record for record in caplog.records if request_id in record.getMessage()]
    assert len(logged) == 1 and "secret-internal-detail" in logged[0].getMessage()
    assert logged[0].exc_info is not None  # the traceback, under the same id
    assert call(app, "GET", "/ping")[0] == 200


def test_sys_exit_in_predict_fails_only_its_own_request_with_a_500(caplog):
    # Requests merged into one predict() call: the one whose records make predict() call
    # sys.exit() gets a 500 with a request id; the others are answered.
    def exits_on_negatives(model, features):
        time.sleep(0.02)
        if (features < 0).any():
            raise SystemExit(3)
        return features.sum(axis=1)

    app = make_app(predict=exits_on_negatives)
    bodies = [b"1,2,3", b"4,5,6", b"-1,0,0", b"7,8,9"]

    async def together():
        answers = []

        async def one(body):
            messages = [{"type": "http.request", "body": body, "more_body": False}]
            sent = []

            async def receive():
                return messages.pop(0) if messages else {"type": "http.disconnect"}

            async def send(message):
                sent.append(message)

            headers = [(b"content-type", b"text/csv")]
            await app({"type": "http", "method": "POST", "path": "/invocations", "headers": headers}, receive, send)
            answers.append((body, sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])))

        await asyncio.gather(*(one(body) for body in bodies))
        return {body: (status, answer) for body, status, answer in answers}

    with caplog.at_level("ERROR", logger="serve"):
        answers = asyncio.run(together())
    assert app.state.predictor.retried_alone > 0  # they were merged, then retried alone
    assert answers[b"-1,0,0"][0] == 500 and REQUEST_ID.search(answers[b"-1,0,0"][1].decode())
    assert answers[b"-1,0,0"][1].count(b"\n") == 1
    assert {body: answer for body, answer in answers.items() if body != b"-1,0,0"} == {
        b"1,2,3": (200, b"6.0\n"),
        b"4,5,6": (200, b"15.0\n"),
        b"7,8,9": (200, b"24.0\n"),
    }
    assert "predict() raised SystemExit: 3" in caplog.text


def test_error_detail_setting_returns_the_exception_for_development():
    status, _, body = invoke(make_app(predict=broken, error_detail=True), b"1,2,3")
    assert status == 500 and body.count(b"\n") == 1
    assert b"RuntimeError: secret-internal-detail" in body and REQUEST_ID.search(body.decode())


def test_request_ids_differ_from_request_to_request():
    app = make_app(predict=broken)
    ids = {REQUEST_ID.search(invoke(app, b"1,2,3")[2].decode()).group(1) for _ in range(3)}
    assert len(ids) == 3


def test_predict_returning_the_wrong_number_of_results_is_caught(caplog):
    with caplog.at_level("ERROR", logger="serve"):
        status, _, body = invoke(make_app(predict=lambda model, rows: [1]), b"1,2,3\n4,5,6")
    assert status == 500 and body.startswith(b"predict() broke the serving contract (request id ")
    assert "returned 1 results for 2 records" in caplog.text


def test_slow_predictions_time_out_with_504():
    def slow(model, features):
        time.sleep(1.5)
        return features.sum(axis=1)

    status, _, body = invoke(make_app(predict=slow, timeout_seconds=1), b"1,2,3")
    assert status == 504 and b"MODEL_SERVER_TIMEOUT" in body


def test_a_stopping_worker_logs_how_much_batching_merged(caplog):
    app = make_app()
    for _ in range(3):
        assert invoke(app, b"1,2,3")[0] == 200
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message["type"])

    with caplog.at_level("INFO", logger="serve"):
        asyncio.run(app({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert "3 requests answered in 3 predict() calls" in caplog.text
    assert "memory for requests:" in caplog.text


# --- hostile bodies ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/json", b"[[1, " + b"7" * 400 + b", 3]]", "instance 1 column 2: the value is infinite"),
        ("application/json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("application/json", b"[[1e400, 2, 3]]", "instance 1 column 1: the value is infinite"),
        ("application/json", b"[[Infinity, 2, 3]]", "Infinity is not a JSON number"),
        ("application/json", b"[[NaN, 2, 3]]", "NaN is not a JSON number; send null"),
        ("application/json", "[[1, 2, 3]]".encode("utf-16"), "body is not UTF-8 text"),
        ("application/json", b'[["' + b"x" * 5_000_000 + b'", 2, 3]]', "is not a number"),
        ("application/jsonlines", b"[1, 2, 3]\n" + b"{" * 50_000, "JSON Lines line 2 is"),
        ("text/csv", b"1,1e400,3", "CSV line 1 column 2: the value is infinite"),
        ("text/csv", b"1,2,3\n1," + b"9" * 400 + b",3", "CSV line 2 column 2: the value is infinite"),
        ("text/csv", b"1,2,-inf", "CSV line 1 column 3: the value is infinite"),
    ],
)
def test_hostile_bodies_are_a_400_with_one_line(content_type, body, message, caplog):
    app = make_app()
    with caplog.at_level("ERROR"):
        status, _, answer = invoke(app, body, content_type)
    assert status == 400 and message in answer.decode() and answer.count(b"\n") == 1, answer[:300]
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


# --- bodies a slice at a time ------------------------------------------------------------------
@pytest.mark.parametrize("accept", ["text/csv", "application/json", "application/jsonlines"])
def test_a_large_body_is_answered_in_order_across_slices(accept):
    rows = np.arange(3 * 60_000, dtype=float).reshape(-1, 3)  # about 1.9 MB of CSV: several slices
    body = "".join(f"{a:g},{b:g},{c:g}\n" for a, b, c in rows.tolist()).encode()
    assert len(body) > 4 * formats.SLICE_BYTES
    status, _, answer = invoke(make_app(), body, accept=accept)
    assert status == 200
    if accept == "application/json":
        got = json.loads(answer)["predictions"]
    else:
        got = [float(line.strip(b'"')) for line in answer.splitlines()]
    assert got == rows.sum(axis=1).tolist()


def test_the_next_slice_is_decoded_while_one_is_predicted():
    # predict() on the first slice waits until the second has been decoded: it would wait out its
    # whole timeout if decoding waited for predict() (both CPUs of a small instance are used).
    decoded = []
    second_decoded = threading.Event()
    overlapped = []

    def predict(model, features):
        if not overlapped:
            overlapped.append(second_decoded.wait(timeout=10))
        return features.sum(axis=1)

    app = make_app(predict=predict)
    own_slices = app.state.formats.decode_slices

    def counted_slices(kind, body):
        for rows in own_slices(kind, body):
            decoded.append(len(rows))
            if len(decoded) == 2:
                second_decoded.set()
            yield rows

    app.state.formats.decode_slices = counted_slices
    body = b"1,2,3\n" * 150_000  # several slices
    status, _, answer = invoke(app, body)
    assert status == 200 and answer == b"6.0\n" * 150_000
    assert len(decoded) > 2 and overlapped == [True]


def test_a_slice_the_model_rejects_is_reported_before_a_mistake_in_the_next_one():
    # The next slice is decoded while this one is predicted; errors still come in body order.
    def rejects_nines(model, features):
        if (features == 9).any():
            raise ValueError("9 is out of range")
        return features.sum(axis=1)

    body = b"1,2,9\n" + b"1,2,3\n" * 50_000 + b"1,x,3\n"  # the mistake in the second slice
    assert formats.SLICE_BYTES < body.index(b"x") < 2 * formats.SLICE_BYTES
    status, _, answer = invoke(make_app(predict=rejects_nines), body)
    assert status == 400 and answer.startswith(b"the model rejected the records: 9 is out of range"), answer
    status, _, answer = invoke(make_app(predict=rejects_nines), body.replace(b"1,2,9", b"1,2,3"))
    assert status == 400 and answer == b"CSV line 50002 column 2: 'x' is not a number\n"


def test_a_mistake_deep_in_a_large_body_names_its_line():
    body = b"1,2,3\n" * 100_000 + b"1,x,3\n" + b"1,2,3\n" * 10
    status, _, answer = invoke(make_app(), body)
    assert status == 400 and answer == b"CSV line 100001 column 2: 'x' is not a number\n"
    body = b"1,2,3\n" * 100_000 + b"1,2\n"
    status, _, answer = invoke(make_app(), body)
    assert status == 400 and b"CSV line 100001 has 2 values but line 1 has 3" in answer


def held_while_answering(app, body, content_type):
    """What Python allocates while the app reads, decodes, predicts and encodes `body`, which
    arrives in 64 KB messages as uvicorn hands it over (made before measuring: the client's)."""
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    invoke(app, b"[[1,2,3,4]]", "application/json")  # start the predict thread before measuring
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        status, _, answer = invoke(app, b"", content_type, chunks=chunks)
        held = tracemalloc.get_traced_memory()[1] - baseline  # the app's copy of the body included
    finally:
        tracemalloc.stop()
    assert status == 200 and len(answer) > 0, answer[:200]
    return held


def text_records(content_type, size):
    record_bytes = 8 if content_type == "text/csv" else 10
    rows = np.random.default_rng(0).integers(0, 10, size=(size // record_bytes, 4))
    as_text = [",".join(map(str, row)) for row in rows.tolist()]
    if content_type == "text/csv":
        return "\n".join(as_text).encode() + b"\n"
    return "\n".join("[" + row + "]" for row in as_text).encode() + b"\n"


REQUEST_SHAPES = [("text/csv", "csv"), ("application/jsonlines", "jsonlines")] + [
    ("application/json", shape) for shape in large_shapes(1000)
]


# Minutes under tracemalloc, and the same for every framework: marked heavy.
@pytest.mark.heavy
@pytest.mark.parametrize(
    ("content_type", "shape", "megabytes"),
    [(kind, shape, megabytes) for kind, shape in REQUEST_SHAPES for megabytes in (1, 10)]
    + [("application/json", "id first", 20), ("application/json", "one record", 20)],
)
def test_memory_a_request_holds_stays_within_its_estimated_cost(content_type, shape, megabytes):
    """The admission estimate (admission.request_cost) must be an upper bound of what the whole
    pipeline allocates for a body of several slices, read, decoded, predicted and encoded, for
    every shape of body. Single digits are the worst case: the most records, so the most Python
    objects, per byte."""
    size = megabytes * MEBIBYTE
    if content_type == "application/json":
        body = large_shapes(size)[shape]
    else:
        body = text_records(content_type, size)
    app = make_app(feature_count=None, max_payload_mb=100, timeout_seconds=600)  # tracemalloc is slow
    held = held_while_answering(app, body, content_type)
    estimate = request_cost(content_type, len(body))
    print(f"\n{content_type} {shape}: {len(body) / MEBIBYTE:.1f} MB body, {held / MEBIBYTE:.1f} MB held, ", end="")
    print(f"estimate {estimate / MEBIBYTE:.1f} MB")
    assert 0.9 * size <= len(body) <= 1.1 * size
    assert held <= estimate


# --- admission control -------------------------------------------------------------------------
def test_a_request_over_the_whole_budget_is_413_with_the_memory_it_needs():
    app = make_app(budget=MemoryBudget(2 * MEBIBYTE))
    body = b"1,2,3\n" * 200_000
    status, _, answer = invoke(app, body)
    assert status == 413 and b"needs about" in answer and b"more than this worker has for requests (2 MB)" in answer


def test_with_the_budget_spent_a_request_waits_then_gets_503_with_retry_after():
    budget = MemoryBudget(8 * MEBIBYTE)
    app = make_app(budget=budget, admission_wait_seconds=0.1)
    budget.in_use = budget.capacity  # another request holds it all
    started = time.monotonic()
    status, headers, answer = invoke(app, b"1,2,3")
    assert status == 503 and headers[b"retry-after"] == b"1"
    assert answer.startswith(b"server busy") and answer.count(b"\n") == 1
    assert 0.1 <= time.monotonic() - started < 2
    assert budget.shed == 1


def test_a_waiting_request_is_admitted_when_memory_is_released():
    budget = MemoryBudget(8 * MEBIBYTE)
    app = make_app(budget=budget, admission_wait_seconds=5)
    budget.in_use = budget.capacity

    async def release_soon():
        await asyncio.sleep(0.1)
        budget.in_use = 0
        budget._give_back(0)  # what releasing the other request does

    async def scenario():
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"1,2,3", "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": [(b"content-type", b"text/csv")]}
        await asyncio.gather(app(scope, receive, send), release_soon())
        return sent

    sent = asyncio.run(scenario())
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"6.0\n"
    assert budget.in_use == 0  # released after the answer


def test_waiting_requests_are_admitted_in_arrival_order():
    budget = MemoryBudget(10)
    order = []

    async def scenario():
        first = await budget.acquire(6, 1)  # the small one would fit beside it, the big one not

        async def later(name, amount):
            reservation = await budget.acquire(amount, 1)
            order.append(name)
            budget.release(reservation)

        waiting = [asyncio.ensure_future(later("big", 10)), asyncio.ensure_future(later("small", 1))]
        await asyncio.sleep(0.01)
        budget.release(first)
        await asyncio.gather(*waiting)

    asyncio.run(scenario())
    assert order == ["big", "small"]  # the small one did not overtake the big one
    assert budget.in_use == 0


def test_a_chunked_body_that_could_never_fit_is_413_like_a_declared_one():
    budget = MemoryBudget(request_cost("text/csv", formats.SLICE_BYTES) + 1024)
    row = b"1,2,3\n"
    chunk = row * (formats.SLICE_BYTES // len(row))
    status, _, answer = invoke(make_app(budget=budget), b"", chunks=[chunk, chunk, chunk])
    assert status == 413 and b"needs about" in answer and b"more than this worker has for requests" in answer
    assert budget.in_use == 0


def test_a_chunked_body_that_fits_is_answered_though_twice_its_size_would_not():
    row = b"1,2,3\n"
    chunk = row * (formats.SLICE_BYTES // len(row))
    budget = MemoryBudget(request_cost("text/csv", 3 * len(chunk)) + 1024)  # 4 chunks would not fit
    status, _, answer = invoke(make_app(budget=budget), b"", chunks=[chunk, chunk, chunk])
    assert status == 200 and answer.count(b"\n") == 3 * chunk.count(b"\n")
    assert budget.in_use == 0


def test_a_chunked_body_whose_memory_another_request_holds_is_503_with_retry_after():
    row = b"1,2,3\n"
    chunk = row * (formats.SLICE_BYTES // len(row))
    budget = MemoryBudget(request_cost("text/csv", 3 * len(chunk)))
    budget.in_use = budget.capacity - request_cost("text/csv", formats.SLICE_BYTES)  # held by another
    status, headers, answer = invoke(make_app(budget=budget), b"", chunks=[chunk, chunk, chunk])
    assert status == 503 and headers[b"retry-after"] == b"1" and answer.startswith(b"server busy")


def test_a_batch_transform_payload_fits_the_budget_of_a_small_container():
    """Batch transform's larger payloads (SAGEMAKER_MAX_PAYLOAD_IN_MB) are answered within the
    budget: a 20 MB CSV body, in a 600 MB container whose model and server hold 125 MB, 2 workers."""
    per_worker = plan(2, limit=600 * MEBIBYTE, held=125 * MEBIBYTE).per_worker
    row = b"1,2,3\n"
    body = row * (20 * MEBIBYTE // len(row))
    assert request_cost("text/csv", len(body)) <= per_worker
    budget = MemoryBudget(per_worker)
    status, _, answer = invoke(make_app(budget=budget, max_payload_mb=20), body)
    assert status == 200 and answer.count(b"\n") == body.count(b"\n")
    assert budget.in_use == 0 and budget.peak >= request_cost("text/csv", len(body))


# --- metering: X-Amzn-Inference-Metering on every 2xx, for per-inference pricing -----------------
METERING = b"x-amzn-inference-metering"


def units_billed(headers):
    metering = json.loads(headers[METERING])
    assert metering["Dimension"] == "inference.count"
    return metering["ConsumedUnits"]


@pytest.mark.parametrize(
    ("content_type", "body", "units"),
    [
        ("text/csv", b"1,2,3\n4,5,6\n7,8,9\n", 3),
        ("application/json", b'{"instances": [[1,2,3],[4,5,6]]}', 2),
        ("application/json", b"[1,2,3]", 1),
        ("application/jsonlines", b"[1,2,3]\n\n[4,5,6]\n[7,8,9]\n[1,1,1]\n", 4),
    ],
)
def test_every_200_carries_the_records_answered_as_consumed_units(content_type, body, units):
    status, headers, _ = invoke(make_app(), body, content_type)
    assert status == 200
    assert units_billed(headers) == units
    assert headers[METERING] == b'{"Dimension": "inference.count", "ConsumedUnits": %d}' % units


def test_a_batch_transform_body_of_many_slices_bills_every_record():
    body = b"1,2,3\n" * 150_000  # several slices (formats.SLICE_BYTES), and merged predict() calls
    assert len(body) > 3 * formats.SLICE_BYTES
    status, headers, answer = invoke(make_app(), body)
    assert status == 200 and answer.count(b"\n") == 150_000
    assert units_billed(headers) == 150_000


@pytest.mark.parametrize(
    ("predict", "body", "status"),
    [
        (sum_rows, b"1,2", 400),  # too few features
        (sum_rows, b"1,,3", 400),  # the model refuses NaN
        (sum_rows, b"", 400),
        (broken, b"1,2,3", 500),
        (lambda model, features: [1], b"1,2,3\n4,5,6", 500),  # one result for two records
    ],
)
def test_error_answers_carry_no_metering(predict, body, status):
    got, headers, _ = invoke(make_app(predict=predict), body)
    assert got == status
    assert METERING not in headers


def test_unsupported_types_and_a_loading_model_carry_no_metering():
    assert METERING not in invoke(make_app(), b"1,2,3", "image/png")[1]
    assert METERING not in invoke(make_app(), b"1,2,3", accept="image/png")[1]
    not_loaded = InferenceApp(ModelState(error="no model"), Settings())
    assert METERING not in invoke(not_loaded, b"1,2,3")[1]


def make_metered_app(consumed_units, **settings):
    state = ModelState(predictor=BatchingPredictor(None, sum_rows), feature_count=3, consumed_units=consumed_units)
    return InferenceApp(state, Settings(**settings))


def test_the_projects_consumed_units_counts_another_unit_summed_over_slices():
    seen = []

    def per_value(records, predictions):
        seen.append((len(records), len(predictions)))
        return int(records.size)  # e.g. bill by the value, not the record

    status, headers, _ = invoke(make_metered_app(per_value), b"1,2,3\n4,5,6\n")
    assert status == 200 and units_billed(headers) == 6 and seen == [(2, 2)]
    seen.clear()
    body = b"1,2,3\n" * 150_000
    status, headers, _ = invoke(make_metered_app(per_value), body)
    assert status == 200 and units_billed(headers) == 450_000
    assert len(seen) > 1 and sum(records for records, _ in seen) == 150_000


@pytest.mark.parametrize(
    ("consumed_units", "detail"),
    [
        (lambda records, predictions: 1 / 0, "consumed_units() failed on 2 records: ZeroDivisionError"),
        (lambda records, predictions: -1, "consumed_units() returned -1 for 2 records"),
        (lambda records, predictions: 2.5, "consumed_units() returned 2.5 for 2 records"),
        (lambda records, predictions: None, "consumed_units() returned None for 2 records"),
    ],
)
def test_a_broken_consumed_units_is_a_500_without_metering(consumed_units, detail, caplog):
    with caplog.at_level("ERROR"):
        status, headers, answer = invoke(make_metered_app(consumed_units), b"1,2,3\n4,5,6\n")
    assert status == 500 and METERING not in headers
    assert answer.startswith(b"internal error while counting the answer's units (request id ")
    assert detail in caplog.text


def test_zero_units_is_a_valid_count():
    status, headers, _ = invoke(make_metered_app(lambda records, predictions: np.int64(0)), b"1,2,3")
    assert status == 200 and units_billed(headers) == 0
