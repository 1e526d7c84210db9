"""The policy file format: pydantic models for the YAML an operator writes.

These models exist only at the edge. ``to_policy`` converts a validated file into the frozen
``scheduler.core.policy.model.Policy`` the solver reads; ``policy_to_data`` goes the other way
(for ``isthmus policy show``); ``policy_json_schema`` describes the format for editors.

Every default here is read from ``policy/model.py``, so the file format and the dataclasses
cannot drift apart. Numbers and booleans are strict (``true`` is not a number and ``"2"`` is
not a weight); strings accept bare numbers (``name: 2025``), since YAML reads those as ints.

Checks that span several items (duplicate rule names, overlapping equivalence groups) raise a
``PydanticCustomError`` whose context carries ``at``: the location of the offending item
relative to the field, so ``scheduler.core.policy.load`` can point at the right line.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from scheduler.core.catalog import BUILTIN_ACCELERATORS
from scheduler.core.ids import AcceleratorType, DatasetId, LocationId, SiteId, TenantId
from scheduler.core.model import SiteSelector
from scheduler.core.policy.model import (
    PLANNER_NAMES,
    AcceleratorRules,
    LatencyBound,
    ObjectiveWeights,
    Policy,
    PreemptionRules,
    ResidencyRule,
    SolverOptions,
    SpilloverRule,
    TenantPolicy,
)

#: Key of a custom error's context that extends the error's location (see module docstring).
AT = "at"

_OBJECTIVE = ObjectiveWeights()
_TENANT = TenantPolicy()
_PREEMPTION = PreemptionRules()
_SOLVER = SolverOptions()
_POLICY = Policy()

KNOWN_ACCELERATORS: tuple[str, ...] = tuple(BUILTIN_ACCELERATORS)


def _known_accelerator(name: str) -> str:
    if name not in BUILTIN_ACCELERATORS:
        raise PydanticCustomError(
            "unknown_accelerator",
            "unknown accelerator type '{name}'; known types: {known}",
            {"name": name, "known": ", ".join(KNOWN_ACCELERATORS)},
        )
    return name


def _known_planner(name: str) -> str:
    if name not in PLANNER_NAMES:
        raise PydanticCustomError(
            "unknown_planner",
            "unknown planner '{name}'; known planners: {known}",
            {"name": name, "known": ", ".join(PLANNER_NAMES)},
        )
    return name


Name = Annotated[str, Field(min_length=1)]
AcceleratorName = Annotated[
    str,
    AfterValidator(_known_accelerator),
    WithJsonSchema({"type": "string", "enum": list(KNOWN_ACCELERATORS)}),
]
PlannerName = Annotated[
    str,
    AfterValidator(_known_planner),
    WithJsonSchema({"type": "string", "enum": list(PLANNER_NAMES)}),
]
PositiveFloat = Annotated[float, Field(strict=True, gt=0)]


def _weight(default: float, description: str) -> Any:
    return Field(default=default, strict=True, ge=0, description=description)


class _Section(BaseModel):
    """Base of every section: unknown keys are errors, numbers must be finite."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        coerce_numbers_to_str=True,
        populate_by_name=True,
    )


def _duplicates(names: Iterable[str]) -> Iterable[tuple[int, str, int]]:
    """(index, name, first index) for every name seen before."""
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            yield i, name, first[name]
        else:
            first[name] = i


class ObjectiveSection(_Section):
    """Weights on the cost terms and the prices that turn waiting and latency into CNY."""

    energy: float = _weight(_OBJECTIVE.energy, "Weight on the power bill (dimensionless).")
    rental: float = _weight(_OBJECTIVE.rental, "Weight on accelerator rental (dimensionless).")
    transfer: float = _weight(
        _OBJECTIVE.transfer, "Weight on moving datasets between sites (dimensionless)."
    )
    queue: float = _weight(_OBJECTIVE.queue, "Weight on the cost of waiting (dimensionless).")
    latency: float = _weight(
        _OBJECTIVE.latency, "Weight on latency to the job's users (dimensionless)."
    )
    queue_cny_per_accelerator_hour: float = Field(
        default=_OBJECTIVE.queue_cny_per_accelerator_hour,
        strict=True,
        gt=0,
        description="What one accelerator-hour of demand left waiting costs, in CNY.",
    )
    wait_horizon_h: float = Field(
        default=_OBJECTIVE.wait_horizon_h,
        strict=True,
        gt=0,
        description="Hours of waiting charged to a job the planner leaves in the queue.",
    )
    latency_cny_per_ms_hour: float = Field(
        default=_OBJECTIVE.latency_cny_per_ms_hour,
        strict=True,
        ge=0,
        description="CNY per millisecond of round-trip latency per accelerator-hour served.",
    )


