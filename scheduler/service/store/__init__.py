"""The service's persistent state (SQLAlchemy Core; Alembic migrations under ``migrations/``)."""

from scheduler.service.store.store import (
    IdempotencyConflict,
    NewJob,
    NewPlacement,
    Store,
    Submitted,
    Transition,
    make_engine,
    migrate,
)

__all__ = [
    "IdempotencyConflict",
    "NewJob",
    "NewPlacement",
    "Store",
    "Submitted",
    "Transition",
    "make_engine",
    "migrate",
]
