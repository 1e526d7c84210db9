"""A service on the test topology with simulated sites that share one hand-driven clock."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.simulated import SimulatedSite
from adapters.simulated.config import parse_config
from scheduler.core.adapter import AdapterFactory, Dispatch, SiteAdapter
from scheduler.service.config import load_config
from scheduler.service.jobs import JobSpec
from scheduler.service.service import Service
from scheduler.service.store import NewJob

DATA = Path(__file__).parent / "data"
TOPOLOGY = DATA / "topology.yaml"


@dataclass
class Clock:
    t: float = 1_790_000_000.0  # POSIX seconds; the service and the sites read the same

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Harness:
    """Builds services (again and again, as after a restart) over one database and one set of
    site objects, so a restarted service meets the sites' real state."""

    tmp: Path
    clock: Clock = field(default_factory=Clock)
    sites: dict[str, SiteAdapter] = field(default_factory=dict)
    wrap: Mapping[str, Callable[[SiteAdapter], SiteAdapter]] = field(default_factory=dict)
    config_extra: str = ""

    def config_path(self) -> Path:
        path = self.tmp / "isthmus.yaml"
        path.write_text(textwrap.dedent(f"""\
            topology: {TOPOLOGY}
            database: sqlite:///{self.tmp}/isthmus.db
            cycle_s: 0.05
            down_after: 2
            refused_backoff_s: 60
            tokens:
              - {{token: operator-token-0000001, role: operator}}
              - {{token: acme-token-00000000001, tenant: acme}}
              - {{token: beta-token-00000000001, tenant: beta}}
            tenants:
              - {{id: acme, home_region: Shanghai}}
              - {{id: beta, home_region: Shanghai}}
            datasets:
              - id: scans
                size_gb: 1
                replicas: [east-a]
                residency: {{regions: [Shanghai, Guizhou]}}
            """) + self.config_extra)
        return path

    def factory(self) -> AdapterFactory:
        def make(name: str, config: Mapping[str, Any]) -> SiteAdapter:
            if name not in self.sites:
                pools, _ = parse_config(config)
                site: SiteAdapter = SimulatedSite(name, pools, clock=self.clock, speedup=1.0)
                wrapper = self.wrap.get(name)
                self.sites[name] = wrapper(site) if wrapper else site
            return self.sites[name]

        return make

    def service(self) -> Service:
        config = load_config(self.config_path())
        return Service.from_config(config, factories={"simulated": self.factory()},
                                   clock=self.clock)


def spec(name: str = "job", *, gpus: int = 8, hours: float = 1.0, **extra: Any) -> JobSpec:
    return JobSpec(
        name=name, entrypoint="python -c 'print(1)'", workers=1, accelerators_per_worker=gpus,
        allowed_types=("H20-96G",), runtime_h={"H20-96G": hours}, **extra,
    )


def submit(service: Service, *specs: JobSpec, tenant: str = "acme") -> list[str]:
    return [s.job.id for s in service.submit_many([NewJob(tenant, x) for x in specs])]


class Refusing:
    """A site adapter that refuses every dispatch (as a site with an exhausted quota does)."""

    def __init__(self, inner: SiteAdapter, message: str) -> None:
        self.inner, self.name, self.message = inner, inner.name, message
        self.refused = 0

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)

    def submit(self, dispatch: Dispatch) -> None:
        from scheduler.core.adapter import AdapterError

        self.refused += 1
        raise AdapterError(self.message)
