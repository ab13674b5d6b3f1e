"""Request and response formats of /invocations (sagemaker_contract.formats)."""

import json
import mmap
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagemaker_contract import formats, json_body
from sagemaker_contract.errors import ClientError
from sagemaker_contract.formats import CSV, JSON, JSONLINES


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (CSV, b"1,2,3\n4,5,6\n"),
        (CSV, b"1, 2, 3\r\n4,5,6"),
        (CSV, b'"1",2,3\n4,5,6'),
        (JSON, b"[[1, 2, 3], [4, 5, 6]]"),
        (JSON, b'{"instances": [[1, 2, 3], {"features": [4, 5, 6]}]}'),
        (JSONLINES, b'[1, 2, 3]\n{"features": [4, 5, 6]}\n'),
    ],
)
def test_many_records_in_every_format(kind, body):
    assert formats.decode(kind, body).tolist() == [[1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize(
    ("kind", "body"),
    [(CSV, b"1,2,3"), (JSON, b"[1, 2, 3]"), (JSON, b'{"features": [1, 2, 3]}'), (JSONLINES, b"[1,2,3]")],
)
def test_one_record_in_every_format(kind, body):
    assert formats.decode(kind, body).tolist() == [[1, 2, 3]]


def test_empty_csv_fields_and_json_nulls_are_missing_values():
    assert np.isnan(formats.decode(CSV, b"1,,3\n,5,6")).tolist() == [[False, True, False], [True, False, False]]
    assert np.isnan(formats.decode(CSV, b"1,2,\n4,5,6")).tolist() == [[False, False, True], [False, False, False]]
    # A blank line among records is a record of one missing value (so 400 for wider records).
    assert np.isnan(formats.decode(CSV, b"1\n\n3")).tolist() == [[False], [True], [False]]
    assert np.isnan(formats.decode(JSON, b"[[1, null, 3]]")).tolist() == [[False, True, False]]


@pytest.mark.parametrize(
    ("kind", "body", "status", "message"),
    [
        (CSV, b"", 400, "empty body"),
        (CSV, b"  \n ", 400, "empty body"),
        (CSV, b"a,b\n1,2", 400, "CSV line 1 column 1: 'a' is not a number (remove the header row)"),
        (CSV, b"1,2\n1,2,3", 400, "CSV line 2 has 3 values but line 1 has 2"),
        (CSV, b"1,2\n\n3,4", 400, "CSV line 2 has 1 values but line 1 has 2"),
        (CSV, b"\xff\xfe1,2", 400, "body is not UTF-8 text"),
        (CSV, b"7" * 200_000 + b"x", 400, "body is not CSV of numbers (field larger than field limit"),
        (JSON, b"{", 400, "body is not valid JSON"),
        (JSON, b'{"rows": []}', 400, 'needs an "instances" list'),
        (JSON, b'"text"', 400, "JSON body must be a list of records"),
        (JSON, b"[[1, 2], [1]]", 400, "instance 2 has 1 values but instance 1 has 2"),
        (JSON, b'[[1, "x"]]', 400, 'instance 1: "x" is not a number'),
        (JSON, b"[[true, 1]]", 400, "instance 1: true is not a number"),
        (JSON, b"[]", 400, "no records"),
        (JSONLINES, b"[1, 2]\nnope", 400, "JSON Lines line 2 is not valid JSON"),
    ],
)
def test_client_mistakes_get_a_4xx_and_one_line(kind, body, status, message):
    with pytest.raises(ClientError) as caught:
        formats.decode(kind, body)
    assert caught.value.status == status
    assert message in caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize("body", [b"1,2\x00\n3,4", b"\x00" * 10, b'"1\n2"\n3'])
def test_csv_that_even_the_csv_module_refuses_is_a_400(body):
    # Python 3.9's csv module raises on NUL characters; the explanation must not.
    with pytest.raises(ClientError) as caught:
        formats.decode(CSV, body)
    assert caught.value.status == 400 and "\n" not in caught.value.message


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("text/csv", CSV),
        ("text/csv; charset=utf-8", CSV),
        ("Application/JSON", JSON),
        ("application/jsonlines", JSONLINES),
    ],
)
def test_content_types(header, expected):
    assert formats.request_type(header) == expected


