"""Values parse the API's JSON explicitly and write the same JSON back."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.sdk import Explanation, IsthmusError, Job, JobState, SiteInfo

JOB: dict[str, Any] = {
    "id": "j01hzy3k8q2w00000000",
    "tenant": "acme",
    "name": "train-1",
    "state": "RUNNING",
    "attempt": 1,
    "site": "guiyang",
    "accelerator": "H20-96G",
    "accelerators": 16,
    "dispatch_name": "j01hzy3k8q2w00000000-1",
    "reason": "Running",
    "message": "",
    "cancel_requested": False,
    "submitted_at": "2026-05-01T08:00:00+00:00",
    "updated_at": "2026-05-01T08:00:01.250000+00:00",
    "started_at": "2026-05-01T08:00:01.250000+00:00",
    "finished_at": None,
    "estimated_cost_cny": 812.5,
    "spec": {
        "name": "train-1",
        "entrypoint": "python train.py",
        "workers": 2,
        "accelerators_per_worker": 8,
        "allowed_types": ["H20-96G", "A100-80G"],
        "runtime_h": {"H20-96G": 2.0, "A100-80G": 3.0},
        "min_memory_gb": 0.0,
        "priority": 3,
        "deadline": 1777651200.0,
        "datasets": ["scans"],
        "user_location": None,
        "max_latency_ms": None,
        "preemptible": True,
        "checkpointable": False,
        "home_region": None,
        "max_runtime_h": 10.0,
        "runtime_env": {"pip": ["torch"]},
        "labels": {"team": "vision"},
    },
}

SITE: dict[str, Any] = {
    "name": "guiyang", "region": "Guizhou", "hub": "Guizhou", "side": "west",
    "adapter": "SimulatedSite", "up": False, "healthy": False, "reason": "timed out",
    "accelerators": 64, "available": 48, "utilisation": 0.25, "jobs": 1, "held_by_isthmus": 16,
    "pools": [{"type": "H20-96G", "count": 64, "available": 48, "price_cny_per_hour": 9.5}],
}

EXPLANATION: dict[str, Any] = {
    "job": "j1", "state": "PENDING", "site": None, "accelerator": None, "reason": "",
    "message": "no capacity", "summary": "waiting: no capacity", "options_considered": 12,
    "eliminated": {"residency": 8, "capacity": 4}, "runner_up": None, "planner": "optimizer",
}


def test_a_job_reads_and_writes_the_api_json() -> None:
    job = Job.from_json(JOB)
    assert job.state is JobState.RUNNING and not job.state.is_terminal()
    assert job.spec.accelerators == 16 and job.spec.allowed_types == ("H20-96G", "A100-80G")
    assert job.started_at is not None and job.started_at.tzinfo is not None
    assert job.spec.deadline is not None and job.spec.deadline.timestamp() == 1777651200.0
    assert job.to_json() == JOB
    assert hash(job) == hash(Job.from_json(JOB))  # frozen values can key dicts and sets


def test_sites_and_explanations_read_and_write_the_api_json() -> None:
    site = SiteInfo.from_json(SITE)
    assert (site.up, site.reason, site.pools[0].available) == (False, "timed out", 48)
    assert site.to_json() == SITE
    why = Explanation.from_json(EXPLANATION)
    assert why.eliminated == {"residency": 8, "capacity": 4}
    assert why.to_json() == EXPLANATION


@pytest.mark.parametrize(
    ("state", "terminal"),
    [(s, s in {"SUCCEEDED", "FAILED", "CANCELLED"}) for s in JobState],
)
def test_terminal_states(state: JobState, terminal: bool) -> None:
    assert JobState(state.value).is_terminal() is terminal


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"state": "LOST"}, "LOST"),
        ({"spec": None}, "job"),
        ({"attempt": "one"}, "one"),
        ({"submitted_at": None}, "submitted_at"),
    ],
)
def test_a_malformed_job_is_an_isthmus_error(change: dict[str, Any], words: str) -> None:
    with pytest.raises(IsthmusError, match="unexpected") as err:
        Job.from_json({**JOB, **change})
    assert words in str(err.value)
