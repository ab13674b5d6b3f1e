"""The types a project uses to declare its hyperparameters, channels and metrics.

One declaration (in the project's own model module) drives training-time validation, the local
/opt/ml fixtures, the README table and the publish requests, so none of them can drift apart.
Each type knows how to turn the strings SageMaker writes to hyperparameters.json into values,
and how to describe itself in SageMaker's API shapes (HyperParameterSpecification, ...).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidHyperparameter

# Limits from the SageMaker API model (botocore's sagemaker service-2.json).
MAX_HYPERPARAMETERS = 100
MAX_CATEGORICAL_VALUES = 30
MAX_CHANNELS = 8
MAX_METRICS = 40
CHANNEL_NAME = re.compile(r"^[A-Za-z0-9.\-_]{1,64}$")
HYPERPARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,255}$")
METRIC_NAME = re.compile(r"^.{1,255}$")

_NOT_SET = object()


def _unquote(text: str) -> str:
    """Undo the JSON encoding the SageMaker Python SDK adds for framework estimators.

    `Estimator(source_dir=...)` and framework estimators send `"\\"gini\\""` rather than `"gini"`.
    """
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except ValueError:
            return text
        if isinstance(decoded, str):
            return decoded
    return text


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Hyperparameter:
    """Base of the hyperparameter types; use Integer, Continuous, Categorical, Boolean, FreeText."""

    sagemaker_type = "FreeText"

    def __init__(
        self,
        name: str,
        *,
        description: str = "",
        default: Any = None,
        required: bool = False,
        tunable: bool = False,
    ) -> None:
        self.name = name
        self.description = description
        self.default = default
        self.required = required
        self.tunable = tunable

    # --- parsing -----------------------------------------------------------------------------
    def parse(self, raw: Any) -> Any:
        """Turn the string SageMaker sent into a checked value, or raise InvalidHyperparameter."""
        text = _unquote(str(raw).strip())
        value = self._convert(text)
        self._check(value, text)
        return value

    def _convert(self, text: str) -> Any:
        return text

    def _check(self, value: Any, text: str) -> None:
        return None

    def _reject(self, text: str, why: str) -> InvalidHyperparameter:
        return InvalidHyperparameter(f"{self.name}={text!r} {why}; expected {self.allowed()}")

    # --- describing --------------------------------------------------------------------------
    def allowed(self) -> str:
        """What values are allowed, in words (used in error messages and the README table)."""
        return "any text"

    def range_specification(self) -> dict[str, Any] | None:
        """The `Range` of SageMaker's HyperParameterSpecification, or None."""
        return None

    def default_text(self) -> str | None:
        """The default as SageMaker wants it: a string, or None when there is none."""
        return None if self.default is None else str(self.default)

    def specification(self) -> dict[str, Any]:
        """This hyperparameter as a SageMaker HyperParameterSpecification."""
        spec: dict[str, Any] = {
            "Name": self.name,
            "Type": self.sagemaker_type,
            "IsTunable": self.tunable,
            "IsRequired": self.required,
        }
        if self.description:
            spec["Description"] = self.description[:1024]
        range_spec = self.range_specification()
        if range_spec is not None:
            spec["Range"] = range_spec
        if self.default_text() is not None:
            spec["DefaultValue"] = self.default_text()
        return spec

    def problems(self) -> list[str]:
        """Mistakes in the declaration itself (checked by the project's unit tests)."""
        found = []
        if not HYPERPARAMETER_NAME.match(self.name):
            found.append(f"hyperparameter name {self.name!r} is not a valid SageMaker name")
        if self.required and self.default is not None:
            found.append(
                f"hyperparameter {self.name!r} is required and has a default; SageMaker allows "
                "one or the other (drop the default or set required=False)"
            )
        if self.tunable and self.range_specification() is None:
            found.append(f"hyperparameter {self.name!r} is tunable but has no range to tune over")
        if self.default is not None:
            try:
                self.parse(self.default_text())
            except InvalidHyperparameter as error:
                found.append(f"default of {error}")
        return found

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Integer(Hyperparameter):
    sagemaker_type = "Integer"

    def __init__(self, name: str, *, min_value: int, max_value: int, **options: Any) -> None:
        super().__init__(name, **options)
        self.min_value = int(min_value)
        self.max_value = int(max_value)

    def _convert(self, text: str) -> int:
        try:
            number = float(text)
        except ValueError:
            raise self._reject(text, "is not an integer") from None
        # Tuning jobs and some SDKs send integral values as "5.0".
        if not math.isfinite(number) or not number.is_integer():
            raise self._reject(text, "is not an integer")
        return int(number)

    def _check(self, value: int, text: str) -> None:
        if not self.min_value <= value <= self.max_value:
            raise self._reject(text, "is out of range")

    def allowed(self) -> str:
        return f"an integer from {self.min_value} to {self.max_value}"

    def range_specification(self) -> dict[str, Any]:
        return {
            "IntegerParameterRangeSpecification": {
                "MinValue": str(self.min_value),
                "MaxValue": str(self.max_value),
            }
        }


