"""The counters of a gateway fleet: every replica's `/admin/stats`, summed.

Each replica is read by its own `GatewayMetrics`, which already follows that
replica's restarts (its `started_at`): what it counted before a restart is
carried and added on, so no request is counted twice. The sum is then simply
the sum of the replicas' series.

A replica that does not answer at a look contributes its last reading, so the
sum never goes backwards (which the gates would read as a reset) and nothing it
counted is dropped; when it answers again its own series carries on, restart or
not. What a replica counted after its last reading and before a kill is gone with
its process: no source reading `/admin/stats` can recover it. A replica never
read yet has no last reading, and when every replica fails the look has no data:
both raise `MetricsError`, never a sum that silently leaves counters out.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from gray.controller.errors import MetricsError
from gray.controller.metrics.gateway import GatewayMetrics, add_snapshots
from gray.controller.types import Pair, Snapshot


class GatewayFleetMetrics:
    """Sums the counters of every replica of `replicas` (see the module's text)."""

    def __init__(self, replicas: Sequence[GatewayMetrics]) -> None:
        if not replicas:
            raise ValueError("a gateway fleet needs at least one replica")
        self.replicas = tuple(replicas)
        self._pair: Pair | None = None
        self._last: dict[str, Snapshot] = {}  # each replica's last reading, by url
        self.missing: tuple[str, ...] = ()  # replicas carried at the last look, failures said

    def close(self) -> None:
        for replica in self.replicas:
            replica.close()

    def __enter__(self) -> GatewayFleetMetrics:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def snapshot(self, versions: Pair) -> Snapshot:
        if versions != self._pair:
            self._pair, self._last = versions, {}
        readings = self._read_all(versions)
        failures = {url: found for url, found in readings.items() if isinstance(found, str)}
        if len(failures) == len(self.replicas):
            raise MetricsError("no gateway replica answered: " + "; ".join(failures.values()))
        never_read = [url for url in failures if url not in self._last]
        if never_read:
            raise MetricsError(
                "gateway replicas not read yet, so their counters cannot be summed: "
                + "; ".join(failures[url] for url in never_read)
            )
        for url, found in readings.items():
            if isinstance(found, Snapshot):
                self._last[url] = found
        self.missing = tuple(failures.values())
        return _sum([self._last[replica.url] for replica in self.replicas])

    def _read_all(self, versions: Pair) -> dict[str, Snapshot | str]:
        """Every replica read at once: its snapshot, or why it failed."""
        found: dict[str, Snapshot | str] = {}

        def read(replica: GatewayMetrics) -> None:
            try:
                found[replica.url] = replica.snapshot(versions)
            except MetricsError as error:
                found[replica.url] = error.message

        threads = [threading.Thread(target=read, args=(r,), daemon=True) for r in self.replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return found


def _sum(snapshots: list[Snapshot]) -> Snapshot:
    total = snapshots[0]
    for snapshot in snapshots[1:]:
        total = add_snapshots(total, snapshot)
    # The look's time is the newest reading's: a carried reading is older, not newer.
    return replace(total, taken_at=max(s.taken_at for s in snapshots))
