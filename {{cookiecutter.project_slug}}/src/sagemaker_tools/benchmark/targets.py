"""What the load is sent to: the built image run as SageMaker runs it (`docker run IMAGE serve`,
the model at /opt/ml/model, published on 127.0.0.1 only, so requests cross Docker's network as a
buyer's cross SageMaker's), or a deployed endpoint through sagemaker-runtime's InvokeEndpoint."""

from __future__ import annotations

import http.client
import json
import subprocess
from pathlib import Path
from typing import Any

from ..listing import ImageServer, ListingError
from .load import Send

# Run in the container by its own Python: the machine as the server sees it (its CPU count is
# what MODEL_SERVER_WORKERS defaults to) and the container's peak memory from its cgroup
# (v2: memory.peak; v1: memory.max_usage_in_bytes).
_MACHINE = """
import json, os
model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
memory = next(int(line.split()[1]) * 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
print(json.dumps({"cpu_model": model, "cpus": os.cpu_count(), "memory_bytes": memory}))
"""
_PEAK_MEMORY = """
for path in ("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"):
    try:
        print(int(open(path).read()))
        break
    except (OSError, ValueError):
        pass
"""
CONTAINER_PYTHON = "/opt/venv/bin/python"


class BenchmarkError(Exception):
    """Something stops `make benchmark`; one line: what, why, what to do."""


class LocalImage:
    """The image serving the model, started with `docker run IMAGE serve` (and optional settings)."""

    def __init__(self, image: str, model_dir: Path, docker: str = "docker", env: dict[str, str] | None = None):
        self.docker = docker
        try:
            self.server = ImageServer(image, model_dir, docker, env)
        except ListingError as error:
            raise BenchmarkError(str(error)) from None
        self.cold_start_seconds: float | None = None

    def wait_until_healthy(self) -> float:
        try:
            self.cold_start_seconds = self.server.wait_until_healthy()
        except ListingError as error:
            self.stop()
            raise BenchmarkError(str(error)) from None
        return self.cold_start_seconds

    def connect(self) -> Send:
        return KeptConnection(self.server.port).send

    def machine(self) -> dict[str, Any]:
        return json.loads(self._python(_MACHINE) or "{}")

    def peak_memory_bytes(self) -> int | None:
        """The most memory the container's cgroup has held since it started (None: not readable)."""
        text = self._python(_PEAK_MEMORY).strip()
        return int(text) if text.isdigit() else None

    def _python(self, code: str) -> str:
        result = subprocess.run(
            [self.docker, "exec", self.server.container, CONTAINER_PYTHON, "-c", code], capture_output=True, text=True
        )
        return result.stdout if result.returncode == 0 else ""

    def stop(self) -> None:
        self.server.stop()


class KeptConnection:
    """One client's connection to 127.0.0.1:port, kept open between requests (reopened once if the
    server closed it in between, as an HTTP client library does)."""

    def __init__(self, port: int, timeout: float = 70) -> None:
        self.port = port
        self.timeout = timeout
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def send(self, body: bytes, content_type: str, accept: str) -> int:
        headers = {"Content-Type": content_type, "Accept": accept}
        for attempt in (1, 2):
            try:
                self.connection.request("POST", "/invocations", body=body, headers=headers)
                response = self.connection.getresponse()
                response.read()
                return response.status
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class Endpoint:
    """A deployed endpoint, invoked through sagemaker-runtime as buyers' code invokes it. The
    latency is measured here, so it includes the network between this machine and the Region."""

    def __init__(self, name: str, runtime: Any, sagemaker: Any) -> None:
        self.name = name
        self.runtime = runtime
        self.sagemaker = sagemaker

    def connect(self) -> Send:
        return self.send  # boto3's clients are thread-safe: one client, a pool of connections

    def send(self, body: bytes, content_type: str, accept: str) -> int:
        from botocore.exceptions import ClientError

        try:
            answer = self.runtime.invoke_endpoint(
                EndpointName=self.name, Body=body, ContentType=content_type, Accept=accept
            )
        except ClientError as error:
            return int(error.response.get("OriginalStatusCode") or error.response["ResponseMetadata"]["HTTPStatusCode"])
        answer["Body"].read()
        return 200  # any other status is raised as a ClientError

    def machine(self) -> dict[str, Any]:
        """The endpoint's instance type(s), from its endpoint configuration."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            endpoint = self.sagemaker.describe_endpoint(EndpointName=self.name)
            if endpoint.get("EndpointStatus") != "InService":
                raise BenchmarkError(
                    f"endpoint {self.name} is {endpoint.get('EndpointStatus')}, not InService; "
                    "wait for it, or deploy it again"
                )
            config = self.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        except (ClientError, BotoCoreError) as error:
            message = error.response["Error"].get("Message", error) if isinstance(error, ClientError) else error
            raise BenchmarkError(
                f"cannot describe endpoint {self.name}: {message}; "
                "check ENDPOINT, the Region and your credentials (sagemaker:DescribeEndpoint, DescribeEndpointConfig)"
            ) from None
        variants = config.get("ProductionVariants", [])
        types = [
            variant.get("InstanceType") or ("serverless" if variant.get("ServerlessConfig") else "unknown")
            for variant in variants
        ]
        return {
            "endpoint": self.name,
            "instance_types": types,
            "instance_count": sum(
                variant.get("CurrentInstanceCount", 0) for variant in endpoint.get("ProductionVariants", [])
            ),
            "region": self.sagemaker.meta.region_name,
        }


def endpoint_clients(region: str | None, concurrency: int) -> tuple[Any, Any]:
    """sagemaker-runtime (no retries: a retried request would hide its failure in its latency,
    and enough pooled connections for every client) and sagemaker."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=region)
    config = Config(max_pool_connections=max(10, concurrency), retries={"total_max_attempts": 1, "mode": "standard"})
    return session.client("sagemaker-runtime", config=config), session.client("sagemaker")
