"""Scenario files: what the simulator runs, as YAML (format in docs/simulation.md).

``load_scenario(path)`` reads the file, the topology and policy files it names (paths relative
to the scenario file) and an optional CSV trace, and returns a ``Scenario`` whose workload is
already drawn. Every problem is reported at once in a ``ScenarioError``, one line each, naming
the file and the field (``events[1].site: unknown site 'qingpuu'``).

pydantic validates the file (unknown keys are errors); everything after that is frozen
dataclasses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from scheduler.core.ids import AcceleratorType, DatasetId, SiteId
from scheduler.core.model import (
    AcceleratorPool,
    AcceleratorSpec,
    Dataset,
    Link,
    Location,
    Site,
    SiteSelector,
    TouPeriod,
)
from scheduler.core.planners import PLANNERS
from scheduler.core.policy.load import PolicyError, parse_policy
from scheduler.core.policy.model import Policy
from scheduler.core.snapshot_file import SnapshotError, format_path, parse_topology
from scheduler.sim.workload import TraceError, Workload, WorkloadParams, generate, load_trace

# --------------------------------------------------------------------------- file model


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TouPeriodDoc(_Doc):
    start_h: float = Field(ge=0, le=24)
    end_h: float = Field(ge=0, le=24)
    multiplier: float = Field(ge=0)


class PoolOverrideDoc(_Doc):
    count: int | None = Field(default=None, ge=0, description="accelerators installed")
    price_cny_per_hour: float | None = Field(default=None, ge=0)


class TariffOverrideDoc(_Doc):
    base_cny_per_kwh: float | None = Field(default=None, ge=0)
    periods: list[TouPeriodDoc] | None = None


class SiteOverrideDoc(_Doc):
    """Changes to one topology site: pools by type (new types are added; a price is then
    required), the tariff, the PUE."""

    pools: dict[str, PoolOverrideDoc] = {}
    tariff: TariffOverrideDoc | None = None
    pue: float | None = Field(default=None, ge=1.0, le=3.0)


class SelectorDoc(_Doc):
    sites: list[str] = []
    regions: list[str] = []
    hubs: list[str] = []
    labels: dict[str, str] = {}


class SiteDownDoc(_Doc):
    kind: Literal["site-down"]
    site: str
    at_h: float = Field(ge=0, description="hours after the start")
    for_h: float = Field(gt=0, description="hours the site stays down")


class PowerCapDoc(_Doc):
    """A cap on the power the selected sites' accelerators may draw (TDP x PUE of busy
    accelerators), from ``from_h`` to ``to_h``, optionally only between local ``hours``."""

    kind: Literal["power-cap"]
    sites: SelectorDoc
    from_h: float = Field(default=0.0, ge=0)
    to_h: float | None = Field(default=None, gt=0, description="default: the end")
    hours: tuple[float, float] | None = Field(
        default=None, description="local hours [start, end) the cap applies each day")
    fraction: float | None = Field(
        default=None, gt=0, le=1, description="cap as a fraction of the site's full-load kW")
    kw: float | None = Field(default=None, gt=0, description="cap in kW, per site")


Event = Annotated[SiteDownDoc | PowerCapDoc, Field(discriminator="kind")]


class DatasetDoc(_Doc):
    id: str = Field(min_length=1)
    size_gb: float = Field(ge=0)
    replicas: list[str] = Field(min_length=1)
    residency: SelectorDoc | None = None


class WorkloadDoc(_Doc):
    """Either generator parameters or a CSV ``trace`` (with the ``datasets`` it reads)."""

    seed: int = Field(default=0, ge=0)
    jobs_per_hour: float = Field(default=600.0, gt=0)
    diurnal_amplitude: float = Field(default=0.5, ge=0, le=1)
    peak_local_hour: float = Field(default=15.0, ge=0, lt=24)
    gang_share: float = Field(default=0.02, ge=0, le=1)
    short_job_share: float = Field(default=0.72, ge=0, le=1)
    inference_share: float = Field(default=0.65, ge=0, le=1)
    inference_median_h: float = Field(default=4.0, gt=0)
    local_users_share: float = Field(default=0.7, ge=0, le=1)
    residency_share: float = Field(default=0.20, ge=0, le=1)
    east_west: float = Field(default=60.0, gt=0, description="east:west demand ratio")
    deadline_share: float = Field(default=0.10, ge=0, le=1)
    tenants: int = Field(default=40, ge=1)
    max_runtime_h: float = Field(default=72.0, gt=0)
    inference_scaling: Literal["fixed", "bandwidth"] = Field(
        default="fixed", description="serving blocks: as long on every card, or card-hours "
        "scaled by memory bandwidth")
    trace: str | None = Field(default=None, description="CSV trace, relative to the scenario")
    datasets: list[DatasetDoc] = []


class ScenarioDoc(_Doc):
    name: str = Field(min_length=1)
    description: str = ""
    topology: str = Field(description="topology file, relative to the scenario file")
    policy: str | None = Field(default=None, description="policy file; default: the defaults")
    start: datetime = Field(description="ISO 8601 with a UTC offset")
    duration_h: float = Field(gt=0)
    planning_period_min: float = Field(default=5.0, gt=0)
    policies: list[str] = Field(default=list(PLANNERS), min_length=1)
    sites: list[str] | None = Field(default=None, description="subset of topology sites")
    overrides: dict[str, SiteOverrideDoc] = {}
    events: list[Event] = []
    workload: WorkloadDoc = WorkloadDoc()
    max_pending_per_cycle: int = Field(default=2000, ge=1)
    solver_time_limit_s: float | None = Field(default=None, gt=0)

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("has no UTC offset (write e.g. 2026-07-13T00:00:00+08:00)")
        return value


# --------------------------------------------------------------------------- domain


@dataclass(frozen=True, slots=True)
class SiteDown:
    site: SiteId
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class PowerCap:
    sites: frozenset[SiteId]
    start_s: float
    end_s: float
    hours: tuple[float, float] | None  # local hours each day, None = all day
    utc_offset_h: float
    fraction: float | None
    kw: float | None

    def active(self, t: float) -> bool:
        if not (self.start_s <= t < self.end_s):
            return False
        if self.hours is None:
            return True
        h = (t / 3600.0 + self.utc_offset_h) % 24.0
        lo, hi = self.hours
        return lo <= h < hi if lo <= hi else (h >= lo or h < hi)

    def cap_kw(self, full_load_kw: float) -> float:
        if self.kw is not None:
            return self.kw
        return full_load_kw * (self.fraction if self.fraction is not None else 1.0)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    source: str
    sites: tuple[Site, ...]
    links: tuple[Link, ...]
    locations: tuple[Location, ...]
    accelerators: Mapping[AcceleratorType, AcceleratorSpec]
    policy: Policy
    start_s: float
    duration_h: float
    period_s: float
    policies: tuple[str, ...]
    outages: tuple[SiteDown, ...]
    power_caps: tuple[PowerCap, ...]
    workload: Workload
    max_pending_per_cycle: int
    description: str = ""

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_h * 3600.0


class ScenarioError(ValueError):
    """A scenario that cannot be run; ``problems`` has one line per problem."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems))


