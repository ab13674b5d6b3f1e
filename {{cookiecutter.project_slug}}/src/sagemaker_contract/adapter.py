"""The one adapter between the contract and the project's own module (src/<package>/model.py).

Everything the contract reads from that module is read here, once, and checked, so a missing or
mistyped name is one line naming it, and everything else (training, serving, describe, the
host tools) works with a `UserModule` instead of reaching into the module itself.

What the module defines:

    load(model_dir) -> model                 serving: read the model, once
    predict(model, features) -> results      serving: one result per record
    HYPERPARAMETERS, CHANNELS, METRICS       algorithms: the declaration
    fit(hyperparameters, train, validation[, job]) -> model     algorithms
    evaluate(model, data) -> {name: value}   algorithms
    save(model, model_dir)                   both: write the model
    example_model(train) -> model            model packages: the bundled example
    MODEL_FILE                               optional: the file name load() reads
    SUPPORTS_BATCHING = True                 optional: False keeps concurrent requests apart
    DISTRIBUTED_TRAINING = False             optional: True when fit() trains one model across
                                             all of a job's hosts (fit takes `job`, uses job.cluster)

Optional payload hooks, for request and response formats besides CSV, JSON and JSON Lines
(images, tensors, text), without touching template-owned code:

    REQUEST_TYPES = ("image/png",)           content types decode() reads
    decode(body: bytes, content_type) -> records      an array, one item per record; raise
                                             ValueError with a one-line reason for a bad body
    RESPONSE_TYPES = ("application/x-npy",)  types encode() writes (Accept)
    encode(predictions, accept) -> bytes

Optional metering hook, for AWS Marketplace's per-inference pricing (app.py sends the count on
every 2xx answer to /invocations; by default one unit per record):

    consumed_units(records, predictions) -> int      the units one slice of a request's records
                                             costs (tokens, pixels, ...); the answer carries the sum

Optional: describe_model(model) -> dict     what `describe` shows of the loaded model (e.g. an ONNX
                                             graph's inputs and outputs)
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .errors import ProjectError
from .project import USER_MODULE

SERVING = ("load", "predict")
TRAINING = ("fit", "evaluate", "save", "HYPERPARAMETERS", "CHANNELS", "METRICS")
PACKING = ("load", "predict", "save")

_CALLABLES = (
    "load",
    "predict",
    "fit",
    "evaluate",
    "save",
    "example_model",
    "decode",
    "encode",
    "consumed_units",
    "describe_model",
)
_SEQUENCES = ("HYPERPARAMETERS", "CHANNELS", "METRICS", "REQUEST_TYPES", "RESPONSE_TYPES")
_KNOWN = (*_CALLABLES, *_SEQUENCES, "MODEL_FILE", "SUPPORTS_BATCHING", "DISTRIBUTED_TRAINING")


@dataclass(frozen=True)
class UserModule:
    """The project's module as the contract uses it; `None` where the module leaves a name out."""

    module: ModuleType
    load: Callable[..., Any] | None = None
    predict: Callable[..., Any] | None = None
    fit: Callable[..., Any] | None = None
    evaluate: Callable[..., Any] | None = None
    save: Callable[..., Any] | None = None
    example_model: Callable[..., Any] | None = None
    hyperparameters: tuple[Any, ...] = ()
    channels: tuple[Any, ...] = ()
    metrics: tuple[Any, ...] = ()
    model_file: str | None = None
    supports_batching: bool = True
    fit_takes_job: bool = False
    distributed_training: bool = False
    decode: Callable[[bytes, str], Any] | None = None
    encode: Callable[[Any, str], bytes] | None = None
    consumed_units: Callable[[Any, Any], int] | None = None
    describe_model: Callable[[Any], Any] | None = None
    request_types: tuple[str, ...] = field(default=())
    response_types: tuple[str, ...] = field(default=())
    defined: frozenset[str] = frozenset()  # the names the module defines, of those listed above

    def require(self, names: Sequence[str]) -> UserModule:
        """Itself, or ProjectError naming what the module must define for this use."""
        missing = [name for name in names if name not in self.defined]
        if missing:
            raise ProjectError(
                f"{self.file} does not define {', '.join(missing)}; the container calls them "
                "(see the comments at the top of that file)"
            )
        return self

    @property
    def name(self) -> str:
        return self.module.__name__

    @property
    def file(self) -> str:
        return str(getattr(self.module, "__file__", self.module.__name__))

    @property
    def trains(self) -> bool:
        return self.fit is not None


