"""`make benchmark` (sagemaker_tools.benchmark) without Docker: the figures, the load generator
against a stand-in, the recommendation, the files it writes, the listing's section, and the
ENDPOINT path against botocore's Stubber. The run against the built image is a container test."""

from __future__ import annotations

import io
import json
import struct
import threading
import time
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from sagemaker_contract import describe
from sagemaker_contract.adapter import load_user_module
from sagemaker_tools.benchmark import cli, report
from sagemaker_tools.benchmark.load import percentiles, run_load, summarize
from sagemaker_tools.listing import make_listing

from .publishing_support import copy_project
from .test_listing import answering

TYPES = ["text/csv", "application/json", "application/jsonlines"]
PROJECT = Path(__file__).resolve().parents[2]


def declaration() -> dict:
    return describe.declaration(load_user_module(()))


# --- the figures -------------------------------------------------------------------------------
def test_percentiles_interpolate_between_the_nearest_samples():
    assert percentiles(list(range(1, 101))) == pytest.approx([50.5, 90.1, 99.01])
    assert percentiles([0.004, 0.001, 0.003, 0.002]) == pytest.approx([0.0025, 0.0037, 0.00397])
    assert percentiles([0.25]) == [0.25, 0.25, 0.25]
    with pytest.raises(ValueError):
        percentiles([])


def test_a_cell_gives_milliseconds_and_requests_and_records_a_second():
    cell = summarize("text/csv", 4, [0.001 * n for n in range(1, 101)], errors=2, seconds=2.0, records=10)
    assert (cell.p50_ms, cell.p90_ms, cell.p99_ms) == (50.5, 90.1, 99.01)
    assert (cell.requests, cell.errors, cell.throughput, cell.records_per_second) == (100, 2, 50.0, 500.0)
    own = summarize("image/png", 1, [0.01], errors=0, seconds=1.0, records=None)
    assert own.records_per_second is None and own.throughput == 1.0
    nothing = summarize("text/csv", 1, [], errors=5, seconds=1.0, records=10)
    assert (nothing.p99_ms, nothing.throughput, nothing.errors) == (None, 0.0, 5)


# --- the load generator --------------------------------------------------------------------------
def stand_in(answers: list, status=200, delay=0.0):
    """connect() for run_load: each client's send records what it sent and answers `status`."""

    def connect():
        def send(body, content_type, accept):
            answers.append((body, content_type, accept, threading.get_ident()))
            time.sleep(delay)
            if isinstance(status, Exception):
                raise status
            return status

        return send

    return connect


def test_the_load_sends_the_body_from_every_client_and_stops_at_max_requests():
    sent = []
    cell = run_load(stand_in(sent), b"1,2\n", "text/csv", "text/csv", 4, 30, 40, records=1, warmup=2)
    # 4 clients x 2 warm-up requests, uncounted; then exactly max_requests, long before 30 s.
    assert len(sent) == 4 * 2 + 40
    assert cell.requests == 40 and cell.errors == 0 and cell.seconds < 30
    assert {entry[:3] for entry in sent} == {(b"1,2\n", "text/csv", "text/csv")}
    assert len({entry[3] for entry in sent}) == 4  # four clients at once, each on its own thread


def test_the_load_stops_when_its_time_is_up():
    cell = run_load(stand_in([], delay=0.01), b"x", "text/csv", "text/csv", 2, 0.3, 2000, records=1)
    assert 0.3 <= cell.seconds < 1.5 and 10 < cell.requests < 100


@pytest.mark.parametrize("failure", [500, ConnectionResetError("reset")])
def test_error_answers_and_lost_requests_are_errors_not_latencies(failure):
    cell = run_load(stand_in([], status=failure), b"x", "text/csv", "text/csv", 2, 30, 10, records=1)
    assert cell.errors == 10 and cell.requests == 0 and cell.p99_ms is None


# --- the recommendation --------------------------------------------------------------------------
def row(workers, throughput, p99, errors=0):
    return {"workers": workers, "throughput": throughput, "p99_ms": p99, "p50_ms": p99 / 3, "errors": errors}


def test_the_recommendation_is_the_best_throughput_within_twice_the_lowest_p99():
    rows = [row(1, 900, 10.0), row(2, 1500, 15.0), row(4, 1700, 25.0)]
    recommended = cli.recommend(rows)
    assert recommended["workers"] == 2  # 4 is faster, but its p99 (25 ms) is over 2 x 10 ms
    assert recommended["p99_bound_ms"] == 20.0
    assert "twice the lowest p99 measured, 10.0 ms" in recommended["why"] and "4: 1700/s" in recommended["why"]
    assert cli.recommend(rows, p99_bound_ms=30)["workers"] == 4  # BENCHMARK_P99_MS decides instead


def test_the_recommendation_takes_fewer_workers_for_a_throughput_within_noise():
    assert cli.recommend([row(1, 1000, 10.0), row(2, 1030, 11.0)])["workers"] == 1
    assert cli.recommend([row(1, 1000, 10.0), row(2, 1100, 11.0)])["workers"] == 2


