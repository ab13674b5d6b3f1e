"""Every error the contract reports, named for who made the mistake and so who must act.

    ClientError        the client's request (HTTP 4xx): a buyer or batch transform sent
                       something this endpoint cannot take
    ProjectError       the project: its model module, its model or its declaration is not what
                       the contract needs; the seller fixes it
    ContractError      what the container was handed: the /opt/ml files, the channels, the
                       hyperparameters of a job, or the environment settings of an endpoint;
                       whoever started the job or endpoint fixes it

Each message is one line: what is wrong, why, and what to do. The server's own signals (a
request shed for memory, a worker replaced because a call is stuck) are not anyone's mistake and
stay with the modules that raise and handle them (admission.py, batching.py).
"""

from __future__ import annotations


class ClientError(Exception):
    """A request the client must change; answered with `status` and this one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ProjectError(Exception):
    """The project's own module, model or declaration breaks the contract."""


class PredictionError(ProjectError):
    """The project's predict() broke the serving contract (e.g. returned the wrong number of results)."""


class ContractError(Exception):
    """A problem with what SageMaker (or a local run) handed the container."""


class InvalidHyperparameter(ContractError, ValueError):
    """A hyperparameter value that does not fit its declaration (names the value)."""


class TrainingStopped(BaseException):
    """Raised inside training when SIGTERM arrives (BaseException: user code can't swallow it)."""
