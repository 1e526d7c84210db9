"""deploy/rbac/kubernetes-adapter.yaml is enough for the adapter, and no more (issue 4, step 3).

The manifest is applied to the testbed; a token for its ServiceAccount comes from the
TokenRequest API; the adapter then runs every operation with a kubeconfig carrying only that
token, and calls outside the role are refused with 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config, utils
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from adapters.kubernetes import KubernetesSite
from adapters.kubernetes.manifest import GROUP, PLURAL, VERSION, namespace_for
from scheduler.core.adapter import DispatchState, LogsUnavailable
from scheduler.testbed.site import DEFAULT_INVENTORY, Site
from tests.testbed.helpers import kubeconfig_with, make_dispatch, wait_for

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "rbac" / "kubernetes-adapter.yaml"
NAMESPACE, ACCOUNT = "isthmus-system", "isthmus-adapter"

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def test_the_role_grants_exactly_what_the_adapter_uses() -> None:
    """Pinned, so that widening the role is a visible decision."""
    docs = {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text())}
    rules = {
        (group, resource): sorted(rule["verbs"])
        for rule in docs["ClusterRole"]["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert rules == {
        ("", "nodes"): ["list", "watch"],
        ("", "pods"): ["list", "watch"],
        ("", "pods/log"): ["get"],
        ("ray.io", "rayjobs"): ["create", "delete", "get", "list", "patch"],
        ("", "namespaces"): ["create"],
    }
    subject = docs["ClusterRoleBinding"]["subjects"][0]
    assert (subject["namespace"], subject["name"]) == (NAMESPACE, ACCOUNT)


@pytest.fixture(scope="module")
def token(kube: ApiClient) -> str:
    try:
        utils.create_from_yaml(kube, str(MANIFEST))
    except utils.FailToCreateError as err:  # applied before in this session: fine
        assert all(e.status == 409 for e in err.api_exceptions), err
    request = {"spec": {"expirationSeconds": 3600}}
    issued = client.CoreV1Api(kube).create_namespaced_service_account_token(
        ACCOUNT, NAMESPACE, request
    )
    return str(issued.status.token)


@pytest.fixture(scope="module")
def kubeconfig(site: Site, token: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return kubeconfig_with(site, tmp_path_factory.mktemp("rbac") / "kubeconfig", token=token)


@pytest.fixture(scope="module")
def adapter(site: Site, kubeconfig: Path) -> Iterator[KubernetesSite]:
    k8s = KubernetesSite(site.name, kubeconfig)
    yield k8s
    k8s.close()


@pytest.fixture(scope="module")
def restricted(kubeconfig: Path) -> Iterator[Any]:
    """A plain client with only the ServiceAccount's token."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        yield api


@pytest.mark.testbed
def test_the_adapter_works_with_only_the_role(
    adapter: KubernetesSite, kubeconfig: Path, kube: ApiClient
) -> None:
    assert adapter.health().ok, adapter.health().reason
    pools = {p.type: p.count for p in adapter.inventory()}  # list + watch nodes and pods
    assert pools == {pool.product: pool.count * pool.per_node for pool in DEFAULT_INVENTORY}

    dispatch = make_dispatch("rbac-job", tenant="rbac-tenant")  # a namespace it must create
    adapter.submit(dispatch)
    try:
        adapter.submit(dispatch)  # 409 -> get -> ours
        assert adapter.status(dispatch.name).state is DispatchState.PENDING
        adapter.suspend(dispatch.name)
        adapter.resume(dispatch.name)
        with pytest.raises(LogsUnavailable, match="no submitter pod found"):
            adapter.logs(dispatch.name)  # pods listed in the tenant's namespace
        fresh = KubernetesSite("fresh", kubeconfig)  # no caches: finds the RayJob by listing
        try:
            assert fresh.status(dispatch.name).state is DispatchState.PENDING
        finally:
            fresh.close()
    finally:
        adapter.cancel(dispatch.name)
    assert adapter.status(dispatch.name).state is DispatchState.UNKNOWN
    namespace = client.CoreV1Api(kube).read_namespace(namespace_for("rbac-tenant"))
    assert namespace.metadata.labels["app.kubernetes.io/managed-by"] == "isthmus"


@pytest.mark.testbed
@pytest.mark.parametrize(
    ("what", "call"),
    [
        ("delete a node", lambda c, k: c.delete_node("test-a-h20-96g-0")),
        ("cordon a node", lambda c, k: c.patch_node("test-a-h20-96g-0", {"spec": {}})),
        ("read secrets", lambda c, k: c.list_secret_for_all_namespaces()),
        ("create a pod", lambda c, k: c.create_namespaced_pod("default", {"metadata": {}})),
        ("delete a namespace", lambda c, k: c.delete_namespace("default")),
        (
            "write a RayJob's status",
            lambda c, k: k.patch_namespaced_custom_object_status(
                GROUP, VERSION, "default", PLURAL, "any", {"status": {}}
            ),
        ),
        (
            "touch a RayCluster",
            lambda c, k: k.list_cluster_custom_object("ray.io", "v1", "rayclusters"),
        ),
    ],
)
def test_anything_else_is_forbidden(restricted: Any, what: str, call: Any) -> None:
    with pytest.raises(ApiException) as err:
        call(client.CoreV1Api(restricted), client.CustomObjectsApi(restricted))
    assert err.value.status == 403, what


@pytest.mark.testbed
def test_a_revoked_token_makes_the_site_unhealthy(
    site: Site, kube: ApiClient, kubeconfig: Path
) -> None:
    """Runs last in this module: deleting the ServiceAccount invalidates its tokens."""
    k8s = KubernetesSite("revoked", kubeconfig)
    try:
        assert k8s.health().ok
        client.CoreV1Api(kube).delete_namespaced_service_account(ACCOUNT, NAMESPACE)
        health = wait_for("the token to be refused", lambda: (h := k8s.health()).ok is False and h)
        assert health.reason.startswith("unauthorized (401)"), health.reason
    finally:
        k8s.close()
