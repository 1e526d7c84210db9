"""The store's schema as SQLAlchemy Core tables (the Alembic migrations create the same)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
_EventId = BigInteger().with_variant(Integer(), "sqlite")

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("name", String(253), nullable=False),
    Column("state", String(16), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("spec_hash", String(64), nullable=False),
    Column("submitted_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("attempt", Integer, nullable=False, default=0),
    Column("site", String(63)),
    Column("accelerator", String(63)),
    Column("dispatch_name", String(63)),
    Column("reason", String(64), nullable=False, default=""),
    Column("message", Text, nullable=False, default=""),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("idempotency_key", String(255)),
    Column("estimated_cost", Float),
    Column("version", Integer, nullable=False, default=1),
    Column("explanation", JSON),  # the last plan's explanation of this job (0002)
    UniqueConstraint("tenant", "idempotency_key", name="uq_jobs_tenant_idempotency_key"),
    Index("ix_jobs_state", "state"),
    Index("ix_jobs_tenant_id", "tenant", "id"),
    Index("ix_jobs_site_state", "site", "state"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("site", String(63), nullable=False),
    Column("accelerator", String(63), nullable=False),
    Column("accelerators", Integer, nullable=False),
    Column("dispatch_name", String(63), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("cleanup_pending", Boolean, nullable=False, default=False),
    Column("reason", Text, nullable=False, default=""),
    Index("ix_attempts_cleanup", "site", "cleanup_pending"),
)

events = Table(
    "events",
    metadata,
    Column("id", _EventId, primary_key=True, autoincrement=True),
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("at", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("message", Text, nullable=False, default=""),
    Index("ix_events_job", "job_id", "id"),
)

sites = Table(
    "sites",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("down", Boolean, nullable=False, default=False),
    Column("failures", Integer, nullable=False, default=0),
    Column("reason", Text, nullable=False, default=""),
    Column("updated_at", Float, nullable=False),
    Column("healthy", Boolean),  # the last check (0002)
    Column("inventory", JSON),  # the last inventory: [{type, count, available, price}] (0002)
)

settings = Table(
    "settings",
    metadata,
    Column("key", String(63), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

__all__ = ["attempts", "events", "jobs", "metadata", "settings", "sites"]
