"""Write docs/examples/snapshot-china.json: the default topology with an example queue.

    .venv/bin/python tools/make_example_snapshot.py            # rewrite the file
    .venv/bin/python tools/make_example_snapshot.py --check    # exit 1 if it is out of date

The queue is ILLUSTRATIVE, drawn with a fixed seed so the file is reproducible:

- a summer weekday at 10:00 Beijing time (the start of the morning time-of-use peak);
- eastern sites are nearly full (0-10% of each pool free), western sites mostly idle
  (55-85% free), after "demand in the east, idle racks in the west" (docs/topology.md);
- 45 pending jobs: training gangs on H100/H800/A100, fine-tuning (one tenant on Ascend 910B),
  latency-bound inference on RTX 4090 48G / RTX 5090 / L40S from eastern cities, batch
  inference and evaluation without an SLO, and one job no site can hold;
- some jobs read residency-bound datasets (kept in Shanghai, the Beijing-Tianjin-Hebei hub or
  the Greater Bay Area); tenants are mostly homed in the east; one western tenant gets an
  (illustrative) 20% local subsidy at Zhongwei;
- a few running jobs, whose accelerators are already out of ``available``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from scheduler.core.ids import AcceleratorType, DatasetId, JobId, LocationId, SiteId, TenantId
from scheduler.core.model import (
    Dataset,
    Gang,
    Job,
    RunningJob,
    Site,
    SiteSelector,
    Snapshot,
    Tenant,
)
from scheduler.core.snapshot_file import parse_snapshot, parse_topology, snapshot_to_json

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGY = ROOT / "policies" / "topology" / "china-hubs.yaml"
OUTPUT = ROOT / "docs" / "examples" / "snapshot-china.json"
SEED = 20250715
NOW = datetime.fromisoformat("2025-07-15T10:00:00+08:00").timestamp()
HOUR = 3600.0

H100 = AcceleratorType("H100-80G")
H800 = AcceleratorType("H800-80G")
A100 = AcceleratorType("A100-80G")
H20 = AcceleratorType("H20-96G")
ASCEND = AcceleratorType("Ascend910B-64G")
R4090_24 = AcceleratorType("RTX4090-24G")
R4090_48 = AcceleratorType("RTX4090-48G")
R5090 = AcceleratorType("RTX5090-32G")
L40S = AcceleratorType("L40S-48G")

TENANTS = (
    Tenant(TenantId("shanghai-llm-lab"), "Shanghai"),
    Tenant(TenantId("beijing-foundation"), "Beijing"),
    Tenant(TenantId("hangzhou-commerce"), "Zhejiang"),
    Tenant(TenantId("shenzhen-robotics"), "Guangdong"),
    Tenant(TenantId("guangzhou-fintech"), "Guangdong"),
    Tenant(TenantId("hefei-speech"), "Anhui"),
    Tenant(TenantId("chengdu-games"), "Sichuan"),
    Tenant(TenantId("ningxia-smart-city"), "Ningxia"),
)
EAST_TENANTS = tuple(t.id for t in TENANTS[:6])

DATASETS = (
    Dataset(DatasetId("web-corpus-zh"), 12_000.0, frozenset({SiteId("zhongwei"), SiteId("wuhu")})),
    Dataset(DatasetId("robot-video"), 5_000.0, frozenset({SiteId("shaoguan"), SiteId("guian")})),
    Dataset(DatasetId("medical-imaging-sh"), 800.0, frozenset({SiteId("qingpu")}),
            SiteSelector(regions=frozenset({"Shanghai"}))),
    Dataset(DatasetId("gov-records-bj"), 300.0, frozenset({SiteId("zhangjiakou")}),
            SiteSelector(hubs=frozenset({"Beijing-Tianjin-Hebei"}))),
    Dataset(DatasetId("fin-ticks-gba"), 150.0, frozenset({SiteId("shaoguan")}),
            SiteSelector(hubs=frozenset({"Greater Bay Area"}))),
)

# Where eastern tenants' users are, for inference SLOs.
USERS = {
    "shanghai-llm-lab": "shanghai",
    "beijing-foundation": "beijing",
    "hangzhou-commerce": "hangzhou",
    "shenzhen-robotics": "shenzhen",
    "guangzhou-fintech": "guangzhou",
    "hefei-speech": "shanghai",
    "chengdu-games": "chengdu",
}


class Queue:
    """Draws jobs with one seeded generator, numbering them per kind."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.numbers: dict[str, int] = {}

    def job(
        self,
        kind: str,
        tenant: str,
        workers: int,
        per_worker: int,
        allowed: tuple[AcceleratorType, ...],
        runtime: dict[AcceleratorType, float],
        **extra: Any,
    ) -> Job:
        n = self.numbers[kind] = self.numbers.get(kind, 0) + 1
        age_h = round(self.rng.uniform(0.1, 12.0) * 4) / 4  # quarter hours
        fields: dict[str, Any] = {
            "id": JobId(f"{kind}-{n:02d}"),
            "tenant": TenantId(tenant),
            "gang": Gang(workers, per_worker, frozenset(allowed),
                         extra.pop("min_memory_gb", 0.0)),
            "runtime_h": {t: round(h, 2) for t, h in runtime.items()},
            "submitted_at": NOW - age_h * HOUR,
        }
        fields.update(extra)
        return Job(**fields)

    def hours(self, lo: float, hi: float) -> float:
        return round(self.rng.uniform(lo, hi) * 2) / 2


