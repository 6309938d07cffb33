"""One Kubernetes custom object (an InferenceService, a VirtualService, an Experiment) that
gray reads and writes through the Kubernetes API, with the lease kept in its annotations.

Fencing. Every write is a JSON merge patch that carries the `metadata.resourceVersion`
gray read, so the API server applies it only if nobody wrote the object since (409
Conflict otherwise): a compare-and-set, with no window between the lease check and the
write. On a 409 gray reads the object again and decides again with what it finds: a
newer gray lease (`gray.dev/lease`) refuses the write (LeaseConflictError); a change
that left the lease alone (an autoscaler, a label, a status update) is written over on
the next attempt, up to `CONFLICT_ATTEMPTS` reads.

Reaching the API server. A connection refused, a timeout or a 5xx is retried
`UNREACHABLE_ATTEMPTS` times with a doubling pause, then reported as an
EndpointUnreachableError; the client's own urllib3 retries are off so that gray's bound
is the only one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gray.controller.errors import (
    ConfigError,
    EndpointUnreachableError,
    ObjectNotFoundError,
    RouterError,
)
from gray.controller.extras import require_extra
from gray.controller.types import Lease, RouteSpec

LEASE_ANNOTATION = "gray.dev/lease"  # {"rollout_id", "epoch", "expires_at", "after_expiry"}
ROUTE_ANNOTATION = "gray.dev/route"  # the route as written and where each version is served
CONFLICT_ATTEMPTS = 3  # reads and writes when other writers keep changing the object
UNREACHABLE_ATTEMPTS = 3  # tries of one request before the API server counts as lost
FIRST_PAUSE_SECONDS = 0.2
DEFAULT_TIMEOUT_SECONDS = 10.0

Patch = dict[str, Any]
KubeObject = dict[str, Any]


@dataclass(frozen=True)
class ObjectRef:
    """Where a custom object lives in the Kubernetes API."""

    kind: str
    group: str
    version: str
    plural: str
    namespace: str
    name: str

    @property
    def path(self) -> str:
        return (
            f"/apis/{self.group}/{self.version}/namespaces/{self.namespace}/"
            f"{self.plural}/{self.name}"
        )

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class Connection:
    """How to reach the API server: an explicit `server` (with a bearer `token` and a CA
    file), else the kubeconfig (`kubeconfig` file or $KUBECONFIG / ~/.kube/config, and
    `context`), else the pod's service account when gray runs in the cluster."""

    server: str | None = None
    token: str | None = None
    ca_file: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    def api(self) -> Any:
        """A `kubernetes.client.CustomObjectsApi` for this connection."""
        require_extra("kubernetes", "the kserve, istio and seldon routers")
        from kubernetes import client

        configuration = client.Configuration()
        if self.server:
            configuration.host = self.server.rstrip("/")
            if self.token:
                configuration.api_key = {"authorization": self.token}
                configuration.api_key_prefix = {"authorization": "Bearer"}
            if self.ca_file:
                configuration.ssl_ca_cert = self.ca_file
        else:
            _load_config(configuration, self.kubeconfig, self.context)
        configuration.retries = False  # gray's bounded retries below are the only ones
        return client.CustomObjectsApi(client.ApiClient(configuration))


