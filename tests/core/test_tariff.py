"""Time-of-use means, table-driven (Guangdong 2021 structure: valley 0-8 x0.38,
peak 10-12 and 14-19 x1.7, flat elsewhere)."""

from __future__ import annotations

import pytest

from scheduler.core.model import Tariff, TouPeriod
from scheduler.core.tariff import mean_tariff_multiplier

GUANGDONG = Tariff(
    base_cny_per_kwh=0.75,
    periods=(TouPeriod(0, 8, 0.38), TouPeriod(10, 12, 1.7), TouPeriod(14, 19, 1.7)),
    utc_offset_h=8.0,
)
DAY_MEAN = (8 * 0.38 + 7 * 1.7 + 9 * 1.0) / 24.0


def utc_seconds_at_local(hour: float) -> float:
    return ((hour - 8.0) % 24.0) * 3600.0


@pytest.mark.parametrize(
    ("name", "start_local_h", "hours", "expected"),
    [
        ("inside the valley", 2.0, 3.0, 0.38),
        ("inside a peak", 10.5, 1.0, 1.7),
        ("instant at flat", 9.0, 0.0, 1.0),
        ("flat into peak", 9.0, 2.0, (1.0 + 1.7) / 2),
        ("across midnight", 22.0, 4.0, (2 * 1.0 + 2 * 0.38) / 4),
        ("a whole day from anywhere", 13.25, 24.0, DAY_MEAN),
        ("three days and a valley hour", 1.0, 73.0, (72 * DAY_MEAN + 0.38) / 73),
    ],
)
def test_mean_multiplier(name: str, start_local_h: float, hours: float, expected: float) -> None:
    got = mean_tariff_multiplier(GUANGDONG, utc_seconds_at_local(start_local_h), hours)
    assert got == pytest.approx(expected), name
