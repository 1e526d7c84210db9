"""The site graph: sites as nodes, links as edges, on networkx.

Answers the questions placement asks of the network: the lowest-latency path between two
sites, what moving a dataset to a site costs and how long it takes, and which sites lie in
a region or hub. Users are not nodes; their latency to a site is estimated from coordinates
(``scheduler.core.geo``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import networkx as nx
import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from scheduler.core.geo import rtt_ms
from scheduler.core.ids import SiteId
from scheduler.core.model import Dataset, Link, Location, Site


@dataclass(frozen=True, slots=True)
class Route:
    """The lowest-latency path between two sites and what it costs to move data along it."""

    path: tuple[SiteId, ...]
    latency_ms: float
    bottleneck_gbps: float  # inf for a path of one site
    egress_cny_per_gb: float  # sum of the links' egress prices

    def transfer_hours(self, size_gb: float) -> float:
        if size_gb <= 0 or len(self.path) < 2:
            return 0.0
        return size_gb * 8.0 / self.bottleneck_gbps / 3600.0

    def transfer_cny(self, size_gb: float) -> float:
        return size_gb * self.egress_cny_per_gb


@dataclass(frozen=True, slots=True)
class Transfer:
    """Moving a dataset to a site from its best replica (zero when a replica is there)."""

    source: SiteId
    hours: float
    cny: float


@dataclass(frozen=True, slots=True)
class _Table:
    """All-pairs lowest-latency paths (scipy) with the link attributes to follow them."""

    distance: npt.NDArray[np.float64]
    predecessors: npt.NDArray[np.int32]
    egress: npt.NDArray[np.float64]
    bandwidth: npt.NDArray[np.float64]


class SiteGraph:
    """Sites and links. Built once per snapshot; queries are cached."""

    def __init__(self, sites: tuple[Site, ...], links: tuple[Link, ...]) -> None:
        self.sites = {site.id: site for site in sites}
        self.graph: nx.Graph = nx.Graph()
        for site in sites:
            self.graph.add_node(site.id)
        for link in links:
            if link.a not in self.sites or link.b not in self.sites:
                raise KeyError(f"link {link.a}-{link.b} names an unknown site")
            self.graph.add_edge(
                link.a, link.b, latency_ms=link.latency_ms,
                bandwidth_gbps=link.bandwidth_gbps, egress_cny_per_gb=link.egress_cny_per_gb,
            )
        self._routes: dict[SiteId, dict[SiteId, Route]] = {}
        self._arrays: dict[tuple[SiteId, tuple[SiteId, ...]], tuple[
            npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]] = {}
        self._tables: tuple[tuple[SiteId, ...], _Table] | None = None

    def routes_from(self, source: SiteId) -> dict[SiteId, Route]:
        """Lowest-latency routes from ``source`` to every reachable site."""
        cached = self._routes.get(source)
        if cached is not None:
            return cached
        paths = nx.single_source_dijkstra_path(self.graph, source, weight="latency_ms")
        routes: dict[SiteId, Route] = {}
        for target, path in paths.items():
            latency, bottleneck, egress = 0.0, float("inf"), 0.0
            for u, v in itertools.pairwise(path):
                edge = self.graph.edges[u, v]
                latency += edge["latency_ms"]
                bottleneck = min(bottleneck, edge["bandwidth_gbps"])
                egress += edge["egress_cny_per_gb"]
            routes[target] = Route(tuple(path), latency, bottleneck, egress)
        self._routes[source] = routes
        return routes

    def route_arrays(
        self, source: SiteId, order: tuple[SiteId, ...]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Lowest-latency routes from ``source`` to every site of ``order`` as arrays:
        (egress CNY per GB, bottleneck Gbit/s, reachable). The fast path for pricing
        datasets at every site; it agrees with ``routes_from``."""
        key = (source, order)
        cached = self._arrays.get(key)
        if cached is not None:
            return cached
        table = self._table(order)
        index = {site: i for i, site in enumerate(order)}
        i = index[source]
        pred = table.predecessors[i]
        n = len(order)
        egress = np.zeros(n)
        bottleneck = np.full(n, np.inf)
        reachable = np.isfinite(table.distance[i])
        # walk the shortest-path tree from the source outwards
        for v in np.argsort(table.distance[i], kind="stable").tolist():
            u = int(pred[v])
            if v == i or u < 0:
                continue
            egress[v] = egress[u] + table.egress[u, v]
            bottleneck[v] = min(bottleneck[u], table.bandwidth[u, v])
        cached = (egress, bottleneck, reachable)
        self._arrays[key] = cached
        return cached

    def _table(self, order: tuple[SiteId, ...]) -> _Table:
        if self._tables is not None and self._tables[0] == order:
            return self._tables[1]
        index = {site: i for i, site in enumerate(order)}
        n = len(order)
        latency = np.zeros((n, n))
        egress = np.zeros((n, n))
        bandwidth = np.zeros((n, n))
        for u, v, data in self.graph.edges(data=True):
            a, b = index[u], index[v]
            # networkx keeps one edge per pair; csgraph needs a positive weight to see it
            lat = max(float(data["latency_ms"]), 1e-9)
            for x, y in ((a, b), (b, a)):
                latency[x, y] = lat
                egress[x, y] = data["egress_cny_per_gb"]
                bandwidth[x, y] = data["bandwidth_gbps"]
        distance, predecessors = dijkstra(csr_matrix(latency), directed=True,
                                          return_predecessors=True)
        table = _Table(distance, predecessors, egress, bandwidth)
        self._tables = (order, table)
        return table

    def route(self, source: SiteId, target: SiteId) -> Route | None:
        return self.routes_from(source).get(target)

    def transfer(self, dataset: Dataset, target: SiteId) -> Transfer | None:
        """Cheapest way to bring ``dataset`` to ``target`` (ties: fastest, then by name),
        or None when no replica can reach it."""
        best: tuple[float, float, SiteId] | None = None
        for replica in sorted(dataset.replicas):
            if replica not in self.sites:
                continue
            route = self.route(replica, target)
            if route is None:
                continue
            key = (route.transfer_cny(dataset.size_gb), route.transfer_hours(dataset.size_gb),
                   replica)
            if best is None or key < best:
                best = key
        if best is None:
            return None
        return Transfer(source=best[2], hours=best[1], cny=best[0])

    def user_latency_ms(self, location: Location, site: SiteId) -> float:
        s = self.sites[site]
        return rtt_ms(location.lat, location.lon, s.lat, s.lon)

    def in_region(self, region: str) -> list[SiteId]:
        return sorted(s.id for s in self.sites.values() if s.region == region)

    def in_hub(self, hub: str) -> list[SiteId]:
        return sorted(s.id for s in self.sites.values() if s.hub == hub)

    def regions(self) -> list[str]:
        return sorted({s.region for s in self.sites.values()})

    def hubs(self) -> list[str]:
        return sorted({s.hub for s in self.sites.values()})


def mesh_links(
    sites: tuple[Site, ...], bandwidth_gbps: float, egress_cny_per_gb: float
) -> tuple[Link, ...]:
    """A full mesh with latency estimated from coordinates, for topologies that give
    coordinates but no measured links."""
    links = []
    for i, a in enumerate(sites):
        for b in sites[i + 1:]:
            links.append(Link(a.id, b.id, rtt_ms(a.lat, a.lon, b.lat, b.lon),
                              bandwidth_gbps, egress_cny_per_gb))
    return tuple(links)


__all__ = ["Route", "SiteGraph", "Transfer", "mesh_links"]
