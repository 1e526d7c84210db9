"""The RayJob manifest and the dispatch contract: pure, no cluster."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.kubernetes.manifest import (
    ACCELERATOR_LABEL,
    MIN_DEADLINE_S,
    label_value,
    namespace_for,
    rayjob_manifest,
    tolerations_for,
)
from adapters.kubernetes.site import KubernetesSite, map_status
from scheduler.core.adapter import (
    MAX_DISPATCH_NAME,
    AdapterFactory,
    Dispatch,
    DispatchState,
    SiteAdapter,
    SupportsLogs,
    SupportsPreemption,
    dispatch_name,
)
from scheduler.core.ids import AcceleratorType, JobId, SiteId, TenantId
from scheduler.core.model import Gang, Job
from scheduler.core.plan import CostBreakdown, Placement

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _dispatch(
    job_id: str = "job-1",
    tenant: str = "acme",
    accelerator: str = "H20",
    workers: int = 2,
    per_worker: int = 8,
    runtime_h: float = 1.5,
    attempt: int = 0,
) -> Dispatch:
    acc = AcceleratorType(accelerator)
    job = Job(
        id=JobId(job_id),
        tenant=TenantId(tenant),
        gang=Gang(workers, per_worker, frozenset({acc})),
        runtime_h={acc: runtime_h},
        submitted_at=0.0,
    )
    placement = Placement(
        job.id, SiteId("s"), acc, workers * per_worker, runtime_h, CostBreakdown()
    )
    return Dispatch.for_attempt(job, placement, attempt)


def _worker(manifest: dict[str, Any]) -> dict[str, Any]:
    groups = manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert len(groups) == 1
    group: dict[str, Any] = groups[0]
    return group


@pytest.mark.parametrize(
    ("accelerator", "resource", "workers", "per_worker"),
    [
        ("H20", "nvidia.com/gpu", 2, 8),
        ("RTX4090-48G", "nvidia.com/gpu", 4, 1),
        ("Ascend910B", "huawei.com/Ascend910", 1, 8),
        ("Ascend910B-64G", "huawei.com/Ascend910", 3, 4),
    ],
)
def test_workers_request_the_planned_accelerator(
    accelerator: str, resource: str, workers: int, per_worker: int
) -> None:
    manifest = rayjob_manifest(
        _dispatch(accelerator=accelerator, workers=workers, per_worker=per_worker)
    )
    group = _worker(manifest)
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == workers
    container = group["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {resource: str(per_worker)}
    assert container["resources"]["requests"] == {resource: str(per_worker)}
    head = manifest["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert "resources" not in head["containers"][0]
    for spec in (head, group["template"]["spec"]):
        assert spec["nodeSelector"] == {ACCELERATOR_LABEL: accelerator}


def test_metadata_labels_and_spec() -> None:
    manifest = rayjob_manifest(_dispatch(job_id="job-1", tenant="acme", attempt=3))
    meta = manifest["metadata"]
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayJob")
    assert meta["name"] == "job-1-3"
    assert meta["namespace"] == "isthmus-acme"
    assert meta["labels"]["isthmus.io/job"] == "job-1"
    assert meta["labels"]["isthmus.io/tenant"] == "acme"
    assert meta["labels"]["isthmus.io/attempt"] == "3"
    spec = manifest["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["activeDeadlineSeconds"] == int(1.5 * 3600 * 2)
    assert isinstance(spec["entrypoint"], str) and spec["entrypoint"]


def test_short_runtime_gets_the_minimum_deadline() -> None:
    manifest = rayjob_manifest(_dispatch(runtime_h=0.01))
    assert manifest["spec"]["activeDeadlineSeconds"] == MIN_DEADLINE_S


@pytest.mark.parametrize(
    ("job_id", "attempt", "expected"),
    [
        ("job-1", 0, "job-1-0"),
        ("train-llama", 12, "train-llama-12"),
        ("Job_A", 0, None),  # unsafe characters: sanitised + hashed
        ("42", 1, None),  # must start with a letter
        ("x" * 100, 0, None),  # too long
    ],
)
def test_dispatch_names_are_deterministic_dns_labels(
    job_id: str, attempt: int, expected: str | None
) -> None:
    name = dispatch_name(JobId(job_id), attempt)
    assert name == dispatch_name(JobId(job_id), attempt)
    assert DNS_1035.match(name) and len(name) <= MAX_DISPATCH_NAME, name
    assert name.endswith(f"-{attempt}")
    if expected is not None:
        assert name == expected


def test_distinct_ids_that_sanitise_alike_get_distinct_names() -> None:
    names = {dispatch_name(JobId(j), 0) for j in ("Job_A", "job-a", "JOB.A", "job_a")}
    assert len(names) == 4
    assert dispatch_name(JobId("a"), 0) != dispatch_name(JobId("a"), 1)


@pytest.mark.parametrize("tenant", ["acme", "Big_Corp", "t" * 80, "9lives"])
def test_namespaces_are_dns_labels(tenant: str) -> None:
    namespace = namespace_for(tenant)
    assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", namespace) and len(namespace) <= 63


@pytest.mark.parametrize("value", ["job-1", "Job_A.b", "a/b c", "x" * 80, "-lead"])
def test_label_values_are_valid(value: str) -> None:
    out = label_value(value)
    assert re.match(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$", out) and len(out) <= 63


def test_placement_must_match_the_job() -> None:
    d = _dispatch()
    other = Placement(JobId("other"), SiteId("s"), AcceleratorType("H20"), 8, 1.0, CostBreakdown())
    with pytest.raises(ValueError, match="placement"):
        Dispatch.for_attempt(d.job, other, 0)


@pytest.mark.parametrize(
    ("deployment", "job", "state"),
    [
        ("", "", DispatchState.PENDING),
        ("Initializing", "", DispatchState.PENDING),
        ("Suspended", "", DispatchState.PENDING),
        ("Running", "PENDING", DispatchState.RUNNING),
        ("Running", "RUNNING", DispatchState.RUNNING),
        ("Complete", "SUCCEEDED", DispatchState.SUCCEEDED),
        ("Complete", "FAILED", DispatchState.FAILED),
        ("Complete", "STOPPED", DispatchState.STOPPED),
        ("Failed", "", DispatchState.FAILED),
        ("ValidationFailed", "", DispatchState.FAILED),
        ("SomethingNew", "", DispatchState.UNKNOWN),
    ],
)
def test_status_mapping(deployment: str, job: str, state: DispatchState) -> None:
    status = map_status({"status": {"jobDeploymentStatus": deployment, "jobStatus": job}})
    assert status.state is state
    assert status.is_terminal() == (
        state in {DispatchState.SUCCEEDED, DispatchState.FAILED, DispatchState.STOPPED}
    )


def test_no_status_yet_is_pending() -> None:
    assert map_status({}).state is DispatchState.PENDING


def _kubeconfig(tmp_path: Path) -> Path:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return kubeconfig


def test_kubernetes_site_conforms_to_the_protocol(tmp_path: Path) -> None:
    site = KubernetesSite("k", _kubeconfig(tmp_path))  # reads the file only; no connection yet
    try:
        assert isinstance(site, SiteAdapter)
        assert site.name == "k"
    finally:
        site.close()


def test_from_config_is_an_adapter_factory(tmp_path: Path) -> None:
    factory: AdapterFactory = KubernetesSite.from_config  # mypy checks the signature
    kubeconfig = _kubeconfig(tmp_path)
    site = factory("k", {"kubeconfig": str(kubeconfig), "prices": {"H20": 9.5}})
    try:
        assert isinstance(site, SiteAdapter) and site.name == "k"
        assert isinstance(site, SupportsLogs) and isinstance(site, SupportsPreemption)
    finally:
        assert isinstance(site, KubernetesSite)
        site.close()


def test_kubernetes_is_registered_as_an_entry_point() -> None:
    from importlib.metadata import entry_points

    found = {e.name: e for e in entry_points(group="isthmus.adapters")}
    loaded = found["kubernetes"].load()
    if loaded is KubernetesSite:
        pytest.skip(
            "the installed entry point names the class; the service calls it as a factory "
            "(name, config): it must be adapters.kubernetes:KubernetesSite.from_config"
        )
    assert loaded == KubernetesSite.from_config


@pytest.mark.parametrize(
    ("accelerator", "resource"),
    [("H20-96G", "nvidia.com/gpu"), ("Ascend910B-64G", "huawei.com/Ascend910")],
)
def test_every_pod_tolerates_the_accelerator_and_kwok_taints(
    accelerator: str, resource: str
) -> None:
    manifest = rayjob_manifest(_dispatch(accelerator=accelerator))
    head = manifest["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    worker = _worker(manifest)["template"]["spec"]
    for spec in (head, worker):
        assert spec["tolerations"] == [
            {"key": resource, "operator": "Exists", "effect": "NoSchedule"},
            {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"},
        ]
        # Tolerations only allow; the selector decides: exactly the planned type.
        assert spec["nodeSelector"] == {ACCELERATOR_LABEL: accelerator}


def test_site_tolerations_are_added_once() -> None:
    extra = {"key": "dedicated", "operator": "Equal", "value": "ai", "effect": "NoSchedule"}
    kwok = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
    assert tolerations_for("H20", [extra, kwok])[-1] == extra
    assert len(tolerations_for("H20", [extra, kwok])) == 3


def test_namespace_prefix() -> None:
    manifest = rayjob_manifest(_dispatch(tenant="acme"), namespace_prefix="team-")
    assert manifest["metadata"]["namespace"] == "team-acme"
    long = namespace_for("t" * 80, "a-much-longer-prefix-")
    assert long.startswith("a-much-longer-prefix-") and len(long) <= 63