class SelectorSection(_Section):
    """A set of sites: any listed site, region or hub, or every listed label."""

    sites: list[Name] = Field(default_factory=list, description="Site ids.")
    regions: list[Name] = Field(
        default_factory=list, description="Administrative regions (province/municipality)."
    )
    hubs: list[Name] = Field(default_factory=list, description="National computing hubs.")
    labels: dict[Name, str] = Field(
        default_factory=dict, description="Site labels; a site must carry all of them."
    )

    @model_validator(mode="after")
    def _selects_something(self) -> SelectorSection:
        if not (self.sites or self.regions or self.hubs or self.labels):
            raise PydanticCustomError(
                "empty_selector",
                "selects no sites: name at least one of sites, regions, hubs, labels",
            )
        return self


class WithinSection(_Section):
    """A latency bound: sites at most ``max_ms`` round-trip from ``location``."""

    location: Name = Field(description="A user location id, e.g. 'shanghai'.")
    max_ms: PositiveFloat = Field(description="Round-trip latency bound in milliseconds.")


class ResidencyRuleSection(_Section):
    """Jobs reading any listed dataset or owned by any listed tenant may run only on sites
    that ``allow`` selects and that lie ``within`` a latency bound of a location."""

    name: Name = Field(description="Rule name, quoted in explanations.")
    datasets: list[Name] = Field(default_factory=list, description="Dataset ids.")
    tenants: list[Name] = Field(default_factory=list, description="Tenant ids.")
    allow: SelectorSection | None = Field(default=None, description="Sites the jobs may run on.")
    within: WithinSection | None = Field(default=None, description="Latency bound from a location.")

    @model_validator(mode="after")
    def _complete(self) -> ResidencyRuleSection:
        missing = []
        if not (self.datasets or self.tenants):
            missing.append("name at least one dataset or tenant it applies to")
        if self.allow is None and self.within is None:
            missing.append("set 'allow' or 'within' (where the jobs may run)")
        if missing:
            raise PydanticCustomError(
                "incomplete_rule", "residency rule must {what}", {"what": " and ".join(missing)}
            )
        return self


class TenantSection(_Section):
    quota_accelerators: int | None = Field(
        default=_TENANT.quota_accelerators,
        strict=True,
        ge=0,
        description="Most accelerators the tenant may hold at once (null: no quota).",
    )
    priority_weight: float = Field(
        default=_TENANT.priority_weight,
        strict=True,
        gt=0,
        description="Multiplies the cost of keeping the tenant's jobs waiting.",
    )


class SpilloverSection(_Section):
    """Jobs whose home region lies in ``from`` may leave it only for sites in ``to``, and only
    while the ``from`` sites are at least ``above_utilisation`` busy."""

    name: Name = Field(description="Rule name, quoted in explanations.")
    source: SelectorSection = Field(alias="from", description="The home sites.")
    target: SelectorSection = Field(alias="to", description="Where jobs may spill to.")
    above_utilisation: float = Field(
        strict=True,
        ge=0,
        le=1,
        description="Accelerator utilisation of the 'from' sites (0..1) from which on "
        "jobs may spill over.",
    )


def _distinct_types(group: list[str]) -> list[str]:
    for i, name, first in _duplicates(group):  # the first duplicate is enough
        raise PydanticCustomError(
            "duplicate_type",
            "'{name}' is listed twice in this group (items {first} and {i})",
            {"name": name, "first": first, "i": i, AT: (i,)},
        )
    return group


EquivalenceGroup = Annotated[
    list[AcceleratorName], Field(min_length=2), AfterValidator(_distinct_types)
]


class AcceleratorsSection(_Section):
    equivalences: list[EquivalenceGroup] = Field(
        default_factory=list,
        description="Groups of interchangeable types: a job allowing one accepts all.",
    )
    speed: dict[AcceleratorName, PositiveFloat] = Field(
        default_factory=dict,
        description="Relative throughput per type (A100-80G = 1.0 when derived from the "
        "catalog); types not listed use catalog BF16 TFLOPS.",
    )

    @field_validator("equivalences")
    @classmethod
    def _disjoint(cls, groups: list[list[str]]) -> list[list[str]]:
        seen: dict[str, int] = {}
        for g, group in enumerate(groups):
            for i, name in enumerate(group):
                if name in seen and seen[name] != g:
                    raise PydanticCustomError(
                        "overlapping_groups",
                        "'{name}' is already in equivalences[{first}]; merge the two groups",
                        {"name": name, "first": seen[name], AT: (g, i)},
                    )
                seen.setdefault(name, g)
        return groups


