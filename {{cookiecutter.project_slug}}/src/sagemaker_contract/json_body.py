"""JSON request bodies decoded a window of text at a time, whatever their shape (formats.py).

json.loads of a whole body builds every record at once as Python objects (up to about 22 bytes
for each byte of text), and decoding the body to one str copies it. Here the body (bytes or a
read-only mmap of a spooled file) is decoded to text about WINDOW bytes at a time, and parsed
with the json module's C decoder in pieces:

- runs of records, a window at a time ("[" + the records up to a cut + "]" in one json.loads);
- values of other keys ("id", "parameters"...) and anything else that fits a window, whole;
- what is longer than a window by its parts: a record's values (a flat list of numbers) counted
  first, then parsed into one float64 array; a long string is scanned, never built; a long value
  of another key is walked through element by element.

The meaning is json.loads's (a duplicate key's last value counts), except that a second
"instances" key in the body's object is a 400: its records may have been predicted already.
"""

from __future__ import annotations

import json
import mmap
import re
from collections.abc import Iterator
from typing import Any, Callable

import numpy as np

from .errors import ClientError
from .formats import (
    SLICE_BYTES,
    WIDE_RECORD_COPIES,
    Body,
    _first_line,
    _refuse_constant,
    _refuse_infinities,
    _rows_to_array,
    _same_width,
    is_json_number,
)

WINDOW = SLICE_BYTES  # bytes of the body decoded to text at a time
_SPACE = re.compile(r"[ \t\n\r]*")
_SEPARATOR = re.compile(r"[\]}][ \t\n\r]*,")  # a record's end and the comma after it
_STRING_BODY = re.compile(r'[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*')
_DECODER = json.JSONDecoder(parse_int=float, parse_constant=_refuse_constant)
_NOT_NUMBER = re.compile(rb'["\[{]')  # in a flat list of numbers: a sign it holds something else
_LARGE = object()  # small_value's answer for a value longer than it parses whole
_FLAT_TYPES = {float, type(None)}
_LONGEST_NUMBER = 2 * WINDOW + 4096  # characters (a finite float has up to about 310 digits, or zeros)
_TOP_LEVEL = 'JSON body must be a list of records, one record, or {"instances": [...]}'
_NOT_A_LIST = ' is not a list of numbers (or {"features": [...]})'


class _NotARecord(ClientError):
    """Valid JSON that is not a record, raised once the cursor is past it: where a later key can
    still make it irrelevant ("features" before "instances"), parsing goes on."""


def json_slices(body: Body, start: int, end: int) -> Iterator[np.ndarray]:
    """The records of the JSON document body[start:end], a slice of about WINDOW bytes at a time."""
    cursor = _Cursor(body, start, end)
    try:
        first = cursor.peek()
        if first == "{":
            yield from _object_body(cursor)
        elif first == "[":
            yield from _list_records(cursor, 1)
        else:
            raise ClientError(400, _TOP_LEVEL)
        if cursor.peek():
            raise ClientError(400, f"body is not valid JSON: extra data at byte {cursor.offset()}")
    except RecursionError:
        raise ClientError(400, "body is nested too deeply; a record is a flat list of numbers") from None


# The most a single record of a spooled body may hold as float64 (well within one slice's working
# set, which is all the memory admission reserves for a spooled request).
SPOOLED_RECORD_BYTES = 8 * SLICE_BYTES


