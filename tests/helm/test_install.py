"""The chart installed into a real apiserver (the testbed: etcd, kube-apiserver,
controller-manager, scheduler, KWOK nodes that mark pods Running and Ready without running them).

In order: install (the namespace enforces the *restricted* Pod Security Standard, so a pod spec
that breaks it would never be created); the objects exist and the Deployment becomes Available
with its two replicas on two nodes; the ServiceAccount's token may use its Lease (the service's
own elector) and nothing else; an upgrade that changes the policy changes ``checksum/config``
and rolls the pods onto a new ReplicaSet; a Lease deleted by hand comes back with an upgrade;
uninstall leaves nothing of the release behind.
The image is never pulled (KWOK runs no containers): the image's command is tested in
test_image.py, leader election across two live replicas in tests/service/test_failover.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from scheduler.api.models import JobSubmit
from scheduler.core.snapshot_file import parse_topology
from scheduler.service.leader import LeaseElector, LeaseSettings
from scheduler.testbed import versions
from scheduler.testbed.site import Site
from tests.helm.chart import CHART, NAMESPACE, RELEASE, helm, wait_for

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

LEASE = f"{RELEASE}-leader"
SECRETS = ("isthmus-database", "isthmus-tokens", "isthmus-site-zhangjiakou")
VALUES: dict[str, Any] = {
    "sites": [{"name": "zhangjiakou", "existingSecret": "isthmus-site-zhangjiakou"}],
    "networkPolicy": {"enabled": True},
}
# Objects the namespace has without the release: the controller-manager's per-namespace ones.
NOT_THE_RELEASES = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}


@pytest.fixture(scope="module")
def kube(helm_site: Site) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(helm_site.kubeconfig),
                            client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        yield api


def kubectl(site: Site, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(versions.bin_dir() / "kubectl"), "--kubeconfig",
                           str(site.kubeconfig), *args],
                          capture_output=True, text=True, check=check, timeout=60)


def helm_on(site: Site, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return helm(*args, "--kubeconfig", str(site.kubeconfig), "--namespace", NAMESPACE, **kwargs)


@pytest.fixture(scope="module")
def namespace(helm_site: Site, kube: client.ApiClient) -> str:
    """The release namespace, enforcing the restricted Pod Security Standard, and the Secrets a
    platform team creates before installing (docs/deploy.md)."""
    core = client.CoreV1Api(kube)
    core.create_namespace({"metadata": {"name": NAMESPACE, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest"}}})
    url = "postgresql+psycopg://isthmus:secret@postgres.invalid:5432/isthmus"
    tokens = yaml.safe_dump({"tokens": [{"token": "acme-token-0123456789", "tenant": "acme"}]})
    for name, key, value in zip(
        SECRETS, ("url", "tokens.yaml", "kubeconfig"),
        (url, tokens, helm_site.kubeconfig.read_text()), strict=True,
    ):
        core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": name},
                                                  "stringData": {key: value}})
    return NAMESPACE


@pytest.fixture(scope="module")
def installed(helm_site: Site, namespace: str) -> str:
    """``helm install``; returns its output (with NOTES)."""
    return helm_on(helm_site, "install", RELEASE, str(CHART), values=VALUES).stdout


def deployment(kube: client.ApiClient) -> Any:
    return client.AppsV1Api(kube).read_namespaced_deployment(RELEASE, NAMESPACE)


def available(kube: client.ApiClient) -> bool:
    status = deployment(kube).status
    conditions = {c.type: c.status for c in status.conditions or []}
    return bool(conditions.get("Available") == "True" and status.available_replicas == 2
                and status.updated_replicas == 2 and (status.replicas or 0) == 2)


def running_pods(kube: client.ApiClient) -> list[Any]:
    pods = client.CoreV1Api(kube).list_namespaced_pod(
        NAMESPACE, label_selector=f"app.kubernetes.io/instance={RELEASE}").items
    return [p for p in pods if p.metadata.deletion_timestamp is None
            and p.status.phase == "Running"]


def test_the_namespace_enforces_the_restricted_standard(
    helm_site: Site, kube: client.ApiClient, namespace: str
) -> None:
    bare = {"metadata": {"name": "unconfined"},
            "spec": {"containers": [{"name": "c", "image": "example.invalid/none"}]}}
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(kube).create_namespaced_pod(namespace, bare)
    assert refused.value.status == 403
    assert "violates PodSecurity" in refused.value.body


def test_install_creates_the_objects_and_the_deployment_becomes_available(
    helm_site: Site, kube: client.ApiClient, installed: str
) -> None:
    listed = kubectl(helm_site, "get", "-n", NAMESPACE, "-o", "name",
                     "deployment,service,serviceaccount,configmap,role,rolebinding,"
                     "poddisruptionbudget,networkpolicy,lease").stdout.split()
    for name in ("deployment.apps/isthmus", "service/isthmus", "serviceaccount/isthmus",
                 "configmap/isthmus", "role.rbac.authorization.k8s.io/isthmus-leader-election",
                 "rolebinding.rbac.authorization.k8s.io/isthmus-leader-election",
                 "poddisruptionbudget.policy/isthmus", "networkpolicy.networking.k8s.io/isthmus",
                 f"lease.coordination.k8s.io/{LEASE}"):
        assert name in listed, listed
    wait_for("the Deployment Available with 2 replicas", lambda: available(kube), timeout=90)
    pods = running_pods(kube)
    assert len(pods) == 2
    # Preferred anti-affinity: two nodes, so one node's loss leaves a replica.
    assert len({p.spec.node_name for p in pods}) == 2
    pdb = client.PolicyV1Api(kube).read_namespaced_pod_disruption_budget(RELEASE, NAMESPACE)
    wait_for("the PDB to count the pods", lambda: client.PolicyV1Api(kube)
             .read_namespaced_pod_disruption_budget(RELEASE, NAMESPACE).status
             .disruptions_allowed == 1)
    assert pdb.spec.min_available == 1


def test_notes_tell_how_to_reach_the_api_and_submit_a_job(installed: str) -> None:
    notes = installed[installed.index("NOTES:"):]
    assert f"kubectl -n {NAMESPACE} port-forward service/{RELEASE} 8000:8000" in notes
    assert "from scheduler.sdk import Client" in notes
    assert "deploy/rbac/kubernetes-adapter.yaml" in notes
    assert "WARNING" not in notes  # a database and tokens are configured
    # The curl example's body is a valid submission for the default topology's accelerators.
    found = re.search(r"-d '(.*?)'", notes, re.DOTALL)
    assert found, notes
    job = JobSubmit.model_validate(json.loads(found.group(1)))
    topology = parse_topology((CHART / "files" / "topology.yaml").read_text(), "topology.yaml")
    offered = {str(pool.type) for site in topology.sites for pool in site.pools}
    assert set(job.gang.allowed_types) <= offered


@pytest.fixture(scope="module")
def service_account_kubeconfig(helm_site: Site, kube: client.ApiClient, installed: str,
                               tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig with only the release's ServiceAccount token, as a pod would have."""
    issued = client.CoreV1Api(kube).create_namespaced_service_account_token(
        RELEASE, NAMESPACE, {"spec": {"expirationSeconds": 3600}})
    doc = yaml.safe_load(helm_site.kubeconfig.read_text())
    doc["users"][0]["user"] = {"token": issued.status.token}
    path = tmp_path_factory.mktemp("sa") / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_service_account_may_hold_its_lease_and_nothing_else(
    helm_site: Site, service_account_kubeconfig: Path
) -> None:
    def elector(identity: str, lease: str = LEASE) -> LeaseElector:
        return LeaseElector(LeaseSettings(lease=lease, namespace=NAMESPACE, identity=identity,
                                          kubeconfig=str(service_account_kubeconfig)))

    first, second = elector("isthmus-pod-a"), elector("isthmus-pod-b")
    assert first.try_acquire_or_renew()  # takes the chart's empty Lease
    assert not second.try_acquire_or_renew()  # held: refused, not an error
    assert first.try_acquire_or_renew()  # renews
    first.stop()  # releases it
    assert second.try_acquire_or_renew()
    second.stop()
    with pytest.raises(ApiException) as refused:
        elector("isthmus-pod-c", lease="another-lease").try_acquire_or_renew()
    assert refused.value.status == 403

    def can(*args: str) -> bool:
        done = subprocess.run(
            [str(versions.bin_dir() / "kubectl"), "--kubeconfig",
             str(service_account_kubeconfig), "auth", "can-i", "-n", NAMESPACE, *args],
            capture_output=True, text=True, check=False, timeout=60)
        return done.stdout.strip() == "yes"

    assert can("get", f"leases/{LEASE}") and can("update", f"leases/{LEASE}")
    for verb, what in [("delete", f"leases/{LEASE}"), ("list", "leases"), ("create", "leases"),
                       ("get", "secrets"), ("list", "pods"), ("get", "configmaps"),
                       ("create", "rayjobs.ray.io")]:
        assert not can(verb, what), (verb, what)