def test_a_worker_count_that_lost_requests_is_never_recommended():
    assert cli.recommend([row(1, 800, 10.0), row(2, 1500, 9.0, errors=3)])["workers"] == 1
    nothing = cli.recommend([row(1, 800, 10.0, errors=1)])
    assert nothing["workers"] is None and "answered every request" in nothing["why"]
    over = cli.recommend([row(1, 800, 10.0)], p99_bound_ms=5)
    assert over["workers"] is None and "within 5.0 ms" in over["why"]


# --- what it writes ----------------------------------------------------------------------------
def local_result():
    rows = [
        summarize(t, c, [0.001 * c * n for n in range(1, 51)], 0, 1.0, 10).as_dict() for t in TYPES for c in (1, 4, 16)
    ]
    workers = [
        {**row(1, 700.0, 30.0), "cold_start_seconds": 2.5, "peak_memory_bytes": 90 * 2**20},
        {**row(2, 900.0, 40.0), "cold_start_seconds": 2.1, "peak_memory_bytes": 120 * 2**20},
    ]
    return {
        "target": "local",
        "image": "project:tested",
        "machine": {"cpu_model": "Test CPU 3000", "cpus": 2, "memory_bytes": 8 * 2**30},
        "rows": rows,
        "cold_start_seconds": 2.1,
        "peak_memory_bytes": 120 * 2**20,
        "default_workers": 2,
        "sweep_content_type": "text/csv",
        "workers": workers,
        "recommended_workers": cli.recommend(workers),
        "measured_at": "2026-12-04 06:00 UTC",
        "not_measured": [{"content_type": "image/png", "reason": "no sample body"}],
        "settings": {"seconds": 1.0, "max_requests": 100, "records": 10, "sweep_concurrency": 16},
    }


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_table_the_json_and_the_chart(tmp_path):
    result = local_result()
    paths = report.write(result, tmp_path / "benchmark")
    assert [path.name for path in paths] == ["benchmark.json", "benchmark.md", "benchmark.png"]
    assert json.loads(paths[0].read_text()) == result
    table = paths[1].read_text()
    lines = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(lines) == 9  # one per content type and concurrency
    assert lines[2].split(" | ")[1:5] == ["16", "408.0", "721.6", "792.2"]  # p50, p90, p99 of 16, 32, ... 800 ms
    assert "Test CPU 3000, 2 CPUs, 8.0 GiB memory" in table
    assert "Cold start (`docker run` to the first `/ping` 200): 2.10 s. Peak memory: 120 MiB." in table
    assert "| 1 | 10.0 | 30.0 | 700.0 | 2.50 | 90 MiB |" in table
    assert "Recommended on this machine: `MODEL_SERVER_WORKERS=2`." in table
    assert "`image/png`: not measured: no sample body" in table
    width, height = png_size(paths[2].read_bytes())
    assert (width, height) == (1500, 450) and paths[2].stat().st_size > 20_000


def endpoint_result():
    result = local_result()
    for key in ("image", "cold_start_seconds", "peak_memory_bytes", "workers", "recommended_workers"):
        result.pop(key)
    result.update(
        target="endpoint",
        machine={"endpoint": "ep", "instance_types": ["ml.m5.large"], "instance_count": 1, "region": "eu-west-1"},
    )
    return result


def test_an_endpoint_s_chart_and_table_have_no_workers_or_cold_start(tmp_path):
    paths = report.write(endpoint_result(), tmp_path)
    table = paths[1].read_text()
    assert "endpoint `ep` (`ml.m5.large`, 1 instance(s), eu-west-1)" in table
    assert "MODEL_SERVER_WORKERS" not in table and "Cold start" not in table
    assert png_size(paths[2].read_bytes()) == (1000, 450)


# --- the listing carries the latest table ----------------------------------------------------------
def test_the_listing_s_usage_carries_the_latest_table_and_the_machine(tmp_path):
    project = copy_project(tmp_path)
    out = project / "build" / "listing"
    report.write(local_result(), project / "build" / "benchmark")
    make_listing(project, out, answering(), image="project:tested")
    usage = (out / "usage.md").read_text()
    # After everything else (test_listing.py checks usage.md has no such section without a result).
    assert usage.index("## Instance types") < usage.index("## Latency and throughput")
    assert usage.endswith(report.listing_section(project / "build" / "benchmark"))
    section = usage[usage.index("## Latency and throughput") :]
    assert "Measured locally on Test CPU 3000, 2 CPUs, 8.0 GiB memory, image `project:tested`" in section
    assert len([line for line in section.splitlines() if line.startswith("| `")]) == 9
    assert "p99 (ms)" in section and "Requests/s" in section and "peak memory 120 MiB" in section
    report.write(endpoint_result(), project / "build" / "benchmark")
    assert "endpoint `ep` (`ml.m5.large`" in report.listing_section(project / "build" / "benchmark")


# --- ENDPOINT=: the same load through sagemaker-runtime ------------------------------------------------
def stubbed(region="eu-west-1"):
    runtime = boto3.client("sagemaker-runtime", region_name=region, aws_access_key_id="x", aws_secret_access_key="x")
    sagemaker = boto3.client("sagemaker", region_name=region, aws_access_key_id="x", aws_secret_access_key="x")
    return runtime, sagemaker, Stubber(runtime), Stubber(sagemaker)


