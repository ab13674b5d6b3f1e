"""`local-tree`: write the /opt/ml tree SageMaker would give a training job, for local runs.

    local-tree DIR --data DATA [--set NAME=VALUE ...]

The three config files come from the project's declaration, as SageMaker would write them:
hyperparameters.json holds every default as a string (plus --set overrides, checked against
the declaration), inputdataconfig.json lists each declared channel that has data under DATA,
resourceconfig.json describes one host. Each DATA/<channel>/ is copied to input/data/<channel>/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from .adapter import UserModule, load_user_module
from .errors import ContractError
from .opt_ml import OptMl


def write_tree(root: Path, data: Path, user: UserModule, overrides: dict[str, str] | None = None) -> OptMl:
    opt_ml = OptMl(root)
    declared = {item.name: item for item in user.hyperparameters}
    hyperparameters = {name: item.default_text() for name, item in declared.items() if item.default_text() is not None}
    for name, value in (overrides or {}).items():
        if name not in declared:
            raise ContractError(f"--set {name}: no such hyperparameter; declared: {', '.join(declared)}")
        declared[name].parse(value)
        hyperparameters[name] = value
    channels = {}
    for channel in user.channels:
        source = data / channel.name
        if not source.is_dir():
            if channel.required:
                raise ContractError(f"no {source} directory for the required channel {channel.name!r}")
            continue
        shutil.copytree(source, opt_ml.channel_dir(channel.name), dirs_exist_ok=True)
        channels[channel.name] = {
            "ContentType": channel.content_types[0],
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
    opt_ml.config_dir.mkdir(parents=True, exist_ok=True)
    _write_json(opt_ml.hyperparameters_file, hyperparameters)
    _write_json(opt_ml.input_data_config_file, channels)
    _write_json(
        opt_ml.resource_config_file,
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"},
    )
    for directory in (opt_ml.model_dir, opt_ml.output_data_dir):
        directory.mkdir(parents=True, exist_ok=True)
    return opt_ml


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name.strip(), value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="local-tree", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", type=_assignment, action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    try:
        user = load_user_module(("HYPERPARAMETERS", "CHANNELS", "METRICS"))
        write_tree(args.root, args.data, user, dict(args.overrides))
    except ContractError as error:
        print(f"local-tree: {error}", file=sys.stderr)
        return 2
    print(f"local-tree: wrote {args.root}", file=sys.stderr)
    return 0
