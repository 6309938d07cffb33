"""What gray keeps inside HAProxy beside the weights: the lease, its expiry, the route as
written and which server serves which version, as one map entry per backend.

HAProxy's weights say only how traffic splits between servers. The rest of a route
(the versions, the share as the plan wrote it) and the lease that fences writers must
live somewhere every controller reaches, and HAProxy's runtime API holds maps: the
entry's key is the backend name and its value a URL-encoded form (no spaces, no `;`,
which the runtime API would read as separators).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from gray.controller.errors import RouteNotSupportedError, RouterError
from gray.controller.types import Lease, RouteSpec

FORMAT_VERSION = "1"
MAX_WEIGHT = 256  # HAProxy's absolute server weights run from 0 to 256
SERVER_PREFIX = "server."


@dataclass(frozen=True)
class Weights:
    """The absolute HAProxy weights of the baseline's and the candidate's servers."""

    baseline: int
    candidate: int

    @property
    def share(self) -> float:
        """The share of requests the candidate answers with these weights."""
        total = self.baseline + self.candidate
        return self.candidate / total if total else 0.0


def weights_for(route: RouteSpec) -> Weights:
    """The weights closest to `route`'s share, the larger side at HAProxy's maximum (256)
    so the share is as fine as HAProxy allows. A share that would round to 0 % or 100 %
    is refused rather than silently moving no traffic, or all of it."""
    if route.mirror > 0:
        raise RouteNotSupportedError(
            f"HAProxy cannot mirror requests (the route asks to copy {route.mirror:.2%} of "
            "them to the candidate): its load balancing sends each request to one server. Use "
            "gray's gateway for a shadow stage, or give the stage a weight instead"
        )
    if not route.audience.is_everyone:
        raise RouteNotSupportedError(
            "HAProxy weights split all of a backend's traffic; an audience (cidr or header "
            "rules) needs routing rules in HAProxy's config, which gray does not write. Remove "
            "the stage's audience, or use gray's gateway"
        )
    share = route.weight if route.candidate is not None else 0.0
    if share <= 0:
        return Weights(MAX_WEIGHT, 0)
    if share >= 1:
        return Weights(0, MAX_WEIGHT)
    if share <= 0.5:
        weights = Weights(MAX_WEIGHT, round(MAX_WEIGHT * share / (1 - share)))
    else:
        weights = Weights(round(MAX_WEIGHT * (1 - share) / share), MAX_WEIGHT)
    if weights.baseline == 0 or weights.candidate == 0:
        smallest = 1 / (MAX_WEIGHT + 1)
        raise RouteNotSupportedError(
            f"HAProxy cannot send {share:.3%} of requests to the candidate: its weights "
            f"(0 to {MAX_WEIGHT}) split traffic no finer than {smallest:.2%} and "
            f"{1 - smallest:.2%}"
        )
    return weights


@dataclass(frozen=True)
class LeaseRecord:
    """The lease in force on one backend and the route it wrote.

    `expires_at` is a unix time (None: the route is held with no expiry); `servers` maps
    a server name to the version it serves, as far as gray has bound them.
    """

    lease: Lease
    route: RouteSpec
    expires_at: float | None = None
    servers: dict[str, str] = field(default_factory=dict)
    # This lease was written by gray on finding the previous one past its expiry.
    after_expiry: bool = False

    def server_of(self, version: str) -> str | None:
        return next((name for name, served in self.servers.items() if served == version), None)

    def encode(self) -> str:
        fields = [
            ("v", FORMAT_VERSION),
            ("rollout", self.lease.rollout_id),
            ("epoch", str(self.lease.epoch)),
            ("expires", "hold" if self.expires_at is None else f"{self.expires_at:.3f}"),
            ("baseline", self.route.baseline),
            ("candidate", self.route.candidate or ""),
            ("weight", repr(self.route.weight)),
            ("after_expiry", "1" if self.after_expiry else "0"),
        ]
        fields += [(SERVER_PREFIX + name, served) for name, served in sorted(self.servers.items())]
        return urlencode(fields)

    @classmethod
    def decode(cls, text: str, where: str) -> LeaseRecord:
        """Read a record back; RouterError naming `where` when it is not one gray wrote."""
        data = dict(parse_qsl(text, keep_blank_values=True))
        if data.get("v") != FORMAT_VERSION:
            raise RouterError(
                f"{where} holds {text!r}, not a lease record of format {FORMAT_VERSION}"
            )
        try:
            expires = data["expires"]
            return cls(
                lease=Lease(data["rollout"], int(data["epoch"])),
                route=RouteSpec(
                    baseline=data["baseline"],
                    candidate=data["candidate"] or None,
                    weight=float(data["weight"]),
                ),
                expires_at=None if expires == "hold" else float(expires),
                servers={
                    name.removeprefix(SERVER_PREFIX): version
                    for name, version in data.items()
                    if name.startswith(SERVER_PREFIX)
                },
                after_expiry=data.get("after_expiry") == "1",
            )
        except (KeyError, ValueError) as error:
            raise RouterError(
                f"{where} holds an unreadable lease record {text!r}: {error!r}"
            ) from None
