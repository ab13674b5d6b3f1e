"""The HTTP contract, exercised in-process through the ASGI interface (sagemaker_contract.app)."""

import asyncio
import json

import numpy as np
import pytest

from sagemaker_contract.app import InferenceApp, ModelState
from sagemaker_contract.batching import BatchingPredictor
from sagemaker_contract.settings import MEBIBYTE, Settings


def sum_rows(model, features):
    if np.isnan(features).any():
        raise ValueError("Input X contains NaN.")
    return features.sum(axis=1)


def make_app(predict=sum_rows, feature_count=3, **settings):
    state = ModelState(predictor=BatchingPredictor(None, predict), feature_count=feature_count)
    return InferenceApp(state, Settings(**settings))


def call(app, method, path, headers=None, body=b"", chunks=None):
    """One request through the app; returns (status, headers, body)."""
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
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
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


def test_a_broken_predict_is_a_500_with_a_reason_and_the_server_lives_on():
    def broken(model, features):
        raise RuntimeError("boom")

    app = make_app(predict=broken)
    status, _, body = invoke(app, b"1,2,3")
    assert status == 500 and body == b"predict() failed: RuntimeError: boom\n"
    assert call(app, "GET", "/ping")[0] == 200


def test_predict_returning_the_wrong_number_of_results_is_caught():
    status, _, body = invoke(make_app(predict=lambda model, rows: [1]), b"1,2,3\n4,5,6")
    assert status == 500 and b"returned 1 results for 2 records" in body


def test_slow_predictions_time_out_with_504():
    import time

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
