"""A model saved as AWS's xgboost_bring_your_own_model notebook saves it, packed and served by the image."""

import json
import os
import subprocess
import sys
import tarfile

import numpy as np
from xgboost import XGBClassifier

from .conftest import PROJECT, ROWS, SAMPLE_DATA, Server


def test_an_xgbclassifier_saved_with_no_extension_packs_and_answers_its_classes(image, tmp_path):
    """XGBClassifier.save_model("DEMO-local-xgboost-model"): UBJSON under a name with no extension."""
    rows = [
        line.split(",") for path in sorted((SAMPLE_DATA / "train").glob("*.csv")) for line in path.read_text().split()
    ]
    names, labels = np.unique([row[0] for row in rows], return_inverse=True)
    trained = XGBClassifier(n_estimators=10, max_depth=3).fit(np.array([row[1:] for row in rows], float), labels)
    trained.save_model(tmp_path / "DEMO-local-xgboost-model")
    archive = tmp_path / "model.tar.gz"
    packing = [
        sys.executable,
        "-m",
        "sagemaker_tools",
        "package-model",
        "--model",
        str(tmp_path / "DEMO-local-xgboost-model"),
    ]
    environ = {**os.environ, "PYTHONPATH": str(PROJECT / "src")}  # as `make package-model` runs it
    subprocess.run([*packing, "--out", str(archive)], cwd=PROJECT, env=environ, check=True, capture_output=True)
    with tarfile.open(archive) as packed:
        assert sorted(packed.getnames()) == ["model-metadata.json", "xgboost-model.ubj"]
        packed.extractall(tmp_path / "model")
    server = Server(image, tmp_path / "model")
    try:
        server.wait_until_healthy()
        status, _, answer = server.invoke(json.dumps(ROWS).encode(), "application/json", "application/json")
    finally:
        server.stop()
    assert status == 200, answer[:500]
    assert json.loads(answer)["predictions"] == trained.predict(np.array(ROWS)).tolist()  # classes, not probabilities
    assert set(json.loads(answer)["predictions"]) <= set(range(len(names)))
