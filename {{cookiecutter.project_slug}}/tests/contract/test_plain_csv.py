"""plain_csv.py: plain decimal CSV read by array operations gives exactly numpy.loadtxt's floats,
and anything else is left to the general reader (None)."""

import io
import mmap
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagemaker_contract import formats
from sagemaker_contract.admission import request_cost
from sagemaker_contract.errors import ClientError
from sagemaker_contract.plain_csv import BLOCK_BYTES, MAX_DIGITS, plain_decimals


def loadtxt(text: bytes) -> np.ndarray:
    return np.loadtxt(io.StringIO(text.decode()), delimiter=",", dtype=np.float64, ndmin=2, comments=None)


def same_floats(got: np.ndarray, expected: np.ndarray) -> bool:
    # Bit for bit: -0.0 against 0.0 and the last bit of a rounding count.
    return got.shape == expected.shape and got.tobytes() == expected.tobytes()


digits = st.text("0123456789", min_size=1, max_size=MAX_DIGITS + 3)
numbers = st.builds(
    lambda sign, whole, fraction: sign + whole + ("." + fraction if fraction else ""),
    st.sampled_from(["", "-"]),
    digits,
    st.one_of(st.just(""), digits),
)


@settings(max_examples=400, deadline=None)
@given(
    st.integers(1, 6).flatmap(lambda width: st.lists(st.lists(numbers, min_size=width, max_size=width), min_size=1)),
    st.booleans(),
)
def test_plain_decimals_are_exactly_what_loadtxt_reads(rows, last_line_break):
    text = "\n".join(",".join(row) for row in rows) + ("\n" if last_line_break else "")
    got = plain_decimals(text.encode())
    longest = max(len(number.lstrip("-").replace(".", "")) for row in rows for number in row)
    if longest <= MAX_DIGITS:
        assert got is not None, text
    if got is not None:  # past MAX_DIGITS the general reader may take it instead
        assert same_floats(got, loadtxt(text.encode())), text


def test_edge_values_are_exactly_what_loadtxt_reads():
    text = b"-0.0,0,0.00000000000001,999999999999999,-99999999999999.9,0.1,0.3\n007.50,1,2,3,4,5,6"
    got = plain_decimals(text)
    assert same_floats(got, loadtxt(text))
    assert np.signbit(got[0, 0]) and got[1, 0] == 7.5


@pytest.mark.parametrize(
    "text",
    [
        b"1e5,2\n",  # exponent
        b"1.5E-3\n",
        b"+1,2\n",  # explicit plus sign
        b" 1,2\n",  # spaces
        b"1, 2\n",
        b"1\t2\n",
        b"1,,2\n",  # an empty field: a missing value (general reader)
        b",1\n",
        b"1,2,\n",
        b"1\r\n2\r\n",  # other line breaks
        b"1\n\n2\n",  # a blank line
        b"\n",
        b"",
        b"5.,1\n",  # a point with no digit after it
        b".5,1\n",  # or before it
        b"-.5,1\n",
        b"-,1\n",  # a sign alone
        b"1-2,3\n",  # a sign inside a number
        b"--1\n",
        b"1.2.3\n",  # two points
        b"nan,1\n",
        b"inf\n",
        b'"1",2\n',  # quoted
        b"1,2\n3\n",  # lines of different widths
        b"1\n2,3\n",
        b"1" * (MAX_DIGITS + 1) + b"\n",  # more digits than a float64 holds exactly
        "1,\u0662\n".encode(),  # a non-ASCII digit
    ],
)
def test_anything_else_is_left_to_the_general_reader(text):
    assert plain_decimals(text) is None


def test_a_range_of_blocks_of_bytes_or_an_mmap_is_read_without_a_copy(tmp_path):
    rng = np.random.default_rng(7)
    values = np.round(rng.normal(0, 1000, size=(40_000, 5)), rng.integers(0, 6))
    text = "".join(",".join(f"{value:.4f}" for value in row) + "\n" for row in values.tolist()).encode()
    assert len(text) > 10 * BLOCK_BYTES
    expected = loadtxt(text)
    assert same_floats(plain_decimals(text), expected)
    padded = b"xx\n" + text + b"yy"
    assert same_floats(plain_decimals(padded, 3, 3 + len(text)), expected)
    path = tmp_path / "body"
    path.write_bytes(padded)
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        rows = plain_decimals(mapped, 3, 3 + len(text))
        assert same_floats(rows, expected)
        del rows  # no view of the mmap is left behind: it can close


def test_a_line_longer_than_a_block_is_left_to_the_general_reader():
    # A wide record would make tens of bytes of temporaries a field, past what admission reserves.
    wide = b",".join(b"1" for _ in range(2 * BLOCK_BYTES)) + b"\n"
    assert plain_decimals(wide) is None and plain_decimals(wide * 2) is None
    assert plain_decimals(b"1,2\n" * 10 + wide) is None
    assert formats.decode(formats.CSV, wide * 2).shape == (2, 2 * BLOCK_BYTES)


def test_what_it_holds_stays_a_few_times_a_block_whatever_the_body():
    """tracemalloc: a slice of single digits (the most fields a byte) holds its result and a
    block's temporaries, well inside what admission reserves for a CSV slice."""
    body = b"1,2,3,4\n" * (formats.SLICE_BYTES // 8)
    tracemalloc.start()
    try:
        rows = plain_decimals(body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows.shape == (formats.SLICE_BYTES // 8, 4)
    assert peak <= rows.nbytes * 2 + 40 * BLOCK_BYTES
    assert peak <= request_cost(formats.CSV, len(body)) - 2 * len(body)


def test_a_block_of_another_width_is_left_to_the_general_reader():
    text = b"1,2\n" * (BLOCK_BYTES // 4 + 10) + b"1,2,3\n"
    assert plain_decimals(text) is None


def test_bodies_of_plain_and_other_slices_decode_as_one(tmp_path):
    # Slices the fast reader takes and slices it leaves (an exponent, an empty field) in one body.
    plain = b"1.5,-2,3.25\n" * 30_000
    body = plain + b"1e2,2,3\n" + plain + b"4,,6\n" + plain
    assert len(body) > 4 * formats.SLICE_BYTES
    rows = formats.decode(formats.CSV, body)
    expected = loadtxt(body.replace(b",,", b",nan,"))
    assert np.array_equal(rows, expected, equal_nan=True)


def test_a_mistake_after_plain_slices_still_names_its_line():
    body = b"1.5,2,3\n" * 100_000 + b"1,2\n"
    with pytest.raises(ClientError, match=r"CSV line 100001 has 2 values but line 1 has 3"):
        formats.decode(formats.CSV, body)
    body = b"1.5,2,3\n" * 100_000 + b"1,2,3,4\n" * 100_000
    with pytest.raises(ClientError, match=r"CSV line 100001 has 4 values but line 1 has 3"):
        formats.decode(formats.CSV, body)
