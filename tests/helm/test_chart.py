"""The chart without a cluster: lint, the values schema, and what it renders.

Rendered objects are checked against the Kubernetes 1.34 OpenAPI schemas (kubernetes-validate,
offline, strict: an unknown field fails), the ServiceMonitor (a CRD) by hand, and the generated
isthmus.yaml, policy and topology by the service's own loaders.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.kubernetes.config import parse_config
from scheduler.core.policy.load import parse_policy
from scheduler.core.snapshot_file import parse_topology
from scheduler.service.config import load_config
from tests.helm.chart import (
    CHART,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    config_files,
    container,
    env,
    helm,
    kinds,
    one,
    render,
)
from tests.helm.conftest import dev_module
from tools import helm_chart_files

TWO_SITES: dict[str, Any] = {
    "sites": [
        {"name": "zhangjiakou", "existingSecret": "site-zhangjiakou",
         "settings": {"prices": {"H20-96G": 9.5}, "namespace_prefix": "isthmus-"}},
        {"name": "guian", "existingSecret": "site-guian", "secretKey": "config"},
    ],
}
TRIAL: dict[str, Any] = {"replicaCount": 1, "database": {"existingSecret": ""}}

# name -> values; every case renders and every object validates against the 1.34 schemas.
MATRIX: dict[str, dict[str, Any]] = {
    "defaults": {},
    "one replica": TRIAL,
    "service monitor": {"metrics": {"serviceMonitor": {"enabled": True,
                                                       "labels": {"release": "prometheus"}}}},
    "network policy": {"networkPolicy": {
        "enabled": True,
        "ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "ml"}}}],
        "egress": [{"ports": [{"port": 5432, "protocol": "TCP"}]},
                   {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443}]}]}},
    "two sites": TWO_SITES,
    "no leader election": {**TRIAL, "leaderElection": {"enabled": False}},
    "everything": {
        **TWO_SITES,
        "replicaCount": 3,
        "image": {"repository": "registry.example.com/platform/isthmus",
                  "digest": "sha256:" + "a" * 64},
        "imagePullSecrets": [{"name": "regcred"}],
        "extraSites": {"tianfu": {"adapter": "ray", "address": "http://10.0.3.7:8265"}},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "networkPolicy": {"enabled": True},
        "config": {"cycle_s": 5, "tenants": [{"id": "acme", "home_region": "Shanghai"}]},
        "extraEnv": [{"name": "ISTHMUS_EXTRA", "value": "1"}],
        "priorityClassName": "system-cluster-critical",
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "control",
                         "effect": "NoSchedule"}],
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "isthmus"}}}],
    },
}


# ------------------------------------------------------------------ lint and the schema

def test_lint_passes() -> None:
    result = helm("lint", str(CHART), "--strict")
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", [TRIAL, TWO_SITES, MATRIX["everything"]],
                         ids=["trial", "two sites", "everything"])
def test_lint_passes_with_values(values: dict[str, Any]) -> None:
    helm("lint", str(CHART), "--strict", values=values)


BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("replicas as a word", {"replicaCount": "two"},
     "at '/replicaCount': got string, want integer"),
    ("unknown top-level key", {"replicas": 2},
     "additional properties 'replicas' not allowed"),
    ("a typo in a nested key", {"database": {"existingSecrt": "db"}},
     "additional properties 'existingSecrt' not allowed"),
    ("a site without its Secret", {"sites": [{"name": "guian"}]},
     "missing property 'existingSecret'"),
    ("a site name that is no DNS label", {"sites": [{"name": "Gui_An", "existingSecret": "s"}]},
     "at '/sites/0/name'"),
    ("an adapter setting the chart owns", {"sites": [
        {"name": "guian", "existingSecret": "s", "settings": {"kubeconfig": "/x"}}]},
     "additional properties 'kubeconfig' not allowed"),
    ("a config key the chart writes", {"config": {"database": "sqlite:///x"}},
     "additional properties 'database' not allowed"),
    ("zero replicas", {"replicaCount": 0}, "at '/replicaCount': minimum"),
    ("a pull policy that does not exist", {"image": {"pullPolicy": "Sometimes"}},
     "at '/image/pullPolicy'"),
    # Rules across keys that the schema states (if replicaCount >= 2 then ...):
    ("two replicas on SQLite", {"database": {"existingSecret": ""}},
     "at '/database/existingSecret': minLength: got 0, want 1"),
    ("two replicas without leader election", {"leaderElection": {"enabled": False}},
     "at '/leaderElection/enabled': value must be true"),
]

# Rules a JSON schema cannot state: the templates `fail`. `helm install` and `helm template` stop
# with the message; `helm lint` only reports it (lint renders templates with `fail` as INFO).
TEMPLATE_CHECKS: list[tuple[str, dict[str, Any], str]] = [
    ("renewing too rarely", {"leaderElection": {"renewEverySeconds": 6}},
     "leaderElection.renewEverySeconds (6) must be under half of "
     "leaderElection.leaseDurationSeconds (10)"),
    ("a site listed twice", {"sites": [{"name": "guian", "existingSecret": "a"},
                                       {"name": "guian", "existingSecret": "b"}]},
     'sites: "guian" is listed twice'),
    ("a site also in extraSites", {"sites": [{"name": "guian", "existingSecret": "a"}],
                                   "extraSites": {"guian": {"adapter": "ray"}}},
     'sites: "guian" is also in extraSites'),
]


@pytest.mark.parametrize(("values", "message"), [(v, m) for _, v, m in BAD_VALUES],
                         ids=[name for name, _, _ in BAD_VALUES])
def test_bad_values_fail_with_the_schemas_message(values: dict[str, Any], message: str) -> None:
    lint = helm("lint", str(CHART), values=values, check=False)
    assert lint.returncode != 0
    assert message in lint.stdout
    # What `helm install` checks before it sends anything: the same schema.
    template = helm("template", RELEASE, str(CHART), values=values, check=False)
    assert template.returncode != 0
    assert "values don't meet the specifications of the schema" in template.stderr
    assert message in template.stderr


@pytest.mark.parametrize(("values", "message"), [(v, m) for _, v, m in TEMPLATE_CHECKS],
                         ids=[name for name, _, _ in TEMPLATE_CHECKS])
def test_bad_values_fail_the_templates_checks(values: dict[str, Any], message: str) -> None:
    template = helm("template", RELEASE, str(CHART), values=values, check=False)
    assert template.returncode != 0
    assert message in template.stderr
    lint = helm("lint", str(CHART), values=values, check=False)
    assert message in lint.stderr


# ------------------------------------------------------------------ the matrix, against 1.34

@pytest.mark.parametrize("values", list(MATRIX.values()), ids=list(MATRIX))
def test_renders_objects_valid_for_kubernetes_1_34(values: dict[str, Any]) -> None:
    kv = dev_module("kubernetes_validate", "kubernetes-validate>=1.34")
    docs = render(values)
    for doc in docs:
        assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]
        if doc["kind"] == "ServiceMonitor":
            continue  # a CRD: checked by hand below
        try:
            kv.validate(doc, KUBE_VERSION, strict=True)
        except kv.ValidationError as err:  # pragma: no cover - the message is the point
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {err.message} "
                        f"at {list(err.path)}")
    assert_config_loads(config_files(docs))


def test_the_packaged_chart_renders_the_same(tmp_path: Path) -> None:
    """`helm package` keeps everything the templates read (files/, the schema)."""
    helm("package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("isthmus-*.tgz")
    for values in (MATRIX["everything"], {"replicaCount": "two"}):
        from_dir = helm("template", RELEASE, str(CHART), values=values, check=False)
        from_archive = helm("template", RELEASE, str(archive), values=values, check=False)
        assert (from_archive.returncode, from_archive.stdout) == (from_dir.returncode,
                                                                  from_dir.stdout)


def test_default_objects() -> None:
    assert kinds(render()) == sorted([
        "ConfigMap", "Deployment", "Lease", "PodDisruptionBudget", "Role", "RoleBinding",
        "Service", "ServiceAccount",
    ])


def test_one_replica_has_no_disruption_budget() -> None:
    docs = render(TRIAL)
    assert "PodDisruptionBudget" not in kinds(docs)
    assert one(docs, "Deployment")["spec"]["replicas"] == 1


def test_disruption_budget_keeps_one_replica() -> None:
    pdb = one(render(), "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    labels = one(render(), "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_service_monitor_by_hand() -> None:
    docs = render(MATRIX["service monitor"])
    monitor = one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    spec = monitor["spec"]
    assert set(spec) == {"namespaceSelector", "selector", "endpoints"}
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    service = one(docs, "Service")
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = spec["endpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "interval": "30s",
                        "scrapeTimeout": "10s"}
    assert [p["name"] for p in service["spec"]["ports"]] == ["http"]


def test_network_policy_opens_the_api_port_only() -> None:
    policy = one(render(MATRIX["network policy"]), "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert ingress["from"] == [{"namespaceSelector": {"matchLabels": {"team": "ml"}}}]
    dns, postgres, apiservers = policy["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert postgres["ports"] == [{"port": 5432, "protocol": "TCP"}]
    assert apiservers["ports"][0]["port"] == 443
    # Without egress rules, egress is not restricted (listing it with no rules would deny all).
    unrestricted = one(render({"networkPolicy": {"enabled": True}}), "NetworkPolicy")["spec"]
    assert unrestricted["policyTypes"] == ["Ingress"]
    assert "from" not in unrestricted["ingress"][0]


# ------------------------------------------------------------------ the pod

def test_pod_meets_the_restricted_pod_security_standard() -> None:
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = container([one(render(), "Deployment")])["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container([one(render(), "Deployment")])
              ["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert not any("hostPath" in v for v in volumes.values())


def test_probes_resources_and_command() -> None:
    c = container(render())
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert c["resources"]["requests"] == {"cpu": "250m", "memory": "512Mi"}
    assert c["resources"]["limits"] == {"memory": "2Gi"}
    assert c["args"][:3] == ["serve", "--config", "/etc/isthmus/isthmus.yaml"]
    assert c["image"] == "isthmus:0.1.0"
    pinned = container(render(MATRIX["everything"]))
    assert pinned["image"] == "registry.example.com/platform/isthmus@sha256:" + "a" * 64


def test_environment_from_the_downward_api_and_secrets() -> None:
    variables = env(render())
    assert variables["ISTHMUS_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert variables["ISTHMUS_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert variables["ISTHMUS_DATABASE_URL"] == {
        "secretKeyRef": {"name": "isthmus-database", "key": "url"}}
    assert variables["ISTHMUS_TOKENS_FILE"] == "/etc/isthmus/auth/tokens.yaml"
    trial = env(render({**TRIAL, "auth": {"existingSecret": ""}}))
    assert "ISTHMUS_DATABASE_URL" not in trial
    assert "ISTHMUS_TOKENS_FILE" not in trial


def test_secrets_are_mounted_where_the_configuration_points() -> None:
    docs = render(TWO_SITES)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container(docs)["volumeMounts"]}
    assert mounts["/etc/isthmus/auth"]["secret"] == {
        "secretName": "isthmus-tokens", "defaultMode": 0o440,
        "items": [{"key": "tokens.yaml", "path": "tokens.yaml"}]}
    config = yaml.safe_load(config_files(docs)["isthmus.yaml"])
    for site in TWO_SITES["sites"]:
        path = config["sites"][site["name"]]["kubeconfig"]
        assert path == f"/etc/isthmus/sites/{site['name']}/kubeconfig"
        secret = mounts[str(Path(path).parent)]["secret"]
        assert secret["secretName"] == site["existingSecret"]
        assert secret["items"] == [{"key": site.get("secretKey", "kubeconfig"),
                                    "path": "kubeconfig"}]
    sub_paths = {m["mountPath"]: m.get("subPath") for m in container(docs)["volumeMounts"]}
    for name in ("isthmus.yaml", "policy.yaml", "topology.yaml"):
        # One file each (subPath): /etc/isthmus itself stays the image's, so the Secrets can
        # be mounted below it.
        assert mounts[f"/etc/isthmus/{name}"]["configMap"] == {"name": RELEASE}
        assert sub_paths[f"/etc/isthmus/{name}"] == name


def test_service_account_token_only_for_leader_election() -> None:
    assert one(render(), "Deployment")["spec"]["template"]["spec"][
        "automountServiceAccountToken"] is True
    off = render({**TRIAL, "leaderElection": {"enabled": False}})
    assert one(off, "Deployment")["spec"]["template"]["spec"][
        "automountServiceAccountToken"] is False
    assert not {"Role", "RoleBinding", "Lease"} & set(kinds(off))
    assert one(off, "ServiceAccount")["automountServiceAccountToken"] is False


# ------------------------------------------------------------------ RBAC

def test_role_allows_only_the_lease() -> None:
    docs = render()
    lease = one(docs, "Lease")
    assert lease["metadata"]["name"] == "isthmus-leader"
    assert lease["spec"] == {}  # no holder: the first replica to look takes it
    role = one(docs, "Role")
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": ["isthmus-leader"], "verbs": ["get", "update"]},
    ]
    binding = one(docs, "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "isthmus",
                                    "namespace": NAMESPACE}]
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "isthmus"
    # Nothing cluster-wide.
    assert not {"ClusterRole", "ClusterRoleBinding"} & set(kinds(render(MATRIX["everything"])))


def test_service_creates_the_lease_when_the_chart_does_not() -> None:
    docs = render({"leaderElection": {"createLease": False}})
    assert "Lease" not in kinds(docs)
    assert one(docs, "Role")["rules"][1] == {
        "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}


# ------------------------------------------------------------------ the configuration

def assert_config_loads(files: dict[str, str], tmp: Path | None = None) -> None:
    """The ConfigMap's files, read by the service's own loaders as the pod would read them."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        base = Path(tmp or scratch)
        text = files["isthmus.yaml"].replace("/etc/isthmus/", f"{base}/")
        for name, content in files.items():
            (base / name).write_text(text if name == "isthmus.yaml" else content)
        for name, site in (yaml.safe_load(text).get("sites") or {}).items():
            if site["adapter"] == "kubernetes":
                kubeconfig = Path(site["kubeconfig"])
                kubeconfig.parent.mkdir(parents=True, exist_ok=True)
                kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
                parse_config(site)  # the adapter's own check of its section
                assert kubeconfig.is_relative_to(base / "sites" / name)
        config = load_config(base / "isthmus.yaml")
        assert config.topology_path == (base / "topology.yaml").resolve()
        assert config.policy_path == (base / "policy.yaml").resolve()
        parse_topology(files["topology.yaml"], "topology.yaml")
        parse_policy(files["policy.yaml"], "policy.yaml")


