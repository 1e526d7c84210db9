"""``Store``: jobs, attempts, events, site health and settings in SQLite or PostgreSQL.

Every state change is a compare-and-set (``UPDATE ... WHERE state IN (...) AND attempt = ...``)
committed before the caller acts on it, with an event row in the same transaction. Two loops (a
leader and a stale one) or a loop and an API request can race; the loser's update matches no row
and it sees ``None``, never a half-applied change.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, create_engine, event, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from scheduler.core.adapter import dispatch_name
from scheduler.core.ids import JobId
from scheduler.service.jobs import (
    ACTIVE,
    AttemptRecord,
    AttemptState,
    Event,
    JobRecord,
    JobSpec,
    JobState,
    SiteRecord,
    new_job_id,
)
from scheduler.service.store.tables import attempts, events, jobs, settings, sites

MIGRATIONS = Path(__file__).parent / "migrations"


class IdempotencyConflict(ValueError):
    """The idempotency key was used before for a different job spec."""


@dataclass(frozen=True, slots=True)
class NewJob:
    tenant: str
    spec: JobSpec
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Submitted:
    job: JobRecord
    created: bool  # False: an earlier submission with the same idempotency key


@dataclass(frozen=True, slots=True)
class Transition:
    """Move attempt ``attempt`` of ``job_id`` from a state in ``expect`` to ``to``."""

    job_id: str
    attempt: int
    expect: frozenset[JobState]
    to: JobState
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class NewPlacement:
    """Reserve ``job_id`` (currently PENDING) at ``site`` as its next attempt."""

    job_id: str
    site: str
    accelerator: str
    accelerators: int
    estimated_cost: float | None = None
    explanation: Mapping[str, Any] | None = None


def spec_hash(spec: JobSpec) -> str:
    return hashlib.sha256(json.dumps(spec.to_json(), sort_keys=True).encode()).hexdigest()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps it consistent
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``: ``sqlite:///PATH`` (WAL) or ``postgresql+psycopg://...``."""
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and url not in {"sqlite://", "sqlite:///:memory:"}:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 10}, pool_size=8
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql"):
        return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql+psycopg://")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (a no-op when it is there)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def _job(row: Row[Any], spec: JobSpec | None = None) -> JobRecord:
    m = row._mapping
    return JobRecord(
        id=m["id"],
        tenant=m["tenant"],
        spec=spec if spec is not None else JobSpec.from_json(m["spec"]),
        state=JobState(m["state"]),
        submitted_at=m["submitted_at"],
        updated_at=m["updated_at"],
        attempt=m["attempt"],
        site=m["site"],
        accelerator=m["accelerator"],
        dispatch_name=m["dispatch_name"],
        reason=m["reason"],
        message=m["message"],
        cancel_requested=m["cancel_requested"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        idempotency_key=m["idempotency_key"],
        estimated_cost=m["estimated_cost"],
        version=m["version"],
        explanation=m.get("explanation"),
    )


def _attempt(row: Row[Any]) -> AttemptRecord:
    m = row._mapping
    return AttemptRecord(
        job_id=m["job_id"],
        attempt=m["attempt"],
        site=m["site"],
        accelerator=m["accelerator"],
        accelerators=m["accelerators"],
        dispatch_name=m["dispatch_name"],
        state=AttemptState(m["state"]),
        created_at=m["created_at"],
        ended_at=m["ended_at"],
        cleanup_pending=m["cleanup_pending"],
        reason=m["reason"],
    )


_ATTEMPT_STATE = {
    JobState.DISPATCHED: AttemptState.DISPATCHED,
    JobState.RUNNING: AttemptState.RUNNING,
    JobState.SUCCEEDED: AttemptState.SUCCEEDED,
    JobState.FAILED: AttemptState.FAILED,
    JobState.CANCELLED: AttemptState.STOPPED,
}


# Statements built once: building a statement costs more than running it (hot paths only).
_NO_SPEC = [c for c in jobs.c if c.name != "spec"]  # specs come from the store's cache
_PENDING_ATTEMPTS = select(jobs.c.id, jobs.c.attempt).where(
    jobs.c.id.in_(bindparam("ids", expanding=True)),
    jobs.c.state == JobState.PENDING.value,
    jobs.c.cancel_requested.is_(False),
)
_PLACE = (
    update(jobs)
    .where(
        jobs.c.id == bindparam("b_id"),
        jobs.c.state == JobState.PENDING.value,
        jobs.c.attempt == bindparam("b_old"),
    )
    .values(
        state=JobState.PLACED.value, attempt=bindparam("b_attempt"), site=bindparam("b_site"),
        accelerator=bindparam("b_accelerator"), dispatch_name=bindparam("b_name"), reason="",
        message="", estimated_cost=bindparam("b_cost"), updated_at=bindparam("b_now"),
        version=jobs.c.version + 1, explanation=bindparam("b_explanation"),
    )
    .returning(*jobs.c)
)
_ADVANCE_WHERE = (
    jobs.c.id == bindparam("b_id"),
    jobs.c.attempt == bindparam("b_attempt"),
    jobs.c.state.in_(bindparam("b_expect", expanding=True)),
)
_ADVANCE_VALUES = {
    "state": bindparam("b_state"), "reason": bindparam("b_reason"),
    "message": bindparam("b_message"), "updated_at": bindparam("b_now"),
    "version": jobs.c.version + 1,
}
_ADVANCE = update(jobs).where(*_ADVANCE_WHERE).values(**_ADVANCE_VALUES).returning(*_NO_SPEC)
_ADVANCE_RUNNING = (
    update(jobs).where(*_ADVANCE_WHERE)
    .values(**_ADVANCE_VALUES, started_at=func.coalesce(jobs.c.started_at, bindparam("b_now")))
    .returning(*_NO_SPEC)
)
_ADVANCE_TERMINAL = (
    update(jobs).where(*_ADVANCE_WHERE)
    .values(**_ADVANCE_VALUES, finished_at=bindparam("b_now"))
    .returning(*_NO_SPEC)
)
_ATTEMPT_STATE_UPDATE = (
    update(attempts)
    .where(attempts.c.job_id == bindparam("b_id"), attempts.c.attempt == bindparam("b_attempt"))
    .values(state=bindparam("b_state"), ended_at=bindparam("b_ended"),
            reason=bindparam("b_reason"))
)
_EVENT = insert(events)
_NOTE_WAIT = (
    update(jobs)
    .where(jobs.c.id == bindparam("b_id"), jobs.c.state == JobState.PENDING.value)
    .values(reason=bindparam("b_reason"), message=bindparam("b_message"),
            explanation=bindparam("b_explanation"), updated_at=bindparam("b_now"))
)


_SPECS = select(jobs.c.id, jobs.c.spec).where(jobs.c.id.in_(bindparam("ids", expanding=True)))
_SPEC_CACHE_MAX = 500_000
CHUNK = 200  # jobs per transaction in the loop's bulk writes
_BY_KEYS = select(jobs).where(
    jobs.c.tenant == bindparam("tenant"),
    jobs.c.idempotency_key.in_(bindparam("keys", expanding=True)),
)


class Store:
    """The service's state. Thread-safe: each call is its own transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._specs: dict[str, JobSpec] = {}  # unfinished jobs' specs (immutable)
        self._submit_lock = threading.Lock()

    @classmethod
    def open(cls, url: str, *, migrate_schema: bool = True) -> Store:
        engine = make_engine(url)
        if migrate_schema:
            migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ submit

    def submit(self, new: NewJob, now: float) -> Submitted:
        return self.submit_many([new], now)[0]

    def submit_many(self, batch: Sequence[NewJob], now: float) -> list[Submitted]:
        """Persist new PENDING jobs in one transaction; a repeated idempotency key returns the
        earlier job (``created=False``), or raises ``IdempotencyConflict`` if its spec differs.
        """
        try:
            with self.engine.begin() as conn:
                return self._submit(conn, batch, now)
        except IntegrityError:
            # A concurrent request inserted the same key between our check and our insert: the
            # retry now finds it.
            with self.engine.begin() as conn:
                return self._submit(conn, batch, now)

    def _submit(self, conn: Connection, batch: Sequence[NewJob], now: float) -> list[Submitted]:
        out: list[Submitted | None] = [None] * len(batch)
        rows: list[dict[str, Any]] = []
        earlier = self._earlier_keys(conn, batch)
        seen: dict[tuple[str, str], int] = {}
        for i, new in enumerate(batch):
            digest = spec_hash(new.spec)
            if new.idempotency_key is not None:
                key = (new.tenant, new.idempotency_key)
                if key in seen:
                    out[i] = out[seen[key]]
                    continue
                existing = earlier.get(key)
                if existing is not None:
                    if existing._mapping["spec_hash"] != digest:
                        raise IdempotencyConflict(
                            f"idempotency key {new.idempotency_key!r} was used for another job "
                            f"({existing._mapping['id']}) with a different spec"
                        )
                    out[i] = Submitted(_job(existing), created=False)
                    continue
                seen[key] = i
            job_id = new_job_id(now)
            record = JobRecord(
                id=job_id,
                tenant=new.tenant,
                spec=new.spec,
                state=JobState.PENDING,
                submitted_at=now,
                updated_at=now,
                idempotency_key=new.idempotency_key,
            )
            rows.append({
                "id": job_id,
                "tenant": new.tenant,
                "name": new.spec.name,
                "state": JobState.PENDING.value,
                "spec": new.spec.to_json(),
                "spec_hash": digest,
                "submitted_at": now,
                "updated_at": now,
                "attempt": 0,
                "reason": "",
                "message": "",
                "cancel_requested": False,
                "idempotency_key": new.idempotency_key,
                "version": 1,
            })
            self._specs[job_id] = new.spec
            out[i] = Submitted(record, created=True)
        if rows:
            conn.execute(insert(jobs), rows)
            conn.execute(
                insert(events),
                [{"job_id": r["id"], "at": now, "kind": "submitted", "message": ""} for r in rows],
            )
        result = [s for s in out if s is not None]
        assert len(result) == len(batch)
        return result

    @staticmethod
    def _earlier_keys(
        conn: Connection, batch: Sequence[NewJob]
    ) -> dict[tuple[str, str], Row[Any]]:
        """Jobs already stored under the batch's idempotency keys: one query per tenant."""
        keys: dict[str, list[str]] = {}
        for new in batch:
            if new.idempotency_key is not None:
                keys.setdefault(new.tenant, []).append(new.idempotency_key)
        found: dict[tuple[str, str], Row[Any]] = {}
        for tenant, names in keys.items():
            for i in range(0, len(names), 500):
                for row in conn.execute(_BY_KEYS, {"tenant": tenant, "keys": names[i : i + 500]}):
                    found[(tenant, row._mapping["idempotency_key"])] = row
        return found

    # ------------------------------------------------------------------ read

    def get(self, job_id: str) -> JobRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else _job(row)

    def list_jobs(
        self,
        *,
        tenant: str | None = None,
        states: Collection[JobState] | None = None,
        site: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[JobRecord]:
        """Jobs in id (= submission) order, ``limit`` after the id ``after`` (keyset paging)."""
        query = select(jobs).order_by(jobs.c.id).limit(limit)
        if tenant is not None:
            query = query.where(jobs.c.tenant == tenant)
        if states:
            query = query.where(jobs.c.state.in_([s.value for s in states]))
        if site is not None:
            query = query.where(jobs.c.site == site)
        if after is not None:
            query = query.where(jobs.c.id > after)
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query)]

    def jobs_in(self, states: Collection[JobState]) -> list[JobRecord]:
        """Every job in ``states`` (the loop's queue and active set), in submission order.

        Specs never change, so they are read (and parsed) once per job and kept while the
        job is unfinished: the loop reads its queue and active set every cycle.
        """
        query = (select(*_NO_SPEC).where(jobs.c.state.in_([s.value for s in states]))
                 .order_by(jobs.c.id))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            missing = [r.id for r in rows if r.id not in self._specs]
            for i in range(0, len(missing), 500):
                for row in conn.execute(_SPECS, {"ids": missing[i : i + 500]}):
                    self._specs[row.id] = JobSpec.from_json(row.spec)
        if len(self._specs) > _SPEC_CACHE_MAX:
            self._specs.clear()  # rare: far more unfinished jobs than any real queue
            return self.jobs_in(states)
        return [_job(r, self._specs[r.id]) for r in rows]

    def count_by_state(self) -> dict[JobState, int]:
        query = select(jobs.c.state, func.count()).group_by(jobs.c.state)
        with self.engine.connect() as conn:
            return {JobState(s): n for s, n in conn.execute(query)}

    def attempts(self, job_id: str) -> list[AttemptRecord]:
        query = select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.attempt)
        with self.engine.connect() as conn:
            return [_attempt(r) for r in conn.execute(query)]

    def events(self, job_id: str) -> list[Event]:
        query = select(events).where(events.c.job_id == job_id).order_by(events.c.id)
        with self.engine.connect() as conn:
            return [
                Event(r.job_id, r.at, r.kind, r.message) for r in conn.execute(query)
            ]

    # ------------------------------------------------------------------ transitions

    def place(self, placements: Iterable[NewPlacement], now: float) -> list[JobRecord]:
        """PENDING -> PLACED for each placement, as attempt ``attempt + 1``.

        Jobs no longer PENDING (cancelled meanwhile, placed by another loop) are skipped; the
        records returned are the ones reserved. Transactions of ``CHUNK`` jobs: SQLite has one
        writer at a time, and the API's submissions should not wait for a whole plan.
        """
        batch = list(placements)
        placed: list[JobRecord] = []
        for i in range(0, len(batch), CHUNK):
            placed += self._place(batch[i : i + CHUNK], now)
        return placed

    def _place(self, placements: Sequence[NewPlacement], now: float) -> list[JobRecord]:
        wanted = {p.job_id: p for p in placements}
        if not wanted:
            return []
        placed: list[JobRecord] = []
        with self.engine.begin() as conn:
            current: dict[str, int] = {}
            ids = list(wanted)
            for i in range(0, len(ids), 500):
                for row in conn.execute(_PENDING_ATTEMPTS, {"ids": ids[i : i + 500]}):
                    current[row.id] = row.attempt
            attempt_rows: list[dict[str, Any]] = []
            event_rows: list[dict[str, Any]] = []
            for job_id, old in current.items():
                p = wanted[job_id]
                attempt = old + 1
                name = dispatch_name(JobId(job_id), attempt)
                updated = conn.execute(_PLACE, {
                    "b_id": job_id, "b_old": old, "b_attempt": attempt, "b_site": p.site,
                    "b_accelerator": p.accelerator, "b_name": name,
                    "b_cost": p.estimated_cost, "b_now": now,
                    "b_explanation": dict(p.explanation) if p.explanation else None,
                }).first()
                if updated is None:
                    continue
                attempt_rows.append({
                    "job_id": job_id, "attempt": attempt, "site": p.site,
                    "accelerator": p.accelerator, "accelerators": p.accelerators,
                    "dispatch_name": name, "state": AttemptState.PLACED.value, "created_at": now,
                    "cleanup_pending": False, "reason": "",
                })
                event_rows.append({
                    "job_id": job_id, "at": now, "kind": "placed",
                    "message": f"attempt {attempt} at {p.site} on {p.accelerators}x "
                               f"{p.accelerator}",
                })
                placed.append(_job(updated))
            if attempt_rows:
                conn.execute(insert(attempts), attempt_rows)
                conn.execute(insert(events), event_rows)
        return placed

    def advance(
        self,
        job_id: str,
        attempt: int,
        *,
        expect: Collection[JobState],
        to: JobState,
        now: float,
        reason: str = "",
        message: str = "",
    ) -> JobRecord | None:
        """Move attempt ``attempt`` of a job from one of ``expect`` to ``to`` (compare-and-set).

        Returns the new record, or None when the job is not in ``expect`` or has moved on to
        another attempt.
        """
        t = Transition(job_id, attempt, frozenset(expect), to, reason, message)
        return self.advance_many([t], now)[0]

    def advance_many(self, batch: Sequence[Transition], now: float) -> list[JobRecord | None]:
        """``advance`` for many jobs (a cycle's dispatches or statuses), ``CHUNK`` jobs per
        transaction.

        One compare-and-set UPDATE per job (its RETURNING row says whether it won); the
        attempts' updates and the events of the winners go out as two executemany calls.
        """
        out: list[JobRecord | None] = []
        for i in range(0, len(batch), CHUNK):
            out += self._advance_chunk(batch[i : i + CHUNK], now)
        return out

    def _advance_chunk(
        self, batch: Sequence[Transition], now: float
    ) -> list[JobRecord | None]:
        if not batch:
            return []
        out: list[JobRecord | None] = []
        attempt_rows: list[dict[str, Any]] = []
        event_rows: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            for t in batch:
                params = {
                    "b_id": t.job_id, "b_attempt": t.attempt,
                    "b_expect": [x.value for x in t.expect], "b_state": t.to.value,
                    "b_reason": t.reason[:64], "b_message": t.message, "b_now": now,
                }
                if t.to is JobState.RUNNING:
                    statement = _ADVANCE_RUNNING
                elif t.to.is_terminal():
                    statement = _ADVANCE_TERMINAL
                else:
                    statement = _ADVANCE
                row = conn.execute(statement, params).first()
                if row is None:
                    out.append(None)
                    continue
                spec = self._specs.get(t.job_id)
                if spec is None:
                    found = conn.execute(_SPECS, {"ids": [t.job_id]}).first()
                    assert found is not None
                    spec = JobSpec.from_json(found.spec)
                if t.to.is_terminal():
                    self._specs.pop(t.job_id, None)
                out.append(_job(row, spec))
                attempt_state = _ATTEMPT_STATE.get(t.to)
                if attempt_state is not None and t.attempt > 0:
                    attempt_rows.append({
                        "b_id": t.job_id, "b_attempt": t.attempt, "b_state": attempt_state.value,
                        "b_ended": now if t.to.is_terminal() else None,
                        "b_reason": t.message or t.reason,
                    })
                event_rows.append({
                    "job_id": t.job_id, "at": now, "kind": t.to.value.lower(),
                    "message": ": ".join(x for x in (t.reason, t.message) if x),
                })
            if attempt_rows:
                conn.execute(_ATTEMPT_STATE_UPDATE, attempt_rows)
            if event_rows:
                conn.execute(_EVENT, event_rows)
        return out

    def requeue(
        self,
        job_id: str,
        attempt: int,
        *,
        now: float,
        reason: str,
        message: str,
        cleanup: bool,
    ) -> JobRecord | None:
        """An active attempt is given up: the job goes back to PENDING for a new attempt.

        With ``cleanup`` the old attempt is remembered for cancellation at its site once the
        site answers again (it may still hold a copy).
        """
        with self.engine.begin() as conn:
            row = conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.attempt == attempt,
                    jobs.c.state.in_([s.value for s in ACTIVE]),
                )
                .values(
                    state=JobState.PENDING.value, site=None, accelerator=None,
                    dispatch_name=None, reason=reason[:64], message=message, updated_at=now,
                    started_at=None, estimated_cost=None, version=jobs.c.version + 1,
                )
                .returning(*jobs.c)
            ).first()
            if row is None:
                return None
            conn.execute(
                update(attempts)
                .where(attempts.c.job_id == job_id, attempts.c.attempt == attempt)
                .values(
                    state=AttemptState.ABANDONED.value, ended_at=now, cleanup_pending=cleanup,
                    reason=message or reason,
                )
            )
            conn.execute(insert(events).values(
                job_id=job_id, at=now, kind="requeued", message=f"{reason}: {message}",
            ))
            return _job(row)

    def request_cancel(self, job_id: str, now: float) -> JobRecord | None:
        """Cancel a job: a PENDING one at once; an active one is flagged for the loop, which
        stops it at its site first. Terminal jobs are returned unchanged; None if unknown."""
        with self.engine.begin() as conn:
            row = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.PENDING.value)
                .values(
                    state=JobState.CANCELLED.value, cancel_requested=True, reason="Cancelled",
                    message="cancelled before placement", updated_at=now, finished_at=now,
                    version=jobs.c.version + 1,
                )
                .returning(*jobs.c)
            ).first()
            if row is None:
                row = conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.id == job_id,
                        jobs.c.state.in_([s.value for s in ACTIVE]),
                        jobs.c.cancel_requested.is_(False),
                    )
                    .values(cancel_requested=True, updated_at=now, version=jobs.c.version + 1)
                    .returning(*jobs.c)
                ).first()
            if row is None:
                current = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
                return None if current is None else _job(current)
            conn.execute(insert(events).values(
                job_id=job_id, at=now, kind="cancel-requested", message="",
            ))
            return _job(row)

    def cleanups(self, site: str) -> list[AttemptRecord]:
        """Abandoned attempts at ``site`` that may still hold a copy there."""
        query = select(attempts).where(
            attempts.c.site == site, attempts.c.cleanup_pending.is_(True)
        )
        with self.engine.connect() as conn:
            return [_attempt(r) for r in conn.execute(query)]

    def sites_with_cleanups(self) -> list[str]:
        query = select(attempts.c.site).where(attempts.c.cleanup_pending.is_(True)).distinct()
        with self.engine.connect() as conn:
            return [r.site for r in conn.execute(query)]

    def requeue_cleanup(self, job_id: str, attempt: int) -> None:
        """Remember to stop this attempt's copy at its site once the site answers again."""
        with self.engine.begin() as conn:
            conn.execute(
                update(attempts)
                .where(attempts.c.job_id == job_id, attempts.c.attempt == attempt)
                .values(cleanup_pending=True)
            )

    def cleanup_done(self, job_id: str, attempt: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(attempts)
                .where(attempts.c.job_id == job_id, attempts.c.attempt == attempt)
                .values(cleanup_pending=False)
            )

    def note(self, job_id: str, *, reason: str, message: str, now: float) -> None:
        """Record why a job waits (or a dispatch failed) without changing its state."""
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    (jobs.c.reason != reason[:64]) | (jobs.c.message != message),
                )
                .values(reason=reason[:64], message=message, updated_at=now)
            )

    def note_many(
        self,
        notes: Mapping[str, tuple[str, str, Mapping[str, Any] | None]],
        now: float,
    ) -> None:
        """Why each of many PENDING jobs waits (reason, message, the plan's explanation), in
        one transaction: the waits of one plan that changed since the last."""
        if not notes:
            return
        rows = [
            {"b_id": job_id, "b_reason": reason[:64], "b_message": message,
             "b_explanation": dict(explanation) if explanation else None, "b_now": now}
            for job_id, (reason, message, explanation) in notes.items()
        ]
        with self.engine.begin() as conn:
            conn.execute(_NOTE_WAIT, rows)

    # ------------------------------------------------------------------ sites

    def site_records(self) -> dict[str, SiteRecord]:
        with self.engine.connect() as conn:
            return {
                r.name: SiteRecord(r.name, r.down, r.failures, r.reason, r.updated_at,
                                   r.healthy, tuple(r.inventory or ()))
                for r in conn.execute(select(sites))
            }

    def save_site_view(
        self, name: str, *, healthy: bool, reason: str,
        inventory: Sequence[Mapping[str, Any]], now: float,
    ) -> None:
        """The last health check and inventory of a site, for every replica's /v1/sites."""
        values = {"healthy": healthy, "inventory": [dict(p) for p in inventory],
                  "updated_at": now}
        with self.engine.begin() as conn:
            done = conn.execute(update(sites).where(sites.c.name == name).values(**values))
            if done.rowcount == 0:
                conn.execute(insert(sites).values(name=name, down=False, failures=0,
                                                  reason=reason, **values))

    def record_health(
        self, name: str, *, ok: bool, reason: str, now: float, down_after: int
    ) -> SiteRecord:
        """Count consecutive failed checks; the site is down after ``down_after`` of them and
        up again at the first good one."""
        with self.engine.begin() as conn:
            row = conn.execute(select(sites).where(sites.c.name == name)).first()
            failures = 0 if ok else (row.failures if row is not None else 0) + 1
            down = (not ok) and failures >= down_after
            values = {"down": down, "failures": failures, "reason": "" if ok else reason,
                      "updated_at": now}
            if row is None:
                conn.execute(insert(sites).values(name=name, **values))
            elif (row.down, row.failures, row.reason) != (down, failures, values["reason"]):
                conn.execute(update(sites).where(sites.c.name == name).values(**values))
            return SiteRecord(name, down, failures, str(values["reason"]), now)

    # ------------------------------------------------------------------ settings

    def get_setting(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(settings.c.value).where(settings.c.key == key)).first()
        return None if row is None else str(row.value)

    def put_setting(self, key: str, value: str, now: float) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(settings).where(settings.c.key == key).values(value=value, updated_at=now)
            )
            if done.rowcount == 0:
                conn.execute(insert(settings).values(key=key, value=value, updated_at=now))


__all__ = [
    "IdempotencyConflict",
    "NewJob",
    "NewPlacement",
    "Store",
    "Submitted",
    "Transition",
    "make_engine",
    "migrate",
    "spec_hash",
]
