"""An XGBoost model saved anywhere is read by its content and answers what its maker's predict() does."""

import json
import shutil
import struct

import numpy as np
import pytest
import xgboost
from xgboost import XGBClassifier

from sagemaker_contract import xgboost_model
from sagemaker_contract.xgboost_model import ModelFormatError, find_model_file, load, model_format, read_head

RNG = np.random.default_rng(7)
FEATURES = RNG.normal(size=(120, 5))
THREE_CLASSES = (FEATURES[:, 0] > 0.4).astype(int) + (FEATURES[:, 1] > 0).astype(int)
TWO_CLASSES = (FEATURES[:, 2] + FEATURES[:, 3] > 0).astype(int)


def classifier(labels, **params) -> XGBClassifier:
    return XGBClassifier(n_estimators=8, max_depth=3, **params).fit(FEATURES, labels)


def legacy_binary(objective: bytes = b"binary:logistic", header: bytes = b"") -> bytes:
    """What XGBoost 1.x's save_model wrote (XGBoost 3 can no longer write it): an optional "binf",
    the 136-byte parameter block (base_score, num_feature, ...), the objective and booster names."""
    parameters = struct.pack("<fIi", 0.5, 5, 0).ljust(136, b"\0")
    names = struct.pack("<Q", len(objective)) + objective + struct.pack("<Q", 6) + b"gbtree"
    return header + parameters + names + b"\0" * 64


def packed(tmp_path, source, name):
    """`source` as make package-model stores it: under the name its content calls for."""
    model_dir = tmp_path / "model"
    model_dir.mkdir(exist_ok=True)
    shutil.copy(source, model_dir / xgboost_model.model_file_name(source))
    assert find_model_file(model_dir).name == name
    return model_dir


@pytest.mark.parametrize(
    ("saved_as", "stored_as"),
    [
        ("DEMO-local-xgboost-model", "xgboost-model.ubj"),
        ("m.json", "xgboost-model.json"),
        ("m.ubj", "xgboost-model.ubj"),
    ],
)
def test_an_xgbclassifier_saved_under_any_name_answers_its_own_classes(tmp_path, saved_as, stored_as):
    for labels in (THREE_CLASSES, TWO_CLASSES):
        trained = classifier(labels)
        trained.save_model(tmp_path / saved_as)
        served = load(packed(tmp_path, tmp_path / saved_as, stored_as))
        answers = xgboost_model.predict(served, FEATURES)
        assert answers.tolist() == trained.predict(FEATURES).tolist()  # classes, not probabilities
        assert answers.dtype.kind == "i"


def test_the_seed_notebooks_softmax_booster_answers_class_indexes(tmp_path):
    """xgboost_bring_your_own_model: XGBClassifier(objective="multi:softmax"), then
    bt._Booster.save_model("DEMO-local-xgboost-model"): UBJSON, no scikit-learn marker."""
    trained = classifier(THREE_CLASSES, objective="multi:softmax")
    trained.get_booster().save_model(tmp_path / "DEMO-local-xgboost-model")
    served = load(packed(tmp_path, tmp_path / "DEMO-local-xgboost-model", "xgboost-model.ubj"))
    answers = xgboost_model.predict(served, FEATURES)
    assert answers.tolist() == trained.predict(FEATURES).tolist() and answers.dtype.kind == "i"


def test_a_classifier_stopped_early_answers_with_its_best_iteration(tmp_path):
    rng = np.random.default_rng(1)  # labels a third wrong, so trees past the best iteration overfit
    noisy = np.where(rng.random(len(FEATURES)) < 0.3, rng.integers(0, 3, len(FEATURES)), THREE_CLASSES)
    trained = XGBClassifier(n_estimators=200, max_depth=4, learning_rate=0.5, early_stopping_rounds=3)
    trained.fit(FEATURES[:80], noisy[:80], eval_set=[(FEATURES[80:], noisy[80:])], verbose=False)
    every_tree = trained.get_booster().inplace_predict(FEATURES).argmax(axis=1)
    assert (every_tree != trained.predict(FEATURES)).any()  # the trees after the best one change answers
    trained.save_model(tmp_path / "model.json")
    served = load(packed(tmp_path, tmp_path / "model.json", "xgboost-model.json"))
    assert xgboost_model.predict(served, FEATURES).tolist() == trained.predict(FEATURES).tolist()


def test_a_plain_booster_with_no_classes_answers_its_raw_output(tmp_path):
    booster = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(FEATURES, label=TWO_CLASSES), 5)
    booster.save_model(tmp_path / "booster.ubj")
    served = load(packed(tmp_path, tmp_path / "booster.ubj", "xgboost-model.ubj"))
    assert np.allclose(xgboost_model.predict(served, FEATURES), booster.predict(xgboost.DMatrix(FEATURES)))


def test_a_model_stored_under_a_name_that_lies_is_still_read(tmp_path):
    """An archive made by hand: UBJSON in xgboost-model.json."""
    trained = classifier(THREE_CLASSES)
    (tmp_path / "model").mkdir()
    trained.save_model(tmp_path / "model.ubj")
    (tmp_path / "model.ubj").rename(tmp_path / "model" / "xgboost-model.json")
    served = load(tmp_path / "model")
    assert xgboost_model.predict(served, FEATURES).tolist() == trained.predict(FEATURES).tolist()


def test_formats_are_told_apart_by_their_first_bytes(tmp_path):
    trained = classifier(TWO_CLASSES)
    for name, expected in (("a.json", "json"), ("a.ubj", "ubj"), ("no-extension", "ubj")):
        trained.save_model(tmp_path / name)
        assert model_format(read_head(tmp_path / name), name) == expected
    pretty = tmp_path / "pretty"
    pretty.write_text(json.dumps(json.loads((tmp_path / "a.json").read_text()), indent=2))
    assert model_format(read_head(pretty), "pretty") == "json"


@pytest.mark.parametrize("header", [b"", b"binf"])
def test_the_legacy_binary_format_is_refused_with_how_to_resave_it(tmp_path, header):
    legacy = tmp_path / "old.model"
    legacy.write_bytes(legacy_binary(header=header))
    with pytest.raises(ModelFormatError) as refused:
        model_format(read_head(legacy), "old.model")
    message = str(refused.value)
    assert message.startswith("old.model is in XGBoost's legacy binary format, which XGBoost 3 cannot read")
    assert 'booster.save_model("model.json")' in message and "\n" not in message


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 300, b"[1, 2, 3]", b"{ 7 }"])
def test_anything_else_is_refused_as_not_an_xgboost_model(tmp_path, content):
    with pytest.raises(
        ModelFormatError, match=r'^x is not an XGBoost model in JSON or UBJSON .*save_model\("model.json"\)'
    ):
        model_format(content, "x")


def test_a_model_directory_without_the_model_says_so(tmp_path):
    with pytest.raises(ModelFormatError, match="no xgboost-model.json or xgboost-model.ubj in"):
        load(tmp_path)
