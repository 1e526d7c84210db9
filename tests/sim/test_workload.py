"""The workload generator reproduces the statistics it is built from."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from scheduler.core.catalog import BUILTIN_ACCELERATORS
from scheduler.core.snapshot_file import parse_topology
from scheduler.sim.workload import (
    BANDWIDTH_GBS,
    NVLINK,
    TraceError,
    Workload,
    WorkloadParams,
    generate,
    load_trace,
)

ROOT = Path(__file__).resolve().parents[2]
START = 1_783_872_000.0  # 2026-07-13T00:00:00+08:00


@pytest.fixture(scope="module")
def workload() -> Workload:
    topo = parse_topology((ROOT / "policies/topology/china-hubs.yaml").read_text(), "topo")
    return generate(WorkloadParams(seed=3, jobs_per_hour=400), topo.sites, topo.locations,
                    START, 24.0)


@pytest.fixture(scope="module")
def sites() -> dict[str, object]:
    topo = parse_topology((ROOT / "policies/topology/china-hubs.yaml").read_text(), "topo")
    return {s.region: s.labels.get("side") for s in topo.sites}


def test_arrivals_match_the_rate(workload: Workload) -> None:
    assert 9_000 < len(workload.jobs) < 10_200  # 400/h for 24 h, Poisson
    times = [j.submitted_at for j in workload.jobs]
    assert times == sorted(times)
    assert times[0] >= START and times[-1] < START + 24 * 3600


def test_gang_size_mix(workload: Workload) -> None:
    training = [j for j in workload.jobs if workload.kinds[j.id] == "training"]
    sizes = Counter(j.gang.accelerators for j in training)
    n = len(training)
    for size, share in {1: 0.70, 2: 0.10, 4: 0.15, 8: 0.05}.items():
        assert abs(sizes[size] / n - share) < 0.03, (size, sizes[size] / n)


def test_multi_node_gangs_on_nvlink(workload: Workload) -> None:
    gangs = [j for j in workload.jobs if workload.kinds[j.id] == "gang"]
    assert 0.01 < len(gangs) / len(workload.jobs) < 0.03
    for j in gangs:
        assert j.gang.workers in (2, 4, 8) and j.gang.accelerators_per_worker == 8
        assert j.gang.allowed_types <= set(NVLINK)


def test_residency_share(workload: Workload) -> None:
    pinned = {d.id for d in workload.datasets if d.residency is not None}
    bound = sum(1 for j in workload.jobs if pinned.intersection(j.datasets))
    assert abs(bound / len(workload.jobs) - 0.20) < 0.02


def test_inference_share_hardware_and_slo(workload: Workload) -> None:
    inference = [j for j in workload.jobs if workload.kinds[j.id] == "inference"]
    assert abs(len(inference) / len(workload.jobs) - 0.65) < 0.03
    consumer = {"RTX4090-24G", "RTX4090-48G", "RTX5090-32G", "L40S-48G"}
    specs = BUILTIN_ACCELERATORS
    with_consumer = 0
    for j in inference:
        assert j.user_location is not None and j.max_latency_ms is not None
        # every allowed card holds the model; a serving block lasts as long on any card
        assert all(specs[t].memory_gb >= j.gang.min_memory_gb for t in j.gang.allowed_types)
        assert set(j.runtime_h) == set(j.gang.allowed_types)
        assert len(set(j.runtime_h.values())) == 1
        if j.gang.min_memory_gb <= 48:
            with_consumer += bool(consumer & j.gang.allowed_types)
    small = sum(1 for j in inference if j.gang.min_memory_gb <= 48)
    # consumer cards are allowed wherever they hold the model (except for the few jobs bound
    # to a home region that has none)
    assert with_consumer >= 0.99 * small


def test_inference_card_hours_exceed_training(workload: Workload) -> None:
    """"Inference demand now far exceeds training demand" (workloads.md)."""
    hours = Counter[str]()
    for j in workload.jobs:
        hours[workload.kinds[j.id]] += j.gang.accelerators * next(iter(j.runtime_h.values()))
    assert hours["inference"] > 1.2 * (hours["training"] + hours["gang"])


def test_users_mostly_near_their_tenant(workload: Workload) -> None:
    homes = {t.id: t.home_region for t in workload.tenants}
    by_tenant: dict[str, Counter[str]] = {}
    for j in workload.jobs:
        if j.user_location is not None:
            by_tenant.setdefault(homes[j.tenant], Counter())[j.user_location] += 1
    shares = [c.most_common(1)[0][1] / sum(c.values()) for c in by_tenant.values()
              if sum(c.values()) > 200]
    assert shares and min(shares) > 0.6


def test_demand_is_east_heavy(workload: Workload, sites: dict[str, object]) -> None:
    sides = Counter(sites[j.home_region] for j in workload.jobs if j.home_region)
    assert sides["east"] / max(1, sides["west"]) > 30


def test_training_durations_follow_philly(workload: Workload) -> None:
    training = np.array([next(iter(j.runtime_h.values())) for j in workload.jobs
                         if workload.kinds[j.id] in ("training", "gang")])
    median_min = float(np.median(training)) * 60
    assert 3 < median_min < 20  # Helios 3.4 min, Philly 20 min; Gavel alone ~3 hours
    assert 0.72 < float((training <= 1.0).mean()) < 0.80  # Philly: 76% <= 1 h
    assert 0.93 < float((training <= 24.0).mean()) < 0.98  # Philly: 96.5% <= 1 day
    assert training.max() <= 72.0


def test_same_seed_same_jobs() -> None:
    topo = parse_topology((ROOT / "policies/topology/china-hubs.yaml").read_text(), "topo")
    a = generate(WorkloadParams(seed=5, jobs_per_hour=50), topo.sites, topo.locations, START, 6)
    b = generate(WorkloadParams(seed=5, jobs_per_hour=50), topo.sites, topo.locations, START, 6)
    c = generate(WorkloadParams(seed=6, jobs_per_hour=50), topo.sites, topo.locations, START, 6)
    assert a == b
    assert a.jobs != c.jobs


def test_trace_loads_documented_columns() -> None:
    text = ("job_id,submit_h,tenant,home_region,workers,accelerators_per_worker,"
            "accelerator_types,runtime_h,deadline_h,user_location,max_latency_ms\n"
            "a,0.5,t1,Shanghai,1,2,A100-80G;H800-80G,3,10,,\n"
            "b,0.1,t2,Hebei,2,8,H800-80G,12,,,\n"
            "c,1,t1,Shanghai,1,1,RTX4090-48G,2,,shanghai,20\n")
    w = load_trace(text, "trace.csv", START)
    assert [j.id for j in w.jobs] == ["b", "a", "c"]
    a = w.jobs[1]
    assert a.gang.accelerators == 2 and a.submitted_at == START + 1800
    assert a.deadline == START + 1800 + 36000
    assert w.kinds["b"] == "gang" and w.kinds["c"] == "inference"


@pytest.mark.parametrize(("text", "message"), [
    ("job_id,submit_h\nx,1\n", "missing column(s) tenant"),
    ("job_id,submit_h,tenant,accelerators_per_worker,accelerator_types,runtime_h,colour\n",
     "unknown column(s) colour"),
    ("job_id,submit_h,tenant,accelerators_per_worker,accelerator_types,runtime_h\n"
     "x,soon,t,1,A100-80G,1\n", "trace.csv:2: submit_h: not a number"),
    ("job_id,submit_h,tenant,accelerators_per_worker,accelerator_types,runtime_h,datasets\n"
     "x,1,t,1,A100-80G,1,secret\n", "unknown dataset 'secret'"),
])
def test_bad_trace_names_row_and_column(text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_trace(text, "trace.csv", START)


def test_bandwidth_scaling_shortens_serving_on_faster_cards(workload: Workload) -> None:
    topo = parse_topology((ROOT / "policies/topology/china-hubs.yaml").read_text(), "topo")
    scaled = generate(WorkloadParams(seed=3, jobs_per_hour=400, inference_scaling="bandwidth"),
                      topo.sites, topo.locations, START, 24.0)
    assert len(scaled.jobs) == len(workload.jobs)
    inference = 0
    for fixed, job in zip(workload.jobs, scaled.jobs, strict=True):
        assert (job.id, job.gang, job.submitted_at) == (fixed.id, fixed.gang, fixed.submitted_at)
        if workload.kinds[job.id] != "inference":
            assert job.runtime_h == fixed.runtime_h
            continue
        inference += 1
        stated = next(iter(fixed.runtime_h.values()))
        types = list(job.runtime_h)
        slowest = BANDWIDTH_GBS[types[0]]
        assert set(types) == set(fixed.runtime_h)
        assert all(slowest <= BANDWIDTH_GBS[t] for t in types)  # the stated card comes first
        assert job.runtime_h[types[0]] == stated
        for t in types:
            assert job.runtime_h[t] == pytest.approx(stated * slowest / BANDWIDTH_GBS[t],
                                                     abs=1e-4)
    assert inference > 1000
