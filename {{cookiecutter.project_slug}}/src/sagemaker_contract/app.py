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
import json
import logging
import os
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import formats
from .admission import MemoryBudget, Overloaded, TooLarge, request_cost
from .batching import BatchingPredictor, WorkerStuck
from .errors import ClientError, PredictionError
from .formats import Formats
from .settings import MEBIBYTE, Settings

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
    def __init__(self, state: ModelState, settings: Settings, budget: MemoryBudget | None = None) -> None:
        self.state = state
        self.settings = settings
        # Built in the gunicorn master: each worker has its own copy of the budget from the fork.
        self.budget = budget or MemoryBudget(1 << 62)
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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.timeout_seconds
        # Before reading the body: reserve what this request will hold (admission.py). Without
        # Content-Length (chunked), start small and grow while reading.
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
        try:
            body = await self._read_body(declared, receive, request_kind, reservation)
            answer, units = await self._predict_body(request_kind, response_kind, body, deadline)
            del body
            self.answered += 1
            # Released only once the answer is handed to the connection: it is held until then.
            await _respond(send, 200, answer, response_kind.encode(), (_metering(units),))
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
        finally:
            self.budget.release(reservation)

    async def _predict_body(
        self, request_kind: str, response_kind: str, body: formats.Body, deadline: float
    ) -> tuple[bytes, int]:
        """Decode, predict and encode the body a slice at a time; the whole answer and the units it
        consumed (the records answered, or what the project's consumed_units() counts)."""
        assert self.state.predictor is not None
        predictor = self.state.predictor
        expected = self.state.feature_count
        loop = asyncio.get_running_loop()
        answer = self.state.formats.answer(response_kind)
        records = 0
        units = 0
        slices = self.state.formats.decode_slices(request_kind, body)
        several = len(body) > formats.SLICE_BYTES
        while True:
            rows = next(slices, None)  # decoding a slice: a few milliseconds at most
            if rows is None:
                break
            if expected is not None and getattr(rows, "ndim", 0) == 2 and rows.shape[1] != expected:
                raise ClientError(
                    400,
                    f"records have {rows.shape[1]} features; this model takes {expected} "
                    "(the label column is not sent)",
                )
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise asyncio.TimeoutError
                predictions = await asyncio.wait_for(predictor.submit(rows), remaining)
                answer.add(predictions)
            except asyncio.TimeoutError:
                raise _ServerError(
                    504,
                    f"prediction took over {self.settings.timeout_seconds} s (MODEL_SERVER_TIMEOUT)",
                    f"prediction of {records + len(rows)} records took over MODEL_SERVER_TIMEOUT="
                    f"{self.settings.timeout_seconds} s",
                ) from None
            except (WorkerStuck, ClientError):
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
                    f"predict() failed on {len(rows)} records: {type(error).__name__}: {_one_line(error)}",
                    traceback=True,
                ) from error
            records += len(rows)
            units += len(rows) if self.state.consumed_units is None else self._consumed_units(rows, predictions)
            del rows, predictions
            if several:
                await asyncio.sleep(0)  # let /ping and other requests in between slices
        try:
            return answer.body(), units
        except Exception as error:  # noqa: BLE001 - the project's encode() failed: a server error
            raise _ServerError(
                500,
                "internal error while encoding the answer",
                f"encoding {records} predictions as {response_kind} failed: {type(error).__name__}: {_one_line(error)}",
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

    async def _read_body(self, declared: int | None, receive: Receive, kind: str, reservation: Any) -> formats.Body:
        """The body: the one message it came in (the common case, no copy), or its messages
        gathered into one buffer (no list of chunks joined at the end: half the copies)."""
        limit = self.settings.max_body_bytes
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
            if len(body) > reserved_for:
                # A body longer than announced, or chunked: reserve for what has come.
                reserved_for = self._grow(reservation, kind, reserved_for, max(len(body), 2 * reserved_for))
            if not message.get("more_body", False):
                return body
            message = await receive()

    def _grow(self, reservation: Any, kind: str, reserved_for: int, wanted: int) -> int:
        """Reserve for `wanted` body bytes instead of `reserved_for`; 503 if that memory is not free."""
        extra = request_cost(kind, wanted) - request_cost(kind, reserved_for)
        if not self.budget.grow(reservation, extra):
            log.warning("503 /invocations: no memory free for a chunked body past %d bytes", reserved_for)
            raise WorkerOverloadedWhileReading()
        return wanted

    def _over_budget(self, cost: int) -> str:
        return (
            f"this request needs about {cost // MEBIBYTE + 1} MB of memory to be answered, more than this worker "
            f"has for requests ({self.budget.capacity // MEBIBYTE} MB): send fewer records per request "
            "(batch transform: lower MaxPayloadInMB), or use an instance with more memory"
        )


class WorkerOverloadedWhileReading(ClientError):
    """A body without Content-Length outgrew the memory free for it: 503, like any shed request."""

    def __init__(self) -> None:
        super().__init__(503, _OVERLOADED.decode().strip())


_OVERLOADED = b"server busy: not enough memory free for this request now; retry after a second\n"
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


def _one_line(error: object) -> str:
    text = " ".join(str(error).split())
    return text[:300] if text else type(error).__name__


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
