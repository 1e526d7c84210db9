"""Snapshot files (JSON) and topology files (YAML): schema, validation, conversion.

A *snapshot file* is everything ``isthmus plan`` needs: the instant ``now``, the sites with
their accelerator pools and power tariffs, links, datasets, user locations, tenants, the
pending queue and the running jobs. A *topology file* is the static part an operator keeps in
version control (sites, links, user locations), e.g. ``policies/topology/china-hubs.yaml``.
Both are documented field by field in ``docs/snapshot.md``.

Parsing runs in three phases, the way a reader would check a file by hand:

1. syntax: the text is JSON (or YAML for topologies);
2. schema: pydantic models (``extra="forbid"``, strict types, ranges) accept the shape;
3. meaning: ids are unique and every reference (site, dataset, location, tenant, accelerator
   type) names something that exists, with the offending path, e.g. ``pending[3].datasets[0]``.

Every problem found is reported at once, as a ``Problem`` (path, message, line where known),
inside one ``SnapshotError``. Only a file that passes all three phases is converted, explicitly,
into the frozen dataclasses of ``scheduler.core.model``.

Pure: the functions here take text and return values; they read no file and no clock.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, TypeVar, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    WithJsonSchema,
)

from scheduler.core.catalog import BUILTIN_ACCELERATORS
from scheduler.core.geo import rtt_ms
from scheduler.core.graph import mesh_links
from scheduler.core.ids import (
    AcceleratorType,
    DatasetId,
    JobId,
    LocationId,
    SiteId,
    TenantId,
)
from scheduler.core.model import (
    AcceleratorPool,
    AcceleratorSpec,
    Dataset,
    Gang,
    Job,
    Link,
    Location,
    RunningJob,
    Site,
    SiteSelector,
    Snapshot,
    Tariff,
    Tenant,
    TouPeriod,
)

# --------------------------------------------------------------------------- problems

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file: where (key path; 1-based line and column when known)
    and what."""

    path: str  # e.g. "pending[3].datasets[0]"; "" for the file as a whole
    message: str
    line: int | None = None
    column: int | None = None

    def render(self, source: str) -> str:
        """``source:line:col: path: message``, the form editors and CI annotate."""
        where = source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def __str__(self) -> str:
        return self.render("<snapshot>")


class SnapshotError(ValueError):
    """A snapshot or topology file that cannot be used; ``problems`` lists all that is wrong.

    ``str()`` gives one line per problem (at most ``MAX_SHOWN``), each naming the file.
    """

    MAX_SHOWN = 50

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [p.render(self.source) for p in self.problems[: self.MAX_SHOWN]]
        if len(self.problems) > self.MAX_SHOWN:
            lines.append(f"{self.source}: ... and {len(self.problems) - self.MAX_SHOWN} more")
        return "\n".join(lines)


