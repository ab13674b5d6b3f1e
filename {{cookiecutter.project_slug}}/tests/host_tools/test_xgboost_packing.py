"""`make package-model MODEL=...` with XGBoost models saved the ways notebooks save them."""

import struct
import tarfile

import numpy as np
import pytest
from xgboost import XGBClassifier

from sagemaker_contract.adapter import PACKING, load_user_module
from sagemaker_contract.model_metadata import METADATA_FILE
from sagemaker_tools.model_archive import PackagingError, main, package

from stand_ins import SAMPLE_DATA, SAMPLE_FEATURES

RNG = np.random.default_rng(3)
FEATURES = RNG.normal(size=(90, SAMPLE_FEATURES))
LABELS = (FEATURES[:, 0] > 0.3).astype(int) + (FEATURES[:, 1] > 0).astype(int)


@pytest.fixture(scope="module")
def trained():
    return XGBClassifier(n_estimators=6, max_depth=3).fit(FEATURES, LABELS)


def unpacked(archive_path, into):
    with tarfile.open(archive_path) as archive:
        archive.extractall(into)
        return sorted(archive.getnames())


@pytest.mark.parametrize(
    ("saved_as", "stored_as"),
    [
        ("DEMO-local-xgboost-model", "xgboost-model.ubj"),
        ("m.json", "xgboost-model.json"),
        ("m.ubj", "xgboost-model.ubj"),
    ],
)
def test_an_xgbclassifier_saved_under_any_name_packs_and_serves_its_classes(tmp_path, trained, saved_as, stored_as):
    trained.save_model(tmp_path / saved_as)
    out = package(load_user_module(PACKING), SAMPLE_DATA, tmp_path / "build" / "model.tar.gz", tmp_path / saved_as)
    assert unpacked(out, tmp_path / "model") == sorted([stored_as, METADATA_FILE])
    user = load_user_module(PACKING)
    served = user.load(tmp_path / "model")
    assert list(user.predict(served, FEATURES)) == list(trained.predict(FEATURES))


def legacy_model(path):
    """XGBoost 1.x's binary format (XGBoost 3 cannot write it): "binf", the 136-byte parameter block, the objective."""
    parameters = struct.pack("<fIi", 0.5, 4, 0).ljust(136, b"\0")
    path.write_bytes(b"binf" + parameters + struct.pack("<Q", 15) + b"binary:logistic")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (legacy_model, "is in XGBoost's legacy binary format, which XGBoost 3 cannot read"),
        (lambda path: path.write_bytes(b"PK\x03\x04 a zip file"), "is not an XGBoost model in JSON or UBJSON"),
    ],
)
def test_a_model_xgboost_cannot_read_is_refused_in_one_line_and_nothing_is_written(tmp_path, capsys, make, reason):
    model = tmp_path / "old-model"
    make(model)
    out = tmp_path / "build" / "model.tar.gz"
    with pytest.raises(PackagingError, match=f"^MODEL={model} {reason}"):
        package(load_user_module(PACKING), SAMPLE_DATA, out, model)
    assert main(["--model", str(model), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and 'booster.save_model("model.json")' in error
    assert not out.parent.exists() or not any(out.parent.iterdir())
