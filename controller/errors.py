"""Every error a gray user can meet, as one tree.

    GrayError                      base; `exit_code` says how the CLI leaves
    ├── PlanError                  a plan file is unreadable or invalid (exit 2)
    ├── ConfigError                bad command-line input or settings (exit 2)
    │   └── MissingExtraError      the command needs an optional part of the install (exit 2)
    ├── RegistryError              MLflow unreachable or answered an error (exit 4)
    │   ├── ModelNotFoundError     no such registered model or version (exit 2)
    │   ├── AliasNotFoundError     no such alias on the model (exit 2)
    │   ├── VersionNotReadyError   the version's status is not READY (exit 2)
    │   ├── SameVersionError       baseline and candidate are one version (exit 2)
    │   ├── AliasConflictError     an alias no longer points where the caller expected (exit 2)
    │   └── PreprocessorError      preprocessor missing, untagged or hash mismatch (exit 2)
    ├── RouterError                the serving endpoint failed or is unreachable (exit 4)
    │   ├── LeaseConflictError     a write was fenced by a newer lease epoch (exit 1)
    │   ├── RouteVerificationError the route read back differs from the one written (exit 4)
    │   ├── RouteNotSupportedError the endpoint cannot carry the route (mirror, audience) (exit 2)
    │   ├── VersionNotLoadedError  the endpoint has not loaded/warmed a version (exit 2)
    │   └── ObjectNotFoundError    the Kubernetes object a router drives does not exist (exit 2)
    ├── MetricsError               the metrics source failed or is unreachable (exit 4)
    ├── GatewayError               the built-in gateway cannot start or serve (exit 2)
    │   └── PredictionInputError   a client sent an unusable prediction request (HTTP 400)
    ├── WebhookRefusedError        `gray watch` refused a registry webhook delivery (HTTP 4xx)
    ├── JournalError               the rollout journal cannot be read or written (exit 4)
    │   └── RolloutNotFoundError   no rollout with that id (exit 2)
    └── RolloutError               a rollout command is not allowed now (exit 2)
        ├── RolloutActiveError     the model is already under an active rollout (exit 2)
        ├── RolloutAlreadyPromotedError  a plain rollback of a promoted rollout (exit 2)
        └── PreflightError         a check before any traffic moved failed (exit 2)

Exit codes (the same for every command): 0 success, 1 rolled back or aborted,
2 bad input or refused with nothing changed, 3 stopped with traffic held,
4 lost the serving endpoint, registry or metrics source (resumable).
"""

from __future__ import annotations

from typing import Any

from gray.controller.redact import redact

EXIT_OK = 0
EXIT_ROLLED_BACK = 1
EXIT_BAD_INPUT = 2
EXIT_HELD = 3
EXIT_UNAVAILABLE = 4


class GrayError(Exception):
    """Base of every error gray reports to a user."""

    exit_code: int = EXIT_BAD_INPUT

    def __init__(self, message: str) -> None:
        message = redact(message)  # credentials in URLs and tokens never reach a user or a log
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"error": type(self).__name__, "message": self.message}


class PlanError(GrayError):
    """A plan file could not be read or is invalid; carries every problem found."""

    def __init__(self, path: str, problems: list[PlanProblem]) -> None:
        self.path = path
        self.problems = problems
        lines = [p.render() for p in problems]
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"{path}: {count}\n" + "\n".join(lines))

    def to_dict(self) -> dict[str, object]:
        return {
            "error": type(self).__name__,
            "path": self.path,
            "problems": [p.to_dict() for p in self.problems],
        }