# --------------------------------------------------------------------------- loading


def load_scenario(path: Path | str, overrides: Sequence[str] = ()) -> Scenario:
    """Read and check a scenario file and everything it refers to, with ``overrides``
    (``KEY=VALUE``, see ``apply_overrides``) applied first. Raises ``ScenarioError``."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError(source, [f"cannot read: {err.strerror or err}"]) from None
    return parse_scenario(text, source, base=path.parent, overrides=overrides)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> list[str]:
    """Set dotted keys of a scenario document in place, e.g. ``workload.seed=2`` or
    ``events.0.for_h=12``; values are YAML scalars or flow collections. Returns the problems
    (each naming its override); the document is then validated as if the file said so."""
    problems: list[str] = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"--set {item!r}: expected KEY=VALUE, e.g. workload.seed=2")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            problems.append(f"--set {key}: the value {raw!r} is not valid YAML")
            continue
        parts = key.split(".")
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[:depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    problems.append(f"--set {key}: {where} is not an index of the list "
                                    f"(0..{len(node) - 1})")
                    break
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                problems.append(f"--set {key}: {'.'.join(parts[:depth])} is a single value, "
                                "not a mapping or list")
                break
    return problems


def parse_scenario(
    text: str, source: str, base: Path, overrides: Sequence[str] = ()
) -> Scenario:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ScenarioError(source, [f"{where}invalid YAML: "
                                     f"{getattr(err, 'problem', None) or err}"]) from None
    if not isinstance(data, dict):
        raise ScenarioError(source, ["the file must hold one mapping (name, topology, ...)"])
    bad = apply_overrides(data, overrides)
    if bad:
        raise ScenarioError(source, bad)
    try:
        doc = ScenarioDoc.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors(include_url=False):
            loc = tuple(p for p in e["loc"] if p not in ("site-down", "power-cap"))
            msg = {"extra_forbidden": "unknown field",
                   "missing": "required field is missing"}.get(e["type"], e["msg"])
            msg = msg.removeprefix("Value error, ")
            problems.append(f"{format_path(loc)}: {msg}" if loc else msg)
        raise ScenarioError(source, problems) from None
    return _build(doc, source, base)


def _read(base: Path, name: str, field: str, problems: list[str]) -> tuple[str, str] | None:
    p = Path(name)
    full = p if p.is_absolute() else base / p
    try:
        return full.read_text(encoding="utf-8"), str(full)
    except OSError as err:
        problems.append(f"{field}: cannot read {str(full)!r}: {err.strerror or err}")
        return None


def _selector(doc: SelectorDoc) -> SiteSelector:
    return SiteSelector(sites=frozenset(SiteId(s) for s in doc.sites),
                        regions=frozenset(doc.regions), hubs=frozenset(doc.hubs),
                        labels=dict(doc.labels))


def _build(doc: ScenarioDoc, source: str, base: Path) -> Scenario:
    problems: list[str] = []
    topo_file = _read(base, doc.topology, "topology", problems)
    if topo_file is None:
        raise ScenarioError(source, problems)
    try:
        topology = parse_topology(*topo_file)
    except SnapshotError as err:
        raise ScenarioError(source, [f"topology: {line}" for line in str(err).splitlines()]
                            ) from None
    policy = Policy()
    if doc.policy is not None:
        pol_file = _read(base, doc.policy, "policy", problems)
        if pol_file is not None:
            try:
                policy = parse_policy(*pol_file)
            except PolicyError as err:
                problems.extend(f"policy: {p}" for p in err.problems)
    if doc.solver_time_limit_s is not None:
        policy = dataclasses.replace(policy, solver=dataclasses.replace(
            policy.solver, time_limit_s=doc.solver_time_limit_s))

    known = {s.id for s in topology.sites}
    sites = list(topology.sites)
    if doc.sites is not None:
        for i, s in enumerate(doc.sites):
            if s not in known:
                problems.append(f"sites[{i}]: unknown site {s!r}; "
                                f"known: {', '.join(sorted(known))}")
        sites = [s for s in sites if s.id in set(doc.sites)]
    for site_id, override in doc.overrides.items():
        if site_id not in known:
            problems.append(f"overrides.{site_id}: unknown site")
            continue
        for k, site in enumerate(sites):
            if site.id == site_id:
                sites[k] = _override(site, override, f"overrides.{site_id}", problems)
    for i, name in enumerate(doc.policies):
        if name not in PLANNERS:
            problems.append(f"policies[{i}]: unknown planner {name!r}; "
                            f"choose from {', '.join(PLANNERS)}")
    start_s = doc.start.timestamp()
    end_s = start_s + doc.duration_h * 3600.0
    offset_h = (doc.start.utcoffset() or _ZERO).total_seconds() / 3600.0
    outages: list[SiteDown] = []
    caps: list[PowerCap] = []
    kept = {s.id for s in sites}
    for i, ev in enumerate(doc.events):
        if isinstance(ev, SiteDownDoc):
            if ev.site not in kept:
                problems.append(f"events[{i}].site: unknown site {ev.site!r}")
            outages.append(SiteDown(SiteId(ev.site), start_s + ev.at_h * 3600.0,
                                    start_s + (ev.at_h + ev.for_h) * 3600.0))
        else:
            if (ev.fraction is None) == (ev.kw is None):
                problems.append(f"events[{i}]: give exactly one of fraction and kw")
            selector = _selector(ev.sites)
            chosen = frozenset(s.id for s in sites if selector.selects(s))
            if not chosen:
                problems.append(f"events[{i}].sites: selects no site")
            caps.append(PowerCap(
                sites=chosen, start_s=start_s + ev.from_h * 3600.0,
                end_s=start_s + ev.to_h * 3600.0 if ev.to_h is not None else end_s,
                hours=ev.hours, utc_offset_h=offset_h, fraction=ev.fraction, kw=ev.kw))
    if not sites:
        problems.append("sites: no site left to simulate")
    if problems:
        raise ScenarioError(source, problems)

    site_tuple = tuple(sites)
    links = tuple(x for x in topology.links if x.a in kept and x.b in kept)
    workload = _workload(doc, source, base, site_tuple, topology.locations, start_s, offset_h)
    return Scenario(
        name=doc.name, source=source, sites=site_tuple, links=links,
        locations=topology.locations, accelerators=topology.accelerators, policy=policy,
        start_s=start_s, duration_h=doc.duration_h, period_s=doc.planning_period_min * 60.0,
        policies=tuple(dict.fromkeys(doc.policies)), outages=tuple(outages),
        power_caps=tuple(caps), workload=workload,
        max_pending_per_cycle=doc.max_pending_per_cycle, description=doc.description)


def _workload(
    doc: ScenarioDoc, source: str, base: Path, sites: tuple[Site, ...],
    locations: tuple[Location, ...], start_s: float, offset_h: float,
) -> Workload:
    w = doc.workload
    if w.trace is None:
        params = WorkloadParams(
            seed=w.seed, jobs_per_hour=w.jobs_per_hour, diurnal_amplitude=w.diurnal_amplitude,
            peak_local_hour=w.peak_local_hour, utc_offset_h=offset_h, gang_share=w.gang_share,
            short_job_share=w.short_job_share, inference_share=w.inference_share,
            inference_median_h=w.inference_median_h, local_users_share=w.local_users_share,
            residency_share=w.residency_share, east_west=w.east_west,
            deadline_share=w.deadline_share, tenants=w.tenants, max_runtime_h=w.max_runtime_h,
            inference_scaling=w.inference_scaling)
        return generate(params, sites, locations, start_s, doc.duration_h)
    problems: list[str] = []
    trace = _read(base, w.trace, "workload.trace", problems)
    if trace is None:
        raise ScenarioError(source, problems)
    known = {s.id for s in sites}
    datasets = []
    for i, d in enumerate(w.datasets):
        bad = [r for r in d.replicas if r not in known]
        if bad:
            problems.append(f"workload.datasets[{i}].replicas: unknown site(s) {', '.join(bad)}")
        replicas = frozenset(SiteId(r) for r in d.replicas)
        datasets.append(Dataset(DatasetId(d.id), d.size_gb, replicas,
                                _selector(d.residency) if d.residency is not None else None))
    if problems:
        raise ScenarioError(source, problems)
    try:
        return load_trace(trace[0], trace[1], start_s, datasets)
    except TraceError as err:
        raise ScenarioError(source, [f"workload.trace: {err}"]) from None


def _override(site: Site, doc: SiteOverrideDoc, where: str, problems: list[str]) -> Site:
    pools = {p.type: p for p in site.pools}
    for name, change in doc.pools.items():
        t = AcceleratorType(name)
        old = pools.get(t)
        if old is None:
            if change.count is None or change.price_cny_per_hour is None:
                problems.append(f"{where}.pools.{name}: a new pool needs count and "
                                "price_cny_per_hour")
                continue
            old = AcceleratorPool(t, 0, 0, 0.0)
        count = change.count if change.count is not None else old.count
        price = (change.price_cny_per_hour if change.price_cny_per_hour is not None
                 else old.price_cny_per_hour)
        pools[t] = AcceleratorPool(t, count, count, price)
    tariff = site.tariff
    if doc.tariff is not None:
        if doc.tariff.base_cny_per_kwh is not None:
            tariff = dataclasses.replace(tariff, base_cny_per_kwh=doc.tariff.base_cny_per_kwh)
        if doc.tariff.periods is not None:
            tariff = dataclasses.replace(tariff, periods=tuple(
                TouPeriod(p.start_h, p.end_h, p.multiplier) for p in doc.tariff.periods))
    return dataclasses.replace(
        site, pools=tuple(p for p in pools.values() if p.count > 0), tariff=tariff,
        pue=doc.pue if doc.pue is not None else site.pue)


_ZERO = timedelta(0)


__all__ = [
    "PowerCap",
    "Scenario",
    "ScenarioDoc",
    "ScenarioError",
    "SiteDown",
    "load_scenario",
    "parse_scenario",
]
