"""A Kubernetes site's adapter section of the service configuration, checked, and its kubeconfig.

    sites:
      wulanchabu:
        adapter: kubernetes
        kubeconfig: /etc/isthmus/sites/wulanchabu.kubeconfig   # either a file ...
        kubeconfig_secret:                                      # ... or a Secret on the hub
          {namespace: isthmus, name: wulanchabu-kubeconfig, key: kubeconfig}
        hub_kubeconfig: /etc/isthmus/hub.kubeconfig   # optional: how to read that Secret
        context: wulanchabu-admin                     # optional: a context of the kubeconfig
        prices: {H20-96G: 9.5, RTX4090-48G: 2.1}      # CNY per accelerator-hour
        image: rayproject/ray:2.49.0                  # optional: the Ray image of every pod
        namespace_prefix: isthmus-                    # optional: tenant namespaces' prefix
        tolerations:                                  # optional: extra pod tolerations
          - {key: dedicated, operator: Equal, value: ai, effect: NoSchedule}

:func:`parse_config` checks the section (plain YAML values) and raises ``ValueError`` naming the
key on bad input; :func:`load_kubeconfig` reads the kubeconfig it names. The Secret is read
through ``hub_kubeconfig`` when given, else the in-cluster service account when running in a
pod, else the ambient kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adapters.kubernetes.manifest import NAMESPACE_PREFIX

KEYS = frozenset(
    {
        "adapter",
        "kubeconfig",
        "kubeconfig_secret",
        "hub_kubeconfig",
        "context",
        "prices",
        "image",
        "namespace_prefix",
        "tolerations",
    }
)
SECRET_KEYS = ("namespace", "name", "key")
TOLERATION_KEYS = frozenset({"key", "operator", "value", "effect", "tolerationSeconds"})
# A prefix of a DNS-1123 label, short enough to leave room for the tenant's part.
_PREFIX = re.compile(r"^[a-z0-9][-a-z0-9]{0,29}$")


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a site's kubeconfig is kept on the hub cluster: ``data[key]`` of a Secret."""

    namespace: str
    name: str
    key: str


@dataclass(frozen=True, slots=True)
class KubernetesSiteConfig:
    kubeconfig: Path | None = None
    kubeconfig_secret: SecretRef | None = None
    hub_kubeconfig: Path | None = None
    context: str | None = None
    prices: Mapping[str, float] = field(default_factory=dict)
    image: str | None = None
    namespace_prefix: str = NAMESPACE_PREFIX
    tolerations: tuple[Mapping[str, Any], ...] = ()


def _string(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: expected a non-empty string, got {value!r}")
    return value


def _path(config: Mapping[str, Any], key: str) -> Path | None:
    value = _string(config, key)
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"{key}: {path} is not a readable file")
    return path


def _secret(value: Any) -> SecretRef:
    if not isinstance(value, Mapping):
        raise ValueError(
            f"kubeconfig_secret: expected {{namespace, name, key}}, got {type(value).__name__}"
        )
    unknown = sorted(set(value) - set(SECRET_KEYS))
    if unknown:
        raise ValueError(f"kubeconfig_secret.{unknown[0]}: unknown key")
    parts = []
    for key in SECRET_KEYS:
        part = value.get(key)
        if not isinstance(part, str) or not part:
            raise ValueError(f"kubeconfig_secret.{key}: expected a non-empty string, got {part!r}")
        parts.append(part)
    return SecretRef(*parts)


