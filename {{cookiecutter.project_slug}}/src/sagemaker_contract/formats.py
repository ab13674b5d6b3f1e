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

Every client mistake raises ClientError with an HTTP status and a one-line reason: bodies that
are not UTF-8, not numbers, nested too deeply, or hold numbers beyond a 64-bit float's range
(infinities included; an empty CSV field, `nan` or JSON null is a missing value, NaN).

Large bodies are decoded a slice at a time (decode_slices, about SLICE_BYTES of text each), so
the memory a request holds while it is predicted is its body, its answer so far and one slice,
not every record of a 100 MB batch at once as Python floats. That holds for every JSON shape
(json_body.py); the body may be bytes, a bytearray or a read-only mmap, and is never decoded to
one str. A record is one record at any size: a flat list of numbers, at the top or under
"instances", is one record (it may be longer than a slice: its values are then parsed into one
array of at most WIDE_RECORD_COPIES times the body's size, or refused with 413). CSV of plain
decimal numbers, the common case, is parsed by array operations (plain_csv.py); the rest, and
every mistake's message, by numpy.loadtxt.
"""

from __future__ import annotations

import csv
import io
import json
import math
import mmap
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Union

import numpy as np

from .errors import ClientError
from .plain_csv import plain_decimals

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
SUPPORTED = (CSV, JSON, JSONLINES)
_TEXT_CHARSETS = {"utf-8", "utf8", "us-ascii", "ascii"}
# An empty field: at a line's start or after a comma, before a comma or the line's end. Not the
# empty "line" after a slice's final line break (a slice of a large body ends with one).
_EMPTY_CSV_FIELD = re.compile(r"(?:^(?!\Z)|(?<=,))(?=,|$)", re.MULTILINE)
SLICE_BYTES = 256 * 1024  # text decoded, predicted and encoded at a time (admission.py counts on it)
# Request formats decode_slices reads a slice at a time from any buffer, an mmap included, without
# a copy of the whole body: those a body too large for memory may be spooled in (app.py).
SLICED_FROM_ANY_BUFFER = (CSV, JSON, JSONLINES)
# A JSON record longer than a slice (one flat list of numbers) is held whole as float64: it may
# take this many times the body's size (admission.request_cost reserves it), no more (413).
WIDE_RECORD_COPIES = 2
Body = Union[bytes, bytearray, mmap.mmap]
_NOT_SPACE = re.compile(rb"\S")
_SPACE_BYTES = b" \t\n\r\x0b\x0c"  # what \s matches in bytes


def parse_media_type(header: str) -> tuple[str, dict[str, str]]:
    """`text/csv; charset=utf-8` -> ("text/csv", {"charset": "utf-8"})."""
    kind, _, rest = header.partition(";")
    params = {}
    for part in rest.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"').lower()
    return kind.strip().lower(), params


def request_type(header: str, supported: Sequence[str] = SUPPORTED) -> str:
    """The supported media type a Content-Type header names, or ClientError 415."""
    if not header.strip():
        raise ClientError(415, f"missing Content-Type; send one of {', '.join(supported)}")
    kind, params = parse_media_type(header)
    if kind not in supported:
        raise ClientError(415, f"Content-Type {kind!r} is not supported; send one of {', '.join(supported)}")
    charset = params.get("charset")
    if kind in SUPPORTED and charset is not None and charset not in _TEXT_CHARSETS:
        raise ClientError(415, f"charset {charset!r} is not supported; send UTF-8")
    return kind


def response_type(accept: str, request_kind: str, supported: Sequence[str] = SUPPORTED) -> str:
    """Pick the response type from Accept (q-values honoured); ClientError 406 if none fits.

    With no Accept, or */*, the response uses the request's own format when it can be a
    response format, and JSON otherwise.
    """
    own = request_kind if request_kind in supported else JSON
    if not accept.strip():
        return own
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
            match = own
        elif kind in supported:
            match = kind
        elif kind == "text/*":
            match = CSV
        elif kind == "application/*":
            match = own if own != CSV else JSON
        else:
            continue
        candidates.append((-quality, position, match))
    if not candidates:
        raise ClientError(
            406, f"Accept {accept.strip()!r} asks for nothing this model returns; accept one of {', '.join(supported)}"
        )
    return min(candidates)[2]


# --- decoding ----------------------------------------------------------------------------------
def decode(kind: str, body: Body) -> np.ndarray:
    """All the records of a request body as one float64 array, rows x features."""
    slices = list(decode_slices(kind, body))
    return slices[0] if len(slices) == 1 else np.concatenate(slices)


def decode_slices(kind: str, body: Body) -> Iterator[np.ndarray]:
    """The records of a request body, a slice at a time: float64 arrays, rows x features.

    Every slice has the same number of features; a client mistake anywhere raises ClientError
    when its slice is reached (the records before it may have been yielded already).
    """
    if len(body) <= SLICE_BYTES:
        # One slice, the common real-time case: decoded at once, without the slicing machinery.
        return iter((_decode_small(kind, body if isinstance(body, bytes) else bytes(body)),))
    return _decode_slices(kind, body)


def _decode_small(kind: str, body: bytes) -> np.ndarray:
    stripped = body.strip()
    if not stripped:
        raise ClientError(400, "empty body; send at least one record")
    if kind == CSV and b"\n" in stripped:
        rows = plain_decimals(stripped)  # the common case, fast (plain_csv.py)
        if rows is not None:
            return rows
    try:
        text = stripped.decode("utf-8")
    except UnicodeDecodeError as error:
        offset = len(body) - len(body.lstrip()) + error.start
        raise ClientError(400, f"body is not UTF-8 text (bad byte at offset {offset})") from None
    if kind == JSON:
        return _rows_to_array(_json_records(text), "instance")
    return _decode_csv(text) if kind == CSV else _decode_jsonlines(text)


def _decode_slices(kind: str, body: Body) -> Iterator[np.ndarray]:
    start, end = _content_bounds(body)
    if start == end:
        raise ClientError(400, "empty body; send at least one record")
    if kind == JSON:
        from .json_body import json_slices  # it builds on this module's helpers

        yield from json_slices(body, start, end)
        return
    decode_text = _decode_csv if kind == CSV else _decode_jsonlines
    unit = "CSV line" if kind == CSV else "JSON Lines line"
    width = None
    line = 1  # of this slice's first line, counted from the first line that is not blank
    for first, cut in _line_slices(body, start, end):
        rows = plain_decimals(body, first, cut) if kind == CSV else None
        if rows is not None:  # the common case, fast (plain_csv.py); one record a line
            width = _same_width(rows, width, f"{unit} {line}", "line 1")
            line += len(rows)
            yield rows
            continue
        text = _utf8(body, first, cut)
        rows = decode_text(text, line, width)
        width = _same_width(rows, width, f"{unit} {line}", "line 1")
        line += text.count("\n")
        yield rows


def _same_width(rows: np.ndarray, width: int | None, where: str, first: str) -> int:
    """The features every slice must have: the first slice's; a slice with others is a 400."""
    if width is not None and rows.shape[1] != width:
        raise ClientError(
            400, f"{where} has {rows.shape[1]} values but {first} has {width}; every record needs the same features"
        )
    return rows.shape[1]


def _content_bounds(body: Body) -> tuple[int, int]:
    """Where the body's content starts and ends, leading and trailing whitespace left out (no copy).

    The end is found walking back from the last byte: a regular expression anchored at the end
    would still scan the whole body, every page of a spooled one (an mmap) included."""
    first = _NOT_SPACE.search(body)
    if first is None:
        return 0, 0
    end = len(body)
    while body[end - 1] in _SPACE_BYTES:  # stops at the first non-space, at worst `first`
        end -= 1
    return first.start(), end


def _line_slices(body: Body, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(first, cut) byte ranges of about SLICE_BYTES each, cut just after a line break."""
    position = start
    while position < end:
        cut = end if end - position <= SLICE_BYTES else body.find(b"\n", position + SLICE_BYTES, end)
        cut = end if cut == -1 else cut + 1
        yield position, cut
        position = cut


def _utf8(body: Body, start: int, end: int) -> str:
    # A line break is never part of a multi-byte character, so slices cut after one decode alone.
    try:
        return str(memoryview(body)[start:end], "utf-8")  # no copy of the bytes on the way
    except UnicodeDecodeError as error:
        raise ClientError(400, f"body is not UTF-8 text (bad byte at offset {start + error.start})") from None


_INFINITY = float("inf")


def _refuse_infinities(rows: np.ndarray, where: Any) -> np.ndarray:
    """400 for an infinite value (or one beyond float64's range, which parses as infinite)."""
    infinite = np.isinf(rows)
    if infinite.any():
        row, column = (int(i) for i in np.argwhere(infinite)[0])
        raise ClientError(400, _infinite(where(row), column))
    return rows


def _infinite(where: str, column: int) -> str:
    return (
        f"{where} column {column + 1}: the value is infinite or beyond a 64-bit float's range "
        "(about 1.8e308); send finite numbers (an empty field or null is a missing value)"
    )


def _decode_csv(text: str, first_line: int = 1, width: int | None = None) -> np.ndarray:
    if "\n" not in text and '"' not in text:
        # One record, the common real-time case: skip the general parser's overhead.
        try:
            values = [float(field) for field in text.split(",")]
        except ValueError:
            pass  # The general parser below explains what is wrong.
        else:
            if _INFINITY in values or -_INFINITY in values:  # cheaper than numpy for a few values
                column = next(i for i, value in enumerate(values) if math.isinf(value))
                raise ClientError(400, _infinite(f"CSV line {first_line}", column))
            return np.array([values], dtype=np.float64)
    rows = _parse_csv(text, first_line, width)
    return _refuse_infinities(rows, lambda row: f"CSV line {first_line + row}")


def _parse_csv(text: str, first_line: int, width: int | None) -> np.ndarray:
    lines = _line_count(text)
    rows = _loadtxt(text, quoted='"' in text)
    # numpy skips blank lines and refuses empty fields; both are missing values (below). Looking
    # for them only when numpy did either keeps the common case (complete records) fast.
    if rows is not None and len(rows) == lines and rows.size:
        return rows
    rows = None
    if _EMPTY_CSV_FIELD.search(text):
        # An empty field is a missing value, as in SageMaker's built-in algorithms.
        text = _EMPTY_CSV_FIELD.sub("nan", text)
        rows = _loadtxt(text, quoted='"' in text)
    if rows is None or len(rows) != lines:
        raise ClientError(400, _explain_csv(text, first_line, width))
    if rows.size == 0:
        raise ClientError(400, "no records in the body; send at least one CSV row")
    return rows


def _line_count(text: str) -> int:
    """Lines as str.splitlines() counts them (\n, \r\n or \r), without making the list."""
    breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
    return breaks + (0 if text.endswith(("\n", "\r")) else 1)


def _loadtxt(text: str, quoted: bool) -> np.ndarray | None:
    """The records as floats, or None if numpy cannot read them."""
    try:
        # From a stream rather than a list of lines: twice as fast, and no string per line.
        return np.loadtxt(
            io.StringIO(text, newline=None),
            delimiter=",",
            dtype=np.float64,
            ndmin=2,
            quotechar='"' if quoted else None,
            comments=None,
        )
    except ValueError:
        return None


def _explain_csv(text: str, first_line: int = 1, width: int | None = None) -> str:
    """A precise one-line reason for CSV that numpy refused (the slow path, errors only).

    `text` starts at line `first_line`; `width` is the number of features of the lines before it.
    """
    record = 0
    general = "send one record per line, features separated by commas"
    try:
        for line_number, row in enumerate(csv.reader(io.StringIO(text)), start=first_line):
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
                    hint = " (remove the header row)" if record == 1 and first_line == 1 else ""
                    return f"CSV line {line_number} column {column}: {field.strip()[:40]!r} is not a number{hint}"
    except csv.Error as error:  # NUL characters (before Python 3.11), fields over 128 KiB, ...
        return f"body is not CSV of numbers ({error}); {general}"
    return f"body is not CSV of numbers; {general}"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; send null for a missing value")


def _json_load(text: str, what: str) -> Any:
    try:
        # Integers are read as floats, which they become anyway: a 400-digit integer is then
        # infinite (refused below, as a 400) instead of an OverflowError, and parsing a huge one
        # takes linear time, not quadratic.
        return json.loads(text, parse_int=float, parse_constant=_refuse_constant)
    except ValueError as error:
        raise ClientError(400, f"{what} is not valid JSON: {_first_line(str(error))}") from None
    except RecursionError:
        raise ClientError(400, f"{what} is nested too deeply; a record is a flat list of numbers") from None


def _first_line(text: str) -> str:
    return " ".join(text.split())[:200]


class _InstancesTwice(dict):  # type: ignore[type-arg]
    """An object in which the key "instances" came twice (json_body.py refuses that too)."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) < len(pairs) and sum(key == "instances" for key, _ in pairs) > 1:
        return _InstancesTwice(value)
    return value


def _json_records(text: str) -> list[Any]:
    """The records of a JSON body parsed whole (a small one): the meaning json_body.py streams."""
    if text.count("nstances") > 1 or "\\u" in text:  # maybe "instances" twice: look closely
        try:
            value = json.loads(text, parse_int=float, parse_constant=_refuse_constant, object_pairs_hook=_pairs)
        except (ValueError, RecursionError):
            value = _json_load(text, "body")  # its message
    else:
        value = _json_load(text, "body")
    if isinstance(value, _InstancesTwice):
        raise ClientError(400, 'the JSON object has "instances" twice; send one list of records')
    if isinstance(value, dict):
        if "instances" in value:
            value = value["instances"]
            if not isinstance(value, list):
                raise ClientError(400, '"instances" must be a list of records')
        elif "features" in value:
            return [value]
        else:
            raise ClientError(400, 'JSON object needs an "instances" list (or "features" for one record)')
    if not isinstance(value, list):
        raise ClientError(400, 'JSON body must be a list of records, one record, or {"instances": [...]}')
    if not value:
        raise ClientError(400, "no records in the body; send at least one")
    if not isinstance(value[0], (list, dict)):
        return [value]  # One record given as a flat list (its first item says so, at any size).
    return value


def _decode_jsonlines(text: str, first_line: int = 1, width: int | None = None) -> np.ndarray:
    records, numbers = [], []
    for number, line in enumerate(text.splitlines(), start=first_line):
        if line.strip():
            records.append(_json_load(line, f"JSON Lines line {number}"))
            numbers.append(number)
    return _rows_to_array(records, "line", numbers)


def is_json_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_VALUE_TYPES = frozenset((float, int, type(None)))  # type(): a bool is not an int here


def _rows_to_array(records: Sequence[Any], unit: str, numbers: Sequence[int] | None = None) -> np.ndarray:
    """The records as a float64 array; `numbers` are what the messages call them (1, 2, ... by default)."""
    if not records:
        raise ClientError(400, "no records in the body; send at least one")
    numbers = numbers or range(1, len(records) + 1)
    rows = []
    for number, record in zip(numbers, records):
        if isinstance(record, dict) and "features" in record:
            record = record["features"]
        if not isinstance(record, list) or not record:
            raise ClientError(400, f"{unit} {number} is not a list of numbers" + ' (or {"features": [...]})')
        if not _VALUE_TYPES.issuperset(map(type, record)):  # in C: no Python call per value
            for value in record:
                if not is_json_number(value) and value is not None:
                    raise ClientError(400, f"{unit} {number}: {json.dumps(value)[:40]} is not a number")
        rows.append(record)
    width = len(rows[0])
    for number, row in zip(numbers, rows):
        if len(row) != width:
            raise ClientError(
                400,
                f"{unit} {number} has {len(row)} values but {unit} {numbers[0]} has {width}; "
                "every record needs the same features",
            )
    # null is a missing value (NaN), like an empty CSV field.
    array = np.array(rows, dtype=np.float64)
    return _refuse_infinities(array, lambda row: f"{unit} {numbers[row]}")


# --- encoding ----------------------------------------------------------------------------------
def encode(kind: str, predictions: Sequence[Any]) -> bytes:
    """One prediction per record, in the chosen format."""
    return assemble(kind, [encode_part(kind, predictions)])


def encode_part(kind: str, predictions: Sequence[Any]) -> bytes:
    """The answer for one slice of records; assemble() joins the parts into the whole answer."""
    values = predictions.tolist() if isinstance(predictions, np.ndarray) else [_plain(p) for p in predictions]
    if kind == CSV:
        return _encode_csv(values)
    if kind == JSON:
        # The list's items only: assemble() puts them in one {"predictions": [...]}.
        return json.dumps(_json_safe(values), separators=(",", ":")).encode()[1:-1]
    return "".join(json.dumps(_json_safe(v), separators=(",", ":")) + "\n" for v in values).encode()


def assemble(kind: str, parts: list[bytes]) -> bytes:
    if kind == JSON:
        return b'{"predictions":[' + b",".join(part for part in parts if part) + b"]}"
    return parts[0] if len(parts) == 1 else b"".join(parts)


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


# --- the project's own formats (adapter.py: REQUEST_TYPES, decode, RESPONSE_TYPES, encode) ------
class Formats:
    """The built-in formats plus the project's own, as /invocations negotiates and uses them."""

    def __init__(
        self,
        decode_hook: Callable[[bytes, str], Any] | None = None,
        request_types: Sequence[str] = (),
        encode_hook: Callable[[Any, str], bytes] | None = None,
        response_types: Sequence[str] = (),
    ) -> None:
        self._decode_hook = decode_hook
        self._encode_hook = encode_hook
        self._own_requests = tuple(request_types)
        self._own_responses = tuple(response_types)
        self.request_types = tuple(dict.fromkeys((*self._own_requests, *SUPPORTED)))
        self.response_types = tuple(dict.fromkeys((*self._own_responses, *SUPPORTED)))

    @classmethod
    def of(cls, user: Any) -> Formats:
        """The formats of a UserModule (adapter.py)."""
        return cls(user.decode, user.request_types, user.encode, user.response_types)

    def request_type(self, header: str) -> str:
        return request_type(header, self.request_types)

    def response_type(self, accept: str, request_kind: str) -> str:
        return response_type(accept, request_kind, self.response_types)

    def decode_slices(self, kind: str, body: Body) -> Iterator[Any]:
        """The body's records, a slice at a time (the project's decode() gives them in one)."""
        if kind not in self._own_requests:
            return decode_slices(kind, body)
        return iter([self._decode_own(kind, body)])

    def _decode_own(self, kind: str, body: Body) -> Any:
        assert self._decode_hook is not None
        try:
            records = self._decode_hook(bytes(body), kind)
        except ClientError:
            raise
        except (ValueError, TypeError, OverflowError, RecursionError) as error:
            # decode() raises ValueError for a body it cannot read: the client's mistake.
            reason = _first_line(str(error)) or type(error).__name__
            raise ClientError(400, f"cannot read the {kind} body: {reason}") from None
        if records is None or not hasattr(records, "__len__") or len(records) == 0:
            raise ClientError(400, f"no records in the {kind} body")
        return records

    def answer(self, kind: str) -> Answer:
        return Answer(kind, self._encode_hook if kind in self._own_responses else None)

    def built_in(self, request_kind: str, response_kind: str) -> bool:
        """Both formats are this module's, decoded from any buffer (a spooled body's mmap) and
        encoded a slice at a time; the project's decode() and encode() take and give a whole body
        (so it is never spooled)."""
        return (
            request_kind in SLICED_FROM_ANY_BUFFER
            and response_kind in SUPPORTED
            and request_kind not in self._own_requests
            and response_kind not in self._own_responses
        )


class Answer:
    """The answer to one request, built a slice at a time."""

    def __init__(self, kind: str, encode_hook: Callable[[Any, str], bytes] | None = None) -> None:
        self.kind = kind
        self._encode_hook = encode_hook
        self._parts: list[Any] = []

    def add(self, predictions: Any) -> None:
        # The project's encode() sees every prediction at once (its format may not concatenate);
        # built-in formats are encoded now, so the predictions can be freed.
        self._parts.append(predictions if self._encode_hook else encode_part(self.kind, predictions))

    def body(self) -> bytes:
        if self._encode_hook is None:
            return assemble(self.kind, self._parts)
        parts = self._parts
        if len(parts) == 1:
            predictions = parts[0]
        elif all(isinstance(part, np.ndarray) for part in parts):
            predictions = np.concatenate(parts)
        else:
            predictions = [item for part in parts for item in part]
        encoded = self._encode_hook(predictions, self.kind)
        if not isinstance(encoded, (bytes, bytearray)):
            raise TypeError(f"encode() returned {type(encoded).__name__}; it must return bytes")
        return bytes(encoded)
