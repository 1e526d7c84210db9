"""The optimizer. See ``scheduler.core.solver.optimizer`` for the model."""

from scheduler.core.solver.optimizer import plan

__all__ = ["plan"]
