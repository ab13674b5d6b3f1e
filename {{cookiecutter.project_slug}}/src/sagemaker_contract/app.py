"""The HTTP side of SageMaker's inference contract, as a plain ASGI application.

    GET  /ping                  200 with an empty body once the model is loaded; 503 and the
                                reason while it is not (SageMaker allows each ping 2 s)
    POST /invocations           records in, one prediction per record out (see formats.py); every
                                200 carries X-Amzn-Inference-Metering (below), no error does
    GET  /execution-parameters  what batch transform should send (MultiRecord, payload size)

Client mistakes get a 4xx and a one-line text/plain reason; they never reach predict() with
data it cannot take and never take the server down. Server errors get a 5xx whose one line
carries a request id, never the seller's exception: that goes to the log under the same id
(MODEL_SERVER_ERROR_DETAIL=true puts it in the answer too, for development).

Every request is answered, even under overload: before its body is read, a request reserves the
memory it will need from its worker's budget (admission.py), waits for it in line, or is
answered 503 with Retry-After. Large bodies are decoded, predicted and encoded a slice at a time,
so the event loop is never held for long and /ping answers within SageMaker's 2 s.

Metering: AWS Marketplace bills per-inference products by what the container reports on each
2xx answer, `X-Amzn-Inference-Metering: {"Dimension": "inference.count", "ConsumedUnits": N}`
("Reporting usage for inference pricing", AWS Marketplace seller guide: inference.count is the only
dimension it accepts; with hourly pricing the header is ignored). N is the number of records
answered (CSV lines, JSON instances, JSON Lines lines; a batch transform body counts all of its
records), or the sum of the project's consumed_units(records, predictions) over the slices.

No web framework: the app is small, and every microsecond spent outside the model is throughput
a buyer pays for.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import formats
from .admission import MemoryBudget, Overloaded, TooLarge, request_cost, spooled_cost
from .batching import BatchingPredictor, WorkerStuck
from .errors import ClientError, PredictionError
from .formats import Formats
from .settings import MEBIBYTE, Settings
from .spool import (
    SEND_CHUNK,
    SPOOL_SHARE,
    DiskBudget,
    DiskBusy,
    DiskReservation,
    DiskTooSmall,
    SpooledAnswer,
    SpoolFile,
)

log = logging.getLogger("serve")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_TEXT = b"text/plain; charset=utf-8"


@dataclass
class ModelState:
    """The loaded model, or why there is none (then /ping says so and stays non-200)."""

    predictor: BatchingPredictor | None = None
    feature_count: int | None = None
    formats: Formats = field(default_factory=Formats)  # the built-in ones, plus the project's
    error: str | None = None
    # The project's count of billed units for a slice of records (adapter.py); None: one per record.
    consumed_units: Callable[[Any, Any], int] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.predictor is not None


class _Disconnected(Exception):
    pass


class _ServerError(Exception):
    """Answered 5xx: `public` is what the client reads; `detail` goes to the log (and, with
    MODEL_SERVER_ERROR_DETAIL=true, to the client)."""

    def __init__(self, status: int, public: str, detail: str, traceback: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.public = public
        self.detail = detail
        self.traceback = traceback


class InferenceApp:
    def __init__(
        self,
        state: ModelState,
        settings: Settings,
        budget: MemoryBudget | None = None,
        disk: DiskBudget | None = None,
    ) -> None:
        self.state = state
        self.settings = settings
        # Built in the gunicorn master: each worker has its own copy of the budget from the fork.
        self.budget = budget or MemoryBudget(1 << 62)
        self.disk = disk  # where bodies too large for memory are spooled; None: nowhere (spool.py)
        self.unhealthy: str | None = None  # why this worker takes no more requests
        self.answered = 0  # /invocations answered 200, for the worker's exit line
        self._execution_parameters = json.dumps(
            {
                "MaxConcurrentTransforms": settings.workers,
                "BatchStrategy": "MultiRecord",
                "MaxPayloadInMB": settings.max_payload_mb,
            }
        ).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if self.unhealthy is not None and path in ("/invocations", "/ping"):
            # This worker is being replaced (a stuck predict): the others, or its successor, answer.
            await _respond(send, 503, f"worker unavailable: {self.unhealthy}\n".encode(), _TEXT, _CLOSE_RETRY)
            return
        try:
            if path == "/invocations":
                if method != "POST":
                    raise ClientError(405, "use POST for /invocations")
                await self._invocations(scope, receive, send)
            elif path == "/ping":
                if method not in ("GET", "HEAD"):
                    raise ClientError(405, "use GET for /ping")
                await self._ping(send)
            elif path == "/execution-parameters":
                if method != "GET":
                    raise ClientError(405, "use GET for /execution-parameters")
                await _respond(send, 200, self._execution_parameters, b"application/json")
            else:
                raise ClientError(
                    404,
                    f"no such path {path[:100]!r}; this server answers /ping, /invocations and /execution-parameters",
                )
        except ClientError as error:
            if path == "/invocations":
                log.warning("%d %s: %s", error.status, path, error.message)
            extra = _RETRY if error.status == 503 else ()
            await _respond(send, error.status, (error.message + "\n").encode(), _TEXT, extra)
        except _Disconnected:
            return
        except Exception as error:  # noqa: BLE001 - a bug here must still answer, and not kill the worker
            request_id = self._next_id()
            log.exception("request %s: %s %s failed inside the server", request_id, method, path)
            detail = f": {type(error).__name__}: {_one_line(error)}" if self.settings.error_detail else ""
            await _respond(send, 500, f"internal server error (request id {request_id}){detail}\n".encode(), _TEXT)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """A server worker starting and stopping; on the way out, say how much batching merged."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                predictor = self.state.predictor
                if predictor is not None and (self.answered or self.budget.shed):
                    log.info(
                        "worker %d: %d requests answered in %d predict() calls (%d slices of records, %.1f per call, "
                        "%d retried alone); memory for requests: %d MB at most of %d MB, %d requests shed",
                        os.getpid(),
                        self.answered,
                        predictor.batches,
                        predictor.requests,
                        predictor.requests / max(1, predictor.batches),
                        predictor.retried_alone,
                        self.budget.peak // MEBIBYTE,
                        self.budget.capacity // MEBIBYTE,
                        self.budget.shed,
                    )
                await send({"type": "lifespan.shutdown.complete"})
                return

    def mark_unhealthy(self, reason: str) -> None:
        """Take no more requests: /ping and /invocations answer 503 on this worker from now on."""
        self.unhealthy = reason

    @staticmethod
    def _next_id() -> str:
        # Random rather than counted: unique across workers and their replacements, for the
        # few requests that need one (5xx answers).
        return os.urandom(6).hex()

    async def _ping(self, send: Send) -> None:
        if self.state.ready:
            await _respond(send, 200, b"", _TEXT)
        else:
            await _respond(send, 503, f"model not loaded: {self.state.error}\n".encode(), _TEXT)

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        if not self.state.ready:
            # Read nothing: the client learns at once, and /ping already says the same.
            await _respond(send, 503, f"model not loaded: {self.state.error}\n".encode(), _TEXT)
            return
        request_kind = self.state.formats.request_type(headers.get("content-type", ""))
        response_kind = self.state.formats.response_type(headers.get("accept", ""), request_kind)
        limit = self.settings.max_body_bytes
        declared = _content_length(headers)
        if declared is not None and declared > limit:
            raise ClientError(413, _too_large(declared, limit))
        spool = _Spool(self.disk if self.state.formats.built_in(request_kind, response_kind) else None)
        try:
            await self._admit_and_answer(request_kind, response_kind, declared, receive, send, spool)
        finally:
            spool.close()

    async def _admit_and_answer(
        self, request_kind: str, response_kind: str, declared: int | None, receive: Receive, send: Send, spool: _Spool
    ) -> None:
        # Before reading the body: reserve what this request will hold (admission.py): a body too
        # large for its share of memory goes to disk, and reserves disk and one slice of memory.
        # Without Content-Length (chunked), start small and grow while reading.
        if declared is not None and self._spools(request_kind, declared, spool):
            try:
                spool.start(2 * declared)  # the body, and as much again for its answer
            except DiskTooSmall as error:
                raise ClientError(413, str(error)) from None
            except DiskBusy:
                log.warning("503 /invocations: no disk free to spool a %d byte body now", declared)
                await _respond(send, 503, _NO_DISK, _TEXT, _RETRY)
                return
            cost = spooled_cost(request_kind)
        else:
            cost = request_cost(request_kind, declared if declared is not None else formats.SLICE_BYTES)
        try:
            reservation = self.budget.try_acquire(cost)
            if reservation is None:
                wait = min(self.settings.admission_wait_seconds, float(self.settings.timeout_seconds))
                reservation = await self.budget.acquire(cost, wait)
        except TooLarge:
            raise ClientError(413, self._over_budget(cost)) from None
        except Overloaded:
            log.warning("503 /invocations: no memory free for a %s body within the admission wait", _size(declared))
            await _respond(send, 503, _OVERLOADED, _TEXT, _RETRY)
            return
        hung_up: asyncio.Future[Any] | None = None
        try:
            body = await self._read_body(declared, receive, request_kind, reservation, spool)
            if spool.body_file is not None:
                self.budget.shrink(reservation, spooled_cost(request_kind))
                # The body is read: the next message is the client hanging up, if it does.
                hung_up = asyncio.ensure_future(receive())
            spooled = spool.body_file is not None
            answer = spool.answer(response_kind) if spooled else self.state.formats.answer(response_kind)
            units = await self._predict_body(request_kind, response_kind, body, answer, spool, hung_up)
            del body
            self.answered += 1
            # Released only once the answer is handed to the connection: it is held until then.
            content_type, metering = response_kind.encode(), _metering(units)
            if spooled:
                await _respond_file(send, spool.finish_answer(answer), content_type, metering, hung_up)
            else:
                await _respond(send, 200, self._encoded(answer, response_kind), content_type, (metering,))
        except _ServerError as error:
            request_id = self._next_id()
            if error.traceback:
                log.error("request %s: %s", request_id, error.detail, exc_info=error.__cause__)
            else:
                log.error("request %s: %s", request_id, error.detail)
            detail = f": {error.detail}" if self.settings.error_detail else ""
            message = f"{error.public} (request id {request_id}){detail}"
            await _respond(send, error.status, (_one_line(message) + "\n").encode(), _TEXT)
            return
        except WorkerStuck as error:
            await _respond(send, 503, f"worker unavailable, retry: {error}\n".encode(), _TEXT, _CLOSE_RETRY)
            return
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT) or spool.body_file is None:
                raise
            log.warning("503 /invocations: the spool filesystem filled up while spooling a request")
            await _respond(send, 503, _NO_DISK, _TEXT, _RETRY)
            return
        finally:
            if hung_up is not None:
                hung_up.cancel()
            self.budget.release(reservation)

    def _spools(self, kind: str, body_bytes: int, spool: _Spool) -> bool:
        """Whether a body of this size goes to disk: one over a share of the worker's memory."""
        return (
            spool.disk is not None
            and body_bytes > formats.SLICE_BYTES
            and request_cost(kind, body_bytes) > self.budget.capacity // SPOOL_SHARE
        )

    async def _predict_body(
        self,
        request_kind: str,
        response_kind: str,
        body: formats.Body,
        answer: Any,
        spool: _Spool,
        hung_up: asyncio.Future[Any] | None,
    ) -> int:
        """Decode, predict and encode the body a slice at a time into `answer`; the units it
        consumed (the records answered, or what the project's consumed_units() counts).

        One slice is predicted (on the predict thread) while the next is decoded and the one
        before is encoded here, so a body of many slices keeps both CPUs of a small instance busy
        (admission.SLICE_FACTOR counts the three slices' memory). Errors still come in body
        order: a slice that cannot be decoded is reported once the one before it is predicted.

        MODEL_SERVER_TIMEOUT bounds each predict() call, not the request: a body of many slices
        runs on as long as each of its slices is predicted in time (README, "Timeouts")."""
        assert self.state.predictor is not None
        predictor = self.state.predictor
        slices = self.state.formats.decode_slices(request_kind, body)
        several = len(body) > formats.SLICE_BYTES
        records = units = decoded = 0
        rows, undecodable = self._next_slice(slices)
        future = None if rows is None else predictor.submit(rows)
        try:
            while future is not None:
                decoded += 1
                following = None
                if undecodable is None:
                    following, undecodable = self._next_slice(slices)  # while `rows` are predicted
                predictions = await self._predicted(future, rows, records)
                # The next slice is predicted while this one is encoded.
                future = None if following is None else predictor.submit(following)
                with _prediction_errors(rows, records):
                    answer.add(predictions)  # encoded: the project's predictions may not encode
                records += len(rows)
                units += len(rows) if self.state.consumed_units is None else self._consumed_units(rows, predictions)
                rows, predictions = following, None
                if spool.body_file is not None:
                    # Every slice but the last is at least SLICE_BYTES of the body (formats.py),
                    # so what lies before the slice decoded last is done with.
                    spool.body_file.consumed((decoded - 1) * formats.SLICE_BYTES)
                    if hung_up is not None and hung_up.done():
                        log.info("/invocations: the client hung up after %d records of a spooled body", records)
                        raise _Disconnected()
                if several:
                    await asyncio.sleep(0)  # let /ping and other requests in between slices
        finally:
            if future is not None:
                future.cancel()  # the request failed: the predict thread skips a slice not yet begun
        if undecodable is not None:
            raise undecodable
        return units

    def _next_slice(self, slices: Iterator[Any]) -> tuple[Any, ClientError | None]:
        """The next slice's records (None after the last), or the client error decoding it raised."""
        try:
            rows = next(slices, None)
        except ClientError as error:
            return None, error
        expected = self.state.feature_count
        if rows is not None and expected is not None and getattr(rows, "ndim", 0) == 2 and rows.shape[1] != expected:
            return None, ClientError(
                400,
                f"records have {rows.shape[1]} features; this model takes {expected} (the label column is not sent)",
            )
        return rows, None

    async def _predicted(self, future: asyncio.Future[Any], rows: Any, records: int) -> Any:
        """The predictions `future` settles with, waited for at most MODEL_SERVER_TIMEOUT."""
        timeout = self.settings.timeout_seconds
        with _prediction_errors(rows, records):
            try:
                return await asyncio.wait_for(future, timeout)
            except asyncio.TimeoutError:
                raise _ServerError(
                    504,
                    f"a prediction took over {timeout} s (MODEL_SERVER_TIMEOUT)",
                    f"predict() on {len(rows)} records (after {records} answered) took over "
                    f"MODEL_SERVER_TIMEOUT={timeout} s",
                ) from None

    def _encoded(self, answer: formats.Answer, response_kind: str) -> bytes:
        try:
            return answer.body()
        except Exception as error:  # noqa: BLE001 - the project's encode() failed: a server error
            raise _ServerError(
                500,
                "internal error while encoding the answer",
                f"encoding the predictions as {response_kind} failed: {type(error).__name__}: {_one_line(error)}",
                traceback=True,
            ) from error

    def _consumed_units(self, rows: Any, predictions: Any) -> int:
        """The project's count for one slice: a whole number from 0 up, or a 500 (it is the bill)."""
        assert self.state.consumed_units is not None
        try:
            units = self.state.consumed_units(rows, predictions)
        except Exception as error:  # noqa: BLE001 - the project's mistake: a server error, not a lost worker
            raise _ServerError(
                500,
                "internal error while counting the answer's units",
                f"consumed_units() failed on {len(rows)} records: {type(error).__name__}: {_one_line(error)}",
                traceback=True,
            ) from error
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 0:
            raise _ServerError(
                500,
                "internal error while counting the answer's units",
                f"consumed_units() returned {units!r} for {len(rows)} records; it must return a whole number >= 0",
            )
        return int(units)

    async def _read_body(
        self, declared: int | None, receive: Receive, kind: str, reservation: Any, spool: _Spool
    ) -> formats.Body:
        """The body: the one message it came in (the common case, no copy), its messages gathered
        into one buffer (no list of chunks joined at the end: half the copies), or, past its share
        of memory, written to a spool file as they arrive and mapped back read-only."""
        limit = self.settings.max_body_bytes
        if spool.body_file is not None:
            return await self._spool_body(receive, spool, limit, b"", more=True)
        reserved_for = declared if declared is not None else formats.SLICE_BYTES
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body = message.get("body", b"")
            if len(body) > limit:
                raise ClientError(413, _too_large(len(body), limit))
            if len(body) > reserved_for:
                self._grow(reservation, kind, reserved_for, len(body))
            return body
        body = bytearray()
        while True:
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunk = message.get("body", b"")
            if len(body) + len(chunk) > limit:
                raise ClientError(413, _too_large(len(body) + len(chunk), limit))
            body += chunk
            more = message.get("more_body", False)
            if len(body) > reserved_for:
                # A body longer than announced, or chunked: the reservation grows with it (to
                # twice what came, when that is free), but not past the body's share of memory:
                # then it goes to disk.
                if more and self._spools(kind, max(len(body), 2 * reserved_for), spool):
                    try:
                        spool.start(2 * max(len(body), _CHUNKED_DISK_STEP))
                    except DiskTooSmall as error:
                        raise ClientError(413, str(error)) from None
                    except DiskBusy:
                        raise WorkerOverloadedWhileReading(_NO_DISK) from None
                    return await self._spool_body(receive, spool, limit, body, more)
                reserved_for = self._grow(reservation, kind, reserved_for, len(body))
            if not more:
                return body
            message = await receive()

    async def _spool_body(
        self, receive: Receive, spool: _Spool, limit: int, start: formats.Body, more: bool
    ) -> formats.Body:
        """Write the rest of the body to the spool file as it arrives; the whole of it, mapped."""
        body_file = spool.body_file
        assert body_file is not None and spool.disk is not None and spool.reservation is not None
        body_file.write(start)
        del start
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            size = body_file.size + len(chunk)
            if size > limit:
                raise ClientError(413, _too_large(size, limit))
            if 2 * size > spool.reservation.total:  # chunked: reserve disk ahead, a step at a time
                try:
                    spool.disk.grow(spool.reservation, 2 * _CHUNKED_DISK_STEP)
                except DiskTooSmall as error:
                    raise ClientError(413, str(error)) from None
                except DiskBusy:
                    raise WorkerOverloadedWhileReading(_NO_DISK) from None
            body_file.write(chunk)
        return body_file.mapped()

    def _grow(self, reservation: Any, kind: str, reserved_for: int, received: int) -> int:
        """Reserve for a body of `received` bytes instead of `reserved_for`, with room to double
        when that is free; 413 if it could never fit the budget, 503 if its memory is not free now."""
        needed = request_cost(kind, received)
        if needed > self.budget.capacity:
            raise ClientError(413, self._over_budget(needed))
        held = request_cost(kind, reserved_for)
        doubled = max(received, 2 * reserved_for)
        if self.budget.grow(reservation, request_cost(kind, doubled) - held):
            return doubled
        if self.budget.grow(reservation, needed - held):
            return received
        log.warning("503 /invocations: no memory free for a chunked body past %d bytes", reserved_for)
        raise WorkerOverloadedWhileReading()

    def _over_budget(self, cost: int) -> str:
        return (
            f"this request needs about {cost // MEBIBYTE + 1} MB of memory to be answered, more than this worker "
            f"has for requests ({self.budget.capacity // MEBIBYTE} MB): send fewer records per request "
            "(batch transform: lower MaxPayloadInMB), or use an instance with more memory"
        )


