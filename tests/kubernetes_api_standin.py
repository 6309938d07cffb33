"""TEST CODE: a stand-in for the Kubernetes API server, for the KServe, Istio and Seldon
routers' tests (no cluster is reachable here).

It serves the custom objects at their real API paths
(`/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}`) over HTTP on a free
loopback port, from a thread, and behaves as the API server does where gray depends
on it:

- GET answers the object, PATCH applies a JSON merge patch (RFC 7386,
  `application/merge-patch+json`, what the client sends for a dict body), PUT
  replaces the object; `status` is the controller's (a status subresource), so
  writes to the main resource leave it alone;
- every write bumps `metadata.resourceVersion`, and a spec change `generation`;
- a write carrying a `metadata.resourceVersion` other than the object's is refused
  with 409 and a Kubernetes `Status` body; a missing object is a 404 `Status`;
- for an InferenceService it also plays KServe's controller: a new storage URI makes a
  new revision, and `status.components.predictor` (revisions, traffic) follows
  `canaryTrafficPercent` the way KServe splits between the latest and the rolled-out
  revision; for an Experiment it records the generation it saw, as Seldon's does;
- `fail_next(n, status)` answers the next n requests with an error, `delay` holds
  every answer back, and `before_next_write(fn)` runs `fn` just before the next write
  is checked (another writer racing in).

The objects' starting JSON comes from the projects' documented examples, kept as YAML
in tests/data/kubernetes/.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).parent / "data" / "kubernetes"
RESOURCES = {  # kind -> (group, version, plural), as each project's CRD serves it
    "InferenceService": ("serving.kserve.io", "v1beta1", "inferenceservices"),
    "VirtualService": ("networking.istio.io", "v1beta1", "virtualservices"),
    "Experiment": ("mlops.seldon.io", "v1alpha1", "experiments"),
}
MERGE_PATCH = "application/merge-patch+json"


def example(file_name: str) -> dict[str, Any]:
    """One documented example object, as loaded by `kubectl apply`."""
    return yaml.safe_load((EXAMPLES / file_name).read_text())


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    """A Kubernetes `Status` object, as the API server answers a failed request."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@dataclass
class Revisions:
    """What the stand-in's KServe keeps per InferenceService: each revision's storage URI,
    and the rolled-out revisions."""

    uris: dict[str, str] = field(default_factory=dict)
    rolled_out: str | None = None
    previous_rolled_out: str | None = None
    ready: bool = True  # a new revision becomes ready (False: it fails to start)
    raw_deployment: bool = False  # KServe's RawDeployment mode: no revisions, no traffic


