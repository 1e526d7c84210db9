"""Time-of-use power prices: the mean price multiplier over a window of hours."""

from __future__ import annotations

from scheduler.core.model import Tariff

SECONDS_PER_HOUR = 3600.0


def mean_tariff_multiplier(tariff: Tariff, start_utc_s: float, hours: float) -> float:
    """Mean time-of-use multiplier over ``hours`` from ``start_utc_s``."""
    if hours <= 0:
        return tariff.multiplier_at(_local_hour(tariff, start_utc_s))
    start = _local_hour(tariff, start_utc_s)
    days, rest = divmod(hours, 24.0)
    total = days * _integral(tariff, 0.0, 24.0)
    end = start + rest
    if end <= 24.0:
        total += _integral(tariff, start, end)
    else:
        total += _integral(tariff, start, 24.0) + _integral(tariff, 0.0, end - 24.0)
    return total / hours


def _local_hour(tariff: Tariff, utc_s: float) -> float:
    return ((utc_s / SECONDS_PER_HOUR) + tariff.utc_offset_h) % 24.0


def _integral(tariff: Tariff, lo: float, hi: float) -> float:
    """Integral of the multiplier over local hours [lo, hi] within one day."""
    total = hi - lo  # flat = 1.0 everywhere ...
    for p in tariff.periods:  # ... corrected inside each period
        overlap = min(hi, p.end_h) - max(lo, p.start_h)
        if overlap > 0:
            total += overlap * (p.multiplier - 1.0)
    return total


__all__ = ["mean_tariff_multiplier"]
