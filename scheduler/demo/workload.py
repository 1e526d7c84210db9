"""The demo's mixed workload: inference near eastern users, training gangs, residency-bound
jobs. Reproducible from a seed; the shapes follow ../shared/data/workloads.md in spirit
(many small jobs, a few large gangs, short inference), scaled down to a few minutes."""

from __future__ import annotations

import random
from typing import Any

# What a job on the real Ray site runs: a Ray driver that runs a task on the cluster.
RAY_ENTRYPOINT = (
    "python -c \"import ray, time; ray.init(); "
    "f = ray.remote(num_cpus=0.1)(lambda x: x * x); "
    "print('isthmus demo job: sum of squares', sum(ray.get([f.remote(i) for i in range(20)]))); "
    "time.sleep({seconds})\""
)

TENANTS = {"acme": "Shanghai", "beta": "Guangdong", "gamma": "Hebei"}
RESIDENT_DATASET = "shanghai-clinical"


def demo_jobs(count: int, seed: int = 7) -> list[tuple[str, dict[str, Any]]]:
    """``count`` (tenant, API body) pairs: ~45% inference, ~35% training, ~20% residency-bound
    inference that may only run in Shanghai (where the real Ray site is)."""
    rng = random.Random(seed)
    jobs: list[tuple[str, dict[str, Any]]] = []
    for i in range(count):
        tenant = rng.choice(list(TENANTS))
        kind = rng.random()
        if kind < 0.20:
            body: dict[str, Any] = {
                "name": f"clinical-infer-{i}",
                "entrypoint": RAY_ENTRYPOINT.format(seconds=rng.randint(3, 8)),
                "gang": {"workers": 1, "accelerators_per_worker": 1,
                         "allowed_types": ["RTX4090-48G"]},
                "runtime_h": round(rng.uniform(0.05, 0.2), 3),
                "datasets": [RESIDENT_DATASET],
                "user_location": "shanghai",
                "max_latency_ms": 40,
            }
            tenant = "acme"
        elif kind < 0.65:
            body = {
                "name": f"infer-{i}",
                "entrypoint": "python serve.py",
                "gang": {"workers": 1, "accelerators_per_worker": rng.choice([1, 2, 4]),
                         "allowed_types": ["RTX4090-48G", "L40S-48G", "RTX4090-24G"]},
                "runtime_h": round(rng.uniform(0.1, 1.0), 2),
                "user_location": rng.choice(["shanghai", "shenzhen", "beijing", "hangzhou"]),
                "max_latency_ms": rng.choice([30, 60, 80]),
            }
        else:
            workers = rng.choice([1, 2, 4, 8])
            body = {
                "name": f"train-{i}",
                "entrypoint": "python train.py",
                "gang": {"workers": workers, "accelerators_per_worker": 8,
                         "allowed_types": ["A100-80G", "H800-80G", "H20-96G", "H100-80G"]},
                "runtime_h": {"A100-80G": round(rng.uniform(1.0, 6.0), 1)},
                "priority": rng.choice([0, 0, 1, 2]),
                "checkpointable": True,
            }
        jobs.append((tenant, body))
    return jobs


__all__ = ["RAY_ENTRYPOINT", "RESIDENT_DATASET", "TENANTS", "demo_jobs"]
