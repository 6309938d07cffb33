"""The MetricsSource for HAProxy: each version's server counters from `show stat`.

Which server serves which version comes from the record the HAProxy router keeps in
the lease map (`routers/haproxy_record.py`); a version no server is bound to yet
reads as zero counters. Requests are the server's HTTP answers of every class plus
the requests it never answered (`econ`: connection failed, `eresp`: response broken
off; HAProxy answers those 503 or 502 itself and does not count them in the server's
`hrsp_5xx`); errors are its 5xx answers plus those; bad requests its 4xx answers. A
response broken off after its status line was counted is counted twice (once as an
answer, once in `eresp`); a request HAProxy redispatched after a refused connection
counts as a failure of the first server too.

Latency: HAProxy reports per server only averages (`rtime`, `ttime`: the mean over
its last 1024 requests), not how many requests were slower than an edge, so no
latency gate (`latency` with an `slo`, `latency_distribution`) can be fed from it and
a source asked for latency edges is refused. Nor does HAProxy see labels or mirrored
requests (accuracy, wrong predictions, disagreement). The gates it feeds are
`error_rate` and `bad_request_rate`.

HAProxy's counters restart from zero when it restarts, reloads or `clear counters`
runs. This source adds up each server's increments between readings and, when the
process changed or a counter went down, takes the new reading as the increment: the
series it hands to the gates never goes backwards, and what a restart lost between
the last reading and the restart is lost (at most one look's traffic).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gray.controller.errors import ConfigError, MetricsError, RouterError
from gray.controller.routers.haproxy import DEFAULT_LEASE_MAP
from gray.controller.routers.haproxy_record import LeaseRecord
from gray.controller.routers.haproxy_runtime import RuntimeAddress, RuntimeApi
from gray.controller.types import Pair, Snapshot, VersionCounters

ANSWER_CLASSES = ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other")
# Requests the server never answered: HAProxy answers them itself (503 after a refused
# connection, 502 after a broken response) and counts them here, not in the server's 5xx.
FAILURES = ("econ", "eresp")
GATES_FED = ("error_rate", "bad_request_rate")


@dataclass(frozen=True)
class ServerCounters:
    """One server's cumulative answers, as HAProxy counts them."""

    requests: int = 0
    errors: int = 0
    bad_requests: int = 0

    def plus(self, other: ServerCounters) -> ServerCounters:
        return ServerCounters(
            self.requests + other.requests,
            self.errors + other.errors,
            self.bad_requests + other.bad_requests,
        )

    def minus(self, other: ServerCounters) -> ServerCounters:
        return ServerCounters(
            self.requests - other.requests,
            self.errors - other.errors,
            self.bad_requests - other.bad_requests,
        )

    def went_down_from(self, earlier: ServerCounters) -> bool:
        return min(self.minus(earlier).__dict__.values()) < 0


class HaproxyMetrics:
    """Reads one backend's per-server counters through HAProxy's runtime API."""

    def __init__(
        self,
        runtime_api: str,
        backend: str,
        *,
        lease_map: str = DEFAULT_LEASE_MAP,
        slo_edges: Iterable[float] = (),
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        edges = sorted(set(slo_edges))
        if edges:
            listed = ", ".join(f"{edge * 1000:g}ms" for edge in edges)
            raise ConfigError(
                f"metrics type haproxy cannot count requests slower than {listed}: HAProxy "
                "reports only average response times per server. It feeds the "
                f"{' and '.join(GATES_FED)} gates; take latency from the gateway or Prometheus"
            )
        self.api = RuntimeApi(RuntimeAddress.parse(runtime_api), timeout)
        self.backend = backend
        self.lease_map = lease_map
        self._clock = clock
        self._process: tuple[str, str] | None = None
        self._last_raw: dict[str, ServerCounters] = {}
        self._totals: dict[str, ServerCounters] = {}
        # version -> server, as last read from the router's record: a restarted HAProxy
        # comes back without the record, and its counters still belong to the same versions.
        self._servers: dict[str, str] = {}

    def close(self) -> None:
        """Nothing to release: every command opens and closes its own connection."""

    def snapshot(self, versions: Pair) -> Snapshot:
        try:
            process = self.api.process_started()
            rows = self.api.stat_rows()
            text = self.api.map_get(self.lease_map, self.backend)
            record = LeaseRecord.decode(text, self.lease_map) if text is not None else None
        except RouterError as error:
            raise MetricsError(f"cannot read HAProxy's counters: {error.message}") from None
        taken_at = self._clock()
        totals = self._accumulate(process, self._server_rows(rows))
        if record is not None:
            self._servers.update({version: name for name, version in record.servers.items()})

        def counters(version: str) -> VersionCounters:
            total = totals.get(self._servers.get(version, ""), ServerCounters())
            return VersionCounters(
                requests=total.requests, errors=total.errors, bad_requests=total.bad_requests
            )

        return Snapshot(
            taken_at=taken_at,
            baseline=counters(versions.baseline),
            candidate=counters(versions.candidate),
        )

    def _server_rows(self, rows: list[dict[str, str]]) -> dict[str, ServerCounters]:
        servers: dict[str, ServerCounters] = {}
        for row in rows:
            if row.get("pxname") != self.backend or row.get("svname") in ("BACKEND", "FRONTEND"):
                continue
            try:
                answers = {name: int(row.get(name) or 0) for name in ANSWER_CLASSES + FAILURES}
            except ValueError as error:
                raise MetricsError(
                    f"HAProxy at {self.api.address} answered unreadable counters for "
                    f"{self.backend}/{row.get('svname')}: {error}"
                ) from None
            servers[row["svname"]] = ServerCounters(
                requests=sum(answers.values()),
                errors=answers["hrsp_5xx"] + sum(answers[name] for name in FAILURES),
                bad_requests=answers["hrsp_4xx"],
            )
        if not servers:
            raise MetricsError(f"HAProxy at {self.api.address} has no backend {self.backend!r}")
        return servers

    def _accumulate(
        self, process: tuple[str, str], raw: dict[str, ServerCounters]
    ) -> dict[str, ServerCounters]:
        """Add each server's increment since the last reading to its running total."""
        restarted = self._process is not None and process != self._process
        self._process = process
        for server, reading in raw.items():
            last = self._last_raw.get(server)
            if last is None:
                total = reading  # the first reading: HAProxy's count so far, as it is
            elif restarted or reading.went_down_from(last):
                total = self._totals[server].plus(reading)  # counting started again at zero
            else:
                total = self._totals[server].plus(reading.minus(last))
            self._totals[server] = total
            self._last_raw[server] = reading
        return dict(self._totals)
