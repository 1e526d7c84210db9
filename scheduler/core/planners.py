"""The planners, by name: the optimizer and the baselines it is measured against.

Every planner is a pure function ``(snapshot, policy, now) -> Plan`` and is selectable by name
wherever a policy is (CLI, API, simulator).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from scheduler.core import baselines
from scheduler.core.model import Snapshot
from scheduler.core.plan import Plan
from scheduler.core.policy.model import Policy
from scheduler.core.solver import plan as optimize

Planner = Callable[[Snapshot, Policy, float], Plan]

PLANNERS: Mapping[str, Planner] = MappingProxyType({
    "optimizer": optimize,
    "local-only": baselines.local_only,
    "first-fit": baselines.first_fit,
    "greedy-cheapest": baselines.greedy_cheapest,
    "spread-by-capacity": baselines.spread_by_capacity,
})

BASELINES: tuple[str, ...] = ("local-only", "first-fit", "greedy-cheapest", "spread-by-capacity")


class UnknownPlanner(KeyError):
    def __str__(self) -> str:
        return f"unknown planner {self.args[0]!r}; choose one of {', '.join(PLANNERS)}"


def get_planner(name: str) -> Planner:
    try:
        return PLANNERS[name]
    except KeyError:
        raise UnknownPlanner(name) from None


__all__ = ["BASELINES", "PLANNERS", "Planner", "UnknownPlanner", "get_planner"]