class _Cursor:
    """A position in the body's text; the text holds about one window from there on."""

    def __init__(self, body: Body, start: int, end: int) -> None:
        self.body = body
        self.end = end
        self.start = start
        self.next = start  # the first byte not yet decoded
        self.base = start  # the byte text[0] was decoded from
        self.text = ""
        self.pos = 0

    def more(self) -> bool:
        """Decode the next window onto the text, dropping what was consumed; False at the end."""
        if self.next >= self.end:
            return False
        cut = min(self.end, self.next + WINDOW)
        while cut < self.end and cut > self.next and self.body[cut] & 0xC0 == 0x80:
            cut -= 1  # not inside a UTF-8 character
        try:
            piece = str(memoryview(self.body)[self.next : cut], "utf-8")
        except UnicodeDecodeError as error:
            raise ClientError(400, f"body is not UTF-8 text (bad byte at offset {self.next + error.start})") from None
        self.base = self.offset()
        self.text = self.text[self.pos :] + piece
        self.pos = 0
        self.next = cut
        return True

    def ahead(self, chars: int) -> str:
        """The text from here, with at least `chars` characters in it unless the body ends first."""
        while len(self.text) - self.pos < chars and self.more():
            pass
        return self.text

    def offset(self, position: int | None = None) -> int:
        """The byte of the body at text position `position` (here by default), for messages."""
        position = self.pos if position is None else position
        prefix = self.text[:position]
        return self.base + (position if prefix.isascii() else len(prefix.encode("utf-8")))

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end), skipping to it."""
        while True:
            self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def expect(self, allowed: str) -> str:
        found = self.peek()
        if not found or found not in allowed:
            expected = " or ".join(map(repr, allowed))
            raise ClientError(400, f"body is not valid JSON: expecting {expected} at byte {self.offset()}")
        self.pos += 1
        return found

    def small_value(self, limit: int = 2 * WINDOW) -> Any:
        """The value here, parsed whole if it is at most `limit` characters long; _LARGE if not
        (then nothing is consumed)."""
        self.peek()
        while True:
            text = self.text
            try:
                value, end = _DECODER.raw_decode(text, self.pos)
            except json.JSONDecodeError as error:
                truncated = error.pos >= len(text) - 16 or error.msg.startswith("Unterminated string")
                if not truncated or self.next >= self.end:
                    where = self.offset(error.pos)
                    raise ClientError(400, f"body is not valid JSON: {error.msg} at byte {where}") from None
            except ValueError as error:  # NaN, Infinity (_refuse_constant)
                raise ClientError(400, f"body is not valid JSON: {_first_line(str(error))}") from None
            else:
                # A number near the text's end may go on in the next window ("1.5e" then "-7").
                if not isinstance(value, float) or end < len(text) - 32 or self.next >= self.end:
                    self.pos = end
                    return value
            if len(text) - self.pos >= limit:
                return _LARGE
            self.ahead(len(text) - self.pos + WINDOW)

    def skip_value(self) -> None:
        """Past the value here, building nothing larger than a window."""
        if self.small_value() is not _LARGE:
            return
        first = self.peek()
        if first == "[":
            self.pos += 1
            self.each_element(self.skip_value)
        elif first == "{":
            self.pos += 1
            self.each_member(lambda key: self.skip_value())
        elif first == '"':
            self.skip_string()
        else:
            raise ClientError(400, f"body is not valid JSON: a value of over {WINDOW} bytes at byte {self.offset()}")

    def skip_string(self) -> None:
        """Past the string here (of any length), checking it as json.loads would."""
        self.pos += 1
        while True:
            self.pos = _STRING_BODY.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text):
                found = self.text[self.pos]
                if found == '"':
                    self.pos += 1
                    return
                if not (found == "\\" and len(self.text) - self.pos < 6 and self.more()):
                    raise ClientError(400, f"body is not valid JSON: invalid string character at byte {self.offset()}")
            elif not self.more():
                raise ClientError(400, "body is not valid JSON: unterminated string at the end of the body")

    def key(self) -> str | None:
        """The object key here (None for one too long to be a key this module looks for)."""
        if self.peek() != '"':
            raise ClientError(400, f"body is not valid JSON: expecting a key in double quotes at byte {self.offset()}")
        key = self.small_value(limit=4096)
        if key is _LARGE:
            self.skip_string()
            return None
        return key  # type: ignore[no-any-return]

    def each_element(self, element: Callable[[], None]) -> None:
        """Call `element` at each element of the list whose "[" was just consumed, then past "]"."""
        if self.peek() == "]":
            self.pos += 1
            return
        while True:
            element()
            if self.expect(",]") == "]":
                return

    def each_member(self, member: Callable[[str | None], None]) -> None:
        """Call `member(key)` at each value of the object whose "{" was just consumed, then past "}"."""
        if self.peek() == "}":
            self.pos += 1
            return
        while True:
            key = self.key()
            self.expect(":")
            member(key)
            if self.expect(",}") == "}":
                return


# --- the body's shapes ---------------------------------------------------------------------------
def _object_body(cursor: _Cursor) -> Iterator[np.ndarray]:
    """{"instances": [...], other keys...} in any order, or one record {"features": [...], ...}."""
    cursor.expect("{")
    seen_instances = False
    features: np.ndarray | ClientError | None = None  # the record, if "instances" never comes
    if cursor.peek() == "}":
        raise ClientError(400, 'JSON object needs an "instances" list (or "features" for one record)')
    while True:
        key = cursor.key()
        cursor.expect(":")
        if key == "instances":
            if seen_instances:
                raise ClientError(400, 'the JSON object has "instances" twice; send one list of records')
            seen_instances = True
            features = None
            if cursor.peek() != "[":
                raise ClientError(400, '"instances" must be a list of records')
            yield from _list_records(cursor, 1)
        elif key == "features" and not seen_instances:
            try:
                features = _features(cursor, "instance 1")
            except _NotARecord as error:  # only a mistake if no "instances" follows
                features = error
        else:
            cursor.skip_value()
        if cursor.expect(",}") == "}":
            break
    if seen_instances:
        return
    if features is None:
        raise ClientError(400, 'JSON object needs an "instances" list (or "features" for one record)')
    if isinstance(features, ClientError):
        raise features
    yield features.reshape(1, -1)


def _list_records(cursor: _Cursor, first_number: int) -> Iterator[np.ndarray]:
    """The list here: one record if it starts with a number (or null), else a list of records."""
    cursor.expect("[")
    opening = cursor.peek()
    if opening == "]":
        raise ClientError(400, "no records in the body; send at least one")
    if opening not in "[{":
        yield _flat_record(cursor, f"instance {first_number}").reshape(1, -1)
        return
    number = first_number
    width = None
    one_at_a_time_until = -1  # a byte offset: records before it are parsed one at a time
    closed = False
    while not closed:
        records: list[Any] = []
        if cursor.offset() >= one_at_a_time_until:
            text = cursor.ahead(WINDOW)
            cut = _last_separator(text, cursor.pos, min(len(text), cursor.pos + WINDOW))
            if cut is not None:
                try:
                    records = _DECODER.decode("[" + text[cursor.pos : cut[0] + 1] + "]")
                except (ValueError, RecursionError):
                    # A separator inside a record or a string, or a mistake: one record at a
                    # time for a window (each would parse up to the same place again).
                    one_at_a_time_until = cursor.offset() + WINDOW
                else:
                    cursor.pos = cut[1]
        if records:
            rows = _rows_to_array(records, "instance", range(number, number + len(records)))
        else:
            record = cursor.small_value()
            if record is _LARGE:
                rows = _large_record(cursor, f"instance {number}").reshape(1, -1)
            else:
                rows = _rows_to_array([record], "instance", (number,))
            closed = cursor.expect(",]") == "]"
        width = _same_width(rows, width, f"instance {number}", f"instance {first_number}")
        number += len(rows)
        yield rows


def _last_separator(text: str, start: int, stop: int) -> tuple[int, int] | None:
    """The last "]," or "}," (whitespace allowed before the comma) in text[start:stop]:
    (where the bracket is, where the comma ends), or None. Looks back from the end first."""
    span = 4096
    while True:
        low = max(start, stop - span)
        found = None
        for found in _SEPARATOR.finditer(text, low, stop):  # noqa: B007 - the last one is wanted
            pass
        if found is not None:
            return found.start(), found.end()
        if low == start:
            return None
        span *= 8


def _large_record(cursor: _Cursor, where: str) -> Any:
    """A record longer than a window: [numbers...] or {"features": [...], ...}, as its array."""
    first = cursor.peek()
    if first == "[":
        cursor.pos += 1
        return _flat_record(cursor, where)
    if first != "{":
        cursor.skip_value()
        raise ClientError(400, where + _NOT_A_LIST)
    cursor.pos += 1
    found: list[np.ndarray | ClientError] = []

    def member(key: str | None) -> None:
        if key == "features":
            try:
                found[:] = [_features(cursor, where)]
            except _NotARecord as error:  # a later "features" would count instead
                found[:] = [error]
        else:
            cursor.skip_value()

    cursor.each_member(member)
    if not found:
        raise ClientError(400, where + _NOT_A_LIST)
    if isinstance(found[0], ClientError):
        raise found[0]
    return found[0]


def _features(cursor: _Cursor, where: str) -> np.ndarray:
    """The value of a "features" key: a flat list of numbers."""
    if cursor.peek() != "[":
        cursor.skip_value()
        raise _NotARecord(400, where + _NOT_A_LIST)
    cursor.pos += 1
    return _flat_record(cursor, where)


def _flat_record(cursor: _Cursor, where: str) -> np.ndarray:
    """The flat list of numbers (null: missing) whose "[" was just consumed, of any length, as one
    float64 array.

    The values are counted first, so the array is made once at its size: a record of N values
    holds 8N bytes, which must stay within what admission reserved for the body
    (WIDE_RECORD_COPIES times its size).
    """
    count = _count_values(cursor, where)
    if isinstance(cursor.body, mmap.mmap):
        # A body spooled to disk has memory for one slice's working set only (admission.spooled_cost).
        allowed, held = SPOOLED_RECORD_BYTES, "a record of a body this large may hold"
    else:
        allowed = WIDE_RECORD_COPIES * max(cursor.end - cursor.start, SLICE_BYTES)
        held = f"{WIDE_RECORD_COPIES} times the body's size, which is what a request may hold"
    if 8 * count > allowed:
        cursor.each_element(cursor.skip_value)
        raise _NotARecord(
            413,
            f"{where} has {count} values: {8 * count // 1024 // 1024 + 1} MB as 64-bit floats, more than "
            f"{held}; send fewer values per record",
        )
    row = np.empty(count, dtype=np.float64)
    filled = 0
    while True:
        text = cursor.ahead(WINDOW)
        stop = min(len(text), cursor.pos + WINDOW)
        close = text.find("]", cursor.pos, stop)
        cut = close if close != -1 else text.rfind(",", cursor.pos, stop)
        while cut == -1:
            # A value longer than a window (with the small windows of the tests): look further.
            close = text.find("]", cursor.pos)
            comma = text.find(",", cursor.pos)
            cut = close if comma == -1 or -1 < close < comma else comma
            close = close if cut == close else -1
            size = len(text) - cursor.pos
            if cut != -1 or size > _LONGEST_NUMBER:
                break
            text = cursor.ahead(size + WINDOW)
            if len(text) - cursor.pos == size:
                break  # the body's end
        values = None
        if cut > cursor.pos:
            try:
                values = _DECODER.decode("[" + text[cursor.pos : cut] + "]")
            except ValueError:
                pass
        if values is None or not _FLAT_TYPES.issuperset(map(type, values)) or filled + len(values) > count:
            _explain_flat(cursor, where)
        row[filled : filled + len(values)] = values  # type: ignore[arg-type]
        filled += len(values)  # type: ignore[arg-type]
        cursor.pos = cut + 1
        if close != -1:
            break
    if filled != count:  # an empty list (past its "]" now)
        raise _NotARecord(400, where + _NOT_A_LIST)
    try:
        return _refuse_infinities(row.reshape(1, -1), lambda _: where).reshape(-1)
    except ClientError as error:
        raise _NotARecord(error.status, error.message) from None


def _count_values(cursor: _Cursor, where: str) -> int:
    """How many values the flat list whose "[" was just consumed holds (its commas, up to its "]"),
    reading the bytes ahead without decoding them; 0 if it holds anything but numbers (then
    parsing explains)."""
    commas = 0
    view = memoryview(cursor.body)
    position = cursor.offset()
    while position < cursor.end:
        chunk = bytes(view[position : min(cursor.end, position + WINDOW)])
        close = chunk.find(b"]")
        part = chunk if close == -1 else chunk[:close]
        if _NOT_NUMBER.search(part):
            return 0
        commas += part.count(b",")
        if close != -1:
            return commas + 1  # (an empty list is one value short: parsing explains it)
        position += len(chunk)
    return 0


def _explain_flat(cursor: _Cursor, where: str) -> None:
    """Raise the 400 for the flat list at the cursor, at a value or its end (parsing a value at a
    time), once past the list."""
    while cursor.peek() != "]":
        value = cursor.small_value(limit=_LONGEST_NUMBER)
        if value is _LARGE or (not is_json_number(value) and value is not None):
            shown = "a value of over a window" if value is _LARGE else json.dumps(value)[:40]
            if value is _LARGE:
                cursor.skip_value()
            while cursor.expect(",]") == ",":
                cursor.skip_value()
            raise _NotARecord(400, f"{where}: {shown} is not a number")
        if cursor.expect(",]") == "]":
            raise _NotARecord(400, where + _NOT_A_LIST)
    cursor.pos += 1
    raise _NotARecord(400, where + _NOT_A_LIST)
