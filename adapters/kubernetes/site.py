"""``KubernetesSite``: a Kubernetes cluster running KubeRay, driven with the official client.

Credentials come from a kubeconfig file. Dispatches become ``RayJob`` objects (see
``adapters.kubernetes.manifest``) in a namespace per tenant.

This first slice lists Nodes and Pods on every ``inventory()`` call; an informer-style cache kept
current by watches replaces that later (issue 4). Transient API errors are not retried here yet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import quantity
from urllib3.exceptions import HTTPError

from adapters.kubernetes.manifest import (
    ACCELERATOR_LABEL,
    ACCELERATOR_RESOURCES,
    GROUP,
    JOB_LABEL,
    MANAGED_LABEL,
    MANAGER,
    PLURAL,
    VERSION,
    label_value,
    namespace_for,
    rayjob_manifest,
)
from scheduler.core.adapter import Dispatch, DispatchState, DispatchStatus, Health
from scheduler.core.ids import AcceleratorType
from scheduler.core.model import AcceleratorPool

TERMINAL_POD_PHASES = frozenset({"Succeeded", "Failed"})
HEALTH_TIMEOUT_S = 5.0

# The client's own annotations are partial and its objects Optional everywhere; this module
# reads them defensively and treats them as Any at this boundary.
_load_kube_config: Any = config.load_kube_config
_parse_quantity: Any = quantity.parse_quantity


def _units(value: Any) -> int:
    return int(_parse_quantity(value))


class DispatchConflictError(RuntimeError):
    """A RayJob with the dispatch's name exists at the site but belongs to another job."""


def _pod_requests(pod: Any) -> dict[str, int]:
    """A pod's effective accelerator requests: max(sum of containers, largest init container)."""
    total: dict[str, int] = defaultdict(int)
    for container in pod.spec.containers or ():
        requests = (container.resources and container.resources.requests) or {}
        for resource in ACCELERATOR_RESOURCES:
            if resource in requests:
                total[resource] += _units(requests[resource])
    for container in pod.spec.init_containers or ():
        requests = (container.resources and container.resources.requests) or {}
        for resource in ACCELERATOR_RESOURCES:
            if resource in requests:
                total[resource] = max(total[resource], _units(requests[resource]))
    return dict(total)


def map_status(obj: Mapping[str, Any]) -> DispatchStatus:
    """A RayJob's ``status`` (jobDeploymentStatus / jobStatus) as a ``DispatchStatus``."""
    status = obj.get("status") or {}
    deployment = status.get("jobDeploymentStatus", "")
    job = status.get("jobStatus", "")
    reason = status.get("reason", "") or deployment
    message = status.get("message", "")
    if deployment == "Complete":
        state = {
            "SUCCEEDED": DispatchState.SUCCEEDED,
            "FAILED": DispatchState.FAILED,
            "STOPPED": DispatchState.STOPPED,
        }.get(job, DispatchState.UNKNOWN)
    elif deployment in {"Failed", "ValidationFailed"}:
        state = DispatchState.FAILED
    elif deployment == "Running" or job == "RUNNING":
        state = DispatchState.RUNNING
    elif deployment in {"", "Initializing", "Waiting", "Retrying", "Suspending", "Suspended"}:
        state = DispatchState.PENDING
    else:
        state = DispatchState.UNKNOWN
        message = message or f"unmapped jobDeploymentStatus {deployment!r}, jobStatus {job!r}"
    return DispatchStatus(state, reason, message)


def _describe(err: Exception) -> str:
    if isinstance(err, ApiException):
        meaning = {401: "unauthorized", 403: "forbidden", 404: "not found"}.get(
            err.status or 0, "API error"
        )
        return f"{meaning} ({err.status}): {err.reason}"
    return f"unreachable: {type(err).__name__}: {err}"