class PlanProblem:
    """One problem in a plan: where it is and what was expected."""

    def __init__(
        self, file: str, line: int | None, column: int | None, field: str, message: str
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = redact(message)

    def render(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "field": self.field,
            "message": self.message,
        }

    def __repr__(self) -> str:
        return f"PlanProblem({self.render()!r})"


class ConfigError(GrayError):
    """Bad command-line input or settings."""


class MissingExtraError(ConfigError):
    """The command needs an optional part of the install (`pip install 'gray-rollout[X]'`)."""


class RegistryError(GrayError):
    """MLflow could not be reached or answered with an error."""

    exit_code = EXIT_UNAVAILABLE


class ModelNotFoundError(RegistryError):
    exit_code = EXIT_BAD_INPUT


class AliasNotFoundError(RegistryError):
    exit_code = EXIT_BAD_INPUT


class VersionNotReadyError(RegistryError):
    exit_code = EXIT_BAD_INPUT


class SameVersionError(RegistryError):
    exit_code = EXIT_BAD_INPUT


class AliasConflictError(RegistryError):
    """An alias moved since it was read; gray refused to move it (compare-and-swap)."""

    exit_code = EXIT_BAD_INPUT


class PreprocessorError(RegistryError):
    exit_code = EXIT_BAD_INPUT


class RouterError(GrayError):
    """The serving endpoint failed or could not be reached."""

    exit_code = EXIT_UNAVAILABLE


class LeaseConflictError(RouterError):
    """A route write was refused because a newer lease epoch is in force."""

    exit_code = EXIT_ROLLED_BACK


class LeaseExpiredError(LeaseConflictError):
    """The lease ran out unrenewed: the endpoint sent everything back to the baseline."""


class RouteVerificationError(RouterError):
    """The route read back after a write is not the route that was written."""


class EndpointUnreachableError(RouterError):
    """The endpoint did not answer at all (connection refused, timed out, 5xx) after the
    adapter's retries; a gateway fleet waits for such a replica up to the router's timeout."""


class ReplicaWriteError(RouterError):
    """A write reached some replicas of a gateway fleet and not others: the message names
    each replica and what it answered."""


class VersionNotLoadedError(RouterError):
    exit_code = EXIT_BAD_INPUT


class ObjectNotFoundError(RouterError):
    """The Kubernetes object a router drives (an InferenceService, a VirtualService, an
    Experiment) does not exist: gray changes traffic on objects, it never creates them."""

    exit_code = EXIT_BAD_INPUT


class RouteNotSupportedError(RouterError):
    """The endpoint cannot carry the route asked of it (HAProxy: a mirror or an audience)."""

    exit_code = EXIT_BAD_INPUT


class MetricsError(GrayError):
    """The metrics source failed or could not be reached."""

    exit_code = EXIT_UNAVAILABLE


class GatewayError(GrayError):
    """The built-in gateway cannot start or serve."""


class PredictionInputError(GatewayError):
    """A client sent a prediction request the model cannot use (answered HTTP 400)."""


class WebhookRefusedError(GrayError):
    """`gray watch` refused a registry webhook delivery (unsigned, badly signed, stale,
    replayed, too large): answered with `status` (a 4xx) and the message as its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class JournalError(GrayError):
    """The rollout journal cannot be read or written."""

    exit_code = EXIT_UNAVAILABLE


class RolloutNotFoundError(JournalError):
    exit_code = EXIT_BAD_INPUT


class ReportWriteError(ConfigError):
    """`gray rollout report` cannot write its page where it was asked to."""


class RolloutError(GrayError):
    """A rollout command is not allowed in the rollout's current state."""


class RolloutActiveError(RolloutError):
    """The model is already under an active rollout."""


class RolloutAlreadyPromotedError(RolloutError):
    """`gray rollback` of a promoted rollout without `--to previous`: nothing to take back."""


class PreflightError(RolloutError):
    """A check made before any traffic moved failed; nothing was changed.

    `checks` holds every check made, passed or not, for the report.
    """

    def __init__(self, message: str, checks: list[Any] | None = None) -> None:
        super().__init__(message)
        self.checks = list(checks or [])

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data["checks"] = [c.to_dict() for c in self.checks if hasattr(c, "to_dict")]
        return data