def _pod_template_state(kube: client.ApiClient) -> tuple[str, str]:
    template = deployment(kube).spec.template.metadata.annotations["checksum/config"]
    sets = client.AppsV1Api(kube).list_namespaced_replica_set(
        NAMESPACE, label_selector=f"app.kubernetes.io/instance={RELEASE}").items
    live = [rs for rs in sets if (rs.spec.replicas or 0) > 0]
    assert len(live) >= 1
    newest = max(live, key=lambda rs: int(rs.metadata.annotations[
        "deployment.kubernetes.io/revision"]))
    return template, newest.metadata.name


def test_an_upgrade_with_a_new_policy_rolls_the_pods(
    helm_site: Site, kube: client.ApiClient, installed: str
) -> None:
    wait_for("the Deployment Available", lambda: available(kube), timeout=90)
    checksum, replica_set = _pod_template_state(kube)
    coordination = client.CoordinationV1Api(kube)
    held = coordination.read_namespaced_lease(LEASE, NAMESPACE).spec
    old_pods = {p.metadata.name for p in running_pods(kube)}
    # The same values again: nothing changes, nothing rolls.
    helm_on(helm_site, "upgrade", RELEASE, str(CHART), values=VALUES)
    assert _pod_template_state(kube) == (checksum, replica_set)
    # A new policy (as `--set-file policy=my-policy.yaml` gives it).
    policy = (CHART / "files" / "policy.yaml").read_text().replace(
        "name: default", "name: upgraded", 1)
    assert "name: upgraded" in policy
    helm_on(helm_site, "upgrade", RELEASE, str(CHART), values={**VALUES, "policy": policy})
    configmap = client.CoreV1Api(kube).read_namespaced_config_map(RELEASE, NAMESPACE)
    assert "name: upgraded" in configmap.data["policy.yaml"]
    new_checksum, _ = _pod_template_state(kube)
    assert new_checksum != checksum

    def rolled() -> bool:
        _, newest = _pod_template_state(kube)
        pods = running_pods(kube)
        return bool(available(kube) and newest != replica_set and len(pods) == 2
                    and not {p.metadata.name for p in pods} & old_pods)

    wait_for("the pods to roll onto a new ReplicaSet", rolled, timeout=120)
    # The Lease kept what its holders wrote: an upgrade does not reset the election.
    after = coordination.read_namespaced_lease(LEASE, NAMESPACE).spec
    assert (after.lease_transitions, after.acquire_time) == (held.lease_transitions,
                                                            held.acquire_time)


