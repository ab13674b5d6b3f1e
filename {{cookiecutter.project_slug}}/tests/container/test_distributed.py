"""Training at scale in the image: two hosts as one job (SageMaker SDK local mode), and managed spot
(SIGTERM, then a restart that resumes from the checkpoint). XGBoost algorithms only.

Local mode runs the image as SageMaker would, with docker compose: one container per instance on
one network, resourceconfig.json naming both, the model tarred from /opt/ml/model. It needs
`docker compose` or `docker-compose`, and binds port 8080 on this machine to serve.
"""

import json
import re
import time

import numpy as np
import pytest
import xgboost

from .conftest import LOCAL_USER, ROWS_BODY, SAMPLE_DATA, docker, make_tree, train


@pytest.fixture
def local_session(image, monkeypatch):
    """A SageMaker SDK session that runs jobs and endpoints in Docker here: no AWS, no S3.
    Afterwards the containers docker compose made from the image go too (the SDK leaves them)."""
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local-mode",  # the SDK wants credentials, and hands them to the containers
        "AWS_SECRET_ACCESS_KEY": "local-mode",
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }.items():
        monkeypatch.setenv(name, value)
    import boto3
    from sagemaker.local import LocalSession

    no_telemetry = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
    session = LocalSession(boto_session=boto3.Session(region_name="us-east-1"), sagemaker_config=no_telemetry)
    session.config = {"local": {"local_code": True}}  # file:// data and output, nothing uploaded
    yield session
    made = ["--filter", f"ancestor={image}", "--filter", "label=com.docker.compose.project"]
    left = docker("ps", "--all", "--quiet", *made).stdout.split()
    if left:
        docker("rm", "--force", *left)


def sample_labels() -> list[str]:
    return [
        line.split(",")[0]
        for path in sorted((SAMPLE_DATA / "validation").glob("*"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def test_two_hosts_train_one_model_that_deploys_and_predicts(image, local_session, tmp_path, capfd):
    from sagemaker.estimator import Estimator

    estimator = Estimator(
        image_uri=image,
        role="arn:aws:iam::111111111111:role/local-mode",
        instance_count=2,
        instance_type="local",
        output_path=f"file://{tmp_path}",
        sagemaker_session=local_session,
        hyperparameters={"num_round": "30"},
        # Both hosts share this machine's cores: OpenMP's spinning wait would starve the other host.
        environment={"OMP_WAIT_POLICY": "PASSIVE"},
    )
    estimator.fit({"train": f"file://{SAMPLE_DATA / 'train'}", "validation": f"file://{SAMPLE_DATA / 'validation'}"})
    log = capfd.readouterr().out
    ranks = sorted(re.findall(r"distributed training: rank (\d) of 2 hosts", log))
    assert ranks == ["0", "1"], f"each host logs its rank once; the job's log:\n{log[-5000:]}"
    assert len(re.findall(r"trained \d+ of 30 rounds", log)) == 2
    assert estimator.model_data == f"file://{tmp_path}/model.tar.gz"

    predictor = estimator.deploy(initial_instance_count=1, instance_type="local")
    try:
        answer = predictor.predict(ROWS_BODY, initial_args={"ContentType": "text/csv", "Accept": "text/csv"})
    finally:
        predictor.delete_endpoint()
    predictions = answer.decode().split()
    labels = sample_labels()
    assert len(predictions) == len(labels)
    accuracy = np.mean([p == label for p, label in zip(predictions, labels)])
    assert accuracy >= 0.8, f"accuracy {accuracy:.2f} on the validation rows: {predictions}"


ROUNDS = 1000  # the most num_round allows: a job that runs long enough to be interrupted


def long_job(image, root):
    """A job that trains for a while (about 20 s on a quiet 2-CPU machine, longer under load): many
    rounds of deep trees on rows with noisy labels."""
    make_tree(image, root, f"num_round={ROUNDS}", "early_stopping=false", "max_depth=10")
    rng = np.random.default_rng(0)
    features = rng.random((60000, 8))
    labels = (features[:, 0] * 3 + rng.normal(0, 0.5, len(features))).clip(0, 2.99).astype(int)
    rows = np.column_stack([labels, features])
    for channel in ("train", "validation"):
        for old in (root / "input/data" / channel).glob("*"):
            old.unlink()
    np.savetxt(root / "input/data/train/rows.csv", rows, delimiter=",", fmt="%.6g")
    np.savetxt(root / "input/data/validation/rows.csv", rows[:500], delimiter=",", fmt="%.6g")
    (root / "checkpoints").mkdir()  # what CheckpointConfig does
    return root


def test_sigterm_leaves_a_checkpoint_and_the_restarted_job_resumes_and_finishes(image, tmp_path):
    root = long_job(image, tmp_path / "opt_ml")
    name = f"train-spot-{time.monotonic_ns()}"
    docker(
        "run", "-d", "--name", name, "--network", "none", "--user", LOCAL_USER, "-v", f"{root}:/opt/ml", image, "train"
    )
    try:
        deadline = time.monotonic() + 120
        while "training on " not in docker("logs", name, check=False).stderr:
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.2)
        time.sleep(1)  # into training, as a spot interruption would come (the job is far longer)
        state = json.loads(docker("inspect", name).stdout)[0]["State"]
        assert state["Running"], f"the job ended before SIGTERM; make it longer:\n{docker('logs', name).stderr[-2000:]}"
        docker("stop", "-t", "120", name, timeout=180)
        state = json.loads(docker("inspect", name).stdout)[0]["State"]
        stopped_log = docker("logs", name, check=False).stderr
    finally:
        docker("rm", "-f", name, check=False)
    assert state["ExitCode"] == 143, stopped_log[-3000:]
    (checkpoint,) = (root / "checkpoints").iterdir()
    match = re.fullmatch(r"xgboost\.algo-1\.round-(\d+)\.ubj", checkpoint.name)
    assert match, checkpoint.name
    saved_round = int(match.group(1))
    assert 0 < saved_round < ROUNDS
    assert f"the checkpoint at round {saved_round} is in /opt/ml/checkpoints" in (root / "output/failure").read_text()

    (root / "output/failure").unlink()  # a restarted job's output starts empty
    restarted = train(image, root, timeout=900)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert f"resuming from checkpoint at round {saved_round} " in restarted.stderr
    assert f"trained {ROUNDS} of {ROUNDS} rounds" in restarted.stderr
    booster = xgboost.Booster(model_file=str(root / "model" / "xgboost-model.json"))
    assert booster.num_boosted_rounds() == ROUNDS
