"""The ``kubernetes`` site adapter: KubeRay ``RayJob`` objects on a Kubernetes cluster."""

from adapters.kubernetes.manifest import rayjob_manifest
from adapters.kubernetes.site import DispatchConflictError, KubernetesSite, map_status

__all__ = ["DispatchConflictError", "KubernetesSite", "map_status", "rayjob_manifest"]