class WorkerOverloadedWhileReading(ClientError):
    """A body without Content-Length outgrew the memory (or disk) free for it: 503, like any shed request."""

    def __init__(self, message: bytes = b"") -> None:
        super().__init__(503, (message or _OVERLOADED).decode().strip())


class _Spool:
    """The disk a request's body and answer take when they are spooled (spool.py); every file
    closed and every byte released in close(), whatever happened to the request."""

    def __init__(self, disk: DiskBudget | None) -> None:
        self.disk = disk  # None: this request is never spooled (spooling off, or the project's formats)
        self.reservation: DiskReservation | None = None
        self.body_file: SpoolFile | None = None
        self.answer_file: SpoolFile | None = None

    def start(self, disk_bytes: int) -> None:
        """Reserve `disk_bytes` (DiskTooSmall, DiskBusy) and open the body's file."""
        assert self.disk is not None
        self.reservation = self.disk.reserve(disk_bytes)
        self.body_file = SpoolFile(self.disk.directory, self.disk, self.reservation)

    def answer(self, kind: str) -> SpooledAnswer:
        assert self.disk is not None
        self.answer_file = SpoolFile(self.disk.directory, self.disk, self.reservation)
        return SpooledAnswer(kind, self.answer_file)

    def finish_answer(self, answer: SpooledAnswer) -> SpoolFile:
        if self.body_file is not None:
            self.body_file.close()  # predicted: its disk and page cache go now, before the answer is sent
        return answer.finish()

    def close(self) -> None:
        for file in (self.body_file, self.answer_file):
            if file is not None:
                file.close()
        if self.disk is not None and self.reservation is not None:
            self.disk.release(self.reservation)
            self.reservation = None