def test_generated_configuration() -> None:
    config = yaml.safe_load(config_files(render())["isthmus.yaml"])
    assert config == {
        "topology": "topology.yaml",
        "policy": "policy.yaml",
        "cycle_s": 2,
        "down_after": 3,
        "leader_election": {"lease": "isthmus-leader", "namespace": NAMESPACE,
                            "lease_duration_s": 10, "renew_every_s": 2},
    }
    trial = yaml.safe_load(config_files(render(TRIAL))["isthmus.yaml"])
    assert trial["database"] == "sqlite:////var/lib/isthmus/isthmus.db"
    sites = yaml.safe_load(config_files(render(MATRIX["everything"]))["isthmus.yaml"])["sites"]
    assert sites == {
        "zhangjiakou": {"adapter": "kubernetes",
                        "kubeconfig": "/etc/isthmus/sites/zhangjiakou/kubeconfig",
                        "prices": {"H20-96G": 9.5}, "namespace_prefix": "isthmus-"},
        "guian": {"adapter": "kubernetes", "kubeconfig": "/etc/isthmus/sites/guian/kubeconfig"},
        "tianfu": {"adapter": "ray", "address": "http://10.0.3.7:8265"},
    }


def test_default_policy_and_topology_are_the_repositorys() -> None:
    assert helm_chart_files.stale() == [], "run tools/helm_chart_files.py"
    files = config_files(render())
    for name, source in helm_chart_files.COPIES.items():
        assert files[Path(name).name] == source.read_text(), name


def test_policy_from_a_file_or_a_mapping() -> None:
    text = "name: cheap\nplanner: greedy-cheapest\n"
    assert config_files(render({"policy": text}))["policy.yaml"] == text
    mapping = yaml.safe_load(config_files(render({"policy": {"name": "m",
                                                             "planner": "first-fit"}}))
                             ["policy.yaml"])
    assert mapping == {"name": "m", "planner": "first-fit"}
    assert_config_loads(config_files(render({"policy": text})))


def checksum(values: dict[str, Any]) -> str:
    template = one(render(values), "Deployment")["spec"]["template"]
    return str(template["metadata"]["annotations"]["checksum/config"])


def test_checksum_follows_the_configmap_and_nothing_else() -> None:
    base = checksum({})
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert checksum({}) == base  # deterministic
    assert checksum({"policy": "name: other\n"}) != base
    assert checksum({"topology": {"sites": []}}) != base
    assert checksum({"config": {"cycle_s": 5}}) != base
    assert checksum({"resources": {"requests": {"cpu": "1"}}}) == base  # not the ConfigMap