def pending_jobs(rng: random.Random) -> list[Job]:
    q = Queue(rng)
    jobs: list[Job] = []
    # 1. Training gangs: NVLink-class cards, 8 per worker, hours to days.
    for _ in range(8):
        tenant = rng.choice(("shanghai-llm-lab", "beijing-foundation", "hangzhou-commerce",
                             "shenzhen-robotics"))
        workers = rng.choice((2, 2, 4, 4, 8))
        hours = q.hours(6, 30)
        allowed: tuple[AcceleratorType, ...] = rng.choice(
            ((H800, H100), (H800, H100, A100), (H800,)))
        datasets: tuple[DatasetId, ...] = ()
        if tenant == "shenzhen-robotics":
            datasets = (DatasetId("robot-video"),)
        elif rng.random() < 0.5:
            datasets = (DatasetId("web-corpus-zh"),)
        deadline = NOW + q.hours(48, 96) * HOUR if rng.random() < 0.3 else None
        jobs.append(q.job("train", tenant, workers, 8, allowed, {H800: hours},
                          priority=rng.choice((0, 1, 1, 2)), datasets=datasets,
                          checkpointable=True, deadline=deadline))
    # 2. Fine-tuning: one worker, A100-class or Ascend (a different software stack).
    for _ in range(5):
        tenant = rng.choice(EAST_TENANTS)
        per_worker = rng.choice((1, 2, 4, 8))
        jobs.append(q.job("finetune", tenant, 1, per_worker, (A100, H800, H20),
                          {A100: q.hours(2, 10)}, priority=rng.choice((0, 1)),
                          checkpointable=rng.random() < 0.5))
    jobs.append(q.job("finetune", "hefei-speech", 2, 8, (ASCEND,), {ASCEND: 8.0}, priority=1,
                      checkpointable=True))
    # residency-bound fine-tuning: Shanghai medical data (qingpu has H100 only: allowed),
    # Beijing government records (zhangjiakou), and one that allows no card the region has.
    jobs.append(q.job("finetune", "shanghai-llm-lab", 1, 8, (H100, H800), {H100: 6.0},
                      priority=2, datasets=(DatasetId("medical-imaging-sh"),)))
    jobs.append(q.job("finetune", "beijing-foundation", 1, 8, (A100, H800), {A100: 5.0},
                      priority=1, datasets=(DatasetId("gov-records-bj"),)))
    jobs.append(q.job("finetune", "shanghai-llm-lab", 1, 4, (A100,), {A100: 4.0},
                      datasets=(DatasetId("medical-imaging-sh"),)))
    # 3. Online inference: consumer cards near eastern users, with a latency SLO.
    for _ in range(20):
        tenant = rng.choice(EAST_TENANTS)
        memory = rng.choice((24.0, 32.0, 48.0))
        allowed = tuple(t for t, mem in ((R4090_48, 48), (R5090, 32), (L40S, 48))
                        if mem >= memory) or (R4090_48,)
        jobs.append(q.job(
            "infer", tenant, rng.choice((1, 1, 2, 4)), rng.choice((1, 1, 2)), allowed,
            {allowed[0]: q.hours(2, 12)}, min_memory_gb=memory,
            priority=rng.choice((1, 2, 3)), user_location=LocationId(USERS[tenant]),
            max_latency_ms=float(rng.choice((8, 10, 12, 15))),
        ))
    fintech = q.job("infer", "guangzhou-fintech", 1, 2, (R4090_48, L40S), {R4090_48: 8.0},
                    min_memory_gb=48.0, priority=3, user_location=LocationId("guangzhou"),
                    max_latency_ms=10.0, datasets=(DatasetId("fin-ticks-gba"),))
    jobs.append(fintech)
    # 4. Batch inference and evaluation: no SLO, preemptible, any cheap card.
    for _ in range(5):
        tenant = rng.choice(EAST_TENANTS)
        jobs.append(q.job("batch", tenant, rng.choice((1, 2, 4)), rng.choice((1, 2, 4)),
                          (R4090_48, R5090, H20), {R4090_48: q.hours(1, 8)},
                          min_memory_gb=32.0, preemptible=True))
    jobs.append(q.job("batch", "ningxia-smart-city", 2, 4, (H20, A100), {H20: 6.0},
                      preemptible=True))
    # 5. A job no site can hold: 40 GB on a 24 GB card.
    jobs.append(q.job("batch", "chengdu-games", 1, 1, (R4090_24,), {R4090_24: 1.0},
                      min_memory_gb=40.0))
    return jobs