class PreemptionSection(_Section):
    enabled: bool = Field(
        default=_PREEMPTION.enabled, strict=True, description="May running jobs be preempted?"
    )
    min_priority_gap: int = Field(
        default=_PREEMPTION.min_priority_gap,
        strict=True,
        ge=1,
        description="A job may preempt only jobs at least this many priority levels below it.",
    )
    only_checkpointable: bool = Field(
        default=_PREEMPTION.only_checkpointable,
        strict=True,
        description="Preempt only jobs that can resume from a checkpoint.",
    )


class SolverSection(_Section):
    time_limit_s: float = Field(
        default=_SOLVER.time_limit_s,
        strict=True,
        gt=0,
        description="Wall-clock limit per plan, seconds.",
    )
    seed: int = Field(
        default=_SOLVER.seed,
        strict=True,
        ge=0,
        le=2**31 - 1,
        description="Solver random seed: the same snapshot, policy and seed give the same plan.",
    )
    initial_columns: int = Field(
        default=_SOLVER.initial_columns,
        strict=True,
        ge=1,
        description="Cheapest options per job group in each LP round.",
    )


def _unique_names(rules: list[Any], what: str) -> None:
    for i, name, first in _duplicates(rule.name for rule in rules):
        raise PydanticCustomError(
            "duplicate_name",
            "{what} rule name '{name}' is already used by rule {first}",
            {"what": what, "name": name, "first": first, AT: (i, "name")},
        )


class PolicyFile(_Section):
    """An Isthmus policy file. Every key is optional; missing keys take the defaults."""

    model_config = ConfigDict(title="Isthmus policy")

    name: Name = Field(default=_POLICY.name, description="Policy name, shown in plans.")
    planner: PlannerName = Field(default=_POLICY.planner, description="Which planner places jobs.")
    objective: ObjectiveSection = Field(default_factory=ObjectiveSection)
    residency: list[ResidencyRuleSection] = Field(
        default_factory=list, description="Where data and tenants' jobs may be processed."
    )
    tenants: dict[Name, TenantSection] = Field(
        default_factory=dict, description="Per-tenant quota and priority, by tenant id."
    )
    power_caps_kw: dict[Name, PositiveFloat] = Field(
        default_factory=dict, description="Most power the scheduler may draw per site id, kW."
    )
    spillover: list[SpilloverSection] = Field(
        default_factory=list, description="When jobs may leave their home sites."
    )
    accelerators: AcceleratorsSection = Field(default_factory=AcceleratorsSection)
    preemption: PreemptionSection = Field(default_factory=PreemptionSection)
    solver: SolverSection = Field(default_factory=SolverSection)

    @field_validator("residency")
    @classmethod
    def _unique_residency(cls, rules: list[ResidencyRuleSection]) -> list[ResidencyRuleSection]:
        _unique_names(rules, "residency")
        return rules

    @field_validator("spillover")
    @classmethod
    def _unique_spillover(cls, rules: list[SpilloverSection]) -> list[SpilloverSection]:
        _unique_names(rules, "spillover")
        return rules


# --- file -> dataclasses ------------------------------------------------------------------


def _selector(section: SelectorSection) -> SiteSelector:
    return SiteSelector(
        sites=frozenset(SiteId(s) for s in section.sites),
        regions=frozenset(section.regions),
        hubs=frozenset(section.hubs),
        labels=MappingProxyType(dict(section.labels)),
    )


def _residency(rule: ResidencyRuleSection) -> ResidencyRule:
    within = rule.within
    return ResidencyRule(
        name=rule.name,
        datasets=frozenset(DatasetId(d) for d in rule.datasets),
        tenants=frozenset(TenantId(t) for t in rule.tenants),
        allow=_selector(rule.allow) if rule.allow is not None else None,
        within=LatencyBound(LocationId(within.location), within.max_ms)
        if within is not None
        else None,
    )


