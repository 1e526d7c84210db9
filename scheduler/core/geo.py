"""Distances and latency estimates between coordinates.

Round-trip latency is estimated from great-circle distance: light in fibre covers about
200 km per millisecond, terrestrial routes run about 1.5x the great-circle distance, and a
fixed 1 ms covers switching. Beijing to Zhongwei (~1,000 km) gives ~16 ms, consistent with the
national <= 20 ms inter-hub target.
"""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0
FIBRE_KM_PER_MS = 200.0
ROUTE_FACTOR = 1.5
SWITCHING_MS = 1.0


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def rtt_ms(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Estimated round-trip time between two points."""
    km = distance_km(lat1, lon1, lat2, lon2)
    return SWITCHING_MS + 2.0 * km * ROUTE_FACTOR / FIBRE_KM_PER_MS


__all__ = ["distance_km", "rtt_ms"]
