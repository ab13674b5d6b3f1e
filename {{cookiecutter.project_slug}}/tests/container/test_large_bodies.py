"""Bodies of any size up to asynchronous inference's 1 GB, in bounded memory (spooled to disk).

Bodies are generated as they are sent and answers checked as they arrive: the test holds neither.
Each heavy case runs once; the containers are the session's image with the session's model. The
code is the same for every framework, so these are marked heavy (the template's CI runs them on
the default algorithm only).
"""

from __future__ import annotations

import http.client
import json
import time

import pytest

from .conftest import ROWS, Server, csv_body, docker
from .test_stress import finish, start, wrapping_module

pytestmark = pytest.mark.heavy

MEBIBYTE = 1024 * 1024
SEND = MEBIBYTE  # bytes handed to the socket at a time


def distinct_rows(server: Server) -> tuple[list[list[float]], list[bytes]]:
    """Sample rows the model answers differently (as many as it has answers, up to 4), and their
    answer lines: a body cycling through them must get the same cycle back, in order."""
    status, _, answer = server.invoke(csv_body(ROWS), accept="text/csv")
    assert status == 200, answer[:300]
    chosen: dict[bytes, list[float]] = {}
    for row, line in zip(ROWS, answer.splitlines(keepends=True)):
        chosen.setdefault(line, row)
    lines = list(chosen)[:4]
    return [chosen[line] for line in lines], lines


