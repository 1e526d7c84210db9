"""The ``kubernetes`` site adapter: KubeRay ``RayJob`` objects on a Kubernetes cluster.

``KubernetesSite.from_config(name, config)`` builds one from a site's adapter section (see
``adapters.kubernetes.config``); docs/kubernetes-sites.md describes the whole adapter.
"""

from adapters.kubernetes.manifest import rayjob_manifest
from adapters.kubernetes.site import KubernetesSite, QuotaExhausted, map_status

__all__ = ["KubernetesSite", "QuotaExhausted", "map_status", "rayjob_manifest"]
