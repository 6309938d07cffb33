"""Whether a plan's alias moved after the rollout pinned its versions.

The rollout keeps the versions it pinned; a moved alias is only reported (a warning and
an `alias_moved` event), once per message. The check reads MLflow, so it runs on the
journal's background thread when there is one and is reported at the runner's next step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from gray.controller.errors import RegistryError
from gray.controller.journal import Event, EventKind, Journal
from gray.controller.journal.background import BackgroundRemote
from gray.controller.state import RolloutState


class DriftReader(Protocol):
    def drift_from(self, model: Any, baseline: str, candidate: str) -> list[str]: ...


class AliasDrift:
    def __init__(
        self,
        model: Any,
        registry: DriftReader | None,
        journal: Journal,
        background: BackgroundRemote | None,
        on_event: Callable[[Event], None],
        on_warning: Callable[[str], None],
    ) -> None:
        self.model = model
        self.registry = registry
        self.journal = journal
        self.background = background
        self.on_event = on_event
        self.on_warning = on_warning
        self._lock = threading.Lock()
        self._found: list[str] = []
        self._reported: set[str] = set()

    def check(self, state: RolloutState) -> None:
        """Look (in the background when possible) whether a plan alias moved after the pins."""
        registry = self.registry
        if registry is None:
            return

        def check() -> None:
            try:
                messages = registry.drift_from(self.model, state.baseline, state.candidate)
            except RegistryError as exc:
                messages = [f"could not check the aliases: {exc.message}"]
            with self._lock:
                self._found.extend(messages)

        if self.background is not None:
            self.background.submit("check the plan's aliases", check)
        else:
            check()
            self.report(state)

    def report(self, state: RolloutState) -> None:
        """Warn about (and journal) each move found since the last report, once."""
        with self._lock:
            found, self._found = self._found, []
        for message in found:
            if message in self._reported:
                continue
            self._reported.add(message)
            self.on_warning(message)
            if not message.startswith("could not check"):
                self.on_event(self.journal.append(state, EventKind.ALIAS_MOVED, message, {}))