class KubernetesSite:
    """A ``SiteAdapter`` for one Kubernetes + KubeRay cluster."""

    def __init__(
        self,
        name: str,
        kubeconfig: str | Path,
        *,
        context: str | None = None,
        prices: Mapping[str, float] | None = None,
        image: str | None = None,
    ) -> None:
        self.name = name
        configuration = client.Configuration()
        _load_kube_config(
            config_file=str(kubeconfig), context=context, client_configuration=configuration
        )
        self._api: Any = client.ApiClient(configuration)
        self._core: Any = client.CoreV1Api(self._api)
        self._custom: Any = client.CustomObjectsApi(self._api)
        self._prices = dict(prices or {})
        self._image = image
        self._namespaces: dict[str, str] = {}  # dispatch name -> namespace, a cache only

    def close(self) -> None:
        self._api.close()

    # -- inventory -------------------------------------------------------------------------

    def inventory(self) -> tuple[AcceleratorPool, ...]:
        total: dict[str, int] = defaultdict(int)
        node_type: dict[str, tuple[str, str]] = {}  # node -> (accelerator type, resource)
        for node in self._core.list_node().items:
            product = (node.metadata.labels or {}).get(ACCELERATOR_LABEL)
            allocatable = node.status.allocatable or {}
            if product is None or node.spec.unschedulable:
                continue
            for resource in ACCELERATOR_RESOURCES:
                if resource in allocatable:
                    total[product] += _units(allocatable[resource])
                    node_type[node.metadata.name] = (product, resource)
        used: dict[str, int] = defaultdict(int)
        for pod in self._core.list_pod_for_all_namespaces().items:
            placed = node_type.get(pod.spec.node_name or "")
            if placed is None or pod.status.phase in TERMINAL_POD_PHASES:
                continue
            product, resource = placed
            used[product] += _pod_requests(pod).get(resource, 0)
        return tuple(
            AcceleratorPool(
                AcceleratorType(product),
                count,
                max(0, count - used[product]),
                self._prices.get(product, 0.0),
            )
            for product, count in sorted(total.items())
        )

    # -- dispatch --------------------------------------------------------------------------

    def _ensure_namespace(self, namespace: str) -> None:
        body = {"metadata": {"name": namespace, "labels": {MANAGED_LABEL: MANAGER}}}
        try:
            self._core.create_namespace(body)
        except ApiException as err:
            if err.status != 409:
                raise

    def submit(self, dispatch: Dispatch) -> None:
        body = (
            rayjob_manifest(dispatch)
            if self._image is None
            else rayjob_manifest(dispatch, image=self._image)
        )
        namespace = body["metadata"]["namespace"]
        self._ensure_namespace(namespace)
        try:
            self._custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        except ApiException as err:
            if err.status != 409:
                raise
            existing = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, dispatch.name
            )
            owner = (existing.get("metadata", {}).get("labels") or {}).get(JOB_LABEL)
            if owner != label_value(dispatch.job.id):
                raise DispatchConflictError(
                    f"site {self.name}: RayJob {namespace}/{dispatch.name} exists for job "
                    f"{owner!r}, not {dispatch.job.id!r}"
                ) from err
        self._namespaces[dispatch.name] = namespace

    def _find(self, dispatch_name: str) -> dict[str, Any] | None:
        """The RayJob named ``dispatch_name`` in any tenant namespace, or None."""
        namespace = self._namespaces.get(dispatch_name)
        if namespace is not None:
            try:
                found: dict[str, Any] = self._custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, dispatch_name
                )
                return found
            except ApiException as err:
                if err.status != 404:
                    raise
        listed = self._custom.list_cluster_custom_object(
            GROUP,
            VERSION,
            PLURAL,
            label_selector=f"{MANAGED_LABEL}={MANAGER}",
            field_selector=f"metadata.name={dispatch_name}",
        )
        items: list[dict[str, Any]] = listed.get("items", [])
        if not items:
            self._namespaces.pop(dispatch_name, None)
            return None
        self._namespaces[dispatch_name] = items[0]["metadata"]["namespace"]
        return items[0]

    def status(self, dispatch_name: str) -> DispatchStatus:
        obj = self._find(dispatch_name)
        if obj is None:
            return DispatchStatus(DispatchState.UNKNOWN, "NotFound", f"no RayJob {dispatch_name}")
        return map_status(obj)

    def cancel(self, dispatch_name: str) -> None:
        obj = self._find(dispatch_name)
        if obj is None:
            return
        try:
            self._custom.delete_namespaced_custom_object(
                GROUP, VERSION, obj["metadata"]["namespace"], PLURAL, dispatch_name
            )
        except ApiException as err:
            if err.status != 404:
                raise
        self._namespaces.pop(dispatch_name, None)

    # -- health ----------------------------------------------------------------------------

    def health(self) -> Health:
        """One authorized, cheap call: list at most one RayJob (also proves the CRD is there)."""
        try:
            self._custom.list_cluster_custom_object(
                GROUP, VERSION, PLURAL, limit=1, _request_timeout=HEALTH_TIMEOUT_S
            )
        except (ApiException, HTTPError, OSError) as err:
            return Health(False, f"site {self.name}: {_describe(err)}")
        return Health(True)


__all__ = ["DispatchConflictError", "KubernetesSite", "map_status", "namespace_for"]
