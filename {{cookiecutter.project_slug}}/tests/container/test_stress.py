"""Serving that holds under production stress: memory pressure, a bad request inside a merged
batch, a slow or hung predict(), hostile JSON and CSV, and errors a buyer may see.

Each test starts its own container (published on 127.0.0.1 only), bounds its requests, threads
and seconds, and works for every framework and both products: the model is `served_model`, and
where a test needs a slow, hanging or failing predict() it mounts a small module that wraps the
project's own (SAGEMAKER_USER_MODULE), so the real load() and predict() still do the work.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sagemaker_contract.project import USER_MODULE

from .conftest import ROWS, Server, csv_body

MEBIBYTE = 1024 * 1024
WIDTH = len(ROWS[0])
METADATA_FILE = "model-metadata.json"


def post(port: int, body: bytes, content_type: str = "text/csv", accept: str | None = None, timeout: float = 60):
    """POST /invocations on a new connection: (status, headers with lower-case names, body)."""
    headers = {"Content-Type": content_type}
    if accept is not None:
        headers["Accept"] = accept
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, answer
    finally:
        connection.close()


def ping(connection: http.client.HTTPConnection) -> int:
    connection.request("GET", "/ping")
    response = connection.getresponse()
    response.read()
    return response.status


def one_line(answer: bytes) -> bool:
    return answer.count(b"\n") == 1 and answer.endswith(b"\n")


def wrapping_module(directory: Path, predict_source: str, name: str = "stress_wrapper") -> list[str]:
    """`docker run` arguments that serve a module wrapping the project's own: its load(), and
    the predict() in `predict_source` (which calls `real.predict` for the actual work)."""
    path = directory / f"{name}.py"
    path.write_text(
        "import importlib\nimport threading\nimport time\n\n"
        f"real = importlib.import_module({USER_MODULE!r})\n"
        "load = real.load\n\n\n" + predict_source
    )
    path.chmod(0o644)
    return ["-v", f"{path}:/opt/program/{name}.py:ro", "-e", f"SAGEMAKER_USER_MODULE={name}"]


def start(image: str, model_dir: Path, env: dict, docker_args: Sequence[str] = ()) -> Server:
    """A server kept after it stops (for its logs), healthy; the caller stops and removes it."""
    server = Server(image, model_dir, env=env, remove=False, docker_args=docker_args)
    try:
        server.wait_until_healthy()
    except BaseException:
        server.remove()
        raise
    return server


def finish(server: Server) -> None:
    server.stop()
    server.remove()


def row_with(first: float) -> list[float]:
    """A sample record whose first feature is `first` (the wrapping modules' trigger)."""
    return [first, *ROWS[0][1:]]


# --- 1. admission control by memory --------------------------------------------------------------
ADMISSION_REQUESTS = 100


@pytest.mark.heavy
def test_under_memory_pressure_every_request_is_answered_or_shed_and_no_worker_dies(image, served_model):
    """100 concurrent 4.5 MB requests in a 600 MB container would need more memory than there is.
    A server that admits them all gets a worker OOM-killed and drops the connections in flight
    (SageMaker then retries into the same fire); it must instead shed what it cannot hold with a
    503 (or 429) and Retry-After, and answer the rest in full."""
    server = start(
        image,
        served_model,
        {"MODEL_SERVER_WORKERS": "2"},
        ["--memory", "600m", "--memory-swap", "600m"],  # no swap: the limit is the limit on any host
    )
    try:
        row = csv_body(ROWS)
        body = row * (int(4.5 * MEBIBYTE) // len(row))
        records = body.count(b"\n")
        ready = threading.Barrier(ADMISSION_REQUESTS)

        def send(_: int):
            ready.wait(timeout=30)
            try:
                return post(server.port, body, timeout=120)
            except (OSError, http.client.HTTPException) as error:
                return error

        started = time.monotonic()
        with ThreadPoolExecutor(ADMISSION_REQUESTS) as pool:
            outcomes = list(pool.map(send, range(ADMISSION_REQUESTS)))
        took = time.monotonic() - started
        answered = shed = 0
        lost: list[str] = []
        wrong: list[str] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                lost.append(repr(outcome))
                continue
            status, headers, answer = outcome
            if status == 200 and answer.count(b"\n") == records:
                answered += 1
            elif status in (429, 503) and (
                headers.get("retry-after")
                and headers.get("content-type", "").startswith("text/plain")
                and one_line(answer)
            ):
                shed += 1
            else:
                lines = answer.count(b"\n")
                wrong.append(f"{status} {headers} {answer[:200]!r} ({lines} lines for {records} records)")
        print(
            f"\n{ADMISSION_REQUESTS} x 4.5 MB in {took:.1f} s: {answered} answered 200, {shed} shed, {len(lost)} lost"
        )
        time.sleep(1.0)  # let the master log a worker's death, if there was one
        logs = server.logs(tail=None)
        assert not lost, f"{len(lost)} requests lost their connection without an answer, e.g. {lost[:3]}"
        assert not wrong, f"{len(wrong)} answers neither a full 200 nor a 503/429 with Retry-After: {wrong[:3]}"
        assert answered >= 1, "every request was shed; admission control must still serve what fits"
        assert "SIGKILL" not in logs and "Perhaps out of memory" not in logs, logs[-3000:]
        assert logs.count("Booting worker") == 2, logs[-3000:]
        assert server.request("GET", "/ping", timeout=5)[0] == 200
    finally:
        finish(server)


@pytest.mark.heavy
def test_concurrent_20_mb_json_bodies_with_instances_not_first_fit_a_400_mb_container(image, served_model):
    """Three concurrent 20 MB {"id": ..., "instances": [...]} bodies into a 400 MB container with
    one worker: the JSON is decoded a window at a time whatever its key order, as admission counts
    on, so every request is answered (200, or 503 with Retry-After) and no worker is OOM-killed.
    Parsed whole, such a body held over ten times its size and the worker died with all three."""
    server = start(
        image,
        served_model,
        {"MODEL_SERVER_WORKERS": "1", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100"},
        ["--memory", "400m", "--memory-swap", "400m"],
    )
    try:
        record = json.dumps(ROWS[0], separators=(",", ":")).encode()
        count = 20 * MEBIBYTE // (len(record) + 1)
        body = b'{"id":"job-1","instances":[' + b",".join([record] * count) + b"]}"
        ready = threading.Barrier(3)

        def send(_: int):
            ready.wait(timeout=30)
            try:
                return post(server.port, body, "application/json", timeout=120)
            except (OSError, http.client.HTTPException) as error:
                return error

        with ThreadPoolExecutor(3) as pool:
            outcomes = list(pool.map(send, range(3)))
        time.sleep(1.0)  # let the master log a worker's death, if there was one
        logs = server.logs(tail=None)
        lost = [repr(outcome) for outcome in outcomes if isinstance(outcome, BaseException)]
        assert not lost, f"requests lost their connection without an answer: {lost}\n{logs[-3000:]}"
        statuses = [status for status, _, _ in outcomes]
        print(f"\n3 x {len(body) / MEBIBYTE:.1f} MB JSON, id first, into 400 MB: {statuses}")
        for status, headers, answer in outcomes:
            if status == 200:
                assert len(json.loads(answer)["predictions"]) == count
            else:
                assert status == 503 and headers.get("retry-after") and one_line(answer), (status, answer[:300])
        assert 200 in statuses
        assert "SIGKILL" not in logs and "Perhaps out of memory" not in logs, logs[-3000:]
        assert logs.count("Booting worker") == 1, logs[-3000:]
    finally:
        finish(server)


# --- 2. batch isolation --------------------------------------------------------------------------
SLOW_PREDICT = """
def predict(model, features):
    time.sleep(0.3)  # slow enough that concurrent requests queue and are merged into one call
    return real.predict(model, features)
"""


@pytest.mark.heavy
def test_a_malformed_request_merged_into_a_batch_fails_alone_and_quickly(image, served_model, tmp_path):
    """Without model-metadata.json the server cannot check the feature count up front, so a
    record one feature short reaches the batcher. Merged with good requests it must fail alone
    (4xx), and the others must get their own answers at once, not wait for MODEL_SERVER_TIMEOUT."""
    model_dir = tmp_path / "model"
    shutil.copytree(served_model, model_dir)
    (model_dir / METADATA_FILE).unlink(missing_ok=True)
    server = start(
        image,
        model_dir,
        {"MODEL_SERVER_WORKERS": "1", "MODEL_SERVER_TIMEOUT": "20"},
        wrapping_module(tmp_path, SLOW_PREDICT),
    )
    try:
        valid = [csv_body([ROWS[(n * 5 + k) % len(ROWS)] for k in range(1 + n)]) for n in range(8)]
        short = csv_body([row[:-1] for row in ROWS[:2]])
        # One at a time first: each request's own answer, and the short one refused on its own.
        expected = [post(server.port, body, accept="application/json") for body in valid]
        assert all(status == 200 for status, _, _ in expected), expected
        alone = post(server.port, short, accept="application/json")
        assert 400 <= alone[0] < 500, f"a record one feature short, sent alone: {alone[0]} {alone[2][:200]!r}"

        results: dict[str, tuple] = {}

        def send(key: str, body: bytes) -> None:
            sent = time.monotonic()
            try:
                got = post(server.port, body, accept="application/json", timeout=30)
            except (OSError, http.client.HTTPException) as error:
                got = (repr(error), {}, b"")
            results[key] = (*got, time.monotonic() - sent)

        first = threading.Thread(target=send, args=("valid 0", valid[0]))
        first.start()
        time.sleep(0.1)  # predict() is busy with the first; the rest queue up behind it
        threads = [threading.Thread(target=send, args=(f"valid {n}", valid[n])) for n in range(1, 8)]
        threads.append(threading.Thread(target=send, args=("short", short)))
        for thread in threads:
            thread.start()
        for thread in [first, *threads]:
            thread.join(timeout=60)
        summary = {key: (value[0], round(value[3], 2)) for key, value in sorted(results.items())}
        print(f"\nconcurrent (status, seconds): {summary}")
        assert len(results) == 9, summary
        for n in range(8):
            status, _, answer, _ = results[f"valid {n}"]
            assert status == 200, f"valid request {n}: {status} {answer[:200]!r} ({summary})"
            assert json.loads(answer) == json.loads(expected[n][2]), f"valid request {n} got another's predictions"
        status, headers, answer, _ = results["short"]
        assert status == 400, f"the short request: {status} {answer[:200]!r}"
        assert headers.get("content-type", "").startswith("text/plain") and one_line(answer), answer[:300]
        slowest = max(value[3] for value in results.values())
        assert slowest < 5, f"answers took up to {slowest:.1f} s; {summary}"
    finally:
        finish(server)


# --- 3. watchdog: a slow or hung predict() -------------------------------------------------------
STALL, HANG = 999.0, 777.0
WATCHDOG_TIMEOUT = 5
WATCHDOG_PREDICT = f"""
def predict(model, features):
    first = features[:, 0]
    if (first == {HANG}).any():
        threading.Event().wait()  # hangs forever, like a deadlocked native library
    if (first == {STALL}).any():
        time.sleep(3)  # slow, but within MODEL_SERVER_TIMEOUT
    return real.predict(model, features)
"""


@pytest.mark.heavy
def test_a_slow_predict_does_not_block_ping(image, served_model, tmp_path):
    """SageMaker gives each /ping 2 s and replaces an instance whose pings fail. After many quick
    predictions (when the server may run predict() on its event loop to save a thread hop), a 3 s
    predict() must still leave /ping answering at once, on new and kept-alive connections, with
    one worker so no other worker can answer for it."""
    server = start(
        image,
        served_model,
        {"MODEL_SERVER_WORKERS": "1", "MODEL_SERVER_TIMEOUT": str(WATCHDOG_TIMEOUT)},
        wrapping_module(tmp_path, WATCHDOG_PREDICT),
    )
    try:
        quick = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        for n in range(200):
            quick.request(
                "POST", "/invocations", body=csv_body([ROWS[n % len(ROWS)]]), headers={"Content-Type": "text/csv"}
            )
            response = quick.getresponse()
            response.read()
            assert response.status == 200
        quick.close()

        stop = threading.Event()
        pings: dict[str, list] = {"new": [], "kept-alive": []}

        def pinger(kind: str) -> None:
            kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2.5)
            while not stop.is_set():
                sent = time.monotonic()
                connection = (
                    kept if kind == "kept-alive" else http.client.HTTPConnection("127.0.0.1", server.port, timeout=2.5)
                )
                try:
                    status = ping(connection)
                except (OSError, http.client.HTTPException) as error:
                    status = repr(error)
                    kept.close()
                pings[kind].append((status, time.monotonic() - sent))
                if kind == "new":
                    connection.close()
                time.sleep(0.05)
            kept.close()

        threads = [threading.Thread(target=pinger, args=(kind,)) for kind in pings]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        sent = time.monotonic()
        stalled = post(server.port, csv_body([row_with(STALL)]), timeout=30)
        stalled_seconds = time.monotonic() - sent
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        for kind, results in pings.items():
            worst = max(seconds for _, seconds in results)
            print(f"\n/ping, {kind} connections, during a {stalled_seconds:.1f} s predict(): max {worst * 1000:.0f} ms")
        assert stalled[0] == 200, stalled[2][:300]
        for kind, results in pings.items():
            failed = [(status, round(seconds, 2)) for status, seconds in results if status != 200 or seconds >= 2]
            assert not failed, f"/ping on {kind} connections failed or took 2 s or more: {failed[:5]}"
            assert len(results) >= 20, f"only {len(results)} pings on {kind} connections in {stalled_seconds:.1f} s"
    finally:
        finish(server)


@pytest.mark.heavy
@pytest.mark.parametrize("workers", [1, 2])
def test_a_hung_predict_is_answered_504_and_its_worker_replaced(image, served_model, tmp_path, workers):
    """A predict() that never returns must not hold its request forever (SageMaker's own limit
    is 60 s) nor leave the worker wedged: the request gets a 5xx within MODEL_SERVER_TIMEOUT, and
    the worker, whose predict thread cannot be freed, is replaced so valid requests work again."""
    server = start(
        image,
        served_model,
        {"MODEL_SERVER_WORKERS": str(workers), "MODEL_SERVER_TIMEOUT": str(WATCHDOG_TIMEOUT)},
        wrapping_module(tmp_path, WATCHDOG_PREDICT),
    )
    try:
        valid = csv_body(ROWS[:3])
        assert post(server.port, valid)[0] == 200
        sent = time.monotonic()
        try:
            status, _, answer = post(server.port, csv_body([row_with(HANG)]), timeout=WATCHDOG_TIMEOUT + 3)
        except (OSError, http.client.HTTPException) as error:
            status, answer = repr(error), b""
        took = time.monotonic() - sent
        print(f"\nhung predict(): {status} after {took:.1f} s")
        assert isinstance(status, int) and 500 <= status < 600, f"hung request: {status} {answer[:200]!r}"
        assert took <= WATCHDOG_TIMEOUT + 3

        # Then, within 30 s: valid requests are served again (many in a row, on new connections,
        # so every worker gets its share), or at least /ping says the endpoint is unhealthy.
        needed = 10 * workers
        streak = 0
        ping_503 = False
        outcomes: list = []
        deadline = time.monotonic() + 30
        while streak < needed and time.monotonic() < deadline:
            try:
                ping_503 = ping_503 or server.request("GET", "/ping", timeout=3)[0] == 503
                got = post(server.port, valid, timeout=WATCHDOG_TIMEOUT + 3)[0]
            except (OSError, http.client.HTTPException) as error:
                got = repr(error)
            outcomes.append(got)
            streak = streak + 1 if got == 200 else 0
            if got != 200:
                time.sleep(0.2)
        recovered = streak >= needed
        # The healthy worker may serve the whole streak before the replacement boots, and docker
        # copies the log asynchronously: wait (bounded) for the replacement's line.
        boots_deadline = time.monotonic() + 30
        while (boots := server.logs(tail=None).count("Booting worker")) <= workers:
            if time.monotonic() > boots_deadline:
                break
            time.sleep(0.2)
        print(f"after it: {len(outcomes)} requests, recovered: {recovered}, /ping 503 seen: {ping_503}, {boots} boots")
        assert recovered or ping_503, f"30 s on, requests still fail and /ping says 200: {outcomes[-10:]}"
        assert recovered, f"valid requests were not served again within 30 s: {outcomes[-10:]}"
        assert boots > workers, "the worker holding the hung predict() was not replaced"
    finally:
        finish(server)


# --- 4. hostile JSON and CSV ---------------------------------------------------------------------
def _record(*values: str) -> str:
    """A JSON record of sample features with `values` (raw JSON text) in front."""
    return "[" + ", ".join([*values, *map(repr, ROWS[0][len(values) :])]) + "]"


DIGITS_400 = ("1234567890" * 40).encode()
DEEP = 100_000
GOOD_LINE = json.dumps(ROWS[0])
HOSTILE = [
    ("json-400-digit-integer", "application/json", f"[{_record(repr(ROWS[0][0]), DIGITS_400.decode())}]".encode()),
    ("json-nested-100000-deep", "application/json", b"[" * DEEP + b"]" * DEEP),
    ("json-1e400", "application/json", f"[{_record('1e400')}]".encode()),
    ("json-Infinity", "application/json", f"[{_record('Infinity')}]".encode()),
    ("json-minus-Infinity", "application/json", f"[{_record('-Infinity')}]".encode()),
    ("json-NaN", "application/json", f"[{_record('NaN')}]".encode()),
    ("json-5mb-string", "application/json", f"[{_record(json.dumps('x' * (5 * MEBIBYTE)))}]".encode()),
    (
        "jsonlines-deep-object",
        "application/jsonlines",
        (GOOD_LINE + "\n" + '{"features": ' * DEEP + "[1]" + "}" * DEEP + "\n").encode(),
    ),
    ("csv-1e400", "text/csv", ",".join(["1e400", *map(repr, ROWS[0][1:])]).encode() + b"\n"),
    ("csv-400-digit-integer", "text/csv", b",".join([DIGITS_400, *(repr(v).encode() for v in ROWS[0][1:])]) + b"\n"),
    ("json-utf-16", "application/json", json.dumps(ROWS[:2]).encode("utf-16")),
    ("json-invalid-utf-8", "application/json", ("[" + _record('"x"') + "]").encode().replace(b'"x"', b'"\xc3\x28"')),
]


@pytest.fixture(scope="module")
def hostile_server(image, served_model):
    server = start(image, served_model, {"MODEL_SERVER_WORKERS": "2"})
    yield server
    finish(server)


@pytest.mark.parametrize(("content_type", "body"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_hostile_bodies_get_a_4xx_and_one_line_and_no_traceback(hostile_server, content_type, body):
    """Numbers beyond float range, nesting deeper than Python's recursion limit, huge strings and
    text that is not UTF-8 are the client's mistake: a 4xx with a short one-line reason, never a
    5xx or an unhandled exception (whose traceback would fill the log a buyer pays to store)."""
    before = hostile_server.logs(tail=None).count("Traceback")
    status, headers, answer = post(hostile_server.port, body, content_type, timeout=30)
    time.sleep(0.2)  # the log line of an unhandled error may follow the answer
    logs = hostile_server.logs(tail=None)
    if content_type == "application/json" and b"NaN" in body and status == 200:
        assert len(json.loads(answer)["predictions"]) == 1  # NaN: a missing value, for a model that takes them
    else:
        assert 400 <= status < 500, f"{status} {answer[:300]!r}"
        assert headers.get("content-type", "").startswith("text/plain"), headers
        assert one_line(answer) and len(answer) < 1024, answer[:300]
    assert logs.count("Traceback") == before, logs[-3000:]
    assert hostile_server.request("GET", "/ping", timeout=5)[0] == 200


# --- 5. errors fit for buyers --------------------------------------------------------------------
SECRET = "secret-internal-detail"
FAILING_PREDICT = f"""
def predict(model, features):
    if (features[:, 0] == 555).any():
        raise RuntimeError({SECRET + " 42"!r})
    return real.predict(model, features)
"""
REQUEST_ID = re.compile(r"request id\W{0,3}([0-9a-f][0-9a-f-]{5,})", re.IGNORECASE)


@pytest.mark.heavy
@pytest.mark.parametrize("detail", [False, True], ids=["default", "MODEL_SERVER_ERROR_DETAIL"])
def test_a_failing_predict_answers_500_with_a_request_id_not_the_internals(image, served_model, tmp_path, detail):
    """A buyer sees the 500 of a failing predict(): it names a request id to quote in a support
    case, and keeps the seller's internals (exception text, paths) out unless the seller asks
    for them with MODEL_SERVER_ERROR_DETAIL=true. The container log has the whole story."""
    env = {"MODEL_SERVER_WORKERS": "1"}
    if detail:
        env["MODEL_SERVER_ERROR_DETAIL"] = "true"
    server = start(image, served_model, env, wrapping_module(tmp_path, FAILING_PREDICT))
    try:
        status, headers, answer = post(server.port, csv_body([row_with(555.0)]))
        text = answer.decode(errors="replace")
        print(f"\n500 body: {text!r}")
        assert status == 500, text[:300]
        assert headers.get("content-type", "").startswith("text/plain") and one_line(answer), text[:300]
        found = REQUEST_ID.search(text)
        assert found, f"no 'request id <hex>' in the answer: {text[:300]!r}"
        if detail:
            assert f"{SECRET} 42" in text, text[:300]
        else:
            assert SECRET not in text, text[:300]
        time.sleep(0.2)
        logs = server.logs(tail=None)
        assert found.group(1) in logs, f"request id {found.group(1)} is not in the log:\n{logs[-3000:]}"
        assert SECRET in logs and "Traceback" in logs, logs[-3000:]
        assert post(server.port, csv_body(ROWS[:2]))[0] == 200  # the worker serves on
    finally:
        finish(server)
