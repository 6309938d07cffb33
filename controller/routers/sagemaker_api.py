"""The SageMaker API calls the router makes on one endpoint, through a boto3 client: each
call's failures as gray's router errors, the bounded wait while the endpoint updates,
its variants' weights and its tags."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from gray.controller.errors import EndpointUnreachableError, RouterError

POLL_FIRST_SECONDS = 0.05
POLL_MAX_SECONDS = 5.0
IN_SERVICE = "InService"
UPDATING = ("Updating", "SystemUpdating", "Creating")
TAGS_PER_PAGE = 100


class EndpointApi:
    """One endpoint's API calls; `sleep` and `monotonic` let tests run the waits at once."""

    def __init__(
        self,
        client: Any,
        endpoint: str,
        update_timeout: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.endpoint = endpoint
        self.update_timeout = update_timeout
        self._sleep = sleep
        self._monotonic = monotonic
        self._arn: str | None = None

    @property
    def where(self) -> str:
        return f"SageMaker endpoint {self.endpoint!r}"

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """One SageMaker API call (boto3 retries throttling and transport errors itself,
        as its client was configured); failures become gray's router errors."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
        )

        try:
            return dict(getattr(self.client, operation)(**params))
        except ClientError as error:
            details = error.response.get("Error", {})
            code, message = details.get("Code", "?"), details.get("Message", "")
            raise RouterError(f"{self.where}: {operation} refused ({code}): {message}") from None
        except NoCredentialsError:
            raise RouterError(
                f"{self.where}: no AWS credentials found (set AWS_PROFILE, the AWS_ACCESS_KEY_ID "
                "pair, or run where a role is attached)"
            ) from None
        except (ConnectionError, HTTPClientError) as error:  # refused, reset, timed out
            raise EndpointUnreachableError(
                f"{self.where}: the SageMaker API did not answer {operation}: {error}"
            ) from None
        except BotoCoreError as error:
            raise RouterError(f"{self.where}: {operation} failed: {error}") from None

    def describe(self) -> dict[str, Any]:
        endpoint = self.call("describe_endpoint", EndpointName=self.endpoint)
        self._arn = str(endpoint["EndpointArn"])
        return endpoint

    def wait_in_service(self) -> dict[str, Any]:
        """DescribeEndpoint once the endpoint is no longer updating (bounded)."""
        deadline = self._monotonic() + self.update_timeout
        pause = POLL_FIRST_SECONDS
        while True:
            endpoint = self.describe()
            status = endpoint.get("EndpointStatus")
            if status == IN_SERVICE:
                return endpoint
            if status not in UPDATING:
                reason = endpoint.get("FailureReason") or "no reason given"
                raise RouterError(f"{self.where} is {status}: {reason}")
            if self._monotonic() >= deadline:
                raise RouterError(
                    f"{self.where} is still {status} after {self.update_timeout:g}s; gray waits "
                    "for it to be InService before and after writing weights"
                )
            self._sleep(pause)
            pause = min(pause * 2, POLL_MAX_SECONDS)

    def update_weights(self, weights: Mapping[str, float]) -> None:
        self.call(
            "update_endpoint_weights_and_capacities",
            EndpointName=self.endpoint,
            DesiredWeightsAndCapacities=[
                {"VariantName": name, "DesiredWeight": weight} for name, weight in weights.items()
            ],
        )

    def tags(self) -> dict[str, str]:
        """Every tag of the endpoint, by key."""
        tags: dict[str, str] = {}
        params: dict[str, Any] = {
            "ResourceArn": self._arn_of_endpoint(),
            "MaxResults": TAGS_PER_PAGE,
        }
        seen: set[str] = set()
        while True:
            page = self.call("list_tags", **params)
            tags.update({str(t["Key"]): str(t.get("Value", "")) for t in page.get("Tags") or ()})
            token = page.get("NextToken")
            if not token:
                return tags
            if token in seen:  # a listing that pages in a circle would never end
                raise RouterError(f"{self.where}: ListTags answered a page token twice")
            seen.add(token)
            params["NextToken"] = token

    def add_tags(self, tags: list[dict[str, str]]) -> None:
        self.call("add_tags", ResourceArn=self._arn_of_endpoint(), Tags=tags)

    def _arn_of_endpoint(self) -> str:
        if self._arn is None:
            self.describe()
        assert self._arn is not None
        return self._arn


def variant_names(endpoint: Mapping[str, Any]) -> list[str]:
    """The production variants of a DescribeEndpoint answer, in its order."""
    return [str(v["VariantName"]) for v in endpoint.get("ProductionVariants") or ()]


def current_weights(endpoint: Mapping[str, Any]) -> dict[str, float]:
    """Each production variant's `CurrentWeight` (absent: 0) in a DescribeEndpoint answer."""
    return {
        str(v["VariantName"]): float(v.get("CurrentWeight") or 0.0)
        for v in endpoint.get("ProductionVariants") or ()
    }
