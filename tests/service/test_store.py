"""The store against both real databases: SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from scheduler.service.jobs import ACTIVE, AttemptState, JobSpec, JobState
from scheduler.service.store import (
    IdempotencyConflict,
    NewJob,
    NewPlacement,
    Store,
    Transition,
    migrate,
)

SPEC = JobSpec(
    name="train", entrypoint="python train.py", workers=2, accelerators_per_worker=4,
    allowed_types=("H20-96G",), runtime_h={"H20-96G": 2.0}, datasets=("d1",),
)

_databases = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/isthmus.db"
    else:
        server = request.getfixturevalue("postgres")
        url = server.create_database(f"store_{next(_databases)}_{os.getpid()}")
    opened = Store.open(url)
    try:
        yield opened
    finally:
        opened.close()


def test_submit_persists_a_pending_job_with_an_event(store: Store) -> None:
    done = store.submit(NewJob("acme", SPEC), now=100.0)
    assert done.created
    job = store.get(done.job.id)
    assert job is not None
    assert (job.state, job.tenant, job.spec, job.attempt) == (JobState.PENDING, "acme", SPEC, 0)
    assert [e.kind for e in store.events(job.id)] == ["submitted"]


def test_the_same_idempotency_key_returns_the_first_job(store: Store) -> None:
    first = store.submit(NewJob("acme", SPEC, "key-1"), now=1.0)
    again = store.submit(NewJob("acme", SPEC, "key-1"), now=2.0)
    other_tenant = store.submit(NewJob("beta", SPEC, "key-1"), now=3.0)
    assert first.created and not again.created and other_tenant.created
    assert again.job.id == first.job.id != other_tenant.job.id
    assert len(store.list_jobs(tenant="acme")) == 1


def test_an_idempotency_key_reused_for_another_spec_is_refused(store: Store) -> None:
    store.submit(NewJob("acme", SPEC, "key-1"), now=1.0)
    with pytest.raises(IdempotencyConflict, match="key-1"):
        store.submit(NewJob("acme", _renamed(SPEC, "other"), "key-1"), now=2.0)


def _renamed(spec: JobSpec, name: str) -> JobSpec:
    data = spec.to_json()
    data["name"] = name
    return JobSpec.from_json(data)


def test_a_batch_with_a_repeated_key_creates_one_job(store: Store) -> None:
    out = store.submit_many([NewJob("acme", SPEC, "k"), NewJob("acme", SPEC, "k")], now=1.0)
    assert out[0].job.id == out[1].job.id
    assert len(store.list_jobs()) == 1


def test_concurrent_submissions_with_one_key_create_one_job(store: Store) -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def submit() -> None:
        done = store.submit(NewJob("acme", SPEC, "race"), now=1.0)
        with lock:
            ids.append(done.job.id)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1
    assert len(store.list_jobs()) == 1


def test_placement_reserves_an_attempt_with_its_dispatch_name(store: Store) -> None:
    job = store.submit(NewJob("acme", SPEC), now=1.0).job
    [placed] = store.place([NewPlacement(job.id, "site-a", "H20-96G", 8, 12.5)], now=2.0)
    assert (placed.state, placed.attempt, placed.site) == (JobState.PLACED, 1, "site-a")
    assert placed.dispatch_name == f"{job.id}-1"
    [attempt] = store.attempts(job.id)
    assert (attempt.state, attempt.dispatch_name, attempt.accelerators) == (
        AttemptState.PLACED, f"{job.id}-1", 8)
    # Placing again finds it no longer PENDING: nothing happens.
    assert store.place([NewPlacement(job.id, "site-b", "H20-96G", 8)], now=3.0) == []
    assert store.get(job.id).site == "site-a"  # type: ignore[union-attr]


def test_transitions_are_compare_and_set_on_state_and_attempt(store: Store) -> None:
    job = store.submit(NewJob("acme", SPEC), now=1.0).job
    store.place([NewPlacement(job.id, "a", "H20-96G", 8)], now=2.0)
    placed = frozenset({JobState.PLACED})
    # Wrong attempt, or wrong expected state: no change.
    assert store.advance(job.id, 2, expect=placed, to=JobState.DISPATCHED, now=3.0) is None
    assert store.advance(job.id, 1, expect={JobState.RUNNING}, to=JobState.SUCCEEDED,
                         now=3.0) is None
    out = store.advance_many([
        Transition(job.id, 1, placed, JobState.DISPATCHED),
        Transition(job.id, 1, placed, JobState.DISPATCHED),  # the second one finds DISPATCHED
    ], now=3.0)
    assert out[0] is not None and out[1] is None
    running = store.advance(job.id, 1, expect=ACTIVE, to=JobState.RUNNING, now=4.0)
    assert running is not None and running.started_at == 4.0
    done = store.advance(job.id, 1, expect=ACTIVE, to=JobState.SUCCEEDED, now=9.0,
                         reason="Completed")
    assert done is not None and done.finished_at == 9.0 and done.reason == "Completed"
    assert store.attempts(job.id)[0].state is AttemptState.SUCCEEDED
    kinds = [e.kind for e in store.events(job.id)]
    assert kinds == ["submitted", "placed", "dispatched", "running", "succeeded"]


def test_requeue_abandons_the_attempt_and_remembers_its_cleanup(store: Store) -> None:
    job = store.submit(NewJob("acme", SPEC), now=1.0).job
    store.place([NewPlacement(job.id, "a", "H20-96G", 8)], now=2.0)
    back = store.requeue(job.id, 1, now=3.0, reason="SiteDown", message="a is down",
                         cleanup=True)
    assert back is not None and back.state is JobState.PENDING and back.site is None
    assert [c.dispatch_name for c in store.cleanups("a")] == [f"{job.id}-1"]
    [again] = store.place([NewPlacement(job.id, "b", "H20-96G", 8)], now=4.0)
    assert again.attempt == 2 and again.dispatch_name == f"{job.id}-2"
    store.cleanup_done(job.id, 1)
    assert store.cleanups("a") == []
    assert [a.state for a in store.attempts(job.id)] == [AttemptState.ABANDONED,
                                                         AttemptState.PLACED]


def test_cancel_is_immediate_when_pending_and_flagged_when_active(store: Store) -> None:
    waiting = store.submit(NewJob("acme", SPEC), now=1.0).job
    placed = store.submit(NewJob("acme", SPEC), now=1.0).job
    store.place([NewPlacement(placed.id, "a", "H20-96G", 8)], now=2.0)
    cancelled = store.request_cancel(waiting.id, now=3.0)
    assert cancelled is not None and cancelled.state is JobState.CANCELLED
    flagged = store.request_cancel(placed.id, now=3.0)
    assert flagged is not None and flagged.state is JobState.PLACED and flagged.cancel_requested
    # A flagged job is never placed again, and a second cancel changes nothing.
    assert store.request_cancel(placed.id, now=4.0).version == flagged.version  # type: ignore[union-attr]
    assert store.request_cancel("j-none", now=4.0) is None


def test_list_pages_in_submission_order_with_filters(store: Store) -> None:
    ids = [store.submit(NewJob("acme" if i % 2 else "beta", SPEC), now=float(i)).job.id
           for i in range(7)]
    page1 = store.list_jobs(limit=3)
    page2 = store.list_jobs(limit=3, after=page1[-1].id)
    page3 = store.list_jobs(limit=3, after=page2[-1].id)
    assert [j.id for j in page1 + page2 + page3] == sorted(ids)
    assert {j.tenant for j in store.list_jobs(tenant="acme")} == {"acme"}
    assert len(store.list_jobs(states={JobState.RUNNING})) == 0
    assert store.count_by_state() == {JobState.PENDING: 7}


def test_site_health_goes_down_after_n_failures_and_up_at_the_first_success(
    store: Store,
) -> None:
    checks = [store.record_health("a", ok=False, reason="timeout", now=float(i), down_after=3)
              for i in range(3)]
    assert [c.down for c in checks] == [False, False, True]
    assert store.site_records()["a"].reason == "timeout"
    up = store.record_health("a", ok=True, reason="", now=9.0, down_after=3)
    assert not up.down and up.failures == 0


def test_settings_round_trip(store: Store) -> None:
    assert store.get_setting("policy") is None
    store.put_setting("policy", "a: 1", now=1.0)
    store.put_setting("policy", "a: 2", now=2.0)
    assert store.get_setting("policy") == "a: 2"


def test_migrations_are_idempotent_and_create_every_table(store: Store) -> None:
    migrate(store.engine)  # a second run is a no-op
    tables = set(inspect(store.engine).get_table_names())
    assert {"jobs", "attempts", "events", "sites", "settings", "alembic_version"} <= tables
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"
    assert {"explanation"} <= {c["name"] for c in inspect(store.engine).get_columns("jobs")}


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    opened = Store.open(f"sqlite:///{tmp_path}/wal.db")
    try:
        with opened.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        opened.close()


def test_an_unsupported_url_is_refused_with_the_url() -> None:
    with pytest.raises(ValueError, match="mysql://x"):
        Store.open("mysql://x")


def test_a_database_of_the_first_schema_upgrades_with_its_jobs(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from scheduler.service.store import make_engine
    from scheduler.service.store.store import MIGRATIONS

    engine = make_engine(f"sqlite:///{tmp_path}/old.db")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO jobs (id, tenant, name, state, spec, spec_hash, submitted_at, "
            "updated_at, attempt, reason, message, cancel_requested, version) VALUES "
            "('j1', 'acme', 'train', 'PENDING', :spec, 'h', 1, 1, 0, '', '', 0, 1)"),
            {"spec": json.dumps(SPEC.to_json())})
    engine.dispose()
    upgraded = Store.open(f"sqlite:///{tmp_path}/old.db")
    try:
        job = upgraded.get("j1")
        assert job is not None and job.spec == SPEC and job.explanation is None
    finally:
        upgraded.close()