def format_path(loc: Loc) -> str:
    """``("pending", 3, "datasets", 0)`` -> ``"pending[3].datasets[0]"``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_+-]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


# --------------------------------------------------------------------------- field types


def _to_posix(value: object) -> object:
    """ISO 8601 text with a UTC offset, or POSIX seconds, as POSIX seconds."""
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO 8601 time (e.g. 2025-07-15T10:00:00+08:00)"
            ) from None
        if when.tzinfo is None:
            raise ValueError(f"{value!r} has no UTC offset (write e.g. +08:00 or Z)")
        return when.timestamp()
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


Instant = Annotated[
    float,
    BeforeValidator(_to_posix),
    WithJsonSchema({
        "anyOf": [
            {"type": "string", "format": "date-time",
             "description": "ISO 8601 with a UTC offset, e.g. 2025-07-15T10:00:00+08:00"},
            {"type": "number", "description": "POSIX seconds (UTC)"},
        ]
    }),
]
Id = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^\S+$")]
Name = Annotated[str, Field(min_length=1, max_length=253)]
NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- sites


class TouPeriodDoc(_Doc):
    """A time-of-use period: local hours [start_h, end_h) at a price multiplier."""

    start_h: float = Field(ge=0, le=24, description="local hour the period starts (inclusive)")
    end_h: float = Field(ge=0, le=24, description="local hour the period ends (exclusive)")
    multiplier: NonNegative = Field(description="price multiplier on the base price")


class TariffDoc(_Doc):
    base_cny_per_kwh: NonNegative = Field(description="flat power price, CNY per kWh")
    periods: list[TouPeriodDoc] = Field(
        default=[], description="time-of-use periods; hours outside every period are flat (x1)"
    )
    utc_offset_h: float = Field(default=8.0, ge=-12, le=14,
                                description="offset of the site's local time from UTC, hours")


class PoolDoc(_Doc):
    type: Id = Field(description="accelerator type, e.g. H800-80G (see the catalog)")
    count: int = Field(ge=0, description="accelerators installed")
    available: int | None = Field(
        default=None, ge=0,
        description="accelerators free now, running jobs already excluded; default: count",
    )
    price_cny_per_hour: NonNegative = Field(
        description="rental price of one accelerator for one hour, CNY")


class SiteDoc(_Doc):
    id: Id
    region: Name = Field(description="administrative region (province / municipality)")
    hub: Name = Field(description="national computing hub")
    lat: float = Field(ge=-90, le=90, description="latitude, degrees (WGS84)")
    lon: float = Field(ge=-180, le=180, description="longitude, degrees (WGS84)")
    pue: float = Field(ge=1.0, le=3.0, description="power usage effectiveness")
    tariff: TariffDoc
    pools: list[PoolDoc] = []
    labels: dict[str, str] = {}
    subsidy_tenants: list[Id] = Field(
        default=[], description="tenants eligible for the site's subsidy")
    subsidy_discount: float = Field(
        default=0.0, ge=0, le=1, description="fraction off the rental price for those tenants")
    adapter: Name = Field(default="simulated", description="site adapter name")


# --------------------------------------------------------------------------- links


class LinkDoc(_Doc):
    a: Id
    b: Id
    latency_ms: NonNegative | None = Field(
        default=None, description="round-trip ms; default: estimated from coordinates")
    bandwidth_gbps: Positive = Field(description="bandwidth one transfer gets, Gbit/s")
    egress_cny_per_gb: NonNegative = Field(description="transfer price, CNY per GB")


class MeshDoc(_Doc):
    bandwidth_gbps: Positive
    egress_cny_per_gb: NonNegative


class MeshLinksDoc(_Doc):
    """``{mesh: {...}}``: every pair of sites linked, latency estimated from coordinates."""

    mesh: MeshDoc


def _links_kind(value: object) -> str:
    return "mesh" if isinstance(value, dict | MeshLinksDoc) else "explicit"


_LINK_TAGS = ("explicit", "mesh")
Links = Annotated[
    Union[  # noqa: UP007 - tagged members need the Union form
        Annotated[list[LinkDoc], Tag("explicit")],
        Annotated[MeshLinksDoc, Tag("mesh")],
    ],
    Discriminator(_links_kind),
]


# --------------------------------------------------------------------------- data, people


class SelectorDoc(_Doc):
    """Sites by id, region, hub, or all of some labels."""

    sites: list[Id] = []
    regions: list[Name] = []
    hubs: list[Name] = []
    labels: dict[str, str] = {}


class DatasetDoc(_Doc):
    id: Id
    size_gb: NonNegative = Field(description="size, GB (10^9 bytes)")
    replicas: list[Id] = Field(min_length=1, description="sites holding a copy")
    residency: SelectorDoc | None = Field(
        default=None, description="where the data may be processed; default: anywhere")


class LocationDoc(_Doc):
    id: Id
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class TenantDoc(_Doc):
    id: Id
    home_region: Name


class AcceleratorDoc(_Doc):
    """A catalog entry the snapshot adds or overrides."""

    name: Id
    memory_gb: Positive
    bf16_tflops: NonNegative = Field(description="dense BF16 TFLOPS")
    tdp_w: NonNegative = Field(description="board power, W")
    interconnect: bool = Field(default=False, description="NVLink-class card-to-card link")
    software_stack: Name = "CUDA"


# --------------------------------------------------------------------------- jobs


class GangDoc(_Doc):
    workers: int = Field(ge=1, le=100_000)
    accelerators_per_worker: int = Field(ge=1, le=64)
    allowed_types: list[Id] = Field(min_length=1)
    min_memory_gb: NonNegative = Field(default=0.0, description="per accelerator, GB")


class JobDoc(_Doc):
    id: Id
    tenant: Id
    priority: int = 0
    gang: GangDoc
    runtime_h: dict[Id, Positive] = Field(
        min_length=1, description="estimated hours per accelerator type")
    submitted_at: Instant
    deadline: Instant | None = None
    datasets: list[Id] = []
    user_location: Id | None = None
    max_latency_ms: Positive | None = Field(
        default=None, description="round-trip SLO from user_location, ms")
    preemptible: bool = False
    checkpointable: bool = False
    home_region: Name | None = Field(
        default=None, description="default: the tenant's home region")


class RunningDoc(_Doc):
    job: JobDoc
    site: Id
    accelerator: Id
    started_at: Instant


class SnapshotDoc(_Doc):
    """An Isthmus snapshot: everything a planner reads at one instant."""

    model_config = ConfigDict(title="Isthmus snapshot")

    now: Instant = Field(description="the planning instant")
    sites: list[SiteDoc] = Field(min_length=1)
    links: Links = []
    datasets: list[DatasetDoc] = []
    locations: list[LocationDoc] = []
    tenants: list[TenantDoc] = []
    accelerators: list[AcceleratorDoc] = Field(
        default=[], description="catalog entries added to (or overriding) the built-in ones")
    pending: list[JobDoc] = []
    running: list[RunningDoc] = []


class TopologyDoc(_Doc):
    """An Isthmus topology: the static sites, links and user locations."""

    model_config = ConfigDict(title="Isthmus topology")

    name: Name | None = None
    description: str | None = None
    sites: list[SiteDoc] = Field(min_length=1)
    links: Links = []
    locations: list[LocationDoc] = []
    accelerators: list[AcceleratorDoc] = []


@dataclass(frozen=True, slots=True)
class Topology:
    """The parsed topology file."""

    sites: tuple[Site, ...]
    links: tuple[Link, ...]
    locations: tuple[Location, ...]
    accelerators: Mapping[AcceleratorType, AcceleratorSpec]
    name: str | None = None


# --------------------------------------------------------------------------- public API


def parse_snapshot(text: str, source: str) -> tuple[Snapshot, float]:
    """Parse a snapshot file's text. Returns the snapshot and ``now`` as POSIX seconds.

    Raises ``SnapshotError`` listing every problem (path, message, line where known).
    ``source`` names the file in messages.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        problem = Problem("", f"invalid JSON: {err.msg}", err.lineno, err.colno)
        raise SnapshotError(source, [problem]) from None
    except RecursionError:
        raise SnapshotError(source, [Problem("", "invalid JSON: nested too deeply")]) from None
    doc = _validate(SnapshotDoc, data, text, source)
    problems = _Checker(doc.sites, doc.accelerators).snapshot(doc)
    if problems:
        raise SnapshotError(source, _with_lines(problems, text))
    return _snapshot(doc), doc.now


