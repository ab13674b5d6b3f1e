"""How the server finds and loads the model, and how it refuses one (sagemaker_contract.server)."""

import json
import warnings

from sagemaker_contract import model_metadata
from sagemaker_contract.model_metadata import METADATA_FILE, incompatibility, write_metadata
from sagemaker_contract.server import load_model

from stand_ins import fake_module


def saved_model(directory, **metadata):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.json").write_text(json.dumps({"depth": 2}))
    if metadata:
        (directory / METADATA_FILE).write_text(json.dumps(metadata))
    return directory


def test_the_first_directory_with_files_wins(tmp_path):
    mounted, baked = tmp_path / "opt_ml_model", tmp_path / "baked"
    saved_model(baked)
    mounted.mkdir()
    state = load_model(fake_module(), [mounted, baked])
    assert state.ready and state.details["model_dir"] == str(baked)
    saved_model(mounted)
    assert load_model(fake_module(), [mounted, baked]).details["model_dir"] == str(mounted)


def test_no_model_anywhere_says_where_it_looked(tmp_path):
    state = load_model(fake_module(), [tmp_path / "a", tmp_path / "b"])
    assert not state.ready
    assert state.error.startswith(f"no model files in {tmp_path / 'a'} or {tmp_path / 'b'}; SageMaker extracts")


def test_a_load_that_raises_is_reported_in_one_line(tmp_path):
    def load(model_dir):
        raise ValueError("invalid load key, '\\x00'.\nmore")

    state = load_model(fake_module(load=load), [saved_model(tmp_path / "m")])
    assert state.error == f"load() failed on {tmp_path / 'm'}: ValueError: invalid load key, '\\x00'. more"


def test_feature_count_comes_from_the_metadata(tmp_path):
    model_dir = saved_model(tmp_path / "m")
    write_metadata(model_dir, feature_count=4, label_kind="U", framework="custom")
    assert load_model(fake_module(), [model_dir]).feature_count == 4


def test_an_incompatible_library_version_is_refused_before_loading(tmp_path, monkeypatch):
    # Whatever this project's framework: the image has scikit-learn 1.6.1 (xgboost and custom
    # projects have none installed, and a model of a library the image lacks is not refused here).
    monkeypatch.setattr(model_metadata, "installed_version", {"scikit-learn": "1.6.1"}.get)
    calls = []
    module = fake_module(load=lambda model_dir: calls.append(model_dir))
    model_dir = saved_model(tmp_path / "m", framework="scikit-learn", versions={"scikit-learn": "0.20.2"})
    state = load_model(module, [model_dir])
    assert not state.ready and calls == []
    assert "the model was saved with scikit-learn 0.20.2 but this image has 1.6.1" in state.error


def test_scikit_learns_version_warning_on_unpickling_is_a_refusal(tmp_path):
    class InconsistentVersionWarning(UserWarning):
        pass

    def load(model_dir):
        message = "Trying to unpickle estimator from version 1.2.0 when using 1.6.1"
        warnings.warn(InconsistentVersionWarning(message), stacklevel=2)
        return {"depth": 2}

    state = load_model(fake_module(load=load), [saved_model(tmp_path / "m")])
    assert not state.ready and "Trying to unpickle estimator from version 1.2.0" in state.error


def test_version_rules_per_framework():
    sklearn = {"scikit-learn": "1.6.1"}
    assert incompatibility({"scikit-learn": "1.6.0"}, "scikit-learn", sklearn) is None
    older = incompatibility({"scikit-learn": "1.5.2"}, "scikit-learn", sklearn)
    assert "reads only models saved by the same release" in older
    xgb = {"xgboost": "3.2.0"}
    assert incompatibility({"xgboost": "2.1.4"}, "xgboost", xgb) is None
    assert "newer than this image's 3.2.0" in incompatibility({"xgboost": "3.4.1"}, "xgboost", xgb)
    assert incompatibility({"numpy": "1.0"}, "custom", {"numpy": "2.0"}) is None
    assert incompatibility({}, "scikit-learn", sklearn) is None