def _load_config(configuration: Any, kubeconfig: str | None, context: str | None) -> None:
    """The kubeconfig's cluster and credentials, else the pod's service account."""
    from kubernetes import config

    try:
        config.load_kube_config(
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
        return
    except (config.ConfigException, OSError) as error:
        kube_error = error
    if kubeconfig or context:
        raise ConfigError(f"cannot use the kubeconfig: {kube_error}") from None
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException as error:
        raise ConfigError(
            "no Kubernetes credentials: no kubeconfig "
            f"({kube_error}) and not in a cluster ({error}); give the router `server` and "
            "`token`, or `kubeconfig`"
        ) from None


@dataclass(frozen=True)
class LeaseMark:
    """The lease in force on an object, kept in its `gray.dev/lease` annotation.
    `expires_at` is a unix time (None: held with no expiry); `after_expiry` marks the
    lease gray wrote on finding the previous one run out."""

    lease: Lease
    expires_at: float | None = None
    after_expiry: bool = False

    def encode(self) -> str:
        return json.dumps(
            {
                **self.lease.to_dict(),
                "expires_at": self.expires_at,
                "after_expiry": self.after_expiry,
            },
            sort_keys=True,
        )

    @classmethod
    def of(cls, obj: KubeObject, where: object) -> LeaseMark | None:
        text = _annotations(obj).get(LEASE_ANNOTATION)
        if text is None:
            return None
        try:
            data = json.loads(text)
            expires = data.get("expires_at")
            return cls(
                Lease.from_dict(data),
                None if expires is None else float(expires),
                bool(data.get("after_expiry", False)),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise RouterError(
                f"{where}: annotation {LEASE_ANNOTATION} holds {text!r}, not a gray lease "
                f"({error!r})"
            ) from None


@dataclass(frozen=True)
class RouteRecord:
    """The route gray last wrote on an object and where each version is served there
    (`places`: version → a storage URI, a subset, a model name), kept in its
    `gray.dev/route` annotation. The object alone says only which URI, subset or model
    takes traffic; this says which model version that is."""

    route: RouteSpec
    places: dict[str, str] = field(default_factory=dict)

    def encode(self) -> str:
        return json.dumps({"route": self.route.to_dict(), "places": self.places}, sort_keys=True)

    def version_at(self, place: str) -> str | None:
        """The version served at `place` (keys starting with `@` are a platform's own)."""
        return next(
            (v for v, at in self.places.items() if at == place and not v.startswith("@")), None
        )

    @classmethod
    def of(cls, obj: KubeObject, where: object) -> RouteRecord | None:
        text = _annotations(obj).get(ROUTE_ANNOTATION)
        if text is None:
            return None
        try:
            data = json.loads(text)
            places = {str(k): str(v) for k, v in (data.get("places") or {}).items()}
            return cls(RouteSpec.from_dict(data["route"]), places)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise RouterError(
                f"{where}: annotation {ROUTE_ANNOTATION} holds {text!r}, not a gray route "
                f"({error!r})"
            ) from None


def _annotations(obj: KubeObject) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def marks_patch(mark: LeaseMark | None, record: RouteRecord | None) -> Patch:
    """The metadata part of a write: the lease, and the route when it changes."""
    annotations = {}
    if mark is not None:
        annotations[LEASE_ANNOTATION] = mark.encode()
    if record is not None:
        annotations[ROUTE_ANNOTATION] = record.encode()
    return {"metadata": {"annotations": annotations}}


class KubernetesObject:
    """Reads and writes one custom object; every write is conditional on the object's
    resourceVersion, so no write lands on a version of the object it did not decide on."""

    def __init__(
        self,
        ref: ObjectRef,
        connection: Connection,
        *,
        api: Any = None,
        first_pause: float = FIRST_PAUSE_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ref = ref
        self.connection = connection
        self._api = api
        self._first_pause = first_pause
        self._sleep = sleep

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = self.connection.api()
        return self._api

    @property
    def where(self) -> str:
        server = self.connection.server or "the cluster"
        return f"{self.ref} at {server}"

    def read(self) -> KubeObject:
        return self._call(
            "read",
            lambda api: api.get_namespaced_custom_object(
                self.ref.group,
                self.ref.version,
                self.ref.namespace,
                self.ref.plural,
                self.ref.name,
                _request_timeout=self.connection.timeout,
            ),
        )

    def update(
        self, decide: Callable[[KubeObject], Patch | None], seen: KubeObject | None = None
    ) -> KubeObject:
        """Write the patch `decide` makes from the object as it is now (None: nothing to
        write), conditional on the object's resourceVersion. On a 409 the object is read
        again and `decide` asked again with it: it refuses (raising) when the object's
        lease changed against it, and the write is tried over a change that left the
        lease alone."""
        current = seen if seen is not None else self.read()
        for _ in range(CONFLICT_ATTEMPTS):
            patch = decide(current)
            if patch is None:
                return current
            version = (current.get("metadata") or {}).get("resourceVersion")
            metadata = {**patch.get("metadata", {}), "resourceVersion": version}
            conditional = {**patch, "metadata": metadata}
            try:
                return self._patch(conditional)
            except _Conflict:
                current = self.read()
        raise RouterError(
            f"{self.where} changed under every one of gray's {CONFLICT_ATTEMPTS} writes "
            "(409 Conflict each time, the lease unchanged); another writer keeps changing it"
        )

    def _patch(self, body: Patch) -> KubeObject:
        return self._call(
            "write",
            lambda api: api.patch_namespaced_custom_object(
                self.ref.group,
                self.ref.version,
                self.ref.namespace,
                self.ref.plural,
                self.ref.name,
                body,
                _request_timeout=self.connection.timeout,
                _content_type="application/merge-patch+json",
            ),
        )

    def _call(self, what: str, request: Callable[[Any], Any]) -> KubeObject:
        """One API request with bounded retries when the server cannot be reached or
        fails (5xx); a 409 is raised as `_Conflict` for `update`."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        pause = self._first_pause
        failure = ""
        for attempt in range(UNREACHABLE_ATTEMPTS):
            if attempt:
                self._sleep(pause)
                pause *= 2
            try:
                answer = request(self.api)
            except ApiException as error:
                if error.status == 409:
                    raise _Conflict() from None
                if error.status == 404:
                    raise ObjectNotFoundError(
                        f"{self.where}: no such object ({_status_message(error)}); create it "
                        "first, gray only changes its traffic"
                    ) from None
                if (error.status or 0) >= 500 or error.status == 0:
                    failure = f"HTTP {error.status} {_status_message(error)}"
                    continue
                raise RouterError(
                    f"{self.where} refused gray's {what}: HTTP {error.status} "
                    f"{_status_message(error)}"
                ) from None
            except (HTTPError, OSError) as error:
                failure = f"{type(error).__name__}: {error}"
                continue
            return answer if isinstance(answer, dict) else dict(answer)
        raise EndpointUnreachableError(
            f"{self.where}: the Kubernetes API did not answer gray's {what} after "
            f"{UNREACHABLE_ATTEMPTS} tries ({failure})"
        )


class _Conflict(Exception):
    """The API server refused a write: the resourceVersion it carried is stale (409)."""


def _status_message(error: Any) -> str:
    """The `message` of the Kubernetes Status an error carries, else its reason."""
    try:
        return str(json.loads(error.body).get("message") or error.reason)
    except (TypeError, ValueError, AttributeError):
        return str(error.reason)