def parse_topology(text: str, source: str) -> Topology:
    """Parse a topology file's text (YAML; JSON is YAML too). Raises ``SnapshotError``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        what = getattr(err, "problem", None) or str(err)
        raise SnapshotError(source, [Problem("", f"invalid YAML: {what}", line, column)]) from None
    doc = _validate(TopologyDoc, data, text, source)
    problems = _Checker(doc.sites, doc.accelerators).topology(doc)
    if problems:
        raise SnapshotError(source, _with_lines(problems, text))
    sites = tuple(_site(s) for s in doc.sites)
    return Topology(
        sites=sites,
        links=_links(doc.links, sites),
        locations=tuple(_location(x) for x in doc.locations),
        accelerators={AcceleratorType(a.name): _accelerator(a) for a in doc.accelerators},
        name=doc.name,
    )


def dataset_from_doc(doc: DatasetDoc) -> Dataset:
    """A validated dataset entry (of a snapshot or the service configuration) as a core value."""
    return _dataset(doc)


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the snapshot file."""
    schema = SnapshotDoc.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def snapshot_to_json(
    snapshot: Snapshot, now: float, *, utc_offset_h: float = 0.0
) -> dict[str, Any]:
    """The snapshot file for ``snapshot`` at ``now``; ``parse_snapshot`` reads it back equal.

    Times are written as ISO 8601 at ``utc_offset_h`` when that is exact, else as POSIX
    seconds. Optional job fields at their defaults are left out.
    """
    def when(t: float) -> str | float:
        return _instant(t, utc_offset_h)

    return {
        "now": when(now),
        "sites": [_site_json(s) for s in snapshot.sites],
        "links": [
            {"a": x.a, "b": x.b, "latency_ms": x.latency_ms, "bandwidth_gbps": x.bandwidth_gbps,
             "egress_cny_per_gb": x.egress_cny_per_gb}
            for x in snapshot.links
        ],
        "datasets": [_dataset_json(d) for d in snapshot.datasets],
        "locations": [{"id": x.id, "lat": x.lat, "lon": x.lon} for x in snapshot.locations],
        "tenants": [{"id": t.id, "home_region": t.home_region} for t in snapshot.tenants],
        "accelerators": [
            {"name": a.name, "memory_gb": a.memory_gb, "bf16_tflops": a.bf16_tflops,
             "tdp_w": a.tdp_w, "interconnect": a.interconnect,
             "software_stack": a.software_stack}
            for a in snapshot.accelerators.values()
        ],
        "pending": [_job_json(j, when) for j in snapshot.pending],
        "running": [
            {"job": _job_json(r.job, when), "site": r.site, "accelerator": r.accelerator,
             "started_at": when(r.started_at)}
            for r in snapshot.running
        ],
    }