def test_a_deleted_lease_comes_back_with_helm_upgrade(
    helm_site: Site, kube: client.ApiClient, installed: str
) -> None:
    coordination = client.CoordinationV1Api(kube)
    coordination.delete_namespaced_lease(LEASE, NAMESPACE)
    helm_on(helm_site, "upgrade", RELEASE, str(CHART), "--reuse-values")
    assert coordination.read_namespaced_lease(LEASE, NAMESPACE).spec.holder_identity is None


def test_uninstall_leaves_nothing_of_the_release(
    helm_site: Site, kube: client.ApiClient, installed: str
) -> None:
    helm_on(helm_site, "uninstall", RELEASE, "--wait", "--timeout", "120s")
    kinds = kubectl(helm_site, "api-resources", "--namespaced", "--verbs=list",
                    "-o", "name").stdout.split()
    kinds = [k for k in kinds if k not in {"events", "events.events.k8s.io"}]

    def leftovers() -> list[tuple[str, str]]:
        out = kubectl(helm_site, "get", ",".join(kinds), "-n", NAMESPACE, "-o", "json").stdout
        items = json.loads(out)["items"]
        return [(i["kind"], i["metadata"]["name"]) for i in items
                if (i["kind"], i["metadata"]["name"]) not in NOT_THE_RELEASES
                and not (i["kind"] == "Secret" and i["metadata"]["name"] in SECRETS)]

    try:
        wait_for("nothing of the release left", lambda: not leftovers(), timeout=90)
    except AssertionError as err:
        raise AssertionError(f"{err}: {leftovers()}") from None
    assert helm_on(helm_site, "list", "--all", "-q").stdout.strip() == ""
