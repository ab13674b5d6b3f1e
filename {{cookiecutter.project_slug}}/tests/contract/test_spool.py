"""Bodies too large for memory, spooled to disk (sagemaker_contract.spool), through the app in-process."""

import asyncio
import json
import os
import re
import time
import tracemalloc
from collections import namedtuple

import numpy as np
import pytest

from sagemaker_contract import formats, spool
from sagemaker_contract.admission import MemoryBudget, request_cost, spooled_cost
from sagemaker_contract.app import InferenceApp, ModelState
from sagemaker_contract.batching import BatchingPredictor
from sagemaker_contract.settings import MEBIBYTE, Settings

from .test_app import call, sum_rows, units_billed

BUDGET = 64 * MEBIBYTE  # a body costing over a quarter of it (about 8 MB of CSV) is spooled


def make_app(spool_dir, predict=sum_rows, budget=None, feature_count=3, **settings):
    settings.setdefault("max_payload_mb", 100)
    state = ModelState(predictor=BatchingPredictor(None, predict), feature_count=feature_count)
    return InferenceApp(state, Settings(**settings), budget or MemoryBudget(BUDGET), spool.DiskBudget(str(spool_dir)))


def invoke(app, body, content_type="text/csv", accept=None, **options):
    """POST /invocations as a client that declares Content-Length (without chunks: chunked)."""
    headers = {"Content-Type": content_type}
    if accept is not None:
        headers["Accept"] = accept
    if options.get("chunks") is None:
        headers["Content-Length"] = str(len(body))
    return call(app, "POST", "/invocations", headers, body, **options)


def csv_rows(count, start=0):
    """Rows "i,1,2": each row's sum names its position."""
    return b"".join(b"%d,1,2\n" % i for i in range(start, start + count))


def spool_files_open(spool_dir):
    """Files this process has open in the spool directory (unnamed ones included)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(spool_dir)):
            found.append(target)
    return found


def chunks_of(body, size=65536):
    return [body[i : i + size] for i in range(0, len(body), size)]


@pytest.mark.parametrize(
    ("content_type", "accept"),
    [("text/csv", "text/csv"), ("application/jsonlines", "application/json"), ("text/csv", "application/jsonlines")],
)
def test_a_body_over_its_share_of_memory_is_spooled_and_answered_in_order(tmp_path, content_type, accept):
    rows = 700_000
    body = csv_rows(rows)
    if content_type == "application/jsonlines":
        body = b"".join(b"[" + line + b"]\n" for line in body.splitlines())
    budget = MemoryBudget(BUDGET)
    app = make_app(tmp_path, budget=budget)
    assert request_cost(content_type, len(body)) > BUDGET // spool.SPOOL_SHARE  # so it is spooled
    status, headers, answer = invoke(app, body, content_type, accept=accept)
    assert status == 200, answer[:300]
    if accept == "application/json":
        predictions = json.loads(answer)["predictions"]
    else:
        predictions = [float(line.strip(b"[]")) for line in answer.splitlines()]
    assert predictions == [i + 3.0 for i in range(rows)]
    assert int(headers[b"content-length"]) == len(answer)
    assert units_billed(headers) == rows
    # One slice's working set was held, not the body's size, and no disk is left reserved.
    assert budget.peak == spooled_cost(content_type) and budget.in_use == 0
    assert app.disk.outstanding == 0 and spool_files_open(tmp_path) == [] and os.listdir(tmp_path) == []


def test_a_chunked_body_past_its_share_of_memory_goes_to_disk_and_is_answered(tmp_path):
    body = csv_rows(1_400_000)
    budget = MemoryBudget(BUDGET)
    app = make_app(tmp_path, budget=budget)
    status, _, answer = invoke(app, b"", chunks=chunks_of(body))
    assert status == 200 and answer.count(b"\n") == 1_400_000 and answer.endswith(b"1400002.0\n")
    assert budget.peak <= BUDGET // spool.SPOOL_SHARE and budget.in_use == 0  # never more than its share
    assert app.disk.outstanding == 0 and spool_files_open(tmp_path) == []


def test_a_spooled_request_holds_no_more_memory_than_one_slice_whatever_its_size(tmp_path):
    """tracemalloc: what the app allocates for a spooled body stays within spooled_cost, less than
    the body itself (the page cache its files use is the kernel's, dropped as it goes)."""
    body = csv_rows(1_000_000)
    app = make_app(tmp_path)
    chunks = chunks_of(body)
    size = len(body)
    del body
    invoke(app, b"1,2,3")  # start the predict thread before measuring
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        status, lines = post_counting_lines(app, chunks)  # the answer is counted, not kept
        held = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert status == 200 and lines == 1_000_000
    print(f"\n{size / MEBIBYTE:.0f} MB body spooled: {held / MEBIBYTE:.1f} MB held, ", end="")
    print(f"estimate {spooled_cost('text/csv') / MEBIBYTE:.1f} MB")
    assert held <= spooled_cost("text/csv") and held < size


def post_counting_lines(app, chunks):
    """POST a chunked CSV body; the answer's status and line count (its bytes are not kept)."""
    messages = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks]
    messages[-1]["more_body"] = False
    answer = {"status": None, "lines": 0}

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()

    async def send(message):
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        else:
            answer["lines"] += message["body"].count(b"\n")

    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": [(b"content-type", b"text/csv")]}
    asyncio.run(app(scope, receive, send))
    return answer["status"], answer["lines"]


