"""A sample of mirrored pairs whose answers disagree, from the gateway's prediction log.

The gateway keeps its newest prediction-log records in memory and serves them at
`/admin/samples` (admin token); the report asks every replica the plan's router
names. The log is reachable only while the gateway runs and only for gray's own
gateway, so a report without it says why instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from gray.controller.errors import GrayError
from gray.controller.plan.models import Plan
from gray.controller.redact import redact

SHOWN = 20  # disagreeing pairs a report lists
ASKED = 1000  # records asked of each replica: all the gateway keeps in memory
TIMEOUT_SECONDS = 3.0  # a report never waits long for a gateway that went away


@dataclass(frozen=True)
class DisagreeingPairs:
    pairs: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""  # why there are none, or where they came from


def from_gateway(
    plan: Plan, candidate: str, transport: httpx.BaseTransport | None = None
) -> DisagreeingPairs:
    """The newest disagreeing pairs of `candidate` the plan's gateway still holds
    (`transport`, as for `GatewayRouter`, lets tests swap the network)."""
    from gray.controller.routers.gateway import GatewayRouter
    from gray.controller.routers.gateway_spec import GatewayRouterSpec

    spec = plan.router
    if not isinstance(spec, GatewayRouterSpec):
        return DisagreeingPairs(
            note=f"a {spec.type} router keeps no prediction log; gray's gateway does"
        )
    found: list[dict[str, Any]] = []
    failures: list[str] = []
    for address in spec.addresses:
        router = GatewayRouter(
            address, spec.token or None, TIMEOUT_SECONDS, retries=0, transport=transport
        )
        try:
            found += router.samples("shadow", candidate, ASKED)
        except GrayError as exc:
            failures.append(redact(exc.message))
        finally:
            router.close()
    return pick(found, failures)


IN_MEMORY = "the gateway still keeps in memory"


def pick(
    records: list[dict[str, Any]], failures: list[str] | None = None, source: str = IN_MEMORY
) -> DisagreeingPairs:
    """The newest `SHOWN` disagreeing pairs among `records` (read from `source`), with a
    note on what was read."""
    disagreeing = [r for r in records if r.get("kind") == "shadow" and r.get("agree") is False]
    disagreeing.sort(key=lambda r: r.get("time") if isinstance(r.get("time"), int | float) else 0)
    shown = disagreeing[-SHOWN:]
    notes = [f"prediction log not reachable: {f}" for f in failures or ()]
    if not shown and not failures:
        notes.append(f"no disagreeing pair among the {len(records)} mirrored pairs {source}")
    elif shown:
        notes.insert(
            0,
            f"the newest {len(shown)} of {len(disagreeing)} disagreeing pairs among the "
            f"{len(records)} mirrored pairs {source}",
        )
    return DisagreeingPairs(shown, "; ".join(notes))
