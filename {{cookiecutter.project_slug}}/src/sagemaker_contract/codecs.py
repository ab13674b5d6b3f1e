"""Request and response formats for /invocations: CSV, JSON and JSON Lines.

Requests carry one or many records; each record is a row of numeric features (the label column
of the training data is not sent). Responses carry one prediction per record, in order, which is
what batch transform's `AssembleWith=Line` and `JoinSource` rely on.

    text/csv               5.1,3.5,1.4,0.2\\n6.2,2.9,4.3,1.3        (no header)
    application/json       {"instances": [[5.1, 3.5, 1.4, 0.2], ...]}, [[...], ...] or [5.1, ...]
                           (an instance may also be {"features": [...]})
    application/jsonlines  one record per line: [5.1, 3.5, 1.4, 0.2] or {"features": [...]}

Responses: text/csv is one line per record; application/json is {"predictions": [...]};
application/jsonlines is one JSON value per line.

Every client mistake raises ClientError with an HTTP status and a one-line reason.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
SUPPORTED = (CSV, JSON, JSONLINES)
_TEXT_CHARSETS = {"utf-8", "utf8", "us-ascii", "ascii"}
_EMPTY_CSV_FIELD = re.compile(r"(?:^|(?<=,))(?=,|$)", re.MULTILINE)


class ClientError(Exception):
    """A request the client must change; answered with `status` and this one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_media_type(header: str) -> tuple[str, dict[str, str]]:
    """`text/csv; charset=utf-8` -> ("text/csv", {"charset": "utf-8"})."""
    kind, _, rest = header.partition(";")
    params = {}
    for part in rest.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"').lower()
    return kind.strip().lower(), params


def request_type(header: str) -> str:
    """The supported media type a Content-Type header names, or ClientError 415."""
    if not header.strip():
        raise ClientError(415, f"missing Content-Type; send one of {', '.join(SUPPORTED)}")
    kind, params = parse_media_type(header)
    if kind not in SUPPORTED:
        raise ClientError(415, f"Content-Type {kind!r} is not supported; send one of {', '.join(SUPPORTED)}")
    charset = params.get("charset")
    if charset is not None and charset not in _TEXT_CHARSETS:
        raise ClientError(415, f"charset {charset!r} is not supported; send UTF-8")
    return kind


def response_type(accept: str, request_kind: str) -> str:
    """Pick the response type from Accept (q-values honoured); ClientError 406 if none fits.

    With no Accept, or */*, the response uses the request's own format.
    """
    if not accept.strip():
        return request_kind
    candidates: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept.split(",")):
        if not item.strip():
            continue
        kind, params = parse_media_type(item)
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            quality = 0.0
        if quality <= 0:
            continue
        if kind == "*/*":
            match = request_kind
        elif kind in SUPPORTED:
            match = kind
        elif kind == "text/*":
            match = CSV
        elif kind == "application/*":
            match = request_kind if request_kind != CSV else JSON
        else:
            continue
        candidates.append((-quality, position, match))
    if not candidates:
        raise ClientError(
            406, f"Accept {accept.strip()!r} asks for nothing this model returns; accept one of {', '.join(SUPPORTED)}"
        )
    return min(candidates)[2]


# --- decoding ----------------------------------------------------------------------------------
def decode(kind: str, body: bytes) -> np.ndarray:
    """The records of a request body as a float64 array, rows x features."""
    if not body.strip():
        raise ClientError(400, "empty body; send at least one record")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ClientError(400, f"body is not UTF-8 text (bad byte at offset {error.start})") from None
    if kind == CSV:
        return _decode_csv(text)
    if kind == JSON:
        return _rows_to_array(_json_records(text), "instance")
    return _rows_to_array(_jsonlines_records(text), "line")


def _decode_csv(text: str) -> np.ndarray:
    text = text.strip()
    if "\n" not in text and '"' not in text:
        # One record, the common real-time case: skip the general parser's overhead.
        try:
            return np.array([[float(field) for field in text.split(",")]], dtype=np.float64)
        except ValueError:
            pass  # The general parser below explains what is wrong.
    lines = text.splitlines()
    rows = _loadtxt(lines, quoted='"' in text)
    # numpy skips blank lines and refuses empty fields; both are missing values (below). Looking
    # for them only when numpy did either keeps the common case (complete records) fast.
    if rows is not None and len(rows) == len(lines) and rows.size:
        return rows
    rows = None
    if _EMPTY_CSV_FIELD.search(text):
        # An empty field is a missing value, as in SageMaker's built-in algorithms.
        text = _EMPTY_CSV_FIELD.sub("nan", text)
        lines = text.splitlines()
        rows = _loadtxt(lines, quoted='"' in text)
    if rows is None or len(rows) != len(lines):
        raise ClientError(400, _explain_csv(text))
    if rows.size == 0:
        raise ClientError(400, "no records in the body; send at least one CSV row")
    return rows


