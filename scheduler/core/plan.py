"""What a planner returns: placements, waits with their reasons, a lower bound, explanations.

Expected outcomes are values: a job that cannot run now gets a ``Wait`` whose ``reasons``
name the constraint that blocked it, the way the answer to "why is my job waiting" reads.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from scheduler.core.ids import AcceleratorType, JobId, SiteId


class BlockReason(enum.StrEnum):
    """Why a job waits. Ordered from the most fundamental to the most transient."""

    NO_ACCELERATOR = "no-accelerator"  # no site has an allowed type with enough memory
    RESIDENCY = "residency"  # residency rules exclude every site that has the hardware
    DATA = "data"  # the datasets cannot reach the remaining sites over any link
    LATENCY = "latency"  # the latency SLO excludes the remaining sites
    SPILLOVER = "spillover"  # spillover rules keep the job in its home sites
    QUOTA = "quota"  # the tenant's accelerator quota is used up
    POWER_CAP = "power-cap"  # remaining sites are at their power cap
    CAPACITY = "capacity"  # remaining sites have no free accelerators of the allowed types
    OUTBID = "outbid"  # capacity exists but went to jobs with a higher cost of waiting
    COST = "cost"  # waiting is cheaper than any feasible placement

    def is_transient(self) -> bool:
        return self in {BlockReason.QUOTA, BlockReason.POWER_CAP, BlockReason.CAPACITY,
                        BlockReason.OUTBID, BlockReason.COST}


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """Weighted cost terms of one placement (or of waiting), in CNY."""

    energy: float = 0.0
    rental: float = 0.0
    transfer: float = 0.0
    latency: float = 0.0
    queue: float = 0.0

    @property
    def total(self) -> float:
        return self.energy + self.rental + self.transfer + self.latency + self.queue

    def as_dict(self) -> dict[str, float]:
        return {
            "energy": self.energy,
            "rental": self.rental,
            "transfer": self.transfer,
            "latency": self.latency,
            "queue": self.queue,
            "total": self.total,
        }


@dataclass(frozen=True, slots=True)
class Placement:
    job: JobId
    site: SiteId
    accelerator: AcceleratorType
    accelerators: int  # gang size in accelerators
    runtime_h: float
    cost: CostBreakdown


@dataclass(frozen=True, slots=True)
class Wait:
    job: JobId
    reason: BlockReason
    message: str
    cost: CostBreakdown  # one horizon of delay (queue) plus the job's reference option


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a job is where it is, or why it waits."""

    job: JobId
    summary: str
    options_considered: int
    eliminated: Mapping[BlockReason, int] = field(default_factory=dict)
    runner_up: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """The planner's answer for one snapshot.

    ``objective`` is the total weighted cost (placements plus waiting); ``lower_bound`` is a
    proven lower bound on the objective of any plan for the same snapshot and policy, so
    ``gap`` bounds how far this plan can be from optimal.
    """

    planner: str
    placements: tuple[Placement, ...]
    waits: tuple[Wait, ...]
    objective: float
    lower_bound: float
    solve_s: float
    explanations: Mapping[JobId, Explanation] = field(default_factory=dict)
    stats: Mapping[str, float] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """Relative gap to the lower bound (0.0 = proven optimal)."""
        if self.objective <= 0.0:
            return 0.0
        return max(0.0, (self.objective - self.lower_bound) / max(abs(self.objective), 1e-9))

    def placement_of(self, job: JobId) -> Placement | None:
        for placement in self.placements:
            if placement.job == job:
                return placement
        return None


__all__ = ["BlockReason", "CostBreakdown", "Explanation", "Placement", "Plan", "Wait"]