def to_policy(file: PolicyFile) -> Policy:
    """The solver's view of a validated policy file."""
    o, acc, pre, sol = file.objective, file.accelerators, file.preemption, file.solver
    return Policy(
        name=file.name,
        planner=file.planner,
        objective=ObjectiveWeights(
            energy=o.energy,
            rental=o.rental,
            transfer=o.transfer,
            queue=o.queue,
            latency=o.latency,
            queue_cny_per_accelerator_hour=o.queue_cny_per_accelerator_hour,
            wait_horizon_h=o.wait_horizon_h,
            latency_cny_per_ms_hour=o.latency_cny_per_ms_hour,
        ),
        residency=tuple(_residency(rule) for rule in file.residency),
        tenants=MappingProxyType({
            TenantId(t): TenantPolicy(s.quota_accelerators, s.priority_weight)
            for t, s in file.tenants.items()
        }),
        power_caps_kw=MappingProxyType({SiteId(s): kw for s, kw in file.power_caps_kw.items()}),
        spillover=tuple(
            SpilloverRule(r.name, _selector(r.source), _selector(r.target), r.above_utilisation)
            for r in file.spillover
        ),
        accelerators=AcceleratorRules(
            equivalences=tuple(
                frozenset(AcceleratorType(t) for t in group) for group in acc.equivalences
            ),
            speed=MappingProxyType({AcceleratorType(t): f for t, f in acc.speed.items()}),
        ),
        preemption=PreemptionRules(pre.enabled, pre.min_priority_gap, pre.only_checkpointable),
        solver=SolverOptions(sol.time_limit_s, sol.seed, sol.initial_columns),
    )


# --- dataclasses -> file data -------------------------------------------------------------


def _selector_data(selector: SiteSelector) -> dict[str, Any]:
    return {
        "sites": sorted(selector.sites),
        "regions": sorted(selector.regions),
        "hubs": sorted(selector.hubs),
        "labels": dict(selector.labels),
    }


def policy_to_data(policy: Policy) -> dict[str, Any]:
    """The policy as plain data in the file format, every key present (defaults filled in).

    Sets are written sorted, so the output is stable; ``to_policy`` of the parsed output
    equals ``policy``.
    """
    o = policy.objective
    return {
        "name": policy.name,
        "planner": policy.planner,
        "objective": {
            "energy": o.energy,
            "rental": o.rental,
            "transfer": o.transfer,
            "queue": o.queue,
            "latency": o.latency,
            "queue_cny_per_accelerator_hour": o.queue_cny_per_accelerator_hour,
            "wait_horizon_h": o.wait_horizon_h,
            "latency_cny_per_ms_hour": o.latency_cny_per_ms_hour,
        },
        "residency": [
            {
                "name": rule.name,
                "datasets": sorted(rule.datasets),
                "tenants": sorted(rule.tenants),
                "allow": _selector_data(rule.allow) if rule.allow is not None else None,
                "within": {"location": rule.within.location, "max_ms": rule.within.max_ms}
                if rule.within is not None
                else None,
            }
            for rule in policy.residency
        ],
        "tenants": {
            tenant: {
                "quota_accelerators": tp.quota_accelerators,
                "priority_weight": tp.priority_weight,
            }
            for tenant, tp in policy.tenants.items()
        },
        "power_caps_kw": dict(policy.power_caps_kw),
        "spillover": [
            {
                "name": rule.name,
                "from": _selector_data(rule.source),
                "to": _selector_data(rule.target),
                "above_utilisation": rule.above,
            }
            for rule in policy.spillover
        ],
        "accelerators": {
            "equivalences": [sorted(group) for group in policy.accelerators.equivalences],
            "speed": dict(policy.accelerators.speed),
        },
        "preemption": {
            "enabled": policy.preemption.enabled,
            "min_priority_gap": policy.preemption.min_priority_gap,
            "only_checkpointable": policy.preemption.only_checkpointable,
        },
        "solver": {
            "time_limit_s": policy.solver.time_limit_s,
            "seed": policy.solver.seed,
            "initial_columns": policy.solver.initial_columns,
        },
    }


def policy_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the policy file, for editors and CI linters."""
    schema = PolicyFile.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


__all__ = [
    "AT",
    "KNOWN_ACCELERATORS",
    "AcceleratorsSection",
    "ObjectiveSection",
    "PolicyFile",
    "PreemptionSection",
    "ResidencyRuleSection",
    "SelectorSection",
    "SolverSection",
    "SpilloverSection",
    "TenantSection",
    "WithinSection",
    "policy_json_schema",
    "policy_to_data",
    "to_policy",
]
