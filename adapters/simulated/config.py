"""The ``simulated`` adapter's YAML section, checked key by key.

Why a module of its own: the service hands every adapter plain YAML values, and an operator's
typo must come back as a ``ValueError`` naming the key (``simulated.pools[1].count: ...``)
before any site object exists.

    pools:                       # required, one entry per accelerator type
      - {type: H20-96G, count: 64, price_cny_per_hour: 9.5}
    speedup: 3600                # optional: simulated seconds per real second (default 1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from scheduler.core.ids import AcceleratorType
from scheduler.core.model import AcceleratorPool

PREFIX = "simulated"
KEYS = frozenset({"pools", "speedup"})
POOL_KEYS = frozenset({"type", "count", "price_cny_per_hour"})


def _no_unknown_keys(key: str, section: Mapping[Any, Any], known: frozenset[str]) -> None:
    unknown = sorted((k for k in section if k not in known), key=str)
    if unknown:
        raise ValueError(f"{key}.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")


def _number(key: str, value: Any, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key}: must be a number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{key}: must be > 0, got {value!r}")
    if not positive and value < 0:
        raise ValueError(f"{key}: must be >= 0, got {value!r}")
    return float(value)


def _pool(key: str, item: Any) -> AcceleratorPool:
    if not isinstance(item, Mapping):
        raise ValueError(f"{key}: must be a mapping with type, count, price_cny_per_hour")
    _no_unknown_keys(key, item, POOL_KEYS)
    kind = item.get("type")
    if not isinstance(kind, str) or not kind.strip():
        raise ValueError(f"{key}.type: required, a non-empty string")
    count = item.get("count")
    if count is None:
        raise ValueError(f"{key}.count: required")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"{key}.count: must be an integer >= 0, got {count!r}")
    price = _number(
        f"{key}.price_cny_per_hour", item.get("price_cny_per_hour", 0.0), positive=False
    )
    return AcceleratorPool(AcceleratorType(kind), count, count, price)


def parse_config(config: Mapping[str, Any]) -> tuple[tuple[AcceleratorPool, ...], float]:
    """The pools and the speedup of a ``simulated`` section; ``ValueError`` names a bad key."""
    if not isinstance(config, Mapping):
        raise ValueError(f"{PREFIX}: the site's section must be a mapping, got {config!r}")
    _no_unknown_keys(PREFIX, config, KEYS)
    raw = config.get("pools")
    if raw is None:
        raise ValueError(f"{PREFIX}.pools: required")
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{PREFIX}.pools: must be a non-empty list, got {raw!r}")
    pools = tuple(_pool(f"{PREFIX}.pools[{i}]", item) for i, item in enumerate(raw))
    seen: set[str] = set()
    for i, pool in enumerate(pools):
        if pool.type in seen:
            raise ValueError(f"{PREFIX}.pools[{i}].type: duplicate {pool.type!r}")
        seen.add(pool.type)
    speedup = _number(f"{PREFIX}.speedup", config.get("speedup", 1.0), positive=True)
    return pools, speedup


__all__ = ["parse_config"]
