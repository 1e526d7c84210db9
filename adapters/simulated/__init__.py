"""The ``simulated`` site adapter: a virtual site running work in virtual time.

Used by the demo, the large tests and the benchmarks; also the fake to test code that drives a
``SiteAdapter`` without a cluster.
"""

from adapters.simulated.site import SimulatedSite

__all__ = ["SimulatedSite"]
