"""CSV of plain decimal numbers, parsed with whole-array numpy operations: the common case, fast.

Most bodies sent for inference are numbers like `5.1,-3.25,0,12` and nothing else. numpy's
general reader (numpy.loadtxt, formats.py) turns them into floats a character at a time, at
about half the speed of the array operations below (measured in the image); for a 1 GB batch or
asynchronous body that was most of the time spent answering it (the template's
docs/performance.md, issue 20).

`plain_decimals` reads a body only if every value matches `-?[0-9]+(\\.[0-9]+)?` with at most
MAX_DIGITS digits, fields are separated by commas, lines by `\\n`, and every line has the same
number of fields; anything else (exponents, spaces, quotes, `\\r`, empty fields, blank lines, NaN,
more digits) returns None and the general reader takes the body, with its error messages. The
values are exactly what numpy.loadtxt gives: each number's digits make an integer below 2**53
and its point a power of ten up to 1e15, both exact as float64, and their quotient is correctly
rounded by IEEE 754 division (Clinger's fast path), as a correctly rounded parser's result is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .formats import Body

MAX_DIGITS = 15  # 10**15 < 2**53: every integer of up to 15 digits is exact as a float64
BLOCK_BYTES = 64 * 1024  # parsed this much at a time: its temporaries stay about 30 times its size

_ZERO, _NEWLINE, _COMMA, _POINT, _MINUS = (ord(c) for c in "0\n,.-")
_POINT_DIGIT = np.uint8(_POINT - _ZERO + 256)  # "." minus "0" in uint8 arithmetic (wraps)
_POWERS_OF_TEN = 10.0 ** np.arange(MAX_DIGITS + 1)


def plain_decimals(body: Body, start: int = 0, end: int | None = None) -> np.ndarray | None:
    """The records in body[start:end] as a float64 array (rows x fields), or None if they are not
    plain decimals. The range holds whole lines (the last one may lack its line break); `body` is
    bytes or an mmap, read without a copy."""
    end = len(body) if end is None else end
    view = memoryview(body)
    blocks = []
    while start < end:
        cut = end if end - start <= BLOCK_BYTES else body.find(b"\n", start + BLOCK_BYTES, end) + 1 or end
        if cut - start > 2 * BLOCK_BYTES:
            # A line longer than a block: its temporaries (tens of bytes a field) would grow with
            # it, beyond what admission reserves for a record; the general reader holds less.
            return None
        rows = _parse_block(view[start:cut])
        if rows is None or (blocks and rows.shape[1] != blocks[0].shape[1]):
            return None
        blocks.append(rows)
        start = cut
    if not blocks:
        return None
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def _parse_block(block: memoryview) -> np.ndarray | None:
    text = np.frombuffer(block, np.uint8)
    size = len(text)
    if size == 0:
        return None
    is_digit = (text - np.uint8(_ZERO)) < 10
    is_newline = text == _NEWLINE
    is_separator = is_newline | (text == _COMMA)
    points = np.count_nonzero(text == _POINT)
    minus_signs = np.count_nonzero(text == _MINUS)
    if np.count_nonzero(is_digit) + np.count_nonzero(is_separator) + points + minus_signs != size:
        return None  # another character
    ends = np.flatnonzero(is_separator)  # where each field ends
    lines = np.count_nonzero(is_newline)
    if text[-1] != _NEWLINE:
        ends = np.append(ends, size)
        lines += 1
    fields = len(ends)
    width = fields // lines
    line_ends = ends[width - 1 :: width] if width else ends[:0]
    if width * lines != fields or not ((line_ends == size) | is_newline[np.minimum(line_ends, size - 1)]).all():
        return None  # lines of different widths, or a blank line
    starts = np.empty(fields, np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts
    longest = int(lengths.max())
    if lengths.min() < 1 or longest > MAX_DIGITS + 2:
        return None  # an empty field, or more digits than a float64 holds exactly
    negative = text[starts] == _MINUS
    if np.count_nonzero(negative) != minus_signs:
        return None  # a minus sign inside a number

    # Column by column from each field's end: the digits make its integer (Horner's rule), and
    # the point's distance from the end gives the power of ten to divide it by.
    integers = np.zeros(fields)
    digits = np.zeros(fields, np.int64)
    point_from_end = np.zeros(fields, np.int64)  # 0: no point
    for back in range(longest, 0, -1):
        at = ends - back
        inside = at >= starts
        character = text.take(at, mode="clip") - np.uint8(_ZERO)  # before the text: not `inside`
        digit_here = (character < 10) & inside
        np.multiply(integers, 10, out=integers, where=digit_here)  # in place: no temporaries
        np.add(integers, character, out=integers, where=digit_here)
        digits += digit_here
        point_from_end[(character == _POINT_DIGIT) & inside] = back
    has_point = point_from_end > 0
    if (
        np.count_nonzero(has_point) != points  # two points in one number
        or (digits > MAX_DIGITS).any()
        or (digits + negative + has_point != lengths).any()
        or (point_from_end == 1).any()  # "5." : no digit after the point
        or (has_point & (point_from_end >= lengths - negative)).any()  # ".5", "-.5": none before it
        or not is_digit[np.minimum(starts + negative, size - 1)].all()  # "-" alone
    ):
        return None
    values = integers / _POWERS_OF_TEN[np.where(has_point, point_from_end - 1, 0)]
    np.negative(values, out=values, where=negative)
    return values.reshape(lines, width)
