"""The built-in accelerator catalog.

Figures are published dense specifications as collected in the project's shared data
(vendor datasheets as reproduced by hmc-tech.com, jishuzhan.net, mullet.se and
willitrunai.com). The RTX 5090 dense BF16 figure is an estimate; the Ascend 910B row is low
confidence (sources disagree on bandwidth and TFLOPS). A snapshot may add or override types.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from scheduler.core.ids import AcceleratorType
from scheduler.core.model import AcceleratorSpec


def _spec(
    name: str, memory_gb: float, tflops: float, tdp_w: float, link: bool, stack: str = "CUDA"
) -> AcceleratorSpec:
    return AcceleratorSpec(AcceleratorType(name), memory_gb, tflops, tdp_w, link, stack)


BUILTIN_ACCELERATORS: Mapping[AcceleratorType, AcceleratorSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            _spec("RTX4090-24G", 24, 165, 450, False),
            _spec("RTX4090-48G", 48, 165, 450, False),
            _spec("RTX5090-32G", 32, 209, 575, False),
            _spec("L40S-48G", 48, 362, 350, False),
            _spec("A100-80G", 80, 312, 400, True),
            _spec("H100-80G", 80, 989, 700, True),
            _spec("H800-80G", 80, 989, 700, True),
            _spec("H20-96G", 96, 148, 400, True),
            _spec("Ascend910B-64G", 64, 280, 400, False, "CANN"),
        )
    }
)


def merged_catalog(
    overrides: Mapping[AcceleratorType, AcceleratorSpec],
) -> Mapping[AcceleratorType, AcceleratorSpec]:
    """The built-in catalog with a snapshot's own entries laid over it."""
    merged = dict(BUILTIN_ACCELERATORS)
    merged.update(overrides)
    return MappingProxyType(merged)


__all__ = ["BUILTIN_ACCELERATORS", "merged_catalog"]
