"""Serving settings, read from the environment SageMaker (or you) give the container.

    SAGEMAKER_BIND_TO_PORT         port to listen on (inference pipelines); default 8080
    MODEL_SERVER_WORKERS           server processes; default: one per CPU
    MODEL_SERVER_TIMEOUT           seconds one predict() call may take (one slice of a large body,
                                   or one merged batch); default 60. A request that keeps
                                   completing slices runs on: SageMaker bounds it as a whole
                                   (InvocationTimeoutSeconds; README, "Timeouts")
    MODEL_SERVER_MAX_BODY_MB       largest request body; default 1024 (asynchronous inference's
                                   1 GB). Bodies over a share of memory are spooled to disk
    SAGEMAKER_MAX_PAYLOAD_IN_MB    batch transform's payload limit; when set, it is the limit
                                   instead: max(6 MB, this) (0 means unlimited: 100 MB is allowed)
    MODEL_SERVER_SPOOL_DIR         where bodies too large for memory, and their answers, are
                                   spooled while they are answered; default /tmp/model-server-spool
    MODEL_SERVER_BATCH_ROWS        most records merged into one predict() call; default 1000
    MODEL_SERVER_BATCH_WINDOW_MS   extra wait to gather a batch; default 0 (batch what is queued)
    MODEL_SERVER_ACCESS_LOG        "true" logs every request; default off (it costs throughput)
    MODEL_SERVER_MAX_INFLIGHT_MB   memory the requests in flight may use, all workers together;
                                   default: the container's memory limit (or the machine's memory)
                                   less what the model and the workers hold and a safety margin
    MODEL_SERVER_ADMISSION_WAIT_MS how long a request may wait for that memory before it is
                                   answered 503 with Retry-After; default 10000 (at most
                                   MODEL_SERVER_TIMEOUT)
    MODEL_SERVER_ERROR_DETAIL      "true" puts the exception in 5xx bodies (for development);
                                   default off: buyers see a request id, the log has the details

A value that makes no sense stops the server at start-up with one line naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ContractError

MEBIBYTE = 1024 * 1024
REALTIME_PAYLOAD_MB = 6  # InvokeEndpoint's limit: 6 MB (6,291,456 bytes) each way.
UNLIMITED_PAYLOAD_MB = 100  # CreateTransformJob's MaxPayloadInMB maximum.
ASYNC_PAYLOAD_MB = 1024  # InvokeEndpointAsync's input limit: 1 GB.
# In the container's own filesystem, which SageMaker backs with the instance's storage volume
# (README, "Large bodies"); not /opt/ml, which SageMaker mounts, read-only for the model.
DEFAULT_SPOOL_DIR = "/tmp/model-server-spool"


@dataclass(frozen=True)
class Settings:
    port: int = 8080
    workers: int = 1
    timeout_seconds: int = 60
    max_payload_mb: int = REALTIME_PAYLOAD_MB
    batch_max_rows: int = 1000
    batch_window_seconds: float = 0.0
    access_log: bool = False
    max_inflight_mb: int = 0  # 0: derived from the memory the container has (admission.py)
    admission_wait_seconds: float = 10.0
    error_detail: bool = False
    # 0: batch transform's payload limit decides (SAGEMAKER_MAX_PAYLOAD_IN_MB was set, or no
    # environment was read); otherwise MODEL_SERVER_MAX_BODY_MB.
    max_body_mb: int = 0
    spool_dir: str = DEFAULT_SPOOL_DIR

    @property
    def max_body_bytes(self) -> int:
        if self.max_body_mb:
            return self.max_body_mb * MEBIBYTE
        return max(REALTIME_PAYLOAD_MB, self.max_payload_mb) * MEBIBYTE

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        payload = _integer(env, "SAGEMAKER_MAX_PAYLOAD_IN_MB", REALTIME_PAYLOAD_MB, 0, UNLIMITED_PAYLOAD_MB)
        batch_transform = bool(env.get("SAGEMAKER_MAX_PAYLOAD_IN_MB", "").strip())
        max_body_mb = _integer(env, "MODEL_SERVER_MAX_BODY_MB", ASYNC_PAYLOAD_MB, 1, 1_048_576)
        spool_dir = env.get("MODEL_SERVER_SPOOL_DIR", "").strip() or DEFAULT_SPOOL_DIR
        if not spool_dir.startswith("/"):
            raise ContractError(f"MODEL_SERVER_SPOOL_DIR={spool_dir!r} is not an absolute path; give one or unset it")
        return cls(
            port=_integer(env, "SAGEMAKER_BIND_TO_PORT", 8080, 1, 65535),
            workers=_integer(env, "MODEL_SERVER_WORKERS", os.cpu_count() or 1, 1, 256),
            timeout_seconds=_integer(env, "MODEL_SERVER_TIMEOUT", 60, 1, 3600),
            max_payload_mb=payload or UNLIMITED_PAYLOAD_MB,
            batch_max_rows=_integer(env, "MODEL_SERVER_BATCH_ROWS", 1000, 1, 10_000_000),
            batch_window_seconds=_integer(env, "MODEL_SERVER_BATCH_WINDOW_MS", 0, 0, 1000) / 1000,
            access_log=_boolean(env, "MODEL_SERVER_ACCESS_LOG", False),
            max_inflight_mb=_integer(env, "MODEL_SERVER_MAX_INFLIGHT_MB", 0, 1, 1_048_576),
            admission_wait_seconds=_integer(env, "MODEL_SERVER_ADMISSION_WAIT_MS", 10_000, 0, 3_600_000) / 1000,
            error_detail=_boolean(env, "MODEL_SERVER_ERROR_DETAIL", False),
            max_body_mb=0 if batch_transform else max_body_mb,
            spool_dir=spool_dir,
        )


def _integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ContractError(f"{name}={text!r} is not a whole number; set it to {low}..{high} or unset it") from None
    if not low <= value <= high:
        raise ContractError(f"{name}={value} is out of range; set it to {low}..{high} or unset it")
    return value


def _boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    text = env.get(name, "").strip().lower()
    if not text:
        return default
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ContractError(f"{name}={text!r} is not a boolean; set it to true or false")