class Continuous(Hyperparameter):
    sagemaker_type = "Continuous"

    def __init__(self, name: str, *, min_value: float, max_value: float, **options: Any) -> None:
        super().__init__(name, **options)
        self.min_value = float(min_value)
        self.max_value = float(max_value)

    def _convert(self, text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise self._reject(text, "is not a number") from None
        if not math.isfinite(number):
            raise self._reject(text, "is not a finite number")
        return number

    def _check(self, value: float, text: str) -> None:
        if not self.min_value <= value <= self.max_value:
            raise self._reject(text, "is out of range")

    def allowed(self) -> str:
        low, high = _format_number(self.min_value), _format_number(self.max_value)
        return f"a number from {low} to {high}"

    def range_specification(self) -> dict[str, Any]:
        return {
            "ContinuousParameterRangeSpecification": {
                "MinValue": _format_number(self.min_value),
                "MaxValue": _format_number(self.max_value),
            }
        }


class Categorical(Hyperparameter):
    sagemaker_type = "Categorical"

    def __init__(self, name: str, values: Sequence[str], **options: Any) -> None:
        super().__init__(name, **options)
        self.values = [str(value) for value in values]

    def _check(self, value: str, text: str) -> None:
        if value not in self.values:
            raise self._reject(text, "is not one of the choices")

    def allowed(self) -> str:
        return "one of " + ", ".join(self.values)

    def range_specification(self) -> dict[str, Any]:
        return {"CategoricalParameterRangeSpecification": {"Values": list(self.values)}}

    def problems(self) -> list[str]:
        found = super().problems()
        if not 1 <= len(self.values) <= MAX_CATEGORICAL_VALUES:
            found.append(
                f"hyperparameter {self.name!r} has {len(self.values)} choices; SageMaker allows "
                f"1 to {MAX_CATEGORICAL_VALUES}"
            )
        return found


class Boolean(Categorical):
    """A yes/no switch: SageMaker sees a Categorical of "true" and "false"; your code gets a bool."""

    _TRUE = {"true", "1", "yes"}
    _FALSE = {"false", "0", "no"}

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(name, ["true", "false"], **options)

    def _convert(self, text: str) -> bool:
        # The SageMaker Python SDK sends Python's str(True), "True".
        lowered = text.lower()
        if lowered in self._TRUE:
            return True
        if lowered in self._FALSE:
            return False
        raise self._reject(text, "is not a boolean")

    def _check(self, value: bool, text: str) -> None:
        return None

    def allowed(self) -> str:
        return "true or false"

    def default_text(self) -> str | None:
        return None if self.default is None else str(bool(self.default)).lower()


class FreeText(Hyperparameter):
    sagemaker_type = "FreeText"


@dataclass(frozen=True)
class Channel:
    """An input channel: SageMaker copies its S3 data to /opt/ml/input/data/<name>/."""

    name: str
    required: bool = True
    description: str = ""
    content_types: Sequence[str] = ("text/csv",)
    input_modes: Sequence[str] = ("File", "FastFile")
    compression_types: Sequence[str] = ("None", "Gzip")

    def specification(self) -> dict[str, Any]:
        """This channel as a SageMaker ChannelSpecification."""
        spec: dict[str, Any] = {
            "Name": self.name,
            "IsRequired": self.required,
            "SupportedContentTypes": list(self.content_types),
            "SupportedInputModes": list(self.input_modes),
            "SupportedCompressionTypes": list(self.compression_types),
        }
        if self.description:
            spec["Description"] = self.description[:1024]
        return spec

    def problems(self) -> list[str]:
        found = []
        if not CHANNEL_NAME.match(self.name):
            found.append(f"channel name {self.name!r} must be 1-64 of A-Z a-z 0-9 . - _")
        elif not self.name.isidentifier() or self.name == "hyperparameters":
            found.append(
                f"channel name {self.name!r} must also be a Python identifier other than "
                "'hyperparameters', because fit() receives each channel as a keyword argument"
            )
        unsupported = set(self.input_modes) - {"File", "FastFile"}
        if unsupported:
            found.append(
                f"channel {self.name!r} declares input modes {sorted(unsupported)}; this runtime "
                "reads files, so only File and FastFile work"
            )
        return found


@dataclass(frozen=True)
class Metric:
    """A metric training prints as `<name>=<value>`; SageMaker scrapes it with `regex`."""

    name: str
    goal: str | None = None  # "Maximize" or "Minimize" makes it a tuning objective.
    description: str = ""

    @property
    def regex(self) -> str:
        # Plain `name=(value)`, like AWS's own examples: anchors are not documented for
        # MetricDefinitions. declaration_problems() rejects names that end with another
        # metric's name, so no declared regex matches another metric's line.
        return re.escape(self.name) + r"=(\S+)"

    def line(self, value: float) -> str:
        """The log line training prints for this metric (what `regex` matches)."""
        return f"{self.name}={float(value):.6g}"

    def definition(self) -> dict[str, str]:
        """This metric as a SageMaker MetricDefinition."""
        return {"Name": self.name, "Regex": self.regex}

    def problems(self) -> list[str]:
        found = []
        if not METRIC_NAME.match(self.name) or "=" in self.name or self.name != self.name.strip():
            found.append(f"metric name {self.name!r} must be 1-255 characters without '='")
        if self.goal not in (None, "Maximize", "Minimize"):
            found.append(f"metric {self.name!r} goal must be 'Maximize', 'Minimize' or None")
        return found


def declaration_problems(
    hyperparameters: Sequence[Hyperparameter],
    channels: Sequence[Channel],
    metrics: Sequence[Metric],
) -> list[str]:
    """Everything wrong with a declaration, one line each (empty when it is sound)."""
    found: list[str] = []
    for item in [*hyperparameters, *channels, *metrics]:
        found.extend(item.problems())
    for kind, items, limit in (
        ("hyperparameters", hyperparameters, MAX_HYPERPARAMETERS),
        ("channels", channels, MAX_CHANNELS),
        ("metrics", metrics, MAX_METRICS),
    ):
        names = [item.name for item in items]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            found.append(f"{kind} declared twice: {', '.join(duplicates)}")
        if len(items) > limit:
            found.append(f"{len(items)} {kind} declared; SageMaker allows at most {limit}")
    metric_names = [metric.name for metric in metrics]
    for name in metric_names:
        for other in metric_names:
            if other != name and other.endswith(name):
                found.append(
                    f"metric {name!r} is the end of metric {other!r}, so its regex would also "
                    f"match {other!r}'s lines; rename one of them"
                )
    if not any(channel.required for channel in channels):
        found.append("no required channel declared; SageMaker needs at least one to train on")
    return found


def parse_hyperparameters(raw: dict[str, Any], declared: Sequence[Hyperparameter]) -> tuple[dict[str, Any], list[str]]:
    """Parse hyperparameters.json's strings against the declaration.

    Returns (values, warnings). `values` holds every declared name: the parsed value, the
    default, or None. Keys SageMaker adds itself (`_tuning_objective_metric`, `sagemaker_*`)
    are ignored silently, other unknown keys with a warning. All problems are reported at
    once in one InvalidHyperparameter.
    """
    by_name = {item.name: item for item in declared}
    values: dict[str, Any] = {}
    errors: list[str] = []
    for item in declared:
        if item.name in raw:
            try:
                values[item.name] = item.parse(raw[item.name])
            except InvalidHyperparameter as error:
                errors.append(str(error))
        elif item.required:
            errors.append(f"{item.name} is required; expected {item.allowed()}")
        else:
            values[item.name] = None if item.default is None else item.parse(item.default_text())
    warnings = [
        f"ignoring unknown hyperparameter {name!r} (declared: {', '.join(by_name) or 'none'})"
        for name in raw
        if name not in by_name and not name.startswith(("_", "sagemaker_"))
    ]
    if errors:
        raise InvalidHyperparameter("invalid hyperparameters: " + "; ".join(errors))
    return values, warnings