@pytest.mark.parametrize("header", ["", "image/png", "text/plain", "text/csv; charset=latin-1"])
def test_unsupported_content_types_are_415(header):
    with pytest.raises(ClientError) as caught:
        formats.request_type(header)
    assert caught.value.status == 415


@pytest.mark.parametrize(
    ("accept", "request_kind", "expected"),
    [
        ("", CSV, CSV),
        ("*/*", JSON, JSON),
        ("application/json", CSV, JSON),
        ("text/csv;q=0.5, application/jsonlines", CSV, JSONLINES),
        ("image/png, text/*", JSON, CSV),
        ("application/*", CSV, JSON),
        ("application/json;q=0, text/csv", JSON, CSV),
    ],
)
def test_accept_is_honoured_with_q_values(accept, request_kind, expected):
    assert formats.response_type(accept, request_kind) == expected


@pytest.mark.parametrize("accept", ["image/png", "text/html, application/xml", "application/json;q=0"])
def test_unsatisfiable_accept_is_406(accept):
    with pytest.raises(ClientError) as caught:
        formats.response_type(accept, CSV)
    assert caught.value.status == 406


def test_encodings_give_one_prediction_per_record():
    labels = np.array(["setosa", "virginica"])
    assert formats.encode(CSV, labels) == b"setosa\nvirginica\n"
    assert json.loads(formats.encode(JSON, labels)) == {"predictions": ["setosa", "virginica"]}
    assert formats.encode(JSONLINES, labels) == b'"setosa"\n"virginica"\n'
    assert formats.encode(CSV, np.array([1, 0])) == b"1\n0\n"
    assert formats.encode(CSV, np.array([[0.25, 0.75], [1.0, 0.0]])) == b"0.25,0.75\n1.0,0.0\n"
    assert formats.encode(CSV, ["a,b", 'say "hi"']) == b'"a,b"\n"say ""hi"""\n'
    assert formats.encode(CSV, ["two\nlines", "x"]) == b'"two\nlines"\nx\n'
    assert formats.encode(CSV, ["", "x"]) == b'""\nx\n'
    assert json.loads(formats.encode(JSON, np.array([np.nan, 1.0]))) == {"predictions": [None, 1.0]}


def test_many_csv_records_parse_as_numpy_reads_them():
    rows = np.random.default_rng(0).normal(size=(1000, 4)).round(6)
    body = "".join(",".join(map(repr, row.tolist())) + "\n" for row in rows).encode()
    assert np.array_equal(formats.decode(CSV, body), rows)
    assert np.array_equal(formats.decode(CSV, body.replace(b"\n", b"\r\n")), rows)


# --- properties: whatever the body, a usable array or a ClientError ----------------------------
NUMBERS = st.one_of(
    st.integers(),  # unbounded: Python's own ints, hundreds of digits and more
    st.floats(allow_nan=True, allow_infinity=True),
    # Hundreds to thousands of digits (below the 4300 that Python 3.11+ refuses to print).
    st.integers(min_value=300, max_value=4000).map(lambda digits: 10**digits - 1),
)
HUGE_NUMBER_TEXT = st.integers(min_value=300, max_value=100_000).map(lambda digits: "9" * digits)
TEXT_NUMBERS = st.one_of(
    NUMBERS.map(repr),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e400", "-1e-400", "Infinity", "NaN", "0x10", "1_000"]),
    HUGE_NUMBER_TEXT,
    st.text(max_size=6),
)
JSON_RECORDS = st.recursive(
    st.none() | st.booleans() | NUMBERS | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.sampled_from(["instances", "features"]), children)
    ),
    max_leaves=20,
)


def deeply_nested(depth: int, opening: str = "[", closing: str = "]") -> bytes:
    return (opening * depth + closing * depth).encode()


def json_text(value) -> str:
    # Python's json writes NaN and Infinity literals and any int, which is what hostile clients send.
    return json.dumps(value)


