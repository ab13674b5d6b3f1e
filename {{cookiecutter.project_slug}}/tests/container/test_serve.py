"""`docker run IMAGE serve`: /ping, /invocations and /execution-parameters over real HTTP."""

import http.client
import json

import pytest

from .conftest import ROWS, Server, csv_body, docker

MEBIBYTE = 1024 * 1024


def test_ping_is_200_quickly_after_start(server):
    print(f"\nserve: first /ping 200 after {server.seconds_to_healthy:.2f} s")
    assert server.request("GET", "/ping")[::2] == (200, b"")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/csv", csv_body(ROWS)),
        ("application/json", json.dumps({"instances": ROWS}).encode()),
        ("application/jsonlines", "".join(json.dumps(row) + "\n" for row in ROWS).encode()),
    ],
)
@pytest.mark.parametrize("accept", [None, "text/csv", "application/json", "application/jsonlines"])
def test_every_content_type_and_accept_gives_one_prediction_per_record(server, content_type, body, accept):
    status, response_type, answer = server.invoke(body, content_type, accept)
    assert status == 200, answer
    expected_type = accept or content_type
    assert response_type == expected_type
    if expected_type == "application/json":
        predictions = json.loads(answer)["predictions"]
    else:
        predictions = answer.decode().splitlines()
    assert len(predictions) == len(ROWS)


def test_formats_agree_on_the_predictions(server):
    as_csv = server.invoke(csv_body(ROWS), "text/csv", "application/json")[2]
    as_json = server.invoke(json.dumps(ROWS).encode(), "application/json", "application/json")[2]
    assert json.loads(as_csv) == json.loads(as_json)


def test_a_batch_transform_payload_near_6_mb_is_answered_in_order(server):
    record = csv_body(ROWS)
    body = record * (int(5.9 * MEBIBYTE) // len(record))
    status, _, answer = server.invoke(body, "text/csv", "text/csv")
    assert status == 200
    lines = answer.decode().splitlines()
    assert len(lines) == body.count(b"\n")
    single = server.invoke(record, "text/csv", "text/csv")[2].decode().splitlines()
    assert lines[: len(single)] == single and lines[-len(single) :] == single


@pytest.mark.parametrize(
    ("content_type", "body", "accept", "status"),
    [
        ("image/gif", b"GIF89a", None, 415),
        ("text/csv", csv_body(ROWS[:1]), "image/png", 406),
        ("text/csv", b"sepal_length,sepal_width\n1,2", None, 400),
        ("application/json", b"{not json", None, 400),
        ("text/csv", b"1.0\n", None, 400),
        ("text/csv", b"", None, 400),
        # Over 6 MB is read (asynchronous endpoints send up to 1 GB): its one record is refused for its width.
        ("text/csv", b"1," * (3 * MEBIBYTE) + b"1\n", None, 400),
    ],
    ids=["content-type", "accept", "header-row", "bad-json", "feature-count", "empty", "over-6mb-one-wide-record"],
)
def test_client_mistakes_get_a_4xx_and_one_line_and_the_server_lives_on(server, content_type, body, accept, status):
    got, response_type, answer = server.invoke(body, content_type, accept)
    assert got == status, answer
    assert response_type.startswith("text/plain")
    assert answer.decode().count("\n") == 1
    assert server.request("GET", "/ping")[0] == 200


def metering_of(server, body: bytes, content_type: str):
    """(status, the X-Amzn-Inference-Metering header or None) of one POST /invocations."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=70)
    try:
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("X-Amzn-Inference-Metering")
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("content_type", "body", "units"),
    [
        ("text/csv", csv_body(ROWS[:3]), 3),
        ("application/json", json.dumps({"instances": ROWS[:2]}).encode(), 2),
        ("application/jsonlines", "".join(json.dumps(row) + "\n" for row in ROWS[:5]).encode(), 5),
        ("text/csv", csv_body(ROWS), len(ROWS)),
    ],
    ids=["3-csv-rows", "2-json-instances", "5-jsonlines", "batch"],
)
def test_a_2xx_bills_one_inference_per_record_answered(server, content_type, body, units):
    """AWS Marketplace's per-inference pricing bills what this header says (app.py)."""
    status, metering = metering_of(server, body, content_type)
    assert status == 200
    assert json.loads(metering) == {"Dimension": "inference.count", "ConsumedUnits": units}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/csv", b"1.0\n"), ("image/png", b"\x89PNG"), ("application/json", b"{not json")],
    ids=["feature-count", "content-type", "bad-json"],
)
def test_a_4xx_carries_no_metering(server, content_type, body):
    status, metering = metering_of(server, body, content_type)
    assert 400 <= status < 500 and metering is None


def test_execution_parameters_for_batch_transform(server):
    status, response_type, answer = server.request("GET", "/execution-parameters")
    assert status == 200 and response_type == "application/json"
    parameters = json.loads(answer)
    assert parameters["BatchStrategy"] == "MultiRecord"
    assert parameters["MaxPayloadInMB"] >= 6 and parameters["MaxConcurrentTransforms"] >= 1


def test_batch_payload_limit_and_workers_follow_the_environment(image, served_model):
    running = Server(
        image,
        served_model,
        env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "10", "MODEL_SERVER_WORKERS": "1", "SAGEMAKER_BATCH": "true"},
    )
    try:
        running.wait_until_healthy()
        parameters = json.loads(running.request("GET", "/execution-parameters")[2])
        assert parameters["MaxPayloadInMB"] == 10 and parameters["MaxConcurrentTransforms"] == 1
        record = csv_body(ROWS)
        body = record * (8 * MEBIBYTE // len(record))
        assert running.invoke(body)[0] == 200
    finally:
        running.stop()


def test_inference_pipelines_bind_to_the_port_sagemaker_chooses(image, served_model):
    running = Server(image, served_model, env={"SAGEMAKER_BIND_TO_PORT": "9091"}, port=9091)
    try:
        running.wait_until_healthy()
        assert running.invoke(csv_body(ROWS[:2]))[0] == 200
    finally:
        running.stop()


def test_serves_with_no_network_at_all(image, served_model):
    # As Marketplace buyers run it. No port can be published, so ask from inside the container.
    running = Server(image, served_model, network="none")
    probe = (
        "import time, urllib.request\n"
        "for _ in range(600):\n"
        "    try:\n"
        "        urllib.request.urlopen('http://127.0.0.1:8080/ping', timeout=2); break\n"
        "    except OSError: time.sleep(0.1)\n"
        "request = urllib.request.Request('http://127.0.0.1:8080/invocations', data=b'"
        + ",".join(map(repr, ROWS[0]))
        + "', headers={'Content-Type': 'text/csv'})\n"
        "print(urllib.request.urlopen(request, timeout=10).read().decode().strip())\n"
    )
    try:
        result = docker("exec", running.id, "/opt/venv/bin/python", "-c", probe, timeout=120, check=False)
        assert result.returncode == 0 and result.stdout.strip(), result.stderr + running.logs()
    finally:
        running.stop()


def test_sigterm_stops_the_server_cleanly_within_30_seconds(image, served_model):
    running = Server(image, served_model)
    running.wait_until_healthy()
    took = running.stop(timeout=30)
    print(f"\nserve: stopped {took:.2f} s after SIGTERM")
    assert took < 30