def _prices(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(
            f"prices: expected a mapping of accelerator type to CNY/hour, got {value!r}"
        )
    prices = {}
    for accelerator, price in value.items():
        if (
            not isinstance(price, int | float)
            or isinstance(price, bool)
            or not price >= 0
            or price == float("inf")
        ):
            raise ValueError(f"prices.{accelerator}: expected a number >= 0, got {price!r}")
        prices[str(accelerator)] = float(price)
    return prices


def _tolerations(value: Any) -> tuple[Mapping[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"tolerations: expected a list, got {type(value).__name__}")
    for i, toleration in enumerate(value):
        if not isinstance(toleration, Mapping):
            raise ValueError(f"tolerations[{i}]: expected a mapping, got {toleration!r}")
        unknown = sorted(set(toleration) - TOLERATION_KEYS)
        if unknown:
            raise ValueError(f"tolerations[{i}].{unknown[0]}: unknown key")
    return tuple(dict(t) for t in value)


def parse_config(config: Mapping[str, Any]) -> KubernetesSiteConfig:
    """``config`` checked; ``ValueError`` naming the first bad key."""
    if not isinstance(config, Mapping):
        raise ValueError(f"expected a mapping of adapter settings, got {type(config).__name__}")
    unknown = sorted(set(config) - KEYS)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown key (known: {', '.join(sorted(KEYS))})")
    if config.get("adapter", "kubernetes") != "kubernetes":
        raise ValueError(f"adapter: expected 'kubernetes', got {config.get('adapter')!r}")
    has_file = config.get("kubeconfig") is not None
    has_secret = config.get("kubeconfig_secret") is not None
    if has_file == has_secret:
        raise ValueError("kubeconfig: give exactly one of `kubeconfig` and `kubeconfig_secret`")
    if config.get("hub_kubeconfig") is not None and not has_secret:
        raise ValueError("hub_kubeconfig: only used to read `kubeconfig_secret`")
    prefix = _string(config, "namespace_prefix")
    if prefix is not None and not _PREFIX.match(prefix):
        raise ValueError(
            f"namespace_prefix: {prefix!r} must be lower-case letters, digits and '-', "
            "start with a letter or digit, and be at most 30 characters"
        )
    return KubernetesSiteConfig(
        kubeconfig=_path(config, "kubeconfig"),
        kubeconfig_secret=_secret(config["kubeconfig_secret"]) if has_secret else None,
        hub_kubeconfig=_path(config, "hub_kubeconfig"),
        context=_string(config, "context"),
        prices=_prices(config.get("prices")),
        image=_string(config, "image"),
        namespace_prefix=NAMESPACE_PREFIX if prefix is None else prefix,
        tolerations=_tolerations(config.get("tolerations")),
    )


def _hub_client(hub_kubeconfig: Path | None) -> Any:
    """A client for the hub cluster: the given kubeconfig, in-cluster, or the ambient one."""
    from kubernetes import client
    from kubernetes import config as kube_config

    loader: Any  # the client's loaders are untyped
    configuration = client.Configuration()
    if hub_kubeconfig is not None:
        loader = kube_config.load_kube_config
        loader(config_file=str(hub_kubeconfig), client_configuration=configuration)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        loader = kube_config.load_incluster_config
        loader(client_configuration=configuration)
    else:
        # Read $KUBECONFIG now: the client's own default was fixed when it was imported.
        ambient = os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
        loader = kube_config.load_kube_config
        loader(config_file=ambient, client_configuration=configuration)
    return client.ApiClient(configuration)


def read_secret_kubeconfig(ref: SecretRef, hub_kubeconfig: Path | None) -> dict[str, Any]:
    """The kubeconfig stored in ``ref`` on the hub, as a dict.

    ``ValueError`` naming ``kubeconfig_secret`` when the Secret, its key or its YAML is wrong;
    API errors other than 404 (the hub unreachable, forbidden) propagate.
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    where = f"secret {ref.namespace}/{ref.name}"
    try:
        hub = _hub_client(hub_kubeconfig)
    except ConfigException as err:
        raise ValueError(f"hub_kubeconfig: cannot reach the hub to read {where}: {err}") from err
    try:
        secret = client.CoreV1Api(hub).read_namespaced_secret(ref.name, ref.namespace)
    except ApiException as err:
        if err.status == 404:
            raise ValueError(f"kubeconfig_secret: {where} not found on the hub") from err
        raise
    finally:
        hub.close()
    data = secret.data or {}
    if ref.key not in data:
        raise ValueError(
            f"kubeconfig_secret.key: {where} has no key {ref.key!r} (has: {sorted(data)})"
        )
    try:
        loaded = yaml.safe_load(base64.b64decode(data[ref.key]))
    except (ValueError, yaml.YAMLError) as err:
        raise ValueError(f"kubeconfig_secret: {where}[{ref.key}] is not a kubeconfig") from err
    if not isinstance(loaded, dict) or "clusters" not in loaded:
        raise ValueError(f"kubeconfig_secret: {where}[{ref.key}] is not a kubeconfig")
    return loaded


def load_kubeconfig(config: KubernetesSiteConfig) -> Path | dict[str, Any]:
    """The site's kubeconfig: the file's path, or the Secret's content."""
    if config.kubeconfig is not None:
        return config.kubeconfig
    assert config.kubeconfig_secret is not None
    return read_secret_kubeconfig(config.kubeconfig_secret, config.hub_kubeconfig)


__all__ = [
    "KubernetesSiteConfig",
    "SecretRef",
    "load_kubeconfig",
    "parse_config",
    "read_secret_kubeconfig",
]