def _loadtxt(lines: list[str], quoted: bool) -> np.ndarray | None:
    """The records as floats, or None if numpy cannot read them."""
    try:
        return np.loadtxt(
            lines, delimiter=",", dtype=np.float64, ndmin=2, quotechar='"' if quoted else None, comments=None
        )
    except ValueError:
        return None


def _explain_csv(text: str) -> str:
    """A precise one-line reason for CSV that numpy refused (the slow path, errors only)."""
    width = None
    record = 0
    general = "send one record per line, features separated by commas"
    try:
        for line_number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            if not row or all(not field.strip() for field in row):
                continue
            record += 1
            if width is None:
                width = len(row)
            elif len(row) != width:
                return (
                    f"CSV line {line_number} has {len(row)} values but line 1 has {width}; "
                    "every record needs the same features"
                )
            for column, field in enumerate(row, start=1):
                try:
                    float(field)
                except ValueError:
                    hint = " (remove the header row)" if record == 1 else ""
                    return f"CSV line {line_number} column {column}: {field.strip()[:40]!r} is not a number{hint}"
    except csv.Error as error:  # NUL characters (before Python 3.11), fields over 128 KiB, ...
        return f"body is not CSV of numbers ({error}); {general}"
    return f"body is not CSV of numbers; {general}"


def _json_load(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise ClientError(400, f"{what} is not valid JSON: {error}") from None


def _json_records(text: str) -> list[Any]:
    value = _json_load(text, "body")
    if isinstance(value, dict):
        if "instances" in value:
            value = value["instances"]
            if not isinstance(value, list):
                raise ClientError(400, '"instances" must be a list of records')
        elif "features" in value:
            value = [value]
        else:
            raise ClientError(400, 'JSON object needs an "instances" list (or "features" for one record)')
    if not isinstance(value, list):
        raise ClientError(400, 'JSON body must be a list of records, one record, or {"instances": [...]}')
    if value and all(_is_number(item) for item in value):
        return [value]  # One record given as a flat list.
    return value


def _jsonlines_records(text: str) -> list[Any]:
    return [
        _json_load(line, f"JSON Lines line {number}")
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rows_to_array(records: Sequence[Any], unit: str) -> np.ndarray:
    if not records:
        raise ClientError(400, "no records in the body; send at least one")
    rows = []
    for number, record in enumerate(records, start=1):
        if isinstance(record, dict) and "features" in record:
            record = record["features"]
        if not isinstance(record, list) or not record:
            raise ClientError(400, f"{unit} {number} is not a list of numbers" + ' (or {"features": [...]})')
        for value in record:
            if not _is_number(value) and value is not None:
                raise ClientError(400, f"{unit} {number}: {json.dumps(value)[:40]} is not a number")
        rows.append(record)
    width = len(rows[0])
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise ClientError(
                400,
                f"{unit} {number} has {len(row)} values but {unit} 1 has {width}; every record needs the same features",
            )
    # null is a missing value (NaN), like an empty CSV field.
    return np.array(rows, dtype=np.float64)


# --- encoding ----------------------------------------------------------------------------------
def encode(kind: str, predictions: Sequence[Any]) -> bytes:
    """One prediction per record, in the chosen format."""
    values = predictions.tolist() if isinstance(predictions, np.ndarray) else [_plain(p) for p in predictions]
    if kind == CSV:
        return _encode_csv(values)
    if kind == JSON:
        return json.dumps({"predictions": _json_safe(values)}, separators=(",", ":")).encode()
    return "".join(json.dumps(_json_safe(v), separators=(",", ":")) + "\n" for v in values).encode()


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def _json_safe(value: Any) -> Any:
    """NaN and infinities are not JSON; send them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _encode_csv(values: list[Any]) -> bytes:
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return ("\n".join(map(str, values)) + "\n").encode()
    if values and all(type(v) is str and v for v in values):
        # Labels: one per line as they are, unless one needs CSV quoting (the csv module below).
        text = "\n".join(values)
        if text.count("\n") == len(values) - 1 and not any(c in text for c in ',"\r'):
            return (text + "\n").encode()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for value in values:
        writer.writerow(value if isinstance(value, list) else [value])
    return buffer.getvalue().encode()