# --------------------------------------------------------------------------- phase 2: schema


D = TypeVar("D", bound="_Doc")


def _validate(model: type[D], data: object, text: str, source: str) -> D:
    if not isinstance(data, dict):
        raise SnapshotError(source, [Problem("", "the file must hold one object (a mapping)")])
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors(include_url=False):
            loc = _strip_tags(tuple(e["loc"]))
            problems.append((loc, _message(e["type"], e["msg"], loc, e.get("input"))))
        raise SnapshotError(source, _with_lines(problems, text)) from None


def _strip_tags(loc: Loc) -> Loc:
    """Drop the union tags pydantic puts after ``links``."""
    if len(loc) >= 2 and loc[0] == "links" and loc[1] in _LINK_TAGS:
        return loc[:1] + loc[2:]
    return loc


def _message(kind: str, msg: str, loc: Loc, value: object) -> str:
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if loc == ("links",) and kind in {"list_type", "model_type"}:
        return "must be a list of links or {mesh: {bandwidth_gbps, egress_cny_per_gb}}"
    if kind == "value_error":  # our own messages, which quote the value
        return msg.removeprefix("Value error, ")
    if value is None or isinstance(value, str | int | float | bool):
        return f"{msg}, got {json.dumps(value)}"
    return msg


# --------------------------------------------------------------------------- phase 3: meaning


