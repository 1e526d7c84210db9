"""Prometheus metrics, read from the service when scraped (no global registry)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from scheduler.service.jobs import JobState

if TYPE_CHECKING:
    from scheduler.api.batcher import SubmitBatcher
    from scheduler.service.service import Service


class _ServiceCollector:
    def __init__(self, service: Service, batcher: SubmitBatcher) -> None:
        self.service, self.batcher = service, batcher

    def collect(self):  # type: ignore[no-untyped-def]
        counts = self.service.store.count_by_state()
        jobs = GaugeMetricFamily("isthmus_jobs", "Jobs by state", labels=["state"])
        for state in JobState:
            jobs.add_metric([state.value], counts.get(state, 0))
        yield jobs
        submitted = CounterMetricFamily("isthmus_api_submissions", "Jobs accepted by this API")
        submitted.add_metric([], self.batcher.submitted)
        yield submitted
        loop = self.service.loop
        cycles = CounterMetricFamily("isthmus_loop_cycles", "Control-loop cycles completed")
        cycles.add_metric([], loop.cycles)
        yield cycles
        if loop.last_report is not None:
            phase = GaugeMetricFamily("isthmus_loop_phase_seconds",
                                      "Duration of each phase of the last cycle", labels=["phase"])
            for name, seconds in loop.last_report.phase_s.items():
                phase.add_metric([name], seconds)
            yield phase
        if loop.last_plan is not None:
            gap = GaugeMetricFamily("isthmus_plan_gap", "Gap of the last plan to its bound")
            gap.add_metric([], loop.last_plan.gap)
            yield gap
        up = GaugeMetricFamily("isthmus_site_up", "1 if the site is up", labels=["site"])
        util = GaugeMetricFamily("isthmus_site_utilisation", "Busy accelerators / total",
                                 labels=["site"])
        for name, runtime in self.service.sites.items():
            up.add_metric([name], 0.0 if runtime.down else 1.0)
            total = sum(p.count for p in runtime.pools)
            free = sum(p.available for p in runtime.pools)
            util.add_metric([name], (total - free) / total if total else 0.0)
        yield up
        yield util


def metrics_text(service: Service, batcher: SubmitBatcher) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ServiceCollector(service, batcher))
    return generate_latest(registry), CONTENT_TYPE_LATEST


__all__ = ["metrics_text"]
