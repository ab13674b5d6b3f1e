"""`make benchmark` against the built image: the same command, in a quick mode (two concurrencies,
half a second each, one worker count besides the default), on the session's image and model.

It takes about 15 s. Marked `heavy`: it measures the server every framework shares, so the
template's CI runs it on one of the images it builds only (CONTAINER_TESTS leaves it out elsewhere).
"""

from __future__ import annotations

import json
import struct

import pytest

from sagemaker_contract.formats import CSV, JSON, JSONLINES
from sagemaker_tools.benchmark.cli import main

from .conftest import DOCKER, PROJECT

CONCURRENCY = [1, 4]
SAMPLED = {CSV, JSON, JSONLINES}  # the content types the listing kit has sample bodies for


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.heavy
def test_make_benchmark_measures_the_image_and_writes_its_table_and_chart(image, served_model, declaration, tmp_path):
    argv = ["--image", image, "--model", str(served_model), "--docker", DOCKER, "--project", str(PROJECT)]
    quick = ["--concurrency", " ".join(map(str, CONCURRENCY)), "--workers", "1 cpus", "--seconds", "0.5"]
    assert main([*argv, *quick, "--out", str(tmp_path)]) == 0

    result = json.loads((tmp_path / "benchmark.json").read_text())
    measured = [t for t in declaration["content_types"] if t in SAMPLED]
    assert [(row["content_type"], row["concurrency"]) for row in result["rows"]] == [
        (content_type, clients) for content_type in measured for clients in CONCURRENCY
    ]
    for row in result["rows"]:
        assert row["errors"] == 0 and row["requests"] > 0, row
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] < 60_000, row
        assert row["throughput"] > 0, row
    assert 0 < result["cold_start_seconds"] < 240  # SageMaker's limit for the first /ping 200
    assert result["peak_memory_bytes"] > 10 * 1024 * 1024  # read from the container's cgroup
    cpus = result["machine"]["cpus"]
    assert result["machine"]["cpu_model"] and cpus >= 1 and result["machine"]["memory_bytes"] > 0
    assert [row["workers"] for row in result["workers"]] == sorted({1, cpus})
    assert result["recommended_workers"]["workers"] in {1, cpus}, result["recommended_workers"]

    # The Markdown table: one row per content type and concurrency, p99 and throughput numbers.
    table = (tmp_path / "benchmark.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(lines) == len(measured) * len(CONCURRENCY)
    header = [cell.strip() for cell in table.split("| Content type |")[1].splitlines()[0].split("|")]
    p99, throughput = header.index("p99 (ms)") + 1, header.index("Requests/s") + 1
    for line in lines:
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        assert float(cells[p99]) > 0 and float(cells[throughput]) > 0, line
    assert f"MODEL_SERVER_WORKERS={result['recommended_workers']['workers']}" in table

    # The chart: a PNG of a readable size (three panels, about 1500 x 450).
    chart = (tmp_path / "benchmark.png").read_bytes()
    width, height = png_size(chart)
    assert width >= 1000 and height >= 400 and len(chart) > 20_000
