"""The KubeRay ``RayJob`` for one dispatch, and the names and labels around it. Pure: no I/O.

The object selects exactly the planned accelerator type: every pod carries a nodeSelector on
the product label, and each worker requests ``accelerators_per_worker`` units of the type's
extended resource (``nvidia.com/gpu`` or ``huawei.com/Ascend910``). Every pod tolerates the
``NoSchedule`` taints accelerator nodes commonly carry — the resource's own
(``nvidia.com/gpu``, ``huawei.com/Ascend910``) and KWOK's (``kwok.x-k8s.io/node``) — plus any
the site's configuration adds; the nodeSelector, not the tolerations, decides where pods go.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from scheduler.core.adapter import Dispatch

GROUP, VERSION, PLURAL = "ray.io", "v1", "rayjobs"

# Node label carrying the accelerator product, valued with the core's accelerator type.
# The testbed puts it on its KWOK nodes; on a real site the operator labels the nodes.
ACCELERATOR_LABEL = "isthmus.io/accelerator"
JOB_LABEL = "isthmus.io/job"
TENANT_LABEL = "isthmus.io/tenant"
ATTEMPT_LABEL = "isthmus.io/attempt"
MANAGED_LABEL = "app.kubernetes.io/managed-by"
MANAGER = "isthmus"
JOB_ID_ANNOTATION = "isthmus.io/job-id"
TENANT_ID_ANNOTATION = "isthmus.io/tenant-id"

NVIDIA_GPU = "nvidia.com/gpu"
ASCEND_NPU = "huawei.com/Ascend910"
ACCELERATOR_RESOURCES = (NVIDIA_GPU, ASCEND_NPU)

DEFAULT_IMAGE = "rayproject/ray:2.49.0"
SAFETY_FACTOR = 2.0  # activeDeadlineSeconds = estimated runtime x this ...
MIN_DEADLINE_S = 600  # ... and never less than this
NAMESPACE_PREFIX = "isthmus-"
KWOK_TAINT = "kwok.x-k8s.io/node"

_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DNS_UNSAFE = re.compile(r"[^a-z0-9-]+")


def resource_name(accelerator: str) -> str:
    """The extended resource a pod requests for one accelerator of this type."""
    return ASCEND_NPU if accelerator.lower().startswith("ascend") else NVIDIA_GPU


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def label_value(value: str) -> str:
    """``value`` as a valid label value (<= 63 chars, alphanumeric at both ends).

    Unchanged when already valid; otherwise sanitised with a short hash of the original.
    """
    clean = _LABEL_UNSAFE.sub("-", value).strip("-_.")
    if clean == value and len(clean) <= 63:
        return clean
    return f"{clean[:54].strip('-_.')}-{_digest(value)}".lstrip("-")


def namespace_for(tenant: str, prefix: str = NAMESPACE_PREFIX) -> str:
    """The namespace holding a tenant's RayJobs: ``<prefix><tenant>`` as a DNS-1123 label."""
    slug = _DNS_UNSAFE.sub("-", tenant.lower()).strip("-")
    room = 63 - len(prefix)
    if slug != tenant or len(slug) > room:
        slug = f"{slug[: room - 9].strip('-')}-{_digest(tenant)}".lstrip("-")
    return prefix + slug


def tolerations_for(
    accelerator: str, extra: Sequence[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """What a pod of this accelerator type tolerates: the resource's and KWOK's ``NoSchedule``
    taints (any value), then ``extra`` from the site's configuration."""
    base = [
        {"key": resource_name(accelerator), "operator": "Exists", "effect": "NoSchedule"},
        {"key": KWOK_TAINT, "operator": "Exists", "effect": "NoSchedule"},
    ]
    return base + [dict(t) for t in extra if dict(t) not in base]


def dispatch_labels(dispatch: Dispatch) -> dict[str, str]:
    return {
        JOB_LABEL: label_value(dispatch.job.id),
        TENANT_LABEL: label_value(dispatch.tenant),
        ATTEMPT_LABEL: str(dispatch.attempt),
        MANAGED_LABEL: MANAGER,
    }


def active_deadline_seconds(runtime_h: float, safety: float = SAFETY_FACTOR) -> int:
    return max(MIN_DEADLINE_S, math.ceil(runtime_h * 3600 * safety))


def rayjob_manifest(
    dispatch: Dispatch,
    *,
    image: str = DEFAULT_IMAGE,
    safety: float = SAFETY_FACTOR,
    namespace_prefix: str = NAMESPACE_PREFIX,
    tolerations: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The ``ray.io/v1`` RayJob that runs ``dispatch`` on its planned accelerator type."""
    placement, gang = dispatch.placement, dispatch.job.gang
    accelerator = str(placement.accelerator)
    selector = {ACCELERATOR_LABEL: accelerator}
    tolerated = tolerations_for(accelerator, tolerations)
    labels = dispatch_labels(dispatch)

    def pod(resources: dict[str, str]) -> dict[str, Any]:
        container: dict[str, Any] = {"name": "ray", "image": image}
        if resources:
            container["resources"] = {"requests": resources, "limits": resources}
        return {
            "metadata": {"labels": dict(labels)},
            "spec": {
                "containers": [container],
                "nodeSelector": dict(selector),
                "tolerations": [dict(t) for t in tolerated],
            },
        }

    per_worker = {resource_name(accelerator): str(gang.accelerators_per_worker)}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RayJob",
        "metadata": {
            "name": dispatch.name,
            "namespace": namespace_for(dispatch.tenant, namespace_prefix),
            "labels": labels,
            "annotations": {
                JOB_ID_ANNOTATION: dispatch.job.id,
                TENANT_ID_ANNOTATION: dispatch.tenant,
            },
        },
        "spec": {
            "entrypoint": dispatch.entrypoint,
            "shutdownAfterJobFinishes": True,
            "activeDeadlineSeconds": active_deadline_seconds(placement.runtime_h, safety),
            "rayClusterSpec": {
                "headGroupSpec": {"rayStartParams": {}, "template": pod({})},
                "workerGroupSpecs": [
                    {
                        "groupName": "workers",
                        "replicas": gang.workers,
                        "minReplicas": gang.workers,
                        "maxReplicas": gang.workers,
                        "rayStartParams": {},
                        "template": pod(per_worker),
                    }
                ],
            },
        },
    }


__all__ = [
    "ACCELERATOR_LABEL",
    "ACCELERATOR_RESOURCES",
    "ASCEND_NPU",
    "ATTEMPT_LABEL",
    "JOB_LABEL",
    "KWOK_TAINT",
    "NAMESPACE_PREFIX",
    "NVIDIA_GPU",
    "TENANT_LABEL",
    "active_deadline_seconds",
    "label_value",
    "namespace_for",
    "rayjob_manifest",
    "resource_name",
    "tolerations_for",
]