def stub_endpoint(stub, status="InService"):
    stub.add_response(
        "describe_endpoint",
        {
            "EndpointName": "ep",
            "EndpointArn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/ep",
            "EndpointConfigName": "ep-config",
            "EndpointStatus": status,
            "CreationTime": "2026-12-01",
            "LastModifiedTime": "2026-12-01",
            "ProductionVariants": [{"VariantName": "AllTraffic", "CurrentInstanceCount": 2}],
        },
        {"EndpointName": "ep"},
    )
    if status == "InService":
        stub.add_response(
            "describe_endpoint_config",
            {
                "EndpointConfigName": "ep-config",
                "EndpointConfigArn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint-config/ep-config",
                "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.c5.xlarge"}],
                "CreationTime": "2026-12-01",
            },
            {"EndpointConfigName": "ep-config"},
        )


def test_endpoint_runs_the_same_load_through_invoke_endpoint(tmp_path, capsys):
    runtime, sagemaker, runtime_stub, sagemaker_stub = stubbed()
    stub_endpoint(sagemaker_stub)
    bodies, _ = cli.request_bodies(PROJECT, declaration(), {})
    for body in bodies:
        for _ in range(2):
            expected = {
                "EndpointName": "ep",
                "Body": body.body,
                "ContentType": body.content_type,
                "Accept": body.accept,
            }
            answer = {"Body": io.BytesIO(b"setosa\n"), "ContentType": body.accept}
            runtime_stub.add_response("invoke_endpoint", answer, expected)
        # The third request of each content type fails in the model: an error, not a latency.
        runtime_stub.add_client_error(
            "invoke_endpoint", "ModelError", "boom", 424, modeled_fields={"OriginalStatusCode": 500}
        )
    argv = [
        "--project",
        str(PROJECT),
        "--endpoint",
        "ep",
        "--concurrency",
        "1",
        "--seconds",
        "60",
        "--max-requests",
        "3",
        "--warmup",
        "0",
    ]
    with runtime_stub, sagemaker_stub:
        assert cli.main([*argv, "--out", str(tmp_path)], clients=(runtime, sagemaker)) == 0
        runtime_stub.assert_no_pending_responses()
        sagemaker_stub.assert_no_pending_responses()
    result = json.loads((tmp_path / "benchmark.json").read_text())
    assert result["target"] == "endpoint"
    assert result["machine"] == {
        "endpoint": "ep",
        "instance_types": ["ml.c5.xlarge"],
        "instance_count": 2,
        "region": "eu-west-1",
    }
    assert [(r["content_type"], r["requests"], r["errors"]) for r in result["rows"]] == [
        (body.content_type, 2, 1) for body in bodies
    ]
    assert all(r["p99_ms"] >= 0 for r in result["rows"])
    assert "endpoint `ep` (`ml.c5.xlarge`, 2 instance(s), eu-west-1)" in (tmp_path / "benchmark.md").read_text()
    assert (tmp_path / "benchmark.png").stat().st_size > 10_000


def test_an_endpoint_not_in_service_is_one_line_and_nothing_is_written(tmp_path, capsys):
    runtime, sagemaker, runtime_stub, sagemaker_stub = stubbed()
    stub_endpoint(sagemaker_stub, status="Creating")
    with runtime_stub, sagemaker_stub:
        code = cli.main(["--endpoint", "ep", "--out", str(tmp_path / "out")], clients=(runtime, sagemaker))
    assert code == 1
    error = capsys.readouterr().err.strip()
    assert error == "benchmark: endpoint ep is Creating, not InService; wait for it, or deploy it again"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--concurrency", "0 4"], "give whole numbers of 1 or more"),
        (["--workers", "1 many"], "give worker counts of 1 or more, or cpus"),
    ],
)
def test_bad_settings_are_refused_with_what_to_give(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli.parser().parse_args(argv)
    assert message in capsys.readouterr().err


def test_a_body_for_a_content_type_of_its_own(tmp_path):
    sample = tmp_path / "digit.png"
    sample.write_bytes(b"\x89PNG...")
    declaration = {"content_types": ["text/csv", "image/png", "image/jpeg"], "response_types": ["application/json"]}
    bodies, skipped = cli.request_bodies(PROJECT, declaration, {"image/png": sample})
    assert [(b.content_type, b.accept, b.records) for b in bodies] == [
        ("text/csv", "application/json", 10),
        ("image/png", "application/json", None),
    ]
    assert bodies[1].body == b"\x89PNG..."
    assert skipped == [
        {
            "content_type": "image/jpeg",
            "reason": "no sample body; give one with BENCHMARK_BODIES='image/jpeg=path/to/file'",
        }
    ]


def test_the_endpoint_s_region_is_the_one_make_publish_uses(monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    assert cli._project_region(PROJECT) == "ap-southeast-2"
    monkeypatch.delenv("AWS_REGION")
    pyproject = (PROJECT / "pyproject.toml").read_text()
    assert f'region = "{cli._project_region(PROJECT)}"' in pyproject
