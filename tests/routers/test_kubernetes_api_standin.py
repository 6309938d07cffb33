"""The Kubernetes API stand-in answers the `kubernetes` client as the API server does:
a write with a stale resourceVersion is a 409 Status whichever verb carries it, a patch
type it does not apply is refused, and the status is the controller's, not the writer's."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kubernetes_api_standin import KubernetesApiStandIn, example

GROUP, VERSION, PLURAL = "mlops.seldon.io", "v1alpha1", "experiments"


@pytest.fixture
def api(kubernetes_api: KubernetesApiStandIn) -> Any:
    kubernetes_api.put(example("seldon-experiment-sample.yaml"), "standin")
    configuration = client.Configuration()
    configuration.host = kubernetes_api.url
    return client.CustomObjectsApi(client.ApiClient(configuration))


def experiment(api: Any) -> dict[str, Any]:
    return api.get_namespaced_custom_object(GROUP, VERSION, "standin", PLURAL, "experiment-sample")


def test_a_replace_or_patch_with_a_stale_resource_version_is_a_conflict(api: Any) -> None:
    seen = experiment(api)
    seen["spec"]["candidates"][0]["weight"] = 70
    replaced = api.replace_namespaced_custom_object(
        GROUP, VERSION, "standin", PLURAL, "experiment-sample", seen
    )
    assert replaced["spec"]["candidates"][0]["weight"] == 70
    assert int(replaced["metadata"]["resourceVersion"]) > int(seen["metadata"]["resourceVersion"])
    assert replaced["metadata"]["generation"] == 2
    stale = {"metadata": {"resourceVersion": seen["metadata"]["resourceVersion"]}, "spec": {}}
    for write in (api.replace_namespaced_custom_object, api.patch_namespaced_custom_object):
        with pytest.raises(ApiException) as refused:
            write(GROUP, VERSION, "standin", PLURAL, "experiment-sample", {**seen, **stale})
        assert refused.value.status == 409
        assert '"reason": "Conflict"' in refused.value.body
    assert experiment(api)["spec"]["candidates"][0]["weight"] == 70


def test_a_json_patch_is_refused_and_status_is_the_controllers(api: Any) -> None:
    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "standin",
            PLURAL,
            "experiment-sample",
            [{"op": "replace", "path": "/spec/default", "value": "iris2"}],
            _content_type="application/json-patch+json",
        )
    assert refused.value.status == 415
    patched = api.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "standin",
        PLURAL,
        "experiment-sample",
        {"status": {"x": 1}, "spec": {"default": None}},
    )
    assert "x" not in patched["status"]
    assert "default" not in patched["spec"] and patched["spec"]["candidates"]  # null deletes
