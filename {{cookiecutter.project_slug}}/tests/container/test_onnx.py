"""An ONNX model package's image: tensors and images in, the graph described, threads that fit the
workers, dynamic batching (also for a graph whose batch dimension is fixed)."""

from __future__ import annotations

import io
import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from sagemaker_contract.project import ACCELERATOR

from .conftest import ROWS, SAMPLE_DATA, Server, csv_body, docker

PIXELS = np.asarray(ROWS, dtype=np.float32)  # the validation digits: 64 values, 0 to 16, per record


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def image_bytes(values, image_format: str, size: int = 8, mode: str = "L") -> bytes:
    """A digit (64 values, 0-16) as an image file, scaled up to `size` pixels a side."""
    pixels = np.clip(np.round(np.asarray(values).reshape(8, 8) * 255 / 16), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "L").resize((size, size), Image.Resampling.NEAREST).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, image_format, **({"quality": 95} if image_format == "JPEG" else {}))
    return buffer.getvalue()


def predictions(server, body: bytes, content_type: str) -> list:
    status, response_type, answer = server.invoke(body, content_type, "application/json")
    assert status == 200, answer[:300]
    assert response_type == "application/json"
    return json.loads(answer)["predictions"]


def test_npy_csv_and_json_give_the_same_predictions(server):
    as_csv = predictions(server, csv_body(ROWS), "text/csv")
    assert len(as_csv) == len(ROWS)
    assert predictions(server, json.dumps({"instances": ROWS}).encode(), "application/json") == as_csv
    assert predictions(server, npy(PIXELS), "application/x-npy") == as_csv
    # Any batch size, any numeric dtype, and records shaped as the 8x8 images they are.
    assert predictions(server, npy(PIXELS[:1].astype(np.float64)), "application/x-npy") == as_csv[:1]
    assert predictions(server, npy(PIXELS.reshape(-1, 8, 8).astype(np.uint8)), "application/x-npy") == as_csv


def test_the_example_classifies_the_validation_digits(server):
    files = sorted((SAMPLE_DATA / "validation").glob("*.csv"))
    labels = [int(line.split(",")[0]) for path in files for line in path.read_text().splitlines() if line.strip()]
    found = predictions(server, csv_body(ROWS), "text/csv")
    assert sum(p == label for p, label in zip(found, labels)) / len(labels) > 0.9


def test_a_png_and_a_jpeg_of_a_digit_are_classified(server):
    expected = predictions(server, csv_body(ROWS[:20]), "text/csv")
    as_png = [predictions(server, image_bytes(row, "PNG"), "image/png")[0] for row in ROWS[:20]]
    assert as_png == expected  # 8x8 grey, no loss: exactly the CSV's answer
    # A larger colour JPEG (lossy), scaled down to 8x8 grey by the project's decode().
    as_jpeg = [predictions(server, image_bytes(row, "JPEG", 64, "RGB"), "image/jpeg")[0] for row in ROWS[:20]]
    assert sum(a == b for a, b in zip(as_jpeg, expected)) >= 18, (as_jpeg, expected)


def truncated_png() -> bytes:
    whole = image_bytes(ROWS[0], "PNG", 64)
    return whole[: len(whole) // 2]


def huge_png() -> bytes:
    """50 million pixels of one colour: a few kilobytes of PNG, too many pixels to decode."""
    buffer = io.BytesIO()
    Image.new("1", (10_000, 5_000)).save(buffer, "PNG")
    return buffer.getvalue()


MALFORMED = [
    ("application/x-npy", npy(PIXELS[:, :3]), "records have 3 features; this model takes 64"),
    ("application/x-npy", npy(PIXELS.reshape(-1, 4, 16)[:, :3]), "each record has shape (3, 16)"),
    ("application/x-npy", npy(PIXELS[0]), "send a batch, records first"),
    ("application/x-npy", npy(np.array([["a"] * 64])), "dtype is <U1; send numbers"),
    ("application/x-npy", npy(np.array([[object()] * 64])), "not an NPY array"),
    ("application/x-npy", npy(np.full((1, 64), np.nan, dtype=np.float32)), "NaN or infinite"),
    ("application/x-npy", b"\x93NUMPY garbage", "not an NPY array"),
    ("application/x-npy", npy(PIXELS)[:-4], "bytes of data follow"),
    ("application/x-npy", b"PK\x03\x04" + bytes(40), "not an NPY array (File is not a zip file)"),
    ("application/x-npy", b"", "not an NPY array"),
    ("image/png", b"GIF89a not a png at all", "not a PNG image"),
    ("image/png", image_bytes(ROWS[0], "JPEG"), "not a PNG image"),
    ("image/jpeg", b"\xff\xd8\xff garbage", "not a JPEG image"),
    ("image/png", truncated_png(), "the PNG image cannot be decoded"),
    ("image/png", huge_png(), "the image is 10000x5000 pixels; send at most 40000000 pixels"),
]


@pytest.mark.parametrize(("content_type", "body", "reason"), MALFORMED, ids=[m[2][:30] for m in MALFORMED])
def test_malformed_tensors_and_images_get_a_4xx_with_one_line(server, content_type, body, reason):
    status, response_type, answer = server.invoke(body, content_type)
    assert 400 <= status < 500, (status, answer[:300])
    assert response_type.startswith("text/plain")
    text = answer.decode()
    assert text.count("\n") == 1 and text.endswith("\n"), text
    assert reason in text, text
    assert server.request("GET", "/ping")[0] == 200  # and the server is still there


def test_describe_shows_the_graphs_inputs_and_outputs(image, served_model):
    described = docker("run", "--rm", "--network", "none", "-v", f"{served_model}:/opt/ml/model:ro", image, "describe")
    model = json.loads(described.stdout)["model"]
    assert model["inputs"] == [{"name": "X", "type": "tensor(float)", "shape": ["N", 64]}]
    assert [(o["name"], o["type"], o["shape"]) for o in model["outputs"]] == [
        ("label", "tensor(int64)", ["N"]),
        ("probabilities", "tensor(float)", ["N", 10]),
    ]
    assert model["execution_providers"] == ["CPUExecutionProvider"]
    without = docker("run", "--rm", "--network", "none", image, "describe")
    assert json.loads(without.stdout)["model"] is None
    assert "describe: no model in /opt/ml/model or /opt/baked-model" in without.stderr


def concurrently(server, bodies, content_type="text/csv"):
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda body: predictions(server, body, content_type), bodies))


