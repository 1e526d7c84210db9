"""Accelerator substitution and speed: which types a job accepts and how long it runs on each.

A job states runtimes for some types; runtimes on the other types it accepts are derived with
relative speed factors (the policy's, else catalog BF16 TFLOPS with an A100 as 1.0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from scheduler.core.ids import AcceleratorType
from scheduler.core.model import AcceleratorSpec, Job
from scheduler.core.policy.model import Policy


def runtime_per_type(
    job: Job,
    types: Sequence[AcceleratorType],
    speed: Mapping[AcceleratorType, float],
) -> dict[AcceleratorType, float]:
    """Estimated hours on each of ``types``: the job's own estimate where it gave one, else
    derived from its estimates with relative speed factors (the fastest derivation wins)."""
    return derive_runtimes({t: h for t, h in job.runtime_h.items() if h > 0}, types, speed)


def derive_runtimes(
    given: Mapping[AcceleratorType, float],
    types: Sequence[AcceleratorType],
    speed: Mapping[AcceleratorType, float],
) -> dict[AcceleratorType, float]:
    out: dict[AcceleratorType, float] = {}
    for t in types:
        if t in given:
            out[t] = given[t]
        elif given and speed.get(t, 0.0) > 0:
            out[t] = min(h * speed.get(r, speed[t]) / speed[t] for r, h in given.items())
    return out


def speed_factors(
    policy: Policy, catalog: Mapping[AcceleratorType, AcceleratorSpec]
) -> dict[AcceleratorType, float]:
    """Relative speed per type: the policy's factors, else catalog BF16 TFLOPS scaled so that
    an A100 is 1.0."""
    reference = catalog.get(AcceleratorType("A100-80G"))
    base = reference.bf16_tflops if reference else 312.0
    speed = {t: spec.bf16_tflops / base for t, spec in catalog.items() if spec.bf16_tflops > 0}
    speed.update(policy.accelerators.speed)
    return speed


def expand_allowed(
    allowed: frozenset[AcceleratorType], policy: Policy
) -> frozenset[AcceleratorType]:
    """Allowed types plus every type equivalent to one of them."""
    out = set(allowed)
    for group in policy.accelerators.equivalences:
        if allowed & group:
            out |= group
    return frozenset(out)


__all__ = ["derive_runtimes", "expand_allowed", "runtime_per_type", "speed_factors"]
