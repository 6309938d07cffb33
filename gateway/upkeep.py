"""The gateway's own clock-driven duties, each on its own background thread.

- A lease whose time-to-live ran out sends everything back to the baseline
  (checked every `LEASE_CHECK_SECONDS`, so the baseline is back within that of the expiry).
- Every `verify_interval` seconds the preprocessor tags of the ready versions are read
  again; a version whose tag changed is reloaded (see `ModelManager.revalidate`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from gray.gateway.models import ModelManager
from gray.gateway.route_state import RouteStore

log = logging.getLogger("gray.gateway")

LEASE_CHECK_SECONDS = 0.1


class Upkeep:
    def __init__(self, routes: RouteStore, models: ModelManager, verify_interval: float) -> None:
        self._routes = routes
        self._models = models
        self._stop = threading.Event()
        # Apart, so that a slow registry never delays an expiry.
        self._threads = (
            threading.Thread(
                target=self._every,
                args=(LEASE_CHECK_SECONDS, self._routes.expire_if_due),
                name="gray-lease-expiry",
                daemon=True,
            ),
            threading.Thread(
                target=self._every,
                args=(verify_interval, self._models.revalidate_all),
                name="gray-preprocessor-check",
                daemon=True,
            ),
        )

    def start(self) -> None:
        # A route restored from disk may have expired while the gateway was down.
        self._routes.expire_if_due()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=1)

    def _every(self, seconds: float, duty: Callable[[], object]) -> None:
        while not self._stop.wait(seconds):
            try:
                duty()
            except Exception:
                # A failed duty is tried again at the next tick; the thread must not die.
                log.exception("gateway upkeep failed")
