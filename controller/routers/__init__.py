"""Serving-endpoint adapters behind the `Router` protocol (`base.py`).

A router type is a `RouterSpec` subclass (the plan block's fields) whose `build`
makes its adapter; `plugins.ROUTER_TYPES` finds it by the plan's `type`, gray's own
`gateway` (`gateway_spec.py`, adapter in `gateway.py`) or one another package
declares in the `gray.routers` entry-point group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gray.controller.plan.models import Plan, RouterSpec
    from gray.controller.routers.base import Router


def build_router(spec: RouterSpec, plan: Plan | None = None) -> Router:
    """The adapter for a plan's `router:` block (validated, so its type is known); with
    the `plan` it belongs to, for a type that needs the plan's model or registry."""
    return spec.build() if plan is None else spec.build_for(plan)
