"""The HAProxy configuration gray needs, as text an operator pastes into haproxy.cfg.

Three things, each for a reason:
- a runtime API socket at `level admin`: gray sets weights and its lease through it;
- the lease map loaded by the backend (an empty file that must exist): HAProxy's runtime
  API can change only maps the config loads, and gray keeps the lease there;
- `balance hdr(<routing header>)` with `hash-type consistent`: a user (one header value)
  stays on one server while weights move, and only the share of users the weight change
  moves switches server. `map-based` hashing would reshuffle everyone at every change
  and ignores weight changes other than to 0. Requests without the header are balanced
  round robin.
"""

from __future__ import annotations

from collections.abc import Mapping

from gray.controller.routers.haproxy import DEFAULT_LEASE_MAP

DEFAULT_ROUTING_HEADER = "X-Routing-Key"
DEFAULT_SOCKET = "/run/haproxy/admin.sock"


def config_snippet(
    backend: str,
    servers: Mapping[str, str],
    *,
    routing_header: str = DEFAULT_ROUTING_HEADER,
    lease_map: str = DEFAULT_LEASE_MAP,
    runtime_socket: str = DEFAULT_SOCKET,
    candidate: str | None = None,
) -> str:
    """The `global` lines and the backend for `servers` (name → address); `candidate`
    names the server that starts with weight 0, so no traffic reaches it before gray
    writes a route. The text is a working configuration part: tests start HAProxy on it."""
    lines = [
        "global",
        "    # gray sets weights and keeps its lease through the runtime API",
        f"    stats socket {runtime_socket} mode 600 level admin",
        "",
        f"backend {backend}",
        "    mode http",
        f"    # one user ({routing_header}) stays on one server while the weights move",
        f"    balance hdr({routing_header})",
        "    hash-type consistent",
        f"    # loads gray's lease map (create it empty: touch {lease_map})",
        f"    http-request set-var(txn.gray_lease) be_name,map({lease_map})",
    ]
    for name, address in servers.items():
        weight = 0 if name == candidate else 256
        lines.append(f"    server {name} {address} weight {weight}")
    return "\n".join(lines) + "\n"
