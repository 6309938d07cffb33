"""Request bodies of the admin API; anything that does not fit is answered 422."""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gray.controller.types import Audience, Lease, RouteSpec


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_version(value: str) -> str:
    text = value.strip()
    if not text or text.startswith("@") or "/" in text:
        raise ValueError("a version is a registry version number such as '3', not an alias")
    return text


class AudienceBody(_Body):
    cidr: list[str] = Field(default_factory=list)
    headers: dict[str, str | list[str]] = Field(default_factory=dict)

    @field_validator("cidr")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not a network in CIDR notation") from None
        return value


class RouteBody(_Body):
    baseline: str
    candidate: str | None = None
    weight: float = Field(default=0.0, ge=0.0, le=1.0)
    mirror: float = Field(default=0.0, ge=0.0, le=1.0)
    audience: AudienceBody | None = None

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, value: str) -> str:
        return _check_version(value)

    @field_validator("candidate")
    @classmethod
    def _candidate(cls, value: str | None) -> str | None:
        return None if value in (None, "") else _check_version(value)

    @model_validator(mode="after")
    def _pair(self) -> RouteBody:
        if self.candidate is None and (self.weight > 0 or self.mirror > 0):
            raise ValueError("weight or mirror above 0 needs a candidate")
        if self.candidate is not None and self.candidate == self.baseline:
            raise ValueError("baseline and candidate must be different versions")
        return self

    def to_spec(self) -> RouteSpec:
        audience = self.audience.model_dump() if self.audience else None
        return RouteSpec(
            baseline=self.baseline,
            candidate=self.candidate,
            weight=self.weight,
            mirror=self.mirror,
            audience=Audience.from_dict(audience),
        )


class LeaseBody(_Body):
    rollout_id: str = Field(min_length=1)
    epoch: int = Field(ge=0)

    def to_lease(self) -> Lease:
        return Lease(rollout_id=self.rollout_id, epoch=self.epoch)


MAX_LEASE_TTL_SECONDS = 7 * 24 * 3600.0


class PutRouteBody(_Body):
    """A route and its lease; candidate traffic needs `ttl` (renewed by the writer) or `hold`."""

    route: RouteBody
    lease: LeaseBody
    ttl: float | None = Field(default=None, gt=0, le=MAX_LEASE_TTL_SECONDS)
    hold: bool = False

    @model_validator(mode="after")
    def _one_term(self) -> PutRouteBody:
        if self.hold and self.ttl is not None:
            raise ValueError('send "ttl" (expires unless renewed) or "hold": true, not both')
        return self


class RenewBody(_Body):
    """Extend the lease in force by `ttl` seconds from now."""

    lease: LeaseBody
    ttl: float = Field(gt=0, le=MAX_LEASE_TTL_SECONDS)


class RollbackBody(_Body):
    lease: LeaseBody | None = None


class LabelBody(_Body):
    request_id: str = Field(min_length=1)
    label: Any


class FeedbackBody(_Body):
    """One label, or many under `labels`."""

    request_id: str | None = None
    label: Any = None
    labels: list[LabelBody] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> FeedbackBody:
        single = self.request_id is not None
        if single == (self.labels is not None):
            raise ValueError('send either "request_id" with "label", or "labels": [...]')
        if single and self.label is None:
            raise ValueError('"label" is required')
        return self