BODIES = st.one_of(
    st.tuples(
        st.just(CSV),
        st.lists(st.lists(TEXT_NUMBERS, min_size=1, max_size=5), min_size=1, max_size=8).map(
            lambda rows: "\n".join(",".join(row) for row in rows).encode()
        ),
    ),
    st.tuples(st.just(JSON), JSON_RECORDS.map(lambda value: json_text(value).encode())),
    st.tuples(
        st.just(JSONLINES),
        st.lists(JSON_RECORDS, min_size=1, max_size=5).map(
            lambda values: "\n".join(json_text(v) for v in values).encode()
        ),
    ),
    st.tuples(
        st.sampled_from([JSON, JSONLINES]), HUGE_NUMBER_TEXT.map(lambda digits: f"[[1, {digits}, -{digits}]]".encode())
    ),
    st.tuples(st.sampled_from([JSON, JSONLINES]), st.integers(1, 200_000).map(deeply_nested)),
    st.tuples(
        st.sampled_from([JSON, JSONLINES]), st.integers(1, 200_000).map(lambda n: deeply_nested(n, '{"a":', "}"))
    ),
    st.tuples(st.sampled_from([CSV, JSON, JSONLINES]), st.binary(max_size=200)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(BODIES)
def test_any_body_decodes_to_finite_rows_or_a_4xx(kind_and_body):
    kind, body = kind_and_body
    try:
        rows = formats.decode(kind, body)
    except ClientError as error:
        assert 400 <= error.status < 500 and "\n" not in error.message and error.message
        return
    assert rows.dtype == np.float64 and rows.ndim == 2 and rows.size > 0
    assert not np.isinf(rows).any()  # NaN is a missing value; infinities are refused


@pytest.mark.parametrize("megabytes", [1, 6])
@pytest.mark.parametrize("kind", [CSV, JSON, JSONLINES])
def test_extreme_sizes_decode_or_are_refused_in_one_line(kind, megabytes):
    size = megabytes * 1024 * 1024
    if kind == CSV:
        bodies = [b"1,2,3\n" * (size // 6), b"9" * size, b"1," * (size // 2) + b"1"]
    elif kind == JSON:
        record = b"[1,2,3],"
        bodies = [b"[" + record * (size // len(record)) + b"[1,2,3]]", b'[["' + b"x" * size + b'"]]', b"[" * size]
    else:
        bodies = [b"[1,2,3]\n" * (size // 8), b'["' + b"x" * size + b'"]', b"{" * size]
    for body in bodies:
        try:
            rows = formats.decode(kind, body)
        except ClientError as error:
            assert error.status == 400 and "\n" not in error.message
            continue
        assert rows.shape[1] >= 1 and not np.isinf(rows).any()


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        # The first slice ends exactly where the narrower records begin, so the second slice is
        # consistent on its own and only the check across slices can see the difference.
        (
            CSV,
            b"1,2,3\n" * (formats.SLICE_BYTES // 6 + 1) + b"1,2\n" * 10,
            f"CSV line {formats.SLICE_BYTES // 6 + 2} has 2 values but line 1 has 3",
        ),
        (
            JSON,
            b'{"instances":[' + b"[1,2,3]," * (formats.SLICE_BYTES // 8) + b"[1,2]," * 9 + b"[1,2]]}",
            f"instance {formats.SLICE_BYTES // 8 + 1} has 2 values but instance 1 has 3",
        ),
    ],
    ids=["csv", "json"],
)
def test_a_slice_whose_records_are_narrower_than_the_first_slice_is_a_400(kind, body, message):
    with pytest.raises(ClientError) as caught:
        list(formats.decode_slices(kind, body))
    assert caught.value.status == 400 and message in caught.value.message


# --- JSON: every shape a client may send, decoded a window at a time (json_body.py) --------------
def reference_decode(body: bytes) -> np.ndarray:
    """What a JSON body means, read from json.loads of the whole of it."""
    value = json.loads(body)
    if isinstance(value, dict):
        value = value["instances"] if "instances" in value else [value]
    if not isinstance(value[0], (list, dict)):
        value = [value]  # one record given as a flat list, at the top or as "instances"
    rows = [record["features"] if isinstance(record, dict) else record for record in value]
    return np.array(rows, dtype=np.float64)


def streamed(body: bytes, window: int) -> np.ndarray:
    """The body through json_body with windows of `window` bytes (the real ones are SLICE_BYTES)."""
    original = json_body.WINDOW
    json_body.WINDOW = window
    try:
        return np.concatenate(list(json_body.json_slices(body, 0, len(body))))
    finally:
        json_body.WINDOW = original


SPACE = st.sampled_from(["", "", " ", "\n", "\n    ", "\t", "\r\n  "])
VALUE = st.one_of(st.integers(-999, 999), st.floats(-1e6, 1e6, allow_nan=False), st.none())
OTHER_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab],[}{":\\é€😀 \n', max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text("abc", max_size=3), children, max_size=3),
    max_leaves=12,
)
OTHER_KEYS = st.dictionaries(st.sampled_from(["id", "parameters", "meta", "instance", "é"]), OTHER_VALUES, max_size=2)


def dump(value, space) -> str:
    """JSON with whitespace drawn from `space` between every two tokens."""
    if isinstance(value, dict):
        members = [
            f"{space()}{json.dumps(key, ensure_ascii=False)}{space()}:{space()}{dump(item, space)}{space()}"
            for key, item in value.items()
        ]
        return "{" + ",".join(members) + "}" if members else "{" + space() + "}"
    if isinstance(value, list):
        items = [f"{space()}{dump(item, space)}{space()}" for item in value]
        return "[" + ",".join(items) + "]" if items else "[" + space() + "]"
    return json.dumps(value, ensure_ascii=False)


@st.composite
def json_bodies(draw):
    width = draw(st.integers(1, 5))
    records = draw(st.lists(st.lists(VALUE, min_size=width, max_size=width), min_size=1, max_size=12))
    as_objects = draw(st.sampled_from(["lists", "features", "features among other keys"]))
    if as_objects == "features":
        records = [{"features": record} for record in records]
    elif as_objects == "features among other keys":
        records = [{**draw(OTHER_KEYS), "features": record, **draw(OTHER_KEYS)} for record in records]
    flat = draw(
        st.lists(VALUE, min_size=1, max_size=30).filter(lambda values: values[0] is not None or len(values) > 1)
    )
    before, after = draw(OTHER_KEYS), draw(OTHER_KEYS)
    shape = draw(st.sampled_from(["instances", "list", "flat", "instances flat", "one record"]))
    value = {
        "instances": {**before, "instances": records, **after},
        "list": records,
        "flat": flat,
        "instances flat": {**before, "instances": flat, **after},
        "one record": {**before, "features": flat, **after},
    }[shape]
    if shape == "instances" and draw(st.booleans()):
        value = {"features": draw(OTHER_VALUES), **value}  # ignored: "instances" wins, as in json.loads
    spaces = draw(st.lists(SPACE, min_size=1, max_size=20))
    count = iter(range(10**9))
    text = draw(SPACE) + dump(value, lambda: spaces[next(count) % len(spaces)]) + draw(SPACE)
    return text.encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_bodies(), st.integers(6, 300))
def test_every_json_shape_means_what_json_loads_reads_at_any_window(body, window):
    expected = reference_decode(body)
    np.testing.assert_array_equal(formats.decode(JSON, body), expected)  # a small body: parsed whole
    np.testing.assert_array_equal(streamed(body, window), expected)  # as a large body is


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(BODIES.filter(lambda kind_and_body: kind_and_body[0] == JSON), st.integers(6, 300))
def test_any_json_body_streamed_is_what_it_is_parsed_whole_or_a_4xx(kind_and_body, window):
    _, body = kind_and_body
    try:
        whole = formats.decode(JSON, body)
    except ClientError:
        whole = None
    try:
        rows = streamed(body.strip(), window)
    except ClientError as error:
        assert 400 <= error.status < 500 and "\n" not in error.message and error.message
        assert whole is None, f"parsed whole: {whole}; streamed: {error.message}"
        return
    np.testing.assert_array_equal(rows, whole)


def large_shapes(size: int) -> dict[str, bytes]:
    """Every JSON shape of about `size` bytes, records of 4 single digits (the most per byte)."""
    rows = ",".join(["[3,1,4,1]"] * (size // 10))
    half_rows = ",".join(["[3,1,4,1]"] * (size // 20))
    numbers = ",".join(["0.1234"] * (size // 7))
    pretty = ",\n    ".join(["[\n      3,\n      1,\n      4,\n      1\n    ]"] * (size // 48))
    objects = ",".join(['{"features":[3,1,4,1],"meta":{"tags":["a],b"]}}'] * (size // 45))
    shapes = {
        "instances first": '{"instances":[' + rows + "]}",
        "id first": '{"id":"job-1","instances":[' + rows + "]}",
        "keys after": '{"instances":[' + rows + '],"parameters":{"k":[1,2]}}',
        "indented": '{\n  "id": "job-1",\n  "instances": [\n    ' + pretty + "\n  ]\n}\n",
        "top-level list": "[" + rows + "]",
        "nested objects": '{"id":"x","instances":[' + objects + "]}",
        "large other key": '{"parameters":[' + numbers[: size // 2] + '0],"instances":[' + half_rows + "]}",
        "flat list": "[" + numbers + "]",
        "one record": '{"id":"x","features":[' + numbers + "]}",
        "instances flat": '{"instances":[' + numbers + "]}",
    }
    return {name: text.encode() for name, text in shapes.items()}


ONE_RECORD_SHAPES = {"flat list", "one record", "instances flat"}


@pytest.mark.parametrize("shape", list(large_shapes(1000)))
def test_large_json_bodies_of_every_shape_mean_what_json_loads_reads(shape):
    body = large_shapes(3 * formats.SLICE_BYTES)[shape]
    rows = formats.decode(JSON, body)
    np.testing.assert_array_equal(rows, reference_decode(body))
    assert rows.shape[0] == 1 if shape in ONE_RECORD_SHAPES else rows.shape[1] == 4


@pytest.mark.heavy
@pytest.mark.parametrize("shape", sorted(set(large_shapes(1000)) - ONE_RECORD_SHAPES))
def test_decoding_json_of_any_shape_holds_a_slice_not_the_body(shape):
    """Decoding (not keeping the slices) peaks at about the same whatever the body's size: the
    text of one window and the records parsed from it, never the whole body as text or objects."""
    peaks = []
    for size in (2 * 1024 * 1024, 8 * 1024 * 1024):
        body = large_shapes(size)[shape]
        tracemalloc.start()
        try:
            for _ in formats.decode_slices(JSON, body):
                pass
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] < peaks[0] * 1.5 and peaks[1] < 40 * formats.SLICE_BYTES, peaks


@pytest.mark.parametrize("shape", sorted(ONE_RECORD_SHAPES))
def test_one_record_longer_than_a_slice_holds_its_array_and_a_window(shape):
    body = large_shapes(8 * 1024 * 1024)[shape]
    tracemalloc.start()
    try:
        (row,) = formats.decode_slices(JSON, body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert row.shape == (1, 8 * 1024 * 1024 // 7)
    assert peak < row.nbytes + 40 * formats.SLICE_BYTES, (peak, row.nbytes)


@pytest.mark.parametrize("count", [1000, formats.SLICE_BYTES // 4])  # either side of one slice
@pytest.mark.parametrize(("opening", "closing"), [("[", "]"), ('{"instances":[', "]}"), ('{"features":[', "]}")])
def test_a_flat_list_of_numbers_is_one_record_at_any_size(opening, closing, count):
    body = (opening + ",".join(["1.5", "2.5"] * (count // 2)) + closing).encode()
    assert (len(body) > formats.SLICE_BYTES) == (count > 1000)
    rows = formats.decode(JSON, body)
    assert rows.shape == (1, count) and rows[0, :2].tolist() == [1.5, 2.5]


def test_a_record_that_would_take_more_than_twice_the_body_as_floats_is_413():
    body = b"[" + b"0," * (4 * 1024 * 1024) + b"0]"  # 8 MB of text, 32 MB of floats
    with pytest.raises(ClientError) as caught:
        formats.decode(JSON, body)
    assert caught.value.status == 413 and "instance 1 has 4194305 values" in caught.value.message


@pytest.mark.parametrize("records", [1, formats.SLICE_BYTES // 8])  # either side of one slice
def test_instances_twice_is_a_400_at_any_size(records):
    body = b'{"instances":[' + b"[1,2,3]," * records + b'[1,2,3]],"id":"x","instances":[[4,5,6]]}'
    with pytest.raises(ClientError) as caught:
        formats.decode(JSON, body)
    assert caught.value.status == 400 and caught.value.message == (
        'the JSON object has "instances" twice; send one list of records'
    )


def test_mistakes_deep_in_a_large_json_body_say_where_they_are():
    records = b"[1,2,3]," * (formats.SLICE_BYTES // 4)
    cases = [
        (b'{"id":"x","instances":[' + records + b'[1,"a"]]}', 'instance 65537: "a" is not a number'),
        (b"[" + records + b"[1,2,3]] x", f"extra data at byte {len(records) + 10}"),
        (b"[" + records + b"[1,2,,3]]", f"Expecting value at byte {len(records) + 6}"),
        (b"[" + records + b"[1,2,\xff]]", f"bad byte at offset {len(records) + 6}"),
        (b'{"id":"' + b"x" * 3 * formats.SLICE_BYTES + b'\x01","instances":[[1]]}', "invalid string character"),
        (b"[" + records + b"[1,2,Infinity]]", "Infinity is not a JSON number"),
        (b"[" + records + b"[1,2,1e999]]", "instance 65537 column 3: the value is infinite"),
    ]
    for body, message in cases:
        with pytest.raises(ClientError) as caught:
            formats.decode(JSON, body)
        assert caught.value.status == 400 and message in caught.value.message, (message, caught.value.message)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (JSON, b'{"id":"job-1","instances":[' + b"[1,2,3]," * 100_000 + b"[4,5,6]]}"),
        (JSON, b"[" + b"0.25," * 200_000 + b"1]"),
        (CSV, b"1,2,3\n" * 100_000 + b"4,5,6\n\n"),
        (JSONLINES, b"[1,2,3]\n" * 100_000 + b"[4,5,6]\n"),
    ],
    ids=["json", "json-one-record", "csv", "jsonlines"],
)
def test_a_body_spooled_to_a_file_decodes_from_an_mmap_as_from_bytes(kind, body, tmp_path):
    path = tmp_path / "body"
    path.write_bytes(body)
    with path.open("rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        rows = np.concatenate(list(formats.decode_slices(kind, mapped)))
        mapped.close()  # no view of it is left behind (close refuses while one is)
    np.testing.assert_array_equal(rows, formats.decode(kind, body))


def test_a_spooled_body_s_single_record_may_hold_one_slice_s_worth_not_twice_the_body(tmp_path):
    # 400,000 values in 1.6 MB of text: 3.2 MB as float64. In memory that is within twice the
    # body's size; spooled, admission reserved one slice's working set only, so it is a 413.
    body = b"[" + b"1.5," * 399_999 + b"1.5]"
    assert formats.decode(JSON, body).shape == (1, 400_000)
    path = tmp_path / "body"
    path.write_bytes(body)
    with path.open("rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        with pytest.raises(ClientError) as refused:
            list(formats.decode_slices(JSON, mapped))
        mapped.close()
    assert refused.value.status == 413 and "a record of a body this large may hold" in refused.value.message


def test_a_missing_value_in_a_slice_of_a_large_body_is_nan():
    # Every slice but the last ends with a line break; the empty "line" after it is no record.
    body = b"1,2,3\n" * 100_000 + b"4,,6\n" + b"1,2,3\n" * 100_000
    assert len(body) > 4 * formats.SLICE_BYTES
    rows = formats.decode(formats.CSV, body)
    assert rows.shape == (200_001, 3) and np.isnan(rows[100_000, 1]) and np.isnan(rows).sum() == 1
