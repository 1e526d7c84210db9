"""The policy an operator writes, as the solver reads it (frozen dataclasses).

Files are parsed and validated by ``scheduler.core.policy.schema`` and converted to these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from scheduler.core.ids import AcceleratorType, DatasetId, LocationId, SiteId, TenantId
from scheduler.core.model import SiteSelector


@dataclass(frozen=True, slots=True)
class ObjectiveWeights:
    """Weights on the cost terms (dimensionless) and the prices that turn delay and latency
    into CNY.

    - ``queue_cny_per_accelerator_hour``: what one accelerator-hour of demand left waiting
      costs the business; a waiting job is charged ``wait_horizon_h`` of it (times priority).
    - ``latency_cny_per_ms_hour``: cost of one millisecond of round-trip latency to the
      job's users, per accelerator-hour served.
    """

    energy: float = 1.0
    rental: float = 1.0
    transfer: float = 1.0
    queue: float = 1.0
    latency: float = 1.0
    queue_cny_per_accelerator_hour: float = 20.0
    wait_horizon_h: float = 1.0
    latency_cny_per_ms_hour: float = 0.01


@dataclass(frozen=True, slots=True)
class LatencyBound:
    location: LocationId
    max_ms: float


@dataclass(frozen=True, slots=True)
class ResidencyRule:
    """Jobs reading any of ``datasets`` or owned by any of ``tenants`` may run only on
    sites that ``allow`` selects (when set) and within ``within`` of a location (when set)."""

    name: str
    datasets: frozenset[DatasetId] = frozenset()
    tenants: frozenset[TenantId] = frozenset()
    allow: SiteSelector | None = None
    within: LatencyBound | None = None


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    quota_accelerators: int | None = None  # max accelerators held at once (running + placed)
    priority_weight: float = 1.0


@dataclass(frozen=True, slots=True)
class SpilloverRule:
    """Jobs whose home region lies in ``source`` may leave it only for sites in ``target``,
    and only while the source sites' accelerator utilisation is at least ``above``."""

    name: str
    source: SiteSelector
    target: SiteSelector
    above: float  # utilisation fraction in [0, 1]


@dataclass(frozen=True, slots=True)
class AcceleratorRules:
    """Substitution and speed: a job allowing one type of an equivalence group also
    accepts the others. ``speed`` is relative throughput used to derive runtimes the job
    did not state (types missing here fall back to catalog BF16 TFLOPS)."""

    equivalences: tuple[frozenset[AcceleratorType], ...] = ()
    speed: Mapping[AcceleratorType, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PreemptionRules:
    enabled: bool = False
    min_priority_gap: int = 1
    only_checkpointable: bool = True


@dataclass(frozen=True, slots=True)
class SolverOptions:
    time_limit_s: float = 10.0
    seed: int = 0
    initial_columns: int = 4  # cheapest options per job class in the first LP round


PLANNER_NAMES: tuple[str, ...] = (
    "optimizer", "local-only", "first-fit", "greedy-cheapest", "spread-by-capacity",
)


@dataclass(frozen=True, slots=True)
class Policy:
    name: str = "default"
    planner: str = "optimizer"  # one of PLANNER_NAMES
    objective: ObjectiveWeights = ObjectiveWeights()
    residency: tuple[ResidencyRule, ...] = ()
    tenants: Mapping[TenantId, TenantPolicy] = field(default_factory=dict)
    power_caps_kw: Mapping[SiteId, float] = field(default_factory=dict)
    spillover: tuple[SpilloverRule, ...] = ()
    accelerators: AcceleratorRules = AcceleratorRules()
    preemption: PreemptionRules = PreemptionRules()
    solver: SolverOptions = SolverOptions()

    def tenant(self, tenant: TenantId) -> TenantPolicy:
        return self.tenants.get(tenant, TenantPolicy())


__all__ = [
    "PLANNER_NAMES",
    "AcceleratorRules",
    "LatencyBound",
    "ObjectiveWeights",
    "Policy",
    "PreemptionRules",
    "ResidencyRule",
    "SolverOptions",
    "SpilloverRule",
    "TenantPolicy",
]