def load_user_module(required: Sequence[str] = SERVING, module: ModuleType | None = None) -> UserModule:
    """Import the project's module (SAGEMAKER_USER_MODULE overrides which) and check it once."""
    if module is None:
        name = os.environ.get("SAGEMAKER_USER_MODULE", USER_MODULE)
        module = importlib.import_module(name)
    return adapt(module, required)


def adapt(module: ModuleType, required: Sequence[str] = SERVING) -> UserModule:
    """A UserModule for `module`, or ProjectError naming every name missing or of the wrong kind."""
    where = getattr(module, "__file__", module.__name__)
    problems = []
    for name in _CALLABLES:
        if hasattr(module, name) and not callable(getattr(module, name)):
            problems.append(f"{name} must be a function, not {type(getattr(module, name)).__name__}")
    for name in _SEQUENCES:
        value = getattr(module, name, ())
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            problems.append(f"{name} must be a list, not {type(value).__name__}")
    for name in ("REQUEST_TYPES", "RESPONSE_TYPES"):
        if any(not isinstance(item, str) or "/" not in item for item in _as_tuple(getattr(module, name, ()))):
            problems.append(f"{name} must list media types such as 'image/png'")
    if getattr(module, "REQUEST_TYPES", ()) and not hasattr(module, "decode"):
        problems.append("REQUEST_TYPES is set but decode(body, content_type) is not defined")
    if getattr(module, "RESPONSE_TYPES", ()) and not hasattr(module, "encode"):
        problems.append("RESPONSE_TYPES is set but encode(predictions, accept) is not defined")
    model_file = getattr(module, "MODEL_FILE", None)
    if model_file is not None and not isinstance(model_file, str):
        problems.append(f"MODEL_FILE must be a file name, not {type(model_file).__name__}")
    fit = getattr(module, "fit", None)
    distributed = getattr(module, "DISTRIBUTED_TRAINING", False)
    if not isinstance(distributed, bool):
        problems.append(f"DISTRIBUTED_TRAINING must be True or False, not {type(distributed).__name__}")
    elif distributed and not (fit is not None and _takes(fit, "job")):
        problems.append("DISTRIBUTED_TRAINING is True but fit() takes no `job` argument, so it cannot see the hosts")
    if problems:
        raise ProjectError(f"{where}: " + "; ".join(problems))
    user = UserModule(
        module=module,
        load=getattr(module, "load", None),
        predict=getattr(module, "predict", None),
        fit=fit,
        evaluate=getattr(module, "evaluate", None),
        save=getattr(module, "save", None),
        example_model=getattr(module, "example_model", None),
        hyperparameters=_as_tuple(getattr(module, "HYPERPARAMETERS", ())),
        channels=_as_tuple(getattr(module, "CHANNELS", ())),
        metrics=_as_tuple(getattr(module, "METRICS", ())),
        model_file=model_file,
        supports_batching=bool(getattr(module, "SUPPORTS_BATCHING", True)),
        fit_takes_job=fit is not None and _takes(fit, "job"),
        distributed_training=distributed,
        decode=getattr(module, "decode", None),
        encode=getattr(module, "encode", None),
        consumed_units=getattr(module, "consumed_units", None),
        describe_model=getattr(module, "describe_model", None),
        request_types=tuple(t.lower() for t in _as_tuple(getattr(module, "REQUEST_TYPES", ()))),
        response_types=tuple(t.lower() for t in _as_tuple(getattr(module, "RESPONSE_TYPES", ()))),
        defined=frozenset(name for name in _KNOWN if hasattr(module, name)),
    )
    return user.require(required)


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else ()


def _takes(function: Callable[..., Any], parameter: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return parameter in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
