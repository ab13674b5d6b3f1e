"""`package-model`: a model, made here or anywhere, packed the way SageMaker hands it over."""

import json
import tarfile

import pytest

from sagemaker_contract.adapter import adapt
from sagemaker_contract.model_metadata import METADATA_FILE
from sagemaker_tools.model_archive import PackagingError, package

from stand_ins import SAMPLE_DATA, SAMPLE_FEATURES, fake_module, raw_module


def members(archive_path):
    with tarfile.open(archive_path) as archive:
        return {member.name: member for member in archive.getmembers()}


def test_without_a_model_the_example_is_trained_and_packed_at_the_archive_root(tmp_path):
    out = package(fake_module(), SAMPLE_DATA, tmp_path / "build" / "model.tar.gz")
    found = members(out)
    assert set(found) == {"model.json", METADATA_FILE}
    assert all(m.uid == 0 and m.mtime == 0 for m in found.values())  # reproducible archives
    with tarfile.open(out) as archive:
        metadata = json.load(archive.extractfile(METADATA_FILE))
    assert metadata["feature_count"] == SAMPLE_FEATURES and "python" in metadata["versions"]


def test_a_model_packages_example_model_is_used_when_there_is_no_fit(tmp_path):
    module = raw_module(example_model=lambda train: {"depth": 5})
    del module.fit
    out = package(adapt(module, ()), SAMPLE_DATA, tmp_path / "model.tar.gz")
    with tarfile.open(out) as archive:
        assert json.load(archive.extractfile("model.json")) == {"depth": 5}


def test_a_model_file_from_elsewhere_gets_the_name_load_reads(tmp_path):
    trained_elsewhere = tmp_path / "my-notebook-output.json"
    trained_elsewhere.write_text(json.dumps({"depth": 4}))
    module = fake_module(MODEL_FILE="model.json")
    out = package(module, SAMPLE_DATA, tmp_path / "model.tar.gz", trained_elsewhere)
    assert set(members(out)) == {"model.json", METADATA_FILE}


def test_a_directory_or_an_existing_archive_can_be_repacked(tmp_path):
    directory = tmp_path / "dir"
    directory.mkdir()
    (directory / "model.json").write_text(json.dumps({"depth": 4}))
    first = package(fake_module(), SAMPLE_DATA, tmp_path / "a.tar.gz", directory)
    second = package(fake_module(), SAMPLE_DATA, tmp_path / "b.tar.gz", first)
    assert set(members(second)) == {"model.json", METADATA_FILE}


def test_a_model_load_cannot_read_is_refused_and_nothing_is_written(tmp_path):
    garbage = tmp_path / "model.json"
    garbage.write_text("not json")
    out = tmp_path / "build" / "model.tar.gz"
    with pytest.raises(PackagingError, match=r"load\(\) in model.py cannot read the model \(JSONDecodeError"):
        package(fake_module(), SAMPLE_DATA, out, garbage)
    assert not out.exists() and not out.with_name("model.tar.gz.partial").exists()


def test_a_missing_model_path_and_unsafe_archives_are_refused(tmp_path):
    with pytest.raises(PackagingError, match="MODEL=.* does not exist"):
        package(fake_module(), SAMPLE_DATA, tmp_path / "m.tar.gz", tmp_path / "nope")
    evil = tmp_path / "evil.tar.gz"
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    with tarfile.open(evil, "w:gz") as archive:
        archive.add(outside, arcname="../outside.json")
    with pytest.raises(PackagingError, match="paths outside the archive"):
        package(fake_module(), SAMPLE_DATA, tmp_path / "m.tar.gz", evil)
