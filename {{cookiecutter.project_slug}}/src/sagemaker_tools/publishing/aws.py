"""AWS clients for push and publish, and AWS errors turned into one line each.

Clients are made on first use only, so a dry run never makes one (and needs no credentials).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from . import PublishError

NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_PROFILE or run aws configure (a dry run needs none: make publish DRY_RUN=1)"
)
# What to do about the errors people meet most, by error code.
HINTS = {
    "AccessDenied": "give your credentials the permission named above (README: Publishing lists them)",
    "AccessDeniedException": "give your credentials the permission named above (README: Publishing lists them)",
    "NoSuchBucket": "create the bucket in your region, or set SAGEMAKER_S3_BUCKET to one you own",
    "ExpiredToken": "your credentials have expired: refresh them (aws sso login, or new keys)",
    "ExpiredTokenException": "your credentials have expired: refresh them (aws sso login, or new keys)",
    "ResourceInUse": "that name exists already: bump [project] version in pyproject.toml, or commit, and publish again",
}


class Clients:
    """boto3 clients for one region, made when first asked for (tests pass stubbed ones in)."""

    def __init__(self, region: str, clients: dict[str, Any] | None = None) -> None:
        self.region = region
        self._clients = dict(clients or {})

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            import boto3  # only a real push or publish gets here

            self._clients[service] = boto3.session.Session(region_name=self.region).client(service)
        return self._clients[service]


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Turn an AWS failure during `what` into a PublishError of one line."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        raise PublishError(NO_CREDENTIALS) from None
    except EndpointConnectionError as error:
        raise PublishError(f"{what}: cannot reach AWS ({error}); check your network and the region") from None
    except ClientError as error:
        code = error_code(error)
        message = error.response.get("Error", {}).get("Message", str(error))
        hint = HINTS.get(code, "")
        raise PublishError(f"{what} failed: {code}: {message}" + (f"; {hint}" if hint else "")) from None
    except BotoCoreError as error:
        raise PublishError(f"{what} failed: {error}") from None