_OVERLOADED = b"server busy: not enough memory free for this request now; retry after a second\n"
_NO_DISK = b"server busy: not enough disk free to spool this request now; retry after a second\n"
_CHUNKED_DISK_STEP = 64 * MEBIBYTE  # a body without Content-Length reserves disk this much at a time
_RETRY = ((b"retry-after", b"1"),)
_CLOSE_RETRY = ((b"retry-after", b"1"), (b"connection", b"close"))


def _metering(units: int) -> tuple[bytes, bytes]:
    """The header AWS Marketplace bills per-inference pricing by (module docstring)."""
    return (b"x-amzn-inference-metering", b'{"Dimension": "inference.count", "ConsumedUnits": %d}' % units)


def _content_length(headers: dict[str, str]) -> int | None:
    declared = headers.get("content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


def _size(value: int | None) -> str:
    return "chunked" if value is None else f"{value} byte"


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


def _too_large(size: int, limit: int) -> str:
    return (
        f"body of {size} bytes is over the {limit} byte limit ({limit // MEBIBYTE} MB); send fewer "
        "records per request (batch transform: lower MaxPayloadInMB)"
    )


@contextlib.contextmanager
def _prediction_errors(rows: Any, records: int) -> Iterator[None]:
    """The project's errors while predicting `rows` (or encoding their predictions) as HTTP errors."""
    try:
        yield
    except (_ServerError, WorkerStuck, ClientError, OSError):
        raise
    except ValueError as error:
        # Models raise ValueError for input they cannot take (NaN, out-of-domain values...).
        raise ClientError(400, "the model rejected the records: " + _one_line(error)) from None
    except PredictionError as error:
        raise _ServerError(500, "predict() broke the serving contract", str(error)) from None
    except Exception as error:  # noqa: BLE001 - a server error must not kill the worker
        raise _ServerError(
            500,
            "internal error while predicting",
            f"predict() failed on {len(rows)} records (after {records} answered): "
            f"{type(error).__name__}: {_one_line(error)}",
            traceback=True,
        ) from error


def _one_line(error: object) -> str:
    text = " ".join(str(error).split())
    return text[:300] if text else type(error).__name__


async def _respond_file(
    send: Send, file: SpoolFile, content_type: bytes, metering: tuple[bytes, bytes], hung_up: Any
) -> None:
    """A 200 whose body is a spooled answer, sent from its file a chunk at a time."""
    size = file.size
    headers = [(b"content-type", content_type), (b"content-length", str(size).encode()), metering]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    offset = 0
    while True:
        chunk = file.read_at(offset, min(SEND_CHUNK, size - offset)) if offset < size else b""
        offset += len(chunk)
        more = 0 < len(chunk) and offset < size
        await send({"type": "http.response.body", "body": chunk, "more_body": more})
        if not more or (hung_up is not None and hung_up.done()):
            return
        file.consumed(offset)


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
