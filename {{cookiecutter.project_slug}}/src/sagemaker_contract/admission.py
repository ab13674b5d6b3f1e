"""Admission control by memory: a worker takes on no more requests than its memory can hold.

Every request costs memory while it is in flight: its body, the records decoded from it, the
predictions and the encoded answer. Concurrent large requests (batch transform, or a burst of
6 MB bodies) would otherwise pile up in a worker until the kernel's OOM killer ends it, and every
request that worker held would lose its connection without an answer.

So each worker has a budget: its share of the memory the container can spend on requests (the
cgroup's memory limit, or the machine's memory, less what the model and the workers hold at start
and a safety margin; or MODEL_SERVER_MAX_INFLIGHT_MB). Before a request's body is read, its cost
is estimated from Content-Length and the format (request_cost), and reserved from the budget.
When the budget is spent the request waits, in arrival order, for memory to be released; after
MODEL_SERVER_ADMISSION_WAIT_MS it is answered 503 with Retry-After. Its body stays unread
meanwhile, in the client's socket buffers, not in ours. A request that could never fit the whole
budget is answered 413 at once, with the size it would need.

A body too large for its share of the budget is spooled to disk instead (spool.py): it then
reserves one slice's working set here (spooled_cost), and its size from the disk's free space.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

from .formats import SLICE_BYTES, WIDE_RECORD_COPIES
from .memory import MEBIBYTE, container_memory_bytes, resident_bytes, safety_margin
from .spool import DROP_BEHIND, SEND_CHUNK

# Bodies are decoded, predicted and encoded SLICE_BYTES of text at a time (formats.py). A
# slice's working memory (text, parsed records, rows, predictions, encoded answer; with the next
# slice decoded while one is predicted and the one before encoded, app.py) is counted at this
# many times its size: measured up to about 12x for CSV and 30x for JSON of single digits
# (a float object, a list slot and a line or record around them for every two bytes of text).
# The contract tests measure the whole pipeline against these figures
# (test_app.py: test_memory_a_request_holds_stays_within_its_estimated_cost).
SLICE_FACTOR = {"text/csv": 24, "application/jsonlines": 40, "application/json": 40}
REQUEST_OVERHEAD = 64 * 1024  # headers, task, buffers: what even an empty request costs

# What start-up leaves aside: each worker's own memory beyond what it shares with the master
# (measured: about 8 MB idle, more once its allocator has served large requests), and a margin
# (memory.safety_margin).
WORKER_OVERHEAD = 32 * MEBIBYTE
# Requests waiting for memory hold a little each (uvicorn buffers up to 64 KB of an unread body);
# past this many waiting, a new request is answered 503 at once.
MAX_WAITING = 256


def request_cost(kind: str, body_bytes: int) -> int:
    """The most memory a request with a body of `body_bytes` in format `kind` holds at once."""
    # The body, and the answer, allowed as much as the body (one prediction per record is rarely
    # longer than the record). A JSON record may be longer than a slice (one flat list of numbers
    # of any length): its float64 values are allowed WIDE_RECORD_COPIES body sizes instead.
    copies = 1 + (WIDE_RECORD_COPIES if kind == "application/json" else 1)
    slice_cost = min(body_bytes, SLICE_BYTES) * SLICE_FACTOR.get(kind, max(SLICE_FACTOR.values()))
    return REQUEST_OVERHEAD + copies * body_bytes + slice_cost


def spooled_cost(kind: str) -> int:
    """The most memory a request whose body is spooled to disk (spool.py) holds at once: one
    slice's working set, a chunk of the answer being sent, and the page cache written and not yet
    dropped (it counts toward the container's memory limit; what is clean is also reclaimable)."""
    slice_cost = SLICE_BYTES * SLICE_FACTOR.get(kind, max(SLICE_FACTOR.values()))
    return REQUEST_OVERHEAD + slice_cost + SEND_CHUNK + DROP_BEHIND


@dataclass(frozen=True)
class Plan:
    """How much each worker may spend on requests, and how that was decided (for the log)."""

    per_worker: int
    explanation: str


def plan(workers: int, max_inflight_mb: int = 0, *, limit: int | None = None, held: int | None = None) -> Plan:
    """Each worker's request budget, from MODEL_SERVER_MAX_INFLIGHT_MB or from the memory there is.

    `held` is what the server holds before any request (the master's resident memory, model
    included), `limit` the memory it may use; both are read from the system when not given.
    """
    workers = max(1, workers)
    if max_inflight_mb:
        total = max_inflight_mb * MEBIBYTE
        return Plan(total // workers, f"MODEL_SERVER_MAX_INFLIGHT_MB={max_inflight_mb} shared by {workers} worker(s)")
    source = "the given limit"
    if limit is None:
        limit, source = container_memory_bytes()
    if held is None:
        held = resident_bytes()
    margin = safety_margin(limit)
    total = limit - held - workers * WORKER_OVERHEAD - margin
    # However small the container, one slice-sized or spooled request at a time per worker must fit.
    floor = max(request_cost("text/csv", SLICE_BYTES), spooled_cost("application/json"))
    per_worker = max(floor, total // workers)
    explanation = (
        f"{_mb(limit)} from {source}, less {_mb(held)} the model and server hold, {workers} x "
        f"{_mb(WORKER_OVERHEAD)} for the workers and a {_mb(margin)} margin: {_mb(per_worker)} per worker"
    )
    if total // workers < floor:
        explanation += " (the minimum: too little memory for more; give the container more or set fewer workers)"
    return Plan(per_worker, explanation)


def _mb(value: int) -> str:
    return f"{value / MEBIBYTE:.0f} MB"


class Overloaded(Exception):
    """No memory for this request within the admission wait: answer 503 with Retry-After."""


class TooLarge(Exception):
    """The request would need more than the whole budget: it can never be taken here (413)."""


class Reservation:
    __slots__ = ("bytes",)

    def __init__(self, amount: int) -> None:
        self.bytes = amount


class MemoryBudget:
    """One worker's request budget, shared by the requests its event loop serves.

    Not thread-safe: only the worker's event loop calls it (no lock, nothing to contend for).
    """

    def __init__(self, capacity: int, max_waiting: int = MAX_WAITING) -> None:
        self.capacity = max(1, capacity)
        self.max_waiting = max_waiting
        self.in_use = 0
        self.peak = 0  # For tests and the worker's exit line.
        self.shed = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    def fits(self, amount: int) -> bool:
        return amount <= self.capacity

    def try_acquire(self, amount: int) -> Reservation | None:
        """Reserve `amount` bytes if they are free now and nobody waits before (no await: the
        common case costs nothing more than this check)."""
        if amount > self.capacity:
            raise TooLarge(amount)
        if not self._waiters and self.in_use + amount <= self.capacity:
            self._take(amount)
            return Reservation(amount)
        return None

    async def acquire(self, amount: int, wait_seconds: float) -> Reservation:
        """Reserve `amount` bytes, waiting up to `wait_seconds` in arrival order."""
        reservation = self.try_acquire(amount)
        if reservation is not None:
            return reservation
        if len(self._waiters) >= self.max_waiting or wait_seconds <= 0:
            self.shed += 1
            raise Overloaded()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (amount, waiter)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), wait_seconds)
        except asyncio.TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return Reservation(amount)  # granted at the last moment: keep it
            self._remove(entry)
            self.shed += 1
            raise Overloaded() from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._give_back(amount)  # granted, but the request is gone (client disconnected)
            else:
                self._remove(entry)
            raise
        return Reservation(amount)

    def grow(self, reservation: Reservation, amount: int) -> bool:
        """Add to a reservation without waiting (a body without Content-Length, still arriving)."""
        if self.in_use + amount > self.capacity:
            return False
        self._take(amount)
        reservation.bytes += amount
        return True

    def shrink(self, reservation: Reservation, amount: int) -> None:
        """Hold only `amount` of a reservation from now on (a body that went to disk)."""
        if amount < reservation.bytes:
            surplus = reservation.bytes - amount
            reservation.bytes = amount
            self._give_back(surplus)

    def release(self, reservation: Reservation) -> None:
        self._give_back(reservation.bytes)
        reservation.bytes = 0

    def _take(self, amount: int) -> None:
        self.in_use += amount
        self.peak = max(self.peak, self.in_use)

    def _give_back(self, amount: int) -> None:
        self.in_use -= amount
        # Admit waiters in order while the first one fits (no overtaking: a large request
        # is not starved by a stream of small ones).
        while self._waiters:
            amount_wanted, waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            if self.in_use + amount_wanted > self.capacity:
                break
            self._waiters.popleft()
            self._take(amount_wanted)
            waiter.set_result(None)

    def _remove(self, entry: tuple[int, asyncio.Future[None]]) -> None:
        try:
            self._waiters.remove(entry)
        except ValueError:
            pass
        entry[1].cancel()
        # The one that left may have been holding up those behind it.
        self._give_back(0)