@pytest.mark.parametrize(("cpus", "workers", "threads"), [("0", 1, 1), ("0,1", 1, 2), ("0,1", 2, 1)])
def test_intra_op_threads_share_the_cpus_out_among_the_workers(image, served_model, cpus, workers, threads):
    """With several threads per worker each worker makes its own session after the fork; with one,
    the workers share the master's. Both must answer, and say how many threads they use."""
    server = Server(
        image, served_model, env={"MODEL_SERVER_WORKERS": str(workers)}, docker_args=["--cpuset-cpus", cpus]
    )
    try:
        server.wait_until_healthy()
        expected = [[p] for p in predictions(server, csv_body(ROWS[:40]), "text/csv")]
        assert concurrently(server, [csv_body([row]) for row in ROWS[:40]]) == expected
        logs = server.wait_for_log("intra-op thread")
    finally:
        server.stop()
    lines = [line for line in logs.splitlines() if "ONNX Runtime:" in line]
    assert len(lines) == 1, lines  # one line, from the master: not one per worker
    assert lines[0].endswith(f"; {threads} intra-op thread(s) per worker"), lines[0]
    if ACCELERATOR == "gpu":  # these machines have no GPU: the fallback, said as a warning
        assert " WARNING ONNX Runtime: no GPU visible" in lines[0] and "falling back to the CPU" in lines[0]
    else:
        assert " INFO ONNX Runtime: CPU execution provider;" in lines[0]


def test_concurrent_requests_are_batched_into_fewer_calls(image, served_model):
    server = Server(
        image,
        served_model,
        env={"MODEL_SERVER_WORKERS": "1", "MODEL_SERVER_BATCH_WINDOW_MS": "20"},
        remove=False,
    )
    try:
        server.wait_until_healthy()
        single = [csv_body([row]) for row in ROWS[:64]]
        expected = [[p] for p in predictions(server, csv_body(ROWS[:64]), "text/csv")]
        assert concurrently(server, single) == expected
        server.stop()
        logs = server.wait_for_log("predict() calls")
    finally:
        server.remove()
    answered, calls = (int(n) for n in re.search(r"(\d+) requests answered in (\d+) predict\(\) calls", logs).groups())
    print(f"\nonnx batching: {answered} requests in {calls} predict() calls")
    assert answered == 65 and calls < answered / 2, logs[-2000:]


@pytest.fixture(scope="module")
def fixed_batch_model(served_model, tmp_path_factory):
    """The packed model with its batch dimension fixed at 3 (as some exporters write it)."""
    import onnx

    graph = onnx.load(str(served_model / "model.onnx"))
    for value in [*graph.graph.input, *graph.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_value = 3
    directory = tmp_path_factory.mktemp("fixed-batch")
    onnx.save(graph, str(directory / "model.onnx"))
    shutil.copy(served_model / "model-metadata.json", directory)
    return directory


def test_a_graph_with_a_fixed_batch_dimension_takes_any_number_of_records(image, served_model, fixed_batch_model):
    reference = Server(image, served_model)
    fixed = Server(image, fixed_batch_model, env={"MODEL_SERVER_BATCH_WINDOW_MS": "20"})
    try:
        reference.wait_until_healthy()
        fixed.wait_until_healthy()
        for count in (1, 3, 7, len(ROWS)):
            body = csv_body(ROWS[:count])
            assert predictions(fixed, body, "text/csv") == predictions(reference, body, "text/csv"), count
        expected = [[p] for p in predictions(reference, csv_body(ROWS[:20]), "text/csv")]
        assert concurrently(fixed, [csv_body([row]) for row in ROWS[:20]]) == expected
        described = docker(
            "run", "--rm", "--network", "none", "-v", f"{fixed_batch_model}:/opt/ml/model:ro", image, "describe"
        )
        assert json.loads(described.stdout)["model"]["inputs"][0]["shape"] == [3, 64]
    finally:
        reference.stop()
        fixed.stop()
