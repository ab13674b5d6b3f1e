"""What `docker run IMAGE serve` does: load the model once, then serve it with gunicorn.

The model is loaded in the gunicorn master before any worker starts, so every worker shares
it (copy-on-write) instead of holding a copy each, and /ping is 200 from a worker's first
answer. If loading fails the server still starts, /ping answers 503 with the reason, and the
log says in one line what is wrong and where it looked: a container that exits would be
restarted by SageMaker in a silent loop.

gunicorn supervises the workers (a crashed worker is replaced), stops them gracefully on
SIGTERM within SageMaker's 30 s, and each worker runs the ASGI app on uvicorn (uvloop and
httptools when installed). A worker whose predict() is stuck past MODEL_SERVER_TIMEOUT stops
taking requests, answers those it holds, and exits; gunicorn starts a fresh one.

Memory: each worker gets an equal share of what the container can spend on requests in flight
(admission.py), decided here once the model is loaded and logged in one line. Bodies too large for
that share are spooled to MODEL_SERVER_SPOOL_DIR (spool.py), created here.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker

from . import admission, listening, spool
from .adapter import SERVING, UserModule, load_user_module
from .app import InferenceApp, ModelState
from .batching import BatchingPredictor
from .errors import ContractError
from .formats import Formats
from .model_metadata import incompatibility, read_metadata
from .opt_ml import OptMl
from .project import FRAMEWORK
from .settings import Settings

log = logging.getLogger("serve")

GRACEFUL_STOP_SECONDS = 20  # SageMaker sends SIGKILL 30 s after SIGTERM.
STUCK_GRACE_SECONDS = 1


class Worker(UvicornWorker):
    """A uvicorn worker without the parts this server doesn't use."""

    CONFIG_KWARGS = {
        "loop": "auto",
        "http": "auto",
        "lifespan": "on",  # The app logs how much batching merged when its worker stops.
        "server_header": False,
        "date_header": False,
    }


class _Gunicorn(BaseApplication):
    def __init__(self, app: InferenceApp, options: dict[str, Any]) -> None:
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            # Skip settings an older gunicorn (the one Python 3.9 gets) doesn't have.
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> InferenceApp:
        return self._app


BAKED_MODEL_DIR = Path(os.environ.get("SAGEMAKER_BAKED_MODEL_DIR", "/opt/baked-model"))


def model_dirs(opt_ml: OptMl) -> list[Path]:
    """Where to look for the model, in order: what SageMaker extracted from ModelDataUrl, then a
    model baked into the image (outside /opt/ml, which SageMaker mounts over)."""
    return [opt_ml.model_dir, BAKED_MODEL_DIR]


def load_model(
    user: UserModule | None = None, dirs: Sequence[Path] | None = None, settings: Settings | None = None
) -> ModelState:
    """Load the project's model; on failure, a state that explains why in one line."""
    settings = settings or Settings()
    dirs = list(dirs or model_dirs(OptMl()))
    started = time.monotonic()
    try:
        user = (user or load_user_module(SERVING)).require(SERVING)
    except Exception as error:  # noqa: BLE001 - reported through /ping and the log
        return ModelState(error=f"cannot import the project's model module: {type(error).__name__}: {error}")
    assert user.load is not None and user.predict is not None
    found = next((d for d in dirs if d.is_dir() and any(d.iterdir())), None)
    if found is None:
        looked = " or ".join(str(d) for d in dirs)
        return ModelState(
            error=f"no model files in {looked}; SageMaker extracts the model's model.tar.gz into {dirs[0]} "
            "(locally: `make train-local` or `make package-model` first)"
        )
    metadata = read_metadata(found) or {}
    refusal = incompatibility(metadata.get("versions") or {}, metadata.get("framework", FRAMEWORK))
    if refusal:
        return ModelState(error=f"{found}: {refusal}")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = user.load(found)
    except Exception as error:  # noqa: BLE001
        message = " ".join(str(error).split())[:300] or "(no message)"
        return ModelState(error=f"load() failed on {found}: {type(error).__name__}: {message}")
    for warning in caught:
        # scikit-learn warns, rather than fails, when unpickling another release's model.
        if type(warning.message).__name__ == "InconsistentVersionWarning":
            return ModelState(error=f"{found}: {' '.join(str(warning.message).split())[:400]}")
        log.warning("while loading the model: %s", warning.message)
    predictor = BatchingPredictor(
        model,
        user.predict,
        batching=user.supports_batching,
        max_batch_rows=settings.batch_max_rows,
        window_seconds=settings.batch_window_seconds,
        # A call still running a second after its callers' deadline (they have had their 504) is
        # stuck: the worker is replaced rather than left answering 504 to everything.
        stuck_seconds=settings.timeout_seconds + STUCK_GRACE_SECONDS,
    )
    feature_count = metadata.get("feature_count")
    return ModelState(
        predictor=predictor,
        feature_count=feature_count if isinstance(feature_count, int) else None,
        formats=Formats.of(user),
        consumed_units=user.consumed_units,
        details={"model_dir": str(found), "load_seconds": round(time.monotonic() - started, 3)},
    )