class KubernetesApiStandIn:
    """The stand-in server; `objects` by API path."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.revisions: dict[str, Revisions] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.authorizations: list[str] = []  # the Authorization header of every request
        self._version = 1000
        self._lock = threading.RLock()
        self._failures: list[int] = []
        self._delay = 0.0
        self._before_write: Callable[[], None] | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- the objects ----------------------------------------------------------------------

    @staticmethod
    def path_of(kind: str, namespace: str, name: str) -> str:
        group, version, plural = RESOURCES[kind]
        return f"/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}"

    def put(self, obj: dict[str, Any], namespace: str = "default") -> str:
        """Create or replace an object as `kubectl apply` would (its controller runs)."""
        obj = copy.deepcopy(obj)
        metadata = obj.setdefault("metadata", {})
        metadata["namespace"] = metadata.get("namespace") or namespace
        path = self.path_of(obj["kind"], metadata["namespace"], metadata["name"])
        with self._lock:
            metadata["generation"] = 1
            self.revisions.pop(path, None)
            obj.pop("status", None)
            self._store(path, obj)
        return path

    def get(self, path: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.objects[path])

    def change(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A write by someone other than gray (kubectl, another controller)."""
        with self._lock:
            return self._write(path, patch)

    # --- faults ---------------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    @contextmanager
    def delayed(self, seconds: float) -> Iterator[None]:
        self._delay = seconds
        try:
            yield
        finally:
            self._delay = 0.0

    def before_next_write(self, action: Callable[[], None]) -> None:
        self._before_write = action

    def reset_faults(self) -> None:
        with self._lock:
            self._failures.clear()
            self._delay = 0.0
            self._before_write = None

    # --- the API server's rules -----------------------------------------------------------

    def _store(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)
        if obj["kind"] == "InferenceService":
            self._play_kserve(path, obj)
        elif obj["kind"] == "Experiment":
            obj["status"] = {
                "observedGeneration": obj["metadata"]["generation"],
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        self.objects[path] = obj
        return copy.deepcopy(obj)

    def _write(self, path: str, patch: dict[str, Any], replace: bool = False) -> dict[str, Any]:
        current = self.objects[path]
        patch = copy.deepcopy(patch)
        patch.pop("status", None)  # the status subresource is the controller's
        if replace:
            updated = {**patch, "status": copy.deepcopy(current.get("status"))}
            updated["metadata"] = {**current["metadata"], **patch.get("metadata", {})}
        else:
            updated = merge_patch(current, patch)
        metadata = updated["metadata"]
        if updated.get("spec") != current.get("spec"):
            metadata["generation"] = int(current["metadata"].get("generation", 1)) + 1
        return self._store(path, updated)

    def _play_kserve(self, path: str, obj: dict[str, Any]) -> None:
        """KServe's controller: revisions and the canary split, into the status."""
        revisions = self.revisions.setdefault(path, Revisions())
        predictor = obj["spec"]["predictor"]
        model = predictor.get("model") or next(
            v for v in predictor.values() if isinstance(v, dict) and "storageUri" in v
        )
        uri = model["storageUri"]
        name = obj["metadata"]["name"]
        latest = next(reversed(revisions.uris), None) if revisions.uris else None
        if latest is None or revisions.uris[latest] != uri:
            latest = f"{name}-predictor-{len(revisions.uris) + 1:05d}"
            revisions.uris[latest] = uri
        canary = predictor.get("canaryTrafficPercent")
        status = obj.get("status") or {}
        component = (status.get("components") or {}).get("predictor") or {}
        ready = latest if revisions.ready else component.get("latestReadyRevision")
        if revisions.rolled_out is None or (canary is None and ready == latest):
            if revisions.rolled_out not in (None, latest):
                revisions.previous_rolled_out = revisions.rolled_out
            revisions.rolled_out = latest
        if canary is None or latest == revisions.rolled_out or not revisions.ready:
            traffic = [
                {
                    "latestRevision": latest == revisions.rolled_out,
                    "percent": 100,
                    "revisionName": revisions.rolled_out,
                }
            ]
        else:
            traffic = [
                {
                    "latestRevision": True,
                    "percent": int(canary),
                    "revisionName": latest,
                    "tag": "latest",
                },
                {
                    "latestRevision": False,
                    "percent": 100 - int(canary),
                    "revisionName": revisions.rolled_out,
                    "tag": "prev",
                },
            ]
        component = {
            "latestCreatedRevision": latest,
            "latestReadyRevision": ready,
            "latestRolledoutRevision": revisions.rolled_out,
            "traffic": traffic,
        }
        if revisions.previous_rolled_out:
            component["previousRolledoutRevision"] = revisions.previous_rolled_out
        if revisions.raw_deployment:
            component = {"url": f"http://{name}-predictor.{obj['metadata']['namespace']}"}
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"],
            "components": {"predictor": component},
        }

    def kserve_split(self, path: str) -> dict[str, int]:
        """The percent of requests each storage URI answers, by the stand-in's KServe."""
        with self._lock:
            traffic = self.objects[path]["status"]["components"]["predictor"]["traffic"]
            uris = self.revisions[path].uris
            split: dict[str, int] = {}
            for target in traffic:
                uri = uris[target["revisionName"]]
                split[uri] = split.get(uri, 0) + int(target["percent"])
            return split

    # --- HTTP -----------------------------------------------------------------------------

    def _answer(self, method: str, path: str, body: bytes, content_type: str) -> tuple[int, Any]:
        with self._lock:
            self.requests.append((method, path))
            if self._failures:
                code = self._failures.pop(0)
                return code, status_body(code, "InternalError", "injected failure")
            if path not in self.objects:
                name = path.rsplit("/", 1)[-1]
                return 404, status_body(404, "NotFound", f'"{name}" not found')
            if method == "GET":
                return 200, copy.deepcopy(self.objects[path])
            if method == "PATCH" and content_type != MERGE_PATCH:
                return 415, status_body(415, "UnsupportedMediaType", content_type)
            action, self._before_write = self._before_write, None
        if action is not None:
            action()
        with self._lock:
            try:
                patch = json.loads(body)
            except ValueError as error:
                return 400, status_body(400, "BadRequest", str(error))
            current = self.objects[path]["metadata"]["resourceVersion"]
            offered = (patch.get("metadata") or {}).get("resourceVersion")
            if offered is not None and offered != current:
                kind = self.objects[path]["kind"].lower()
                name = path.rsplit("/", 1)[-1]
                return 409, status_body(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {kind} "{name}": the object has been '
                    "modified; please apply your changes to the latest version and try again",
                )
            return 200, self._write(path, patch, replace=method == "PUT")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                content_type = (self.headers.get("Content-Type") or "").split(";")[0]
                standin.authorizations.append(self.headers.get("Authorization") or "")
                code, answer = standin._answer(self.command, self.path, body, content_type)
                if standin._delay:
                    time.sleep(standin._delay)
                data = json.dumps(answer).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up waiting (a timeout test)

            do_GET = do_PATCH = do_PUT = _serve

            def log_message(self, *_: object) -> None:
                pass

        return Handler
