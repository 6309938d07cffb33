"""moto's AWS emulator in server mode on a free loopback port, and SageMaker endpoints on it.

The session's `moto_server` fixture (tests/conftest.py) starts one
`ThreadedMotoServer` for every test that drives SageMaker or CloudWatch; tests talk
to it with real boto3 clients over HTTP, as gray would to AWS:

    client = moto_server.client("sagemaker")
    endpoint = moto_server.sagemaker_endpoint("fraud", ("1", "2"))   # variants fraud-v1, -v2

Each test makes endpoints under names of its own (moto keeps state for the session),
so tests do not see each other's writes. Credentials are dummies set for the clients
only; nothing here can reach AWS. One deviation of moto's from the documented API is
put right while the server runs: SageMaker's AddTags overwrites a tag of the same key.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from gray.gateway.testing import free_port

REGION = "eu-west-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
INSTANCE_TYPE = "ml.m5.large"


@dataclass
class MotoServer:
    """A running moto server: its address and boto3 clients bound to it."""

    url: str
    _names: Iterator[int] = field(default_factory=itertools.count)
    _session: Any = None  # one boto3 session: a new one loads every service model again

    def client(self, service: str, url: str | None = None, **config: Any) -> Any:
        """A new boto3 client for `service` through `url` (default: the server itself)."""
        import boto3
        from botocore.config import Config

        if self._session is None:
            self._session = boto3.session.Session(region_name=REGION, **CREDENTIALS)
        return self._session.client(
            service, endpoint_url=url or self.url, config=Config(**config) if config else None
        )

    def unique(self, prefix: str) -> str:
        """A name no other test of the session uses."""
        return f"{prefix}-{next(self._names)}"

    def sagemaker_endpoint(
        self, prefix: str, versions: Sequence[str], template: str = "v{version}"
    ) -> str:
        """A new endpoint whose production variants serve `versions` (a model each, named
        by `template`), the first at weight 1 and the others at 0: the baseline alone."""
        client = self.client("sagemaker")
        name = self.unique(prefix)
        variants = []
        for index, version in enumerate(versions):
            model = f"{name}-model-{version}"
            client.create_model(
                ModelName=model,
                PrimaryContainer={"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/m:1"},
                ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker",
            )
            variants.append(
                {
                    "VariantName": template.format(version=version),
                    "ModelName": model,
                    "InitialInstanceCount": 1,
                    "InstanceType": INSTANCE_TYPE,
                    "InitialVariantWeight": 1.0 if index == 0 else 0.0,
                }
            )
        client.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants)
        client.create_endpoint(EndpointName=name, EndpointConfigName=name)
        return name


def _add_or_overwrite_tags(backend: Any, arn: str, tags: list[dict[str, str]]) -> Any:
    """SageMaker's AddTags as AWS documents it ("adds or overwrites"); moto's appends a
    second tag under a key it has, and its ListTags paging then loops on the repeated key."""
    resource = backend._get_resource_from_arn(arn)
    keys = {tag["Key"] for tag in tags}
    resource.tags = [tag for tag in resource.tags if tag["Key"] not in keys] + list(tags)
    return resource.tags


@contextmanager
def running_moto_server() -> Iterator[MotoServer]:
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    appending = SageMakerModelBackend.add_tags
    SageMakerModelBackend.add_tags = _add_or_overwrite_tags  # type: ignore[method-assign]
    server.start()
    try:
        yield MotoServer(f"http://127.0.0.1:{port}")
    finally:
        server.stop()
        SageMakerModelBackend.add_tags = appending  # type: ignore[method-assign]
