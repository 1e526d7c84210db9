"""The sites the service drives: each topology site with its adapter, found by name.

Adapters are registered under the ``isthmus.adapters`` entry-point group (see pyproject.toml);
the service never imports one. A topology site with no entry in the configuration's ``sites``
is a ``simulated`` site with the topology's pools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from scheduler.core.adapter import AdapterFactory, Health, SiteAdapter
from scheduler.core.model import AcceleratorPool, Site
from scheduler.service.config import ConfigError, ServiceConfig

ENTRY_POINT_GROUP = "isthmus.adapters"


def adapter_factory(kind: str) -> AdapterFactory | None:
    """The installed adapter factory named ``kind`` (loaded only when a site uses it)."""
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=kind):
        try:
            factory: AdapterFactory = ep.load()
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"adapter {kind!r} ({ep.value}) cannot be loaded: {err}") from None
        return factory
    return None


def installed_adapters() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


@dataclass
class SiteRuntime:
    """One site as the loop sees it: static facts, its adapter, and the last refresh."""

    site: Site
    adapter: SiteAdapter
    pools: tuple[AcceleratorPool, ...] = ()
    health: Health = field(default_factory=lambda: Health(False, "not checked yet"))
    down: bool = False

    @property
    def name(self) -> str:
        return str(self.site.id)


def simulated_config(site: Site, speedup: float) -> dict[str, Any]:
    return {
        "adapter": "simulated",
        "speedup": speedup,
        "pools": [
            {"type": p.type, "count": p.count, "price_cny_per_hour": p.price_cny_per_hour}
            for p in site.pools
        ],
    }


def build_sites(
    config: ServiceConfig,
    topology_sites: tuple[Site, ...],
    factories: Mapping[str, AdapterFactory] | None = None,
) -> dict[str, SiteRuntime]:
    """An adapter for every topology site, as the configuration says."""
    known = {str(s.id) for s in topology_sites}
    for name in config.sites:
        if name not in known:
            raise ConfigError(
                f"sites.{name}: not a site of the topology {config.topology_path} "
                f"(sites: {', '.join(sorted(known))})"
            )
    out: dict[str, SiteRuntime] = {}
    for site in topology_sites:
        default = simulated_config(site, config.simulated_speedup)
        section = dict(config.sites.get(str(site.id)) or default)
        kind = section.pop("adapter")
        if kind == "simulated" and "pools" not in section:
            section["pools"] = simulated_config(site, config.simulated_speedup)["pools"]
            section.setdefault("speedup", config.simulated_speedup)
        factory = factories.get(kind) if factories is not None else adapter_factory(kind)
        if factory is None:
            names = sorted(factories) if factories is not None else installed_adapters()
            raise ConfigError(
                f"sites.{site.id}.adapter: unknown adapter {kind!r} "
                f"(installed: {', '.join(names) or 'none'})"
            )
        try:
            adapter = factory(str(site.id), section)
        except ValueError as err:
            raise ConfigError(f"sites.{site.id}: {err}") from None
        out[str(site.id)] = SiteRuntime(site=site, adapter=adapter, pools=site.pools)
    return out


__all__ = [
    "ENTRY_POINT_GROUP",
    "SiteRuntime",
    "adapter_factory",
    "build_sites",
    "installed_adapters",
    "simulated_config",
]
