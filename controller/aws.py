"""boto3 clients for the AWS adapters (the SageMaker router, the CloudWatch source).

boto3 is the `aws` extra: it is imported here, when a plan's adapter is built, never
by a command that does not drive AWS. Credentials and the region come from boto3's
usual chain (environment, `AWS_PROFILE`, an attached role); a plan may name the region
and, for a VPC endpoint or an emulator, the API's address.
"""

from __future__ import annotations

from typing import Any

from gray.controller.extras import require_extra

# boto3's "standard" retry mode: throttling and transport errors retried with backoff.
DEFAULT_ATTEMPTS = 3


def aws_client(
    service: str,
    *,
    region: str | None,
    endpoint_url: str | None,
    timeout: float,
    attempts: int = DEFAULT_ATTEMPTS,
) -> Any:
    """A boto3 client for `service` with bounded timeouts and retries."""
    require_extra("aws", f"a plan that drives {service}")
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": attempts, "mode": "standard"},
    )
    session = boto3.session.Session(region_name=region)
    return session.client(service, endpoint_url=endpoint_url, config=config)