def post_streaming(port, content_type, blocks, declared=None, accept=None, chunked=False, timeout=900):
    """POST a body given as an iterable of byte blocks; the open response (not read yet)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.putrequest("POST", "/invocations")
    connection.putheader("Content-Type", content_type)
    if accept:
        connection.putheader("Accept", accept)
    if chunked:
        connection.putheader("Transfer-Encoding", "chunked")
    else:
        connection.putheader("Content-Length", str(declared))
    connection.endheaders()
    try:
        for block in blocks:
            connection.send(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
        if chunked:
            connection.send(b"0\r\n\r\n")
    except OSError:  # the server answered before taking the whole body (413): read that answer
        pass
    return connection, connection.getresponse()


def check_cycle(response, cycle: bytes, count: int) -> None:
    """The answer is `cycle` repeated `count` times, read as it arrives."""
    expected = cycle * (SEND // len(cycle) + 2)
    offset = 0
    while True:
        chunk = response.read(SEND)
        if not chunk:
            break
        start = offset % len(cycle)
        assert chunk == expected[start : start + len(chunk)], f"the answer differs after byte {offset}"
        offset += len(chunk)
    assert offset == len(cycle) * count, f"{offset // len(cycle)} answers for {count} records"


def no_worker_killed(server: Server) -> None:
    logs = server.logs(tail=None)
    state = json.loads(docker("inspect", server.id).stdout)[0]["State"]
    assert "SIGKILL" not in logs and "WORKER TIMEOUT" not in logs and not state["OOMKilled"], logs[-3000:]


def test_a_1_gb_csv_and_a_large_json_lines_body_are_answered_in_768_mb(image, served_model):
    """An asynchronous endpoint's container: no SAGEMAKER_MAX_PAYLOAD_IN_MB, --memory 768m."""
    server = start(image, served_model, {}, ["--memory", "768m", "--memory-swap", "768m"])
    try:
        rows, lines = distinct_rows(server)
        block_rows = csv_body(rows)
        repeats = 1000 * MEBIBYTE // len(block_rows)  # one block of rows each: about 1 GB in all
        per_send = max(1, SEND // len(block_rows))
        block = block_rows * per_send
        sends, rest = divmod(repeats, per_send)
        blocks = (block for _ in range(sends))
        declared = len(block) * sends + len(block_rows) * rest
        started = time.monotonic()
        connection, response = post_streaming(
            server.port, "text/csv", iter([*blocks, block_rows * rest]), declared, accept="text/csv"
        )
        assert response.status == 200, response.read(500)
        metering = json.loads(response.getheader("X-Amzn-Inference-Metering"))
        assert metering == {"Dimension": "inference.count", "ConsumedUnits": repeats * len(rows)}
        check_cycle(response, b"".join(lines), repeats)
        connection.close()
        seconds = time.monotonic() - started
        print(f"\n{declared / MEBIBYTE:.0f} MB CSV, {repeats * len(rows)} rows: {seconds:.1f} s")

        # JSON Lines, smaller but well past a worker's memory share, so it is spooled too.
        jsonl_rows = b"".join(json.dumps(row).encode() + b"\n" for row in rows)
        repeats = 64 * MEBIBYTE // len(jsonl_rows)
        block = jsonl_rows * (SEND // len(jsonl_rows))
        sends, rest = divmod(repeats, SEND // len(jsonl_rows))
        declared = len(block) * sends + len(jsonl_rows) * rest
        blocks = iter([*(block for _ in range(sends)), jsonl_rows * rest])
        connection, response = post_streaming(server.port, "application/jsonlines", blocks, declared, "text/csv")
        assert response.status == 200, response.read(500)
        check_cycle(response, b"".join(lines), repeats)
        connection.close()
        no_worker_killed(server)
    finally:
        finish(server)


def spool_used(server: Server) -> int:
    return int(docker("exec", server.id, "df", "-B1", "--output=used", "/spool").stdout.split()[-1])


def test_spooled_bodies_leave_nothing_behind_and_the_disk_is_admitted(image, served_model):
    """A small filesystem for the spool (tmpfs, 1200 MB): a body it could never hold is 413, with
    or without Content-Length; a client that hangs up half-way through a 500 MB upload leaves no
    file and no space used; a chunked body that fits is answered."""
    env = {"MODEL_SERVER_SPOOL_DIR": "/spool", "MODEL_SERVER_MAX_INFLIGHT_MB": "200", "MODEL_SERVER_WORKERS": "1"}
    server = start(image, served_model, env, ["--tmpfs", "/spool:size=1200m"])
    try:
        empty = spool_used(server)
        row = csv_body([ROWS[0]])
        block = row * (SEND // len(row))

        # Declared 1000 MB: with room for its answer, more than the spool holds. Refused unread.
        connection, response = post_streaming(server.port, "text/csv", [], declared=1000 * MEBIBYTE)
        answer = response.read()
        assert response.status == 413 and b"MB of disk" in answer and b"MODEL_SERVER_SPOOL_DIR" in answer, answer
        connection.close()

        # Half of a 500 MB upload, then the client hangs up.
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Type", "text/csv")
        connection.putheader("Content-Length", str(500 * len(block)))
        connection.endheaders()
        for _ in range(250):
            connection.send(block)
        deadline = time.monotonic() + 30
        while spool_used(server) - empty < 200 * MEBIBYTE:  # it was being spooled there
            assert time.monotonic() < deadline, f"only {spool_used(server) - empty} bytes spooled"
            time.sleep(0.2)
        connection.close()
        deadline = time.monotonic() + 30
        while spool_used(server) - empty > MEBIBYTE:
            assert time.monotonic() < deadline, f"{spool_used(server) - empty} bytes still spooled after a hang-up"
            time.sleep(0.2)
        assert docker("exec", server.id, "ls", "-A", "/spool").stdout == ""

        # Chunked: one that fits is answered; one the spool could never hold is 413 like a declared one.
        connection, response = post_streaming(server.port, "text/csv", (block for _ in range(40)), chunked=True)
        assert response.status == 200 and response.read().count(b"\n") == 40 * (SEND // len(row))
        connection.close()
        connection, response = post_streaming(server.port, "text/csv", (block for _ in range(1000)), chunked=True)
        answer = response.read()
        assert response.status == 413 and b"MB of disk" in answer, answer[:300]
        connection.close()
        assert server.request("GET", "/ping")[0] == 200
        no_worker_killed(server)
    finally:
        finish(server)


SLOW, HANG = 999.0, 777.0
TIMEOUT = 2
STEADY_PREDICT = f"""
def predict(model, features):
    if (features[:, 0] == {HANG}).any():
        threading.Event().wait()  # hangs, like a deadlocked native library
    if (features[:, 0] == {SLOW}).any():
        time.sleep({TIMEOUT} * 0.6)  # each call within MODEL_SERVER_TIMEOUT
    return real.predict(model, features)
"""


def test_a_long_request_that_keeps_progressing_is_answered_and_a_hung_predict_is_cut(image, served_model, tmp_path):
    """MODEL_SERVER_TIMEOUT bounds each predict() call: a body of several slices, each predicted
    in 1.2 s, runs well past a 2 s timeout and is answered; a call that hangs is still cut."""
    env = {"MODEL_SERVER_WORKERS": "1", "MODEL_SERVER_TIMEOUT": str(TIMEOUT)}
    server = start(image, served_model, env, wrapping_module(tmp_path, STEADY_PREDICT, "steady_wrapper"))
    try:
        slow_row = csv_body([[SLOW, *ROWS[0][1:]]])
        body = slow_row * (5 * 256 * 1024 // len(slow_row) + 1)  # a little over 5 slices of records
        started = time.monotonic()
        status, _, answer = server.invoke(body)
        seconds = time.monotonic() - started
        assert status == 200, answer[:300]
        assert answer.count(b"\n") == body.count(b"\n") and seconds > 2 * TIMEOUT
        status, _, answer = server.invoke(csv_body([[HANG, *ROWS[0][1:]]]))
        assert status == 504 and b"MODEL_SERVER_TIMEOUT" in answer, answer
    finally:
        finish(server)
