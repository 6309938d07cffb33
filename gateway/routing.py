"""Which version answers a request: hash buckets, audience rules and mirroring.

A routing key is hashed into one of 10,000 buckets; the candidate owns the
lowest `round(weight * 10_000)` of them. Raising the weight only adds buckets,
so a key that saw the candidate keeps seeing it as the rollout widens.
Requests are also counted per hash group of their key (`bucket % ROUTING_GROUPS`),
the units the rate gates randomise over when events cluster by key.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gray.controller.types import ROUTING_GROUPS, Audience, RouteSpec

BUCKETS = 10_000

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def bucket_of(key: str) -> int:
    """A stable bucket in [0, BUCKETS) for a routing key, the same in every process."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def group_of(key: str) -> int:
    """The hash group of a routing key: every request of a key lands in the same group, and
    groups interleave over the buckets, so the candidate's lowest buckets hold a near-equal
    share of every group at any weight."""
    return bucket_of(key) % ROUTING_GROUPS


def parse_address(text: str | None) -> IPAddress | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def parse_networks(cidrs: tuple[str, ...] | list[str]) -> tuple[IPNetwork, ...]:
    """CIDR strings to networks; raises ValueError naming the bad one."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise ValueError(f"{cidr!r} is not a network in CIDR notation") from None
    return tuple(networks)


def address_in(address: IPAddress | None, networks: tuple[IPNetwork, ...]) -> bool:
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


@dataclass(frozen=True)
class AudienceRule:
    """An Audience compiled for fast matching (header names lower-cased)."""

    networks: tuple[IPNetwork, ...]
    headers: tuple[tuple[str, frozenset[str]], ...]

    @classmethod
    def compile(cls, audience: Audience) -> AudienceRule:
        return cls(
            networks=parse_networks(audience.cidr),
            headers=tuple((name.lower(), frozenset(values)) for name, values in audience.headers),
        )

    def matches(self, address: IPAddress | None, headers: Mapping[str, str]) -> bool:
        if self.networks and not address_in(address, self.networks):
            return False
        for name, allowed in self.headers:
            value = headers.get(name)
            if value is None or value not in allowed:
                return False
        return True


@dataclass(frozen=True)
class Decision:
    """Who answers a request (`role` is "baseline" or "candidate"), the hash group of its
    routing key (`group`, counted per group), and whether to mirror it."""

    version: str
    role: str
    group: int
    mirror_to: str | None = None


@dataclass(frozen=True)
class CompiledRoute:
    """A RouteSpec turned into what the request path needs, built once per route write."""

    spec: RouteSpec
    candidate_buckets: int
    audience: AudienceRule

    @classmethod
    def compile(cls, spec: RouteSpec) -> CompiledRoute:
        buckets = round(spec.weight * BUCKETS) if spec.candidate else 0
        return cls(
            spec=spec, candidate_buckets=buckets, audience=AudienceRule.compile(spec.audience)
        )

    @property
    def sends_to_candidate(self) -> bool:
        return self.spec.candidate is not None and (
            self.candidate_buckets > 0 or self.spec.mirror > 0
        )

    def decide(
        self,
        key: str,
        address: IPAddress | None,
        headers: Mapping[str, str],
        draw: Callable[[], float] = random.random,
    ) -> Decision:
        """Route one request. `headers` must have lower-case names."""
        spec = self.spec
        bucket = bucket_of(key)
        group = bucket % ROUTING_GROUPS
        if not self.sends_to_candidate or spec.candidate is None:
            return Decision(spec.baseline, "baseline", group)
        if not self.audience.matches(address, headers):
            return Decision(spec.baseline, "baseline", group)
        if bucket < self.candidate_buckets:
            return Decision(spec.candidate, "candidate", group)
        # Mirroring picks requests, not keys: the share of requests is what the plan sets.
        if spec.mirror > 0 and draw() < spec.mirror:
            return Decision(spec.baseline, "baseline", group, mirror_to=spec.candidate)
        return Decision(spec.baseline, "baseline", group)
