"""What gray keeps on a SageMaker endpoint beside its variants' weights: which variant
serves which model version, the weights a route maps to, and the lease record held in
the endpoint's tags.

No AWS SDK here: the plan block checks routes with the very rules the router writes
them by, and `gray plan validate` must not need boto3.

Variants are named after versions by a template (`fraud-v{version}`): the endpoint
then says by itself which version each variant serves, a promoted candidate's variant
is the next rollout's baseline without editing the plan, and a new version needs
only a variant of its name (deployed with an endpoint config update, which gray
does not make).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from gray.controller.errors import RouteNotSupportedError, RouterError
from gray.controller.types import Lease, RouteSpec

# SageMaker's VariantName: letters, digits and hyphens, at most 63, no leading hyphen.
VARIANT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
TAG_PREFIX = "gray:"
FORMAT_VERSION = "1"
_FIELDS = ("format", "rollout", "epoch", "expires", "baseline", "candidate", "weight", "expired")


@dataclass(frozen=True)
class VariantNames:
    """Version ↔ production variant name, by a template holding `{version}` once."""

    template: str

    def __post_init__(self) -> None:
        if self.template.count("{version}") != 1:
            raise ValueError('must contain {version} once, as in "fraud-v{version}"')
        try:
            sample = self.template.format(version="1")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"use {{version}} and no other field: {error}") from None
        if not VARIANT_NAME.match(sample):
            raise ValueError(
                f"gives variant names such as {sample!r}, which SageMaker refuses: a variant "
                "name is letters, digits and hyphens (at most 63), starting with a letter or digit"
            )

    def name_of(self, version: str) -> str:
        return self.template.format(version=version)

    def version_of(self, name: str) -> str | None:
        """The version a variant of this name serves (None: not named by the template)."""
        before, _, after = self.template.partition("{version}")
        found = re.fullmatch(re.escape(before) + r"(\d+)" + re.escape(after), name)
        return found.group(1) if found else None


def weights_for(route: RouteSpec, variants: VariantNames) -> dict[str, float]:
    """The production variants' weights for `route`: the baseline's variant 1 − w, the
    candidate's w. SageMaker splits each request by weight alone: a mirror (it copies
    requests only to a shadow variant) and an audience are refused before any write."""
    if route.mirror > 0:
        raise RouteNotSupportedError(
            f"SageMaker cannot mirror {route.mirror:.2%} of requests between two production "
            "variants: it copies requests only to an endpoint's shadow variant, and an "
            "endpoint config with a shadow variant has exactly one production variant, so it "
            "could not also split answers between the two versions. Give the stage a weight "
            "instead, or run the shadow stage on gray's gateway"
        )
    if not route.audience.is_everyone:
        raise RouteNotSupportedError(
            "SageMaker routes each request to a production variant by weight alone (or by "
            "the caller's TargetVariant); it has no rules on headers or client addresses. "
            "Remove the stage's audience, or use gray's gateway"
        )
    share = route.weight if route.candidate is not None else 0.0
    weights = {variants.name_of(route.baseline): 1.0 - share}
    if route.candidate is not None:
        weights[variants.name_of(route.candidate)] = share
    return weights


@dataclass(frozen=True)
class LeaseTags:
    """The lease in force on an endpoint and the route it wrote, kept as endpoint tags.

    `expires_at` is a unix time (None: held with no expiry); `after_expiry` marks a lease
    gray wrote on finding the previous one past its expiry.
    """

    lease: Lease
    route: RouteSpec
    expires_at: float | None = None
    after_expiry: bool = False

    def to_tags(self) -> list[dict[str, str]]:
        values = {
            "format": FORMAT_VERSION,
            "rollout": self.lease.rollout_id,
            "epoch": str(self.lease.epoch),
            "expires": "hold" if self.expires_at is None else f"{self.expires_at:.3f}",
            "baseline": self.route.baseline,
            "candidate": self.route.candidate or "",
            "weight": repr(self.route.weight),
            "expired": "1" if self.after_expiry else "0",
        }
        return [{"Key": TAG_PREFIX + name, "Value": values[name]} for name in _FIELDS]

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], where: str) -> LeaseTags | None:
        """The record in an endpoint's tags (None: gray has not written one); RouterError
        naming `where` when the tags are not a record gray wrote."""
        ours = {k.removeprefix(TAG_PREFIX): v for k, v in tags.items() if k.startswith(TAG_PREFIX)}
        if not ours:
            return None
        if ours.get("format") != FORMAT_VERSION:
            raise RouterError(
                f"{where} has tags {sorted(ours)} that are not a lease record of format "
                f"{FORMAT_VERSION}; remove the {TAG_PREFIX}* tags only if no rollout is running"
            )
        try:
            expires = ours["expires"]
            return cls(
                lease=Lease(ours["rollout"], int(ours["epoch"])),
                route=RouteSpec(
                    baseline=ours["baseline"],
                    candidate=ours["candidate"] or None,
                    weight=float(ours["weight"]),
                ),
                expires_at=None if expires == "hold" else float(expires),
                after_expiry=ours.get("expired") == "1",
            )
        except (KeyError, ValueError) as error:
            raise RouterError(f"{where} holds an unreadable lease record: {error!r}") from None
