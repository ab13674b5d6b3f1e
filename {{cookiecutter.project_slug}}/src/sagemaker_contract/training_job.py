"""The training job as SageMaker describes it to the container, read once from /opt/ml/input/config.

    hyperparameters.json    every value a string, as SageMaker writes them
    inputdataconfig.json    one entry per channel: input mode, S3 distribution, record wrapping
    resourceconfig.json     the cluster: every host, this host, the network interface

Missing or minimal files are tolerated (local runs write them so). A project's fit() that takes
a `job` argument receives this value; everything else in the template reads it from here rather
than from the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoints import Checkpoints
from .opt_ml import OptMl


@dataclass(frozen=True)
class Cluster:
    """The hosts of the job. One host when resourceconfig.json is missing or empty."""

    hosts: tuple[str, ...] = ("algo-1",)
    current_host: str = "algo-1"
    network_interface: str | None = None

    @property
    def world_size(self) -> int:
        return len(self.hosts)

    @property
    def rank(self) -> int:
        """This host's position among the hosts (SageMaker lists them sorted), from 0."""
        return self.hosts.index(self.current_host) if self.current_host in self.hosts else 0

    @property
    def is_leader(self) -> bool:
        """The first host: the one that writes the model when every host trains."""
        return self.rank == 0

    @classmethod
    def from_resource_config(cls, config: dict[str, Any]) -> Cluster:
        hosts = tuple(str(host) for host in (config.get("hosts") or []))
        current = config.get("current_host")
        if not hosts:
            hosts = (str(current),) if current else cls.hosts
        return cls(
            hosts=hosts,
            current_host=str(current) if current else hosts[0],
            network_interface=config.get("network_interface_name"),
        )


@dataclass(frozen=True)
class ChannelInput:
    """How SageMaker delivers one channel (inputdataconfig.json) and where its files are."""

    name: str
    directory: Path
    input_mode: str = "File"
    distribution: str = "FullyReplicated"
    record_wrapper: str = "None"
    content_type: str | None = None

    @classmethod
    def from_config(cls, name: str, directory: Path, config: dict[str, Any]) -> ChannelInput:
        return cls(
            name=name,
            directory=directory,
            input_mode=str(config.get("TrainingInputMode") or "File"),
            distribution=str(config.get("S3DistributionType") or "FullyReplicated"),
            record_wrapper=str(config.get("RecordWrapperType") or "None"),
            content_type=config.get("ContentType"),
        )


@dataclass(frozen=True)
class TrainingJob:
    """One value for the whole job: what to train with, on which data, on which hosts."""

    hyperparameters: dict[str, str] = field(default_factory=dict)
    channels: dict[str, ChannelInput] = field(default_factory=dict)
    cluster: Cluster = field(default_factory=Cluster)
    opt_ml: OptMl = field(default_factory=OptMl)

    @property
    def model_dir(self) -> Path:
        return self.opt_ml.model_dir

    @property
    def output_data_dir(self) -> Path:
        return self.opt_ml.output_data_dir

    @property
    def checkpoint_dir(self) -> Path:
        return self.opt_ml.root / "checkpoints"

    def checkpoints(self, name: str = "checkpoint", suffix: str = "") -> Checkpoints:
        """This host's checkpoints (checkpoints.py), written only when the job asked for them."""
        return Checkpoints(self.checkpoint_dir, self.cluster.current_host, name=name, suffix=suffix)

    @classmethod
    def read(cls, opt_ml: OptMl | None = None) -> TrainingJob:
        """Read the three config files once (ContractError, in one line, if one is unreadable)."""
        opt_ml = opt_ml or OptMl()
        config = opt_ml.input_data_config()
        if config:
            names = list(config)
        else:
            # No inputdataconfig.json (a minimal local run): the directories are the channels.
            data = opt_ml.data_dir
            names = sorted(p.name for p in data.iterdir() if p.is_dir()) if data.is_dir() else []
        channels = {
            name: ChannelInput.from_config(name, opt_ml.channel_dir(name), config.get(name) or {}) for name in names
        }
        return cls(
            hyperparameters=opt_ml.hyperparameters(),
            channels=channels,
            cluster=Cluster.from_resource_config(opt_ml.resource_config()),
            opt_ml=opt_ml,
        )
