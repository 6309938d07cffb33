"""The metrics seam: where gray reads per-version counters."""

from __future__ import annotations

from typing import Protocol

from gray.controller.types import Pair, Snapshot


class MetricsSource(Protocol):
    def snapshot(self, versions: Pair) -> Snapshot:
        """Cumulative counters for both versions now. Raises MetricsError when broken."""
        ...