class _Checker:
    """Uniqueness and references, collected as (loc, message) pairs."""

    def __init__(self, sites: Sequence[SiteDoc], accelerators: Sequence[AcceleratorDoc]):
        self.problems: list[tuple[Loc, str]] = []
        self.sites = {s.id for s in sites}
        self.regions = {s.region for s in sites}
        self.hubs = {s.hub for s in sites}
        self.types = set(BUILTIN_ACCELERATORS) | {a.name for a in accelerators}
        self.site_pools = {s.id: {p.type for p in s.pools} for s in sites}

    def add(self, loc: Loc, message: str) -> None:
        self.problems.append((loc, message))

    def topology(self, doc: TopologyDoc) -> list[tuple[Loc, str]]:
        self.unique("accelerators", [a.name for a in doc.accelerators], "accelerator", "name")
        self.site_docs(doc.sites, tenants=None)
        self.link_docs(doc.links)
        self.unique("locations", [x.id for x in doc.locations], "location id")
        return self.problems

    def snapshot(self, doc: SnapshotDoc) -> list[tuple[Loc, str]]:
        self.unique("accelerators", [a.name for a in doc.accelerators], "accelerator", "name")
        tenants = {t.id for t in doc.tenants}
        self.unique("tenants", [t.id for t in doc.tenants], "tenant id")
        self.site_docs(doc.sites, tenants)
        self.link_docs(doc.links)
        self.unique("locations", [x.id for x in doc.locations], "location id")
        self.unique("datasets", [d.id for d in doc.datasets], "dataset id")
        for i, ds in enumerate(doc.datasets):
            for k, replica in enumerate(ds.replicas):
                self.ref(("datasets", i, "replicas", k), replica, self.sites, "site")
            if ds.residency is not None:
                self.selector(("datasets", i, "residency"), ds.residency)
        refs = _Refs(tenants, {d.id for d in doc.datasets}, {x.id for x in doc.locations})
        self.unique_jobs(doc)
        for i, job in enumerate(doc.pending):
            self.job(("pending", i), job, refs)
        for i, run in enumerate(doc.running):
            self.job(("running", i, "job"), run.job, refs)
            if self.ref(("running", i, "site"), run.site, self.sites, "site"):
                pools = self.site_pools[run.site]
                if run.accelerator not in pools:
                    self.add(("running", i, "accelerator"),
                             f"site {run.site!r} has no {run.accelerator!r} pool")
        return self.problems

    def unique(self, field: str, ids: Sequence[str], what: str, key: str = "id") -> None:
        seen: set[str] = set()
        for i, value in enumerate(ids):
            if value in seen:
                self.add((field, i, key), f"duplicate {what} {value!r}")
            seen.add(value)

    def unique_jobs(self, doc: SnapshotDoc) -> None:
        seen: set[str] = set()
        locs: list[tuple[Loc, str]] = [(("pending", i, "id"), j.id)
                                       for i, j in enumerate(doc.pending)]
        locs += [(("running", i, "job", "id"), r.job.id) for i, r in enumerate(doc.running)]
        for loc, job_id in locs:
            if job_id in seen:
                self.add(loc, f"duplicate job id {job_id!r}")
            seen.add(job_id)

    def ref(self, loc: Loc, value: str, known: Collection[str], what: str, note: str = "") -> bool:
        if value in known:
            return True
        close = difflib.get_close_matches(value, sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.add(loc, f"unknown {what} {value!r}{note}{hint}")
        return False

    def site_docs(self, sites: Sequence[SiteDoc], tenants: set[str] | None) -> None:
        self.unique("sites", [s.id for s in sites], "site id")
        for i, site in enumerate(sites):
            self.tariff(("sites", i, "tariff"), site.tariff)
            seen: set[str] = set()
            for k, pool in enumerate(site.pools):
                loc = ("sites", i, "pools", k)
                if pool.type in seen:
                    self.add((*loc, "type"), f"second pool of {pool.type!r} at this site")
                seen.add(pool.type)
                self.ref((*loc, "type"), pool.type, self.types, "accelerator type")
                if pool.available is not None and pool.available > pool.count:
                    self.add((*loc, "available"),
                             f"available ({pool.available}) exceeds count ({pool.count})")
            if tenants is not None:
                for k, tenant in enumerate(site.subsidy_tenants):
                    self.ref(("sites", i, "subsidy_tenants", k), tenant, tenants, "tenant")

    def tariff(self, loc: Loc, tariff: TariffDoc) -> None:
        spans = []
        for k, period in enumerate(tariff.periods):
            if period.start_h >= period.end_h:
                self.add((*loc, "periods", k), "start_h must be before end_h "
                         "(split a period that crosses midnight in two)")
            spans.append((period.start_h, period.end_h, k))
        spans.sort()
        for (_, end, _), (start, _, k) in itertools.pairwise(spans):
            if start < end:
                self.add((*loc, "periods", k), "overlaps another period")

    def link_docs(self, links: list[LinkDoc] | MeshLinksDoc) -> None:
        if isinstance(links, MeshLinksDoc):
            return
        pairs: set[frozenset[str]] = set()
        for i, link in enumerate(links):
            ok_a = self.ref(("links", i, "a"), link.a, self.sites, "site")
            ok_b = self.ref(("links", i, "b"), link.b, self.sites, "site")
            pair = frozenset((link.a, link.b))
            if link.a == link.b:
                self.add(("links", i, "b"), "a link must join two different sites")
            elif ok_a and ok_b and pair in pairs:
                self.add(("links", i), f"second link between {link.a!r} and {link.b!r}")
            pairs.add(pair)

    def selector(self, loc: Loc, sel: SelectorDoc) -> None:
        if not (sel.sites or sel.regions or sel.hubs or sel.labels):
            self.add(loc, "selects no site (give sites, regions, hubs or labels)")
        for k, site in enumerate(sel.sites):
            self.ref((*loc, "sites", k), site, self.sites, "site")
        for k, region in enumerate(sel.regions):
            self.ref((*loc, "regions", k), region, self.regions, "region", " (no site is in it)")
        for k, hub in enumerate(sel.hubs):
            self.ref((*loc, "hubs", k), hub, self.hubs, "hub", " (no site is in it)")

    def job(self, loc: Loc, job: JobDoc, refs: _Refs) -> None:
        self.ref((*loc, "tenant"), job.tenant, refs.tenants, "tenant")
        for k, t in enumerate(job.gang.allowed_types):
            self.ref((*loc, "gang", "allowed_types", k), t, self.types, "accelerator type")
        for t in job.runtime_h:
            self.ref((*loc, "runtime_h", t), t, self.types, "accelerator type")
        for k, ds in enumerate(job.datasets):
            self.ref((*loc, "datasets", k), ds, refs.datasets, "dataset")
        if job.user_location is not None:
            self.ref((*loc, "user_location"), job.user_location, refs.locations, "location")
        elif job.max_latency_ms is not None:
            self.add((*loc, "max_latency_ms"), "a latency SLO needs a user_location")
        if job.deadline is not None and job.deadline < job.submitted_at:
            self.add((*loc, "deadline"), "deadline is before submitted_at")


@dataclass(frozen=True, slots=True)
class _Refs:
    tenants: set[str]
    datasets: set[str]
    locations: set[str]


# --------------------------------------------------------------------------- lines


def _with_lines(problems: Sequence[tuple[Loc, str]], text: str) -> list[Problem]:
    """Attach positions: JSON is YAML, so YAML's composer gives every node a line and a
    column. Only runs when something is wrong."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        root = None
    out = []
    for loc, msg in problems:
        mark = _mark(root, loc)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        out.append(Problem(format_path(loc), msg, line, column))
    out.sort(key=lambda p: (p.line is None, p.line or 0, p.column or 0))
    return out


def _mark(node: yaml.Node | None, loc: Loc) -> yaml.Mark | None:
    """Position of the deepest node along ``loc`` (of its key, inside a mapping)."""
    if node is None:
        return None
    mark = node.start_mark
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    mark = key.start_mark
                    child = value
                    break
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and 0 <= part < len(node.value)):
            child = node.value[part]
            mark = child.start_mark
        if child is None:
            break
        node = child
    return mark


# --------------------------------------------------------------------------- conversion


def _snapshot(doc: SnapshotDoc) -> Snapshot:
    sites = tuple(_site(s) for s in doc.sites)
    return Snapshot(
        sites=sites,
        links=_links(doc.links, sites),
        datasets=tuple(_dataset(d) for d in doc.datasets),
        locations=tuple(_location(x) for x in doc.locations),
        tenants=tuple(Tenant(TenantId(t.id), t.home_region) for t in doc.tenants),
        accelerators={AcceleratorType(a.name): _accelerator(a) for a in doc.accelerators},
        pending=tuple(_job(j) for j in doc.pending),
        running=tuple(
            RunningJob(_job(r.job), SiteId(r.site), AcceleratorType(r.accelerator),
                       r.started_at)
            for r in doc.running
        ),
    )


def _site(doc: SiteDoc) -> Site:
    return Site(
        id=SiteId(doc.id),
        region=doc.region,
        hub=doc.hub,
        lat=doc.lat,
        lon=doc.lon,
        pools=tuple(
            AcceleratorPool(
                type=AcceleratorType(p.type),
                count=p.count,
                available=p.count if p.available is None else p.available,
                price_cny_per_hour=p.price_cny_per_hour,
            )
            for p in doc.pools
        ),
        tariff=Tariff(
            base_cny_per_kwh=doc.tariff.base_cny_per_kwh,
            periods=tuple(TouPeriod(p.start_h, p.end_h, p.multiplier)
                          for p in doc.tariff.periods),
            utc_offset_h=doc.tariff.utc_offset_h,
        ),
        pue=doc.pue,
        labels=dict(doc.labels),
        subsidy_tenants=frozenset(TenantId(t) for t in doc.subsidy_tenants),
        subsidy_discount=doc.subsidy_discount,
        adapter=doc.adapter,
    )


def _links(doc: list[LinkDoc] | MeshLinksDoc, sites: tuple[Site, ...]) -> tuple[Link, ...]:
    if isinstance(doc, MeshLinksDoc):
        return mesh_links(sites, doc.mesh.bandwidth_gbps, doc.mesh.egress_cny_per_gb)
    by_id = {s.id: s for s in sites}
    links = []
    for x in doc:
        a, b = by_id[SiteId(x.a)], by_id[SiteId(x.b)]
        latency = x.latency_ms if x.latency_ms is not None else rtt_ms(a.lat, a.lon, b.lat, b.lon)
        links.append(Link(a.id, b.id, latency, x.bandwidth_gbps, x.egress_cny_per_gb))
    return tuple(links)


def _selector(doc: SelectorDoc) -> SiteSelector:
    return SiteSelector(
        sites=frozenset(SiteId(s) for s in doc.sites),
        regions=frozenset(doc.regions),
        hubs=frozenset(doc.hubs),
        labels=dict(doc.labels),
    )


def _dataset(doc: DatasetDoc) -> Dataset:
    return Dataset(
        id=DatasetId(doc.id),
        size_gb=doc.size_gb,
        replicas=frozenset(SiteId(s) for s in doc.replicas),
        residency=_selector(doc.residency) if doc.residency is not None else None,
    )


def _location(doc: LocationDoc) -> Location:
    return Location(LocationId(doc.id), doc.lat, doc.lon)


def _accelerator(doc: AcceleratorDoc) -> AcceleratorSpec:
    return AcceleratorSpec(
        name=AcceleratorType(doc.name),
        memory_gb=doc.memory_gb,
        bf16_tflops=doc.bf16_tflops,
        tdp_w=doc.tdp_w,
        interconnect=doc.interconnect,
        software_stack=doc.software_stack,
    )


def _job(doc: JobDoc) -> Job:
    return Job(
        id=JobId(doc.id),
        tenant=TenantId(doc.tenant),
        gang=Gang(
            workers=doc.gang.workers,
            accelerators_per_worker=doc.gang.accelerators_per_worker,
            allowed_types=frozenset(AcceleratorType(t) for t in doc.gang.allowed_types),
            min_memory_gb=doc.gang.min_memory_gb,
        ),
        runtime_h={AcceleratorType(t): h for t, h in doc.runtime_h.items()},
        submitted_at=doc.submitted_at,
        priority=doc.priority,
        deadline=doc.deadline,
        datasets=tuple(DatasetId(d) for d in doc.datasets),
        user_location=LocationId(doc.user_location) if doc.user_location is not None else None,
        max_latency_ms=doc.max_latency_ms,
        preemptible=doc.preemptible,
        checkpointable=doc.checkpointable,
        home_region=doc.home_region,
    )


# --------------------------------------------------------------------------- to JSON


def _instant(t: float, utc_offset_h: float) -> str | float:
    """ISO 8601 when that reads back as exactly ``t``, else POSIX seconds."""
    if not math.isfinite(t):
        return t
    try:
        zone = UTC if utc_offset_h == 0 else timezone(timedelta(hours=utc_offset_h))
        text = datetime.fromtimestamp(t, tz=zone).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return t
    return text if datetime.fromisoformat(text).timestamp() == t else t


def _site_json(site: Site) -> dict[str, Any]:
    return {
        "id": site.id,
        "region": site.region,
        "hub": site.hub,
        "lat": site.lat,
        "lon": site.lon,
        "pue": site.pue,
        "labels": dict(site.labels),
        "tariff": {
            "base_cny_per_kwh": site.tariff.base_cny_per_kwh,
            "periods": [{"start_h": p.start_h, "end_h": p.end_h, "multiplier": p.multiplier}
                        for p in site.tariff.periods],
            "utc_offset_h": site.tariff.utc_offset_h,
        },
        "pools": [
            {"type": p.type, "count": p.count, "available": p.available,
             "price_cny_per_hour": p.price_cny_per_hour}
            for p in site.pools
        ],
        "subsidy_tenants": sorted(site.subsidy_tenants),
        "subsidy_discount": site.subsidy_discount,
        "adapter": site.adapter,
    }


def _dataset_json(ds: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {"id": ds.id, "size_gb": ds.size_gb, "replicas": sorted(ds.replicas)}
    if ds.residency is not None:
        sel = ds.residency
        residency: dict[str, Any] = {}
        for name, values in (("sites", sel.sites), ("regions", sel.regions),
                             ("hubs", sel.hubs)):
            if values:
                residency[name] = sorted(values)
        if sel.labels:
            residency["labels"] = dict(sel.labels)
        out["residency"] = residency
    return out


def _job_json(job: Job, when: Callable[[float], str | float]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": job.id,
        "tenant": job.tenant,
        "priority": job.priority,
        "gang": {
            "workers": job.gang.workers,
            "accelerators_per_worker": job.gang.accelerators_per_worker,
            "allowed_types": sorted(job.gang.allowed_types),
            "min_memory_gb": job.gang.min_memory_gb,
        },
        "runtime_h": dict(job.runtime_h),
        "submitted_at": when(job.submitted_at),
    }
    optional: dict[str, Any] = {
        "deadline": None if job.deadline is None else when(job.deadline),
        "datasets": list(job.datasets) or None,
        "user_location": job.user_location,
        "max_latency_ms": job.max_latency_ms,
        "preemptible": job.preemptible or None,
        "checkpointable": job.checkpointable or None,
        "home_region": job.home_region,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return out


__all__ = [
    "DatasetDoc",
    "Problem",
    "SnapshotDoc",
    "SnapshotError",
    "TenantDoc",
    "Topology",
    "TopologyDoc",
    "dataset_from_doc",
    "format_path",
    "json_schema",
    "parse_snapshot",
    "parse_topology",
    "snapshot_to_json",
]