def running_jobs() -> list[RunningJob]:
    """A few jobs already running in the east (their cards are already out of available)."""
    def run(job_id: str, tenant: str, site: str, acc: AcceleratorType, workers: int,
            per_worker: int, hours: float, started_h_ago: float) -> RunningJob:
        job = Job(JobId(job_id), TenantId(tenant), Gang(workers, per_worker, frozenset({acc})),
                  {acc: hours}, NOW - (started_h_ago + 0.5) * HOUR, checkpointable=True)
        return RunningJob(job, SiteId(site), acc, NOW - started_h_ago * HOUR)

    return [
        run("run-01", "beijing-foundation", "zhangjiakou", H800, 8, 8, 72.0, 20.0),
        run("run-02", "shanghai-llm-lab", "qingpu", H100, 4, 8, 30.0, 6.0),
        run("run-03", "shenzhen-robotics", "shaoguan", R4090_48, 16, 2, 10.0, 3.0),
        run("run-04", "hangzhou-commerce", "wuhu", A100, 8, 8, 24.0, 12.0),
    ]


def load_sites(rng: random.Random, sites: tuple[Site, ...]) -> tuple[Site, ...]:
    """Set ``available``: east busy, west mostly idle; never below what running jobs hold."""
    held: dict[tuple[str, str], int] = {}
    for r in running_jobs():
        key = (r.site, r.accelerator)
        held[key] = held.get(key, 0) + r.job.gang.accelerators
    out = []
    for site in sites:
        east = site.labels.get("side") == "east"
        pools = []
        for pool in site.pools:
            free = rng.uniform(0.0, 0.10) if east else rng.uniform(0.55, 0.85)
            available = round(pool.count * free / 8) * 8
            available = min(available, pool.count - held.get((site.id, pool.type), 0))
            pools.append(dataclasses.replace(pool, available=available))
        extra: dict[str, Any] = {}
        if site.id == "zhongwei":  # ILLUSTRATIVE local-tenant subsidy
            extra = {"subsidy_tenants": frozenset({TenantId("ningxia-smart-city")}),
                     "subsidy_discount": 0.2}
        out.append(dataclasses.replace(site, pools=tuple(pools), **extra))
    return tuple(out)


def build(topology_text: str) -> dict[str, Any]:
    """The example snapshot file's content (deterministic)."""
    topology = parse_topology(topology_text, str(TOPOLOGY.relative_to(ROOT)))
    rng = random.Random(SEED)
    snapshot = Snapshot(
        sites=load_sites(rng, topology.sites),
        links=topology.links,
        datasets=DATASETS,
        locations=topology.locations,
        tenants=TENANTS,
        accelerators=topology.accelerators,
        pending=tuple(pending_jobs(rng)),
        running=tuple(running_jobs()),
    )
    data = snapshot_to_json(snapshot, NOW, utc_offset_h=8.0)
    parse_snapshot(json.dumps(data), "example")  # the file must read back
    return data


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the file differs from what would be written")
    args = parser.parse_args(argv)
    text = render(build(TOPOLOGY.read_text(encoding="utf-8")))
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date; run {sys.argv[0]}",
                  file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
