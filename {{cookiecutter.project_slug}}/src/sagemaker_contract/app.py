"""The HTTP side of SageMaker's inference contract, as a plain ASGI application.

    GET  /ping                  200 with an empty body once the model is loaded; 503 and the
                                reason while it is not (SageMaker allows each ping 2 s)
    POST /invocations           records in, one prediction per record out (see codecs.py)
    GET  /execution-parameters  what batch transform should send (MultiRecord, payload size)

Client mistakes get a 4xx and a one-line text/plain reason; they never reach predict() with
data it cannot take and never take the server down. No web framework: the app is small, and
every microsecond spent outside the model is throughput a buyer pays for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Callable

from . import codecs
from .batching import BatchingPredictor, PredictionError
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
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.predictor is not None


class _Disconnected(Exception):
    pass


class InferenceApp:
    def __init__(self, state: ModelState, settings: Settings) -> None:
        self.state = state
        self.settings = settings
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
        try:
            if path == "/invocations":
                if method != "POST":
                    raise codecs.ClientError(405, "use POST for /invocations")
                await self._invocations(scope, receive, send)
            elif path == "/ping":
                if method not in ("GET", "HEAD"):
                    raise codecs.ClientError(405, "use GET for /ping")
                await self._ping(send)
            elif path == "/execution-parameters":
                if method != "GET":
                    raise codecs.ClientError(405, "use GET for /execution-parameters")
                await _respond(send, 200, self._execution_parameters, b"application/json")
            else:
                raise codecs.ClientError(
                    404,
                    f"no such path {path[:100]!r}; this server answers /ping, /invocations and /execution-parameters",
                )
        except codecs.ClientError as error:
            if path == "/invocations":
                log.warning("%d %s: %s", error.status, path, error.message)
            await _respond(send, error.status, (error.message + "\n").encode(), _TEXT)
        except _Disconnected:
            return

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """A server worker starting and stopping; on the way out, say how much batching merged."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                predictor = self.state.predictor
                if predictor is not None and predictor.requests:
                    log.info(
                        "worker %d: %d requests answered in %d predict() calls (%.1f per call, %d on the event loop)",
                        os.getpid(),
                        predictor.requests,
                        predictor.batches,
                        predictor.requests / max(1, predictor.batches),
                        predictor.inline_batches,
                    )
                await send({"type": "lifespan.shutdown.complete"})
                return

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
        request_kind = codecs.request_type(headers.get("content-type", ""))
        response_kind = codecs.response_type(headers.get("accept", ""), request_kind)
        body = await self._read_body(headers, receive)
        rows = codecs.decode(request_kind, body)
        expected = self.state.feature_count
        if expected is not None and rows.shape[1] != expected:
            raise codecs.ClientError(
                400,
                f"records have {rows.shape[1]} features; this model takes {expected} (the label column is not sent)",
            )
        assert self.state.predictor is not None
        try:
            predictions = await asyncio.wait_for(self.state.predictor.predict(rows), self.settings.timeout_seconds)
        except asyncio.TimeoutError:
            log.error(
                "prediction of %d records took over MODEL_SERVER_TIMEOUT=%d s", len(rows), self.settings.timeout_seconds
            )
            await _respond(
                send,
                504,
                f"prediction took over {self.settings.timeout_seconds} s (MODEL_SERVER_TIMEOUT)\n".encode(),
                _TEXT,
            )
            return
        except ValueError as error:
            # Models raise ValueError for input they cannot take (NaN, out-of-domain values...).
            raise codecs.ClientError(400, "the model rejected the records: " + _one_line(error)) from None
        except PredictionError as error:
            log.error("%s", error)
            await _respond(send, 500, f"{error}\n".encode(), _TEXT)
            return
        except Exception as error:  # noqa: BLE001 - a server error must not kill the worker
            log.exception("predict() failed on %d records", len(rows))
            await _respond(send, 500, f"predict() failed: {type(error).__name__}: {_one_line(error)}\n".encode(), _TEXT)
            return
        await _respond(send, 200, codecs.encode(response_kind, predictions), response_kind.encode())

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise codecs.ClientError(413, _too_large(int(declared), limit))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise codecs.ClientError(413, _too_large(size, limit))
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


def _too_large(size: int, limit: int) -> str:
    return (
        f"body of {size} bytes is over the {limit} byte limit ({limit // MEBIBYTE} MB); send fewer "
        "records per request (batch transform: lower MaxPayloadInMB)"
    )


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] if text else type(error).__name__


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
