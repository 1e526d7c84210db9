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
        summary = self.service.plan_summary()  # the leading replica's loop, via the store
        cycles = CounterMetricFamily("isthmus_loop_cycles", "Control-loop cycles completed")
        cycles.add_metric([], summary["cycles"])
        yield cycles
        last = summary.get("last_cycle")
        if last:
            phase = GaugeMetricFamily("isthmus_loop_phase_seconds",
                                      "Duration of each phase of the last cycle", labels=["phase"])
            for name, seconds in last["phase_s"].items():
                phase.add_metric([name], seconds)
            yield phase
        if summary.get("gap") is not None:
            gap = GaugeMetricFamily("isthmus_plan_gap", "Gap of the last plan to its bound")
            gap.add_metric([], summary["gap"])
            yield gap
        up = GaugeMetricFamily("isthmus_site_up", "1 if the site is up", labels=["site"])
        util = GaugeMetricFamily("isthmus_site_utilisation", "Busy accelerators / total",
                                 labels=["site"])
        for site in self.service.site_views():
            up.add_metric([site["name"]], 1.0 if site["up"] else 0.0)
            util.add_metric([site["name"]], site["utilisation"])
        yield up
        yield util


def metrics_text(service: Service, batcher: SubmitBatcher) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ServiceCollector(service, batcher))
    return generate_latest(registry), CONTENT_TYPE_LATEST


__all__ = ["metrics_text"]