StatVfs = namedtuple("StatVfs", "f_blocks f_frsize f_bavail")


def with_disk(monkeypatch, size, free):
    blocks = 4096
    monkeypatch.setattr(spool.os, "statvfs", lambda path: StatVfs(size // blocks, blocks, free // blocks))


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_the_spool_disk_could_never_hold_is_413_with_the_space_it_needs(tmp_path, monkeypatch, chunked):
    with_disk(monkeypatch, size=16 * MEBIBYTE, free=16 * MEBIBYTE)
    body = csv_rows(1_000_000)  # 13 MB: with room for its answer, 26 MB
    app = make_app(tmp_path)
    status, headers, answer = invoke(app, b"" if chunked else body, chunks=chunks_of(body) if chunked else None)
    assert status == 413, answer
    assert re.search(rb"needs about \d+ MB of disk", answer) and b"spool filesystem at " in answer
    assert b"MODEL_SERVER_SPOOL_DIR" in answer and answer.count(b"\n") == 1
    assert app.disk.outstanding == 0 and app.budget.in_use == 0 and spool_files_open(tmp_path) == []


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_that_fits_the_disk_once_others_are_done_is_503_with_retry_after(tmp_path, monkeypatch, chunked):
    with_disk(monkeypatch, size=1000 * MEBIBYTE, free=60 * MEBIBYTE)  # 10 MB usable now, 950 MB in time
    body = csv_rows(1_000_000)
    app = make_app(tmp_path)
    status, headers, answer = invoke(app, b"" if chunked else body, chunks=chunks_of(body) if chunked else None)
    assert status == 503 and headers[b"retry-after"] == b"1", answer
    assert answer == b"server busy: not enough disk free to spool this request now; retry after a second\n"
    assert app.disk.outstanding == 0 and app.budget.in_use == 0 and spool_files_open(tmp_path) == []


def test_disk_reserved_by_one_request_is_not_given_to_the_next(tmp_path, monkeypatch):
    with_disk(monkeypatch, size=1000 * MEBIBYTE, free=200 * MEBIBYTE)  # 150 MB of it usable (5% margin)
    disk = spool.DiskBudget(str(tmp_path))
    first = disk.reserve(100 * MEBIBYTE)
    with pytest.raises(spool.DiskBusy):
        disk.reserve(60 * MEBIBYTE)
    disk.release(first)
    disk.release(disk.reserve(60 * MEBIBYTE))
    assert disk.outstanding == 0


def failing_at(position):
    def predict(model, rows):
        if (rows[:, 0] >= position).any():
            raise RuntimeError("broken")
        return rows.sum(axis=1)

    return predict


@pytest.mark.parametrize(
    ("body_end", "predict", "status"),
    [
        (b"1,2\n", sum_rows, 400),  # a mistake in the last slice
        (b"", failing_at(600_000), 500),  # predict() failing half-way
    ],
)
def test_no_spooled_file_or_reservation_is_left_after_an_error(tmp_path, body_end, predict, status):
    app = make_app(tmp_path, predict=predict)
    got, _, answer = invoke(app, csv_rows(700_000) + body_end)
    assert got == status, answer
    assert app.disk.outstanding == 0 and app.budget.in_use == 0
    assert spool_files_open(tmp_path) == [] and os.listdir(tmp_path) == []


@pytest.mark.parametrize("declared", [True, False])
def test_a_client_that_hangs_up_half_way_through_its_upload_leaves_nothing_behind(tmp_path, declared):
    app = make_app(tmp_path)
    body = csv_rows(2_800_000)
    half = chunks_of(body[: len(body) // 2])
    headers = [(b"content-type", b"text/csv")]
    if declared:
        headers.append((b"content-length", str(len(body)).encode()))
    messages = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in half]
    sent = []
    seen_on_disk = []

    async def receive():
        if messages:
            return messages.pop(0)
        seen_on_disk.extend(spool_files_open(tmp_path))  # the half that came is on disk
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": headers}
    asyncio.run(app(scope, receive, send))
    assert sent == [] and len(seen_on_disk) == 1  # nobody to answer; it had been spooled
    assert app.disk.outstanding == 0 and app.budget.in_use == 0 and spool_files_open(tmp_path) == []


def test_a_client_that_hangs_up_while_its_spooled_body_is_predicted_stops_the_work(tmp_path):
    calls = []

    def slow(model, rows):
        calls.append(len(rows))
        time.sleep(0.05)
        return rows.sum(axis=1)

    app = make_app(tmp_path, predict=slow)
    status, _, _ = invoke(app, csv_rows(700_000), hang_up=True)
    assert status is None
    assert len(calls) <= 2  # not every slice of the body
    assert app.disk.outstanding == 0 and app.budget.in_use == 0 and spool_files_open(tmp_path) == []


def test_a_json_body_too_large_for_memory_is_spooled_and_answered(tmp_path):
    """JSON is decoded a window at a time from any buffer (json_body.py), so a JSON body too large
    for memory is spooled like CSV, and answered in full."""
    assert formats.JSON in formats.SLICED_FROM_ANY_BUFFER
    count = 2_500_000
    body = b'{"id":"job-1","instances":[' + b",".join(b"[%d,1,2]" % (i % 10) for i in range(count)) + b"]}"
    status, _, answer = invoke(make_app(tmp_path), body, "application/json", accept="text/csv")
    assert status == 200, answer[:200]
    assert answer.count(b"\n") == count


def test_project_formats_are_never_spooled(tmp_path):
    """The project's decode() takes the whole body: such a request is admitted by memory (413 when
    it cannot fit) rather than spooled."""
    state = ModelState(
        predictor=BatchingPredictor(None, sum_rows),
        feature_count=3,
        formats=formats.Formats(
            lambda body, kind: np.loadtxt(body.decode().splitlines(), delimiter=",", ndmin=2), ["text/x-rows"]
        ),
    )
    app = InferenceApp(state, Settings(max_payload_mb=100), MemoryBudget(BUDGET), spool.DiskBudget(str(tmp_path)))
    status, _, answer = invoke(app, csv_rows(3_000_000), "text/x-rows", accept="text/csv")
    assert status == 413 and b"of memory to be answered" in answer


# --- timeouts: MODEL_SERVER_TIMEOUT bounds a predict() call, not a request that keeps progressing ---
def test_a_request_that_keeps_completing_slices_runs_past_the_timeout(tmp_path):
    def steady(model, rows):
        time.sleep(0.4)  # each call well within the timeout
        return rows.sum(axis=1)

    body = csv_rows(120_000)  # about 6 slices: 2.4 s in all, over a 1 s timeout
    started = time.monotonic()
    status, _, answer = invoke(make_app(tmp_path, predict=steady, timeout_seconds=1), body)
    assert status == 200 and answer.count(b"\n") == 120_000
    assert time.monotonic() - started > 1.5


def test_a_single_call_over_the_timeout_is_still_504_in_a_long_request(tmp_path):
    def hangs_on_the_third(model, rows):
        if rows[0, 0] > 40_000:
            time.sleep(2.5)
        return rows.sum(axis=1)

    status, _, answer = invoke(make_app(tmp_path, predict=hangs_on_the_third, timeout_seconds=1), csv_rows(120_000))
    assert status == 504 and b"MODEL_SERVER_TIMEOUT" in answer
