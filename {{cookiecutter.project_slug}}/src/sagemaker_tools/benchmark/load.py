"""The load: N clients at once, each sending the same request again as soon as it has its answer,
for a bounded time and a bounded number of requests; and the figures made from their latencies."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Callable

import numpy

# One client's way to send a request: (body, content type, accept) -> HTTP status. Each client
# thread makes its own (a connection of its own, kept open as SageMaker's front end keeps it).
Send = Callable[[bytes, str, str], int]
Connect = Callable[[], Send]


@dataclass(frozen=True)
class Cell:
    """What one run of the load measured."""

    content_type: str
    concurrency: int
    requests: int  # answered 200
    errors: int  # answered otherwise, or not at all
    seconds: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    throughput: float  # answered requests a second
    records_per_second: float | None  # None: a body of the seller's own format, its records unknown

    def as_dict(self) -> dict:
        return asdict(self)


def percentiles(latencies: Sequence[float], points: Sequence[float] = (50, 90, 99)) -> list[float]:
    """The latencies' percentiles, interpolated linearly between the two nearest (numpy's default)."""
    if not latencies:
        raise ValueError("no latencies to take percentiles of")
    return [float(value) for value in numpy.percentile(numpy.asarray(latencies, dtype=float), points)]


def summarize(
    content_type: str, concurrency: int, latencies: Sequence[float], errors: int, seconds: float, records: int | None
) -> Cell:
    """A Cell from the latencies (seconds) of the answered requests, over `seconds` of wall time;
    `records` is the records in one request's body (None: unknown)."""
    p50, p90, p99 = percentiles(latencies) if latencies else (None, None, None)
    rate = len(latencies) / seconds if seconds > 0 else 0.0
    return Cell(
        content_type,
        concurrency,
        len(latencies),
        errors,
        round(seconds, 3),
        None if p50 is None else round(p50 * 1000, 2),
        None if p90 is None else round(p90 * 1000, 2),
        None if p99 is None else round(p99 * 1000, 2),
        round(rate, 1),
        None if records is None else round(rate * records, 1),
    )


def run_load(
    connect: Connect,
    body: bytes,
    content_type: str,
    accept: str,
    concurrency: int,
    seconds: float,
    max_requests: int,
    records: int | None,
    warmup: int = 0,
    on_progress: Callable[[int, float], None] | None = None,
) -> Cell:
    """`concurrency` clients send `body` until `seconds` have passed or `max_requests` were sent,
    after `warmup` requests per client that are not counted (the first ones fill caches)."""
    if concurrency < 1 or seconds <= 0 or max_requests < 1:
        raise ValueError("concurrency, seconds and max_requests must be positive")
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    sent = [0]
    window: dict[str, float] = {}

    def open_window() -> None:  # run once, as every client is ready: the measured time starts
        window["start"] = time.monotonic()
        window["end"] = window["start"] + seconds

    start = threading.Barrier(concurrency + 1, action=open_window)

    def client() -> None:
        try:
            send = connect()
            for _ in range(warmup):
                send(body, content_type, accept)
        except Exception:  # noqa: BLE001 - a client that cannot connect counts as an error below
            send = None
        start.wait()
        mine: list[float] = []
        failed = 0 if send is not None else 1
        while send is not None and time.monotonic() < window["end"]:
            with lock:
                if sent[0] >= max_requests:
                    break
                sent[0] += 1
            began = time.perf_counter()
            try:
                status = send(body, content_type, accept)
            except Exception:  # noqa: BLE001 - a request without an answer is an error, not a crash
                status = 0
            if status == 200:
                mine.append(time.perf_counter() - began)
            else:
                failed += 1
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    alive = threads
    while alive:
        alive[0].join(timeout=0.5)
        alive = [thread for thread in alive if thread.is_alive()]
        if on_progress is not None:
            with lock:
                done = sent[0]
            on_progress(done, time.monotonic() - window["start"])
    elapsed = time.monotonic() - window["start"]
    return summarize(content_type, concurrency, latencies, errors[0], elapsed, records)
