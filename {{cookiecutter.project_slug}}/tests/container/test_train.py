"""`docker run IMAGE train` with no network, against an /opt/ml tree like SageMaker's."""

import json
import re
import shutil
import time

from .conftest import LOCAL_USER, PROJECT, docker, make_tree, train, transform_rehearsal


def test_training_saves_a_model_and_writes_no_failure(trained):
    root, result = trained
    assert any((root / "model").iterdir())
    assert not (root / "output" / "failure").exists()
    assert json.loads((root / "output" / "data" / "metrics.json").read_text())


def test_every_declared_metric_regex_matches_what_training_printed(trained, declaration):
    _, result = trained
    lines = result.stdout.splitlines()
    for definition in declaration["metric_definitions"]:
        matches = [re.search(definition["Regex"], line) for line in lines]
        values = [float(m.group(1)) for m in matches if m]
        assert len(values) == 1, (
            f"{definition['Name']}: regex {definition['Regex']!r} matched {len(values)} lines of {lines}"
        )


def failure_of(root):
    return (root / "output" / "failure").read_text().strip()


def test_bad_hyperparameters_fail_with_a_reason_sagemaker_shows(image, tmp_path, declaration):
    root = make_tree(image, tmp_path / "opt_ml")
    name = declaration["hyperparameters"][0]["Name"]
    hyperparameters = json.loads((root / "input/config/hyperparameters.json").read_text())
    hyperparameters[name] = "not-a-value"
    (root / "input/config/hyperparameters.json").write_text(json.dumps(hyperparameters))
    result = train(image, root)
    assert result.returncode != 0
    reason = failure_of(root)
    assert reason.startswith("invalid hyperparameters: ") and name in reason
    assert len(reason) <= 1024
    assert not any((root / "model").iterdir())


def test_a_missing_required_channel_fails_with_a_reason(image, tmp_path, declaration):
    root = make_tree(image, tmp_path / "opt_ml")
    required = next(c["Name"] for c in declaration["channels"] if c["IsRequired"])
    config = json.loads((root / "input/config/inputdataconfig.json").read_text())
    del config[required]
    (root / "input/config/inputdataconfig.json").write_text(json.dumps(config))
    result = train(image, root)
    assert result.returncode != 0
    assert f"no '{required}' channel" in failure_of(root)


def test_unreadable_data_fails_naming_the_file_and_line(image, tmp_path, declaration):
    root = make_tree(image, tmp_path / "opt_ml")
    required = next(c["Name"] for c in declaration["channels"] if c["IsRequired"])
    (root / "input/data" / required / "broken.csv").write_text("label,feature\n")
    result = train(image, root)
    assert result.returncode != 0
    assert f"{required}/broken.csv line 1" in failure_of(root)


def has_open(container: str, filename: str) -> bool:
    """Whether a process of the container (`train` runs in a child of PID 1) has a file called `filename` open."""
    probe = (
        "import os, sys\n"
        "names = []\n"
        "for pid in [pid for pid in os.listdir('/proc') if pid.isdigit()]:\n"
        "    try:\n"
        "        fds = os.listdir(f'/proc/{pid}/fd')\n"
        "        names += [os.path.basename(os.readlink(f'/proc/{pid}/fd/{fd}')) for fd in fds]\n"
        "    except OSError:\n"
        "        pass  # gone, or not ours to read\n"
        "print(sys.argv[1] in names)\n"
    )
    result = docker("exec", container, "/opt/venv/bin/python", "-c", probe, filename, check=False)
    return result.stdout.strip() == "True"


def test_sigterm_stops_training_within_sagemakers_grace_period(image, tmp_path, declaration):
    # Enough rows that reading them takes a while; once training reads them, `docker stop` as
    # StopTrainingJob does.
    root = make_tree(image, tmp_path / "opt_ml")
    required = next(c["Name"] for c in declaration["channels"] if c["IsRequired"])
    sample = next((root / "input/data" / required).glob("*")).read_text()
    (root / "input/data" / required / "big.csv").write_text(sample * 20000)
    name = f"train-sigterm-{time.monotonic_ns()}"
    docker(
        "run", "-d", "--name", name, "--network", "none", "--user", LOCAL_USER, "-v", f"{root}:/opt/ml", image, "train"
    )
    try:
        deadline = time.monotonic() + 120
        while not has_open(name, "big.csv"):
            state = json.loads(docker("inspect", name).stdout)[0]["State"]
            if not state["Running"] or time.monotonic() > deadline:
                logs = docker("logs", name, check=False)
                raise AssertionError(
                    f"training never had big.csv open (running: {state['Running']}, exit code "
                    f"{state['ExitCode']}):\n{(logs.stdout + logs.stderr)[-3000:]}"
                )
            time.sleep(0.05)
        started = time.monotonic()
        docker("stop", "-t", "120", name, timeout=180)
        stopped_in = time.monotonic() - started
        state = json.loads(docker("inspect", name).stdout)[0]["State"]
    finally:
        docker("rm", "-f", name, check=False)
    assert stopped_in < 10, f"took {stopped_in:.1f} s to stop after SIGTERM"
    assert state["ExitCode"] != 0
    assert failure_of(root).startswith("training stopped by SIGTERM")


def test_every_metric_regex_in_the_request_matches_what_training_printed(planned, trained):
    _, result = trained
    lines = result.stdout.splitlines()
    for definition in planned.request["TrainingSpecification"]["MetricDefinitions"]:
        values = [float(m.group(1)) for m in (re.search(definition["Regex"], line) for line in lines) if m]
        assert len(values) == 1, f"{definition['Name']}: {definition['Regex']!r} matched {len(values)} of {lines}"


def test_the_validation_profile_passes_in_the_image(image, planned, profile, tmp_path):
    """Rehearse SageMaker's validation: train as the profile says, then transform its input."""
    job = profile["TrainingJobDefinition"]
    root = tmp_path / "opt_ml"
    (root / "input/config").mkdir(parents=True)
    (root / "input/config/hyperparameters.json").write_text(json.dumps(job["HyperParameters"]))
    (root / "input/config/inputdataconfig.json").write_text(
        json.dumps(
            {
                channel["ChannelName"]: {
                    "ContentType": channel["ContentType"],
                    "TrainingInputMode": job["TrainingInputMode"],
                    "S3DistributionType": channel["DataSource"]["S3DataSource"]["S3DataDistributionType"],
                    "RecordWrapperType": "None",
                }
                for channel in job["InputDataConfig"]
            }
        )
    )
    (root / "input/config/resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    for channel in job["InputDataConfig"]:
        shutil.copytree(PROJECT / "data" / channel["ChannelName"], root / "input/data" / channel["ChannelName"])
    (root / "model").mkdir()
    trained = train(image, root)
    assert trained.returncode == 0, f"the validation training job would fail:\n{trained.stderr[-3000:]}"

    transform_rehearsal(image, planned, profile, root / "model")
