"""`package-model`: pack a model into the model.tar.gz SageMaker extracts into /opt/ml/model.

    python -m sagemaker_tools package-model [--model PATH] [--data data] [--out build/model.tar.gz]

Runs on your machine (`make package-model`), not in the image. With --model it packs a model
trained anywhere: a file (stored under the name your load() reads, MODEL_FILE), a directory,
or an existing model.tar.gz. Without it, it trains the project's example on data/train the way
you would in a notebook (fit() with the default hyperparameters, or example_model()) and packs
that. Either way the model is loaded back with your load() and asked for one prediction before
anything is written, and model-metadata.json records the feature count and library versions.
Files sit at the archive root, where the server looks for them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sagemaker_contract.adapter import PACKING, UserModule, load_user_module
from sagemaker_contract.declaration import parse_hyperparameters
from sagemaker_contract.errors import ContractError, ProjectError
from sagemaker_contract.model_metadata import write_metadata
from sagemaker_contract.project import FRAMEWORK, PRODUCT
from sagemaker_contract.training_data import read_csv_channel


class PackagingError(Exception):
    """What stops packing, in one line."""


def train_example(user: UserModule, data: Path) -> tuple[Any, int, str]:
    """(model, feature count, label kind) from the project's example training on data/."""
    train = read_csv_channel("train", data / "train")
    if user.fit is not None:
        validation = read_csv_channel("validation", data / "validation") if (data / "validation").is_dir() else None
        hyperparameters, _ = parse_hyperparameters({}, user.hyperparameters)
        model = user.fit(hyperparameters, train=train, validation=validation)
    elif user.example_model is not None:
        model = user.example_model(train)
    else:
        raise PackagingError(f"{user.file} has neither fit() nor example_model(); give the model with MODEL=path")
    return model, train.feature_count, train.labels.dtype.kind


def stage_artifact(source: Path, staging: Path, user: UserModule) -> None:
    """Put a model made elsewhere into `staging` the way the server will find it."""
    if not source.exists():
        raise PackagingError(f"MODEL={source} does not exist")
    if source.is_dir():
        shutil.copytree(source, staging, dirs_exist_ok=True)
    elif tarfile.is_tarfile(source):
        with tarfile.open(source) as archive:
            unsafe = [m.name for m in archive.getmembers() if m.name.startswith("/") or ".." in Path(m.name).parts]
            if unsafe:
                raise PackagingError(f"MODEL={source} has paths outside the archive ({unsafe[0]}); it cannot be packed")
            archive.extractall(staging, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    else:
        name = user.model_file or source.name
        if (PRODUCT, FRAMEWORK) == ("model", "xgboost"):
            name = xgboost_file_name(source, name)
        shutil.copy(source, staging / name)


def xgboost_file_name(source: Path, name: str) -> str:
    """xgboost-model.json or .ubj after what the file holds (XGBoost reads a file by its name),
    when load() reads XGBoost's file (xgboost_model.load); a MODEL_FILE of your own stays as it is."""
    from sagemaker_contract import xgboost_model  # XGBoost model packages only

    if Path(name).stem != xgboost_model.MODEL_STEM:
        return name
    try:
        return xgboost_model.model_file_name(source)
    except xgboost_model.ModelFormatError as error:
        raise PackagingError(f"MODEL={error}") from None


def check_loads(user: UserModule, staging: Path, feature_count: int | None) -> int | None:
    """Load the staged model with the project's load() and predict once; returns the feature count."""
    try:
        model = user.load(staging)
    except Exception as error:  # noqa: BLE001 - any failure is the user's to see, in one line
        files = ", ".join(sorted(p.name for p in staging.iterdir())) or "nothing"
        raise PackagingError(
            f"load() in {Path(user.file).name} cannot read the model ({type(error).__name__}: {error}); "
            f"the archive would hold: {files}"
        ) from None
    feature_count = feature_count or getattr(model, "n_features_in_", None)
    if feature_count:
        try:
            results = user.predict(model, np.zeros((1, int(feature_count))))
        except Exception as error:  # noqa: BLE001
            raise PackagingError(f"predict() fails on the packed model: {type(error).__name__}: {error}") from None
        if len(results) != 1:
            raise PackagingError(f"predict() returned {len(results)} results for 1 record")
    return int(feature_count) if feature_count else None


def package(user: UserModule, data: Path, out: Path, model_path: Path | None = None) -> Path:
    user.require(PACKING)
    with tempfile.TemporaryDirectory() as scratch:
        staging = Path(scratch)
        if model_path is None:
            model, feature_count, label_kind = train_example(user, data)
            user.save(model, staging)
        else:
            stage_artifact(model_path, staging, user)
            feature_count, label_kind = None, None
        feature_count = check_loads(user, staging, feature_count)
        write_metadata(staging, feature_count=feature_count, label_kind=label_kind, framework=FRAMEWORK)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w:gz") as archive:
            for path in sorted(staging.rglob("*")):
                archive.add(path, arcname=str(path.relative_to(staging)), recursive=False, filter=_reproducible)
        partial.replace(out)  # never leave half an archive under the real name
    return out


def _reproducible(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="package-model", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model trained elsewhere (file, directory or .tar.gz)")
    parser.add_argument("--data", type=Path, default=Path("data"), help="sample data, for the example")
    parser.add_argument("--out", type=Path, default=Path("build/model.tar.gz"))
    args = parser.parse_args(argv)
    try:
        user = load_user_module(PACKING)
        out = package(user, args.data, args.out, args.model)
    except (PackagingError, ContractError, ProjectError) as error:
        print(f"package-model: {error}", file=sys.stderr)
        return 2
    with tarfile.open(out) as archive:
        names = archive.getnames()
    print(f"package-model: wrote {out} ({out.stat().st_size} bytes: {', '.join(names)})", file=sys.stderr)
    print(out)
    return 0