def run() -> int:
    """Serve until SIGTERM. Returns an exit code only when the settings are unusable."""
    try:
        settings = Settings.from_environ()
    except ContractError as error:
        log.error("cannot start the server: %s", error)
        return 2
    state = load_model(settings=settings)
    if state.ready:
        log.info("model loaded from %s in %.3f s", state.details["model_dir"], state.details["load_seconds"])
    else:
        log.error("MODEL NOT LOADED, /ping will answer 503: %s", state.error)
    # What the master holds now lives as long as the server: keep the workers' garbage collector
    # off it, so collecting never writes to (and copies) the pages they share with the master.
    gc.freeze()
    gc.enable()
    try:
        listener = listening.take(settings.port)
    except OSError as error:
        log.error("cannot listen on port %d: %s", settings.port, error.strerror or error)
        return 2
    budget = admission.plan(settings.workers, settings.max_inflight_mb)
    log.info("memory for requests in flight: %s", budget.explanation)
    spool_problem = spool.make_spool_dir(settings.spool_dir)
    if spool_problem:
        log.warning("bodies too large for memory will be refused (413), not spooled: %s", spool_problem)
    disk = None if spool_problem else spool.DiskBudget(settings.spool_dir)
    app = InferenceApp(state, settings, admission.MemoryBudget(budget.per_worker), disk)
    if state.predictor is not None:
        state.predictor.on_stuck = lambda reason: _replace_this_worker(app, reason)
    options = {
        # The socket __main__ bound before loading anything (listening.py); gunicorn takes it over.
        "bind": [f"fd://{listener.detach()}"],
        "workers": settings.workers,
        "worker_class": f"{__name__}.Worker",
        "timeout": settings.timeout_seconds,
        "graceful_timeout": GRACEFUL_STOP_SECONDS,
        "keepalive": 75,  # Longer than SageMaker's front end keeps idle connections.
        "backlog": listening.BACKLOG,
        "accesslog": "-" if settings.access_log else None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "serve",
        "control_socket_disable": True,  # gunicorn >= 25 would create a socket under $HOME.
    }
    log.info(
        "serving on port %d with %d worker(s), timeout %d s, payloads up to %d MB",
        settings.port,
        settings.workers,
        settings.timeout_seconds,
        settings.max_body_bytes // (1024 * 1024),
    )
    sys.stdout.flush()
    _Gunicorn(app, options).run()
    return 0


def _replace_this_worker(app: InferenceApp, reason: str) -> None:
    """A predict() call is stuck: stop taking requests, answer those held, exit and be replaced.

    SIGTERM is uvicorn's graceful stop: it closes the listening socket (new connections go to the
    other workers, or wait for this one's successor), answers what is in flight, then exits;
    gunicorn's master starts a fresh worker from the loaded model. The stuck thread is a daemon
    and does not hold the exit up.
    """
    log.error("worker %d: %s; it takes no more requests and will be replaced", os.getpid(), reason)
    app.mark_unhealthy(reason)
    os.kill(os.getpid(), signal.SIGTERM)
