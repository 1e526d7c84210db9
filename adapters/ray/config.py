"""The ``ray`` adapter's YAML section, checked key by key.

Why a module of its own: the service hands every adapter plain YAML values, and an operator's
typo must come back as a ``ValueError`` naming the key (``ray.address: required``) before any
connection is tried.

    address: http://10.0.3.7:8265        # required: the dashboard URL (Job Submission API)
    accelerators:                        # optional: type -> the Ray resource counting it
      RTX4090-48G: gpu_4090_48g          #   (null, or a list of types: the same-named resource;
      H20-96G:                           #    omitted: every catalog type, same-named resource)
    prices: {RTX4090-48G: 2.1}           # optional: CNY per accelerator-hour (default 0)
    runtime_env: {env_vars: {A: "1"}}    # optional: passed to every job
    timeout_s: 10                        # optional: per HTTP request (default 10)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scheduler.core.catalog import BUILTIN_ACCELERATORS
from scheduler.core.ids import AcceleratorType

PREFIX = "ray"
KEYS = frozenset({"address", "accelerators", "prices", "runtime_env", "timeout_s"})
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class RayConfig:
    """A checked ``ray`` section.

    ``accelerators`` maps each accelerator type to the Ray resource that counts it;
    ``explicit`` says whether the operator listed the types (else: the whole core catalog,
    reported only where the cluster has the resource).
    """

    address: str
    accelerators: Mapping[AcceleratorType, str]
    explicit: bool = True
    prices: Mapping[AcceleratorType, float] = field(default_factory=dict)
    runtime_env: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TIMEOUT_S


def _name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: must be a non-empty string, got {value!r}")
    return value


def _accelerators(raw: Any) -> dict[AcceleratorType, str]:
    key = f"{PREFIX}.accelerators"
    if isinstance(raw, list):
        raw = dict.fromkeys(raw)
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(f"{key}: must be a non-empty mapping (type: Ray resource) or list")
    out: dict[AcceleratorType, str] = {}
    for kind, resource in raw.items():
        kind = _name(f"{key}", kind)
        out[AcceleratorType(kind)] = kind if resource is None else _name(f"{key}.{kind}", resource)
    return out


def _prices(raw: Any, known: Mapping[AcceleratorType, str] | None) -> dict[AcceleratorType, float]:
    key = f"{PREFIX}.prices"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{key}: must be a mapping (type: CNY per accelerator-hour)")
    out: dict[AcceleratorType, float] = {}
    for kind, price in raw.items():
        at = f"{key}.{kind}"
        if known is not None and kind not in known:
            raise ValueError(f"{at}: not one of ray.accelerators ({', '.join(known)})")
        if isinstance(price, bool) or not isinstance(price, int | float):
            raise ValueError(f"{at}: must be a number, got {price!r}")
        if not math.isfinite(price) or price < 0:
            raise ValueError(f"{at}: must be >= 0, got {price!r}")
        out[AcceleratorType(str(kind))] = float(price)
    return out


def parse_config(config: Mapping[str, Any]) -> RayConfig:
    """The checked section; ``ValueError`` names the first bad key."""
    if not isinstance(config, Mapping):
        raise ValueError(f"{PREFIX}: the site's section must be a mapping, got {config!r}")
    unknown = sorted((k for k in config if k not in KEYS), key=str)
    if unknown:
        raise ValueError(f"{PREFIX}.{unknown[0]}: unknown key (known: {', '.join(sorted(KEYS))})")

    address = config.get("address")
    if address is None:
        raise ValueError(f"{PREFIX}.address: required")
    address = _name(f"{PREFIX}.address", address).strip().rstrip("/")
    if not address.startswith(("http://", "https://")):
        raise ValueError(
            f"{PREFIX}.address: must be the dashboard URL, e.g. http://10.0.3.7:8265, "
            f"got {address!r}"
        )

    raw = config.get("accelerators")
    explicit = raw is not None
    accelerators = (
        _accelerators(raw) if explicit else {name: str(name) for name in BUILTIN_ACCELERATORS}
    )
    prices = _prices(config.get("prices") or {}, accelerators if explicit else None)

    runtime_env = config.get("runtime_env") or {}
    if not isinstance(runtime_env, Mapping):
        raise ValueError(f"{PREFIX}.runtime_env: must be a mapping, got {runtime_env!r}")

    timeout = config.get("timeout_s", DEFAULT_TIMEOUT_S)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValueError(f"{PREFIX}.timeout_s: must be a number > 0, got {timeout!r}")

    return RayConfig(address, accelerators, explicit, prices, dict(runtime_env), float(timeout))


__all__ = ["DEFAULT_TIMEOUT_S", "RayConfig", "parse_config"]
