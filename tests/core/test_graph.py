"""The site graph: routes, dataset transfers, reachability, region and hub queries."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from scheduler.core.geo import rtt_ms
from scheduler.core.graph import SiteGraph, mesh_links
from scheduler.core.ids import DatasetId, LocationId, SiteId
from scheduler.core.model import Dataset, Link, Location, Site, Tariff
from scheduler.core.snapshot_file import Topology, parse_topology

TOPOLOGY = Path(__file__).resolve().parents[2] / "policies" / "topology" / "china-hubs.yaml"


def site(name: str, region: str = "R", hub: str = "H", lat: float = 30.0,
         lon: float = 110.0) -> Site:
    return Site(SiteId(name), region, hub, lat, lon, (), Tariff(0.5), 1.2)


def link(a: str, b: str, ms: float, gbps: float = 10.0, egress: float = 0.5) -> Link:
    return Link(SiteId(a), SiteId(b), ms, gbps, egress)


def graph(names: str, *links: Link) -> SiteGraph:
    return SiteGraph(tuple(site(n) for n in names.split()), links)


@pytest.fixture(scope="module")
def china() -> Topology:
    return parse_topology(TOPOLOGY.read_text(encoding="utf-8"), str(TOPOLOGY))


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class RouteCase:
    name: str
    links: tuple[Link, ...]
    source: str
    target: str
    path: tuple[str, ...] | None
    latency_ms: float = 0.0
    bottleneck_gbps: float = math.inf
    egress: float = 0.0


ROUTES = [
    RouteCase("two hops beat a slow direct link",
              (link("a", "b", 30), link("a", "c", 5), link("c", "b", 6)),
              "a", "b", ("a", "c", "b"), 11.0, 10.0, 1.0),
    RouteCase("direct link when it is faster",
              (link("a", "b", 8), link("a", "c", 5), link("c", "b", 6)),
              "a", "b", ("a", "b"), 8.0, 10.0, 0.5),
    RouteCase("bottleneck is the slowest link, egress adds up",
              (link("a", "c", 2, gbps=100, egress=0.2), link("c", "b", 3, gbps=5, egress=0.3)),
              "a", "b", ("a", "c", "b"), 5.0, 5.0, 0.5),
    RouteCase("same site is a path of one", (link("a", "b", 1),), "a", "a", ("a",)),
    RouteCase("links are undirected", (link("a", "b", 4),), "b", "a", ("b", "a"), 4.0, 10.0, 0.5),
    RouteCase("unreachable site", (link("a", "b", 4),), "a", "c", None),
]


@pytest.mark.parametrize("case", ROUTES, ids=[c.name for c in ROUTES])
def test_lowest_latency_route(case: RouteCase) -> None:
    route = graph("a b c", *case.links).route(SiteId(case.source), SiteId(case.target))
    if case.path is None:
        assert route is None
        return
    assert route is not None
    assert route.path == case.path
    assert route.latency_ms == pytest.approx(case.latency_ms)
    assert route.bottleneck_gbps == case.bottleneck_gbps
    assert route.egress_cny_per_gb == pytest.approx(case.egress)


def test_link_to_unknown_site_is_refused() -> None:
    with pytest.raises(KeyError):
        graph("a b", link("a", "z", 1))


# --------------------------------------------------------------------------- transfers


@dataclass(frozen=True)
class TransferCase:
    name: str
    replicas: tuple[str, ...]
    target: str
    source: str | None  # None: no replica can reach the target
    hours: float = 0.0
    cny: float = 0.0


# a -(10 Gbit/s, 0.5 CNY/GB)- b -(40 Gbit/s, 0.1 CNY/GB)- c ;  d is an island
TRANSFER_LINKS = (link("a", "b", 5, gbps=10, egress=0.5), link("b", "c", 5, gbps=40, egress=0.1))
SIZE_GB = 900.0
TRANSFERS = [
    TransferCase("replica at the target is free", ("a", "c"), "c", "c"),
    TransferCase("cheapest replica wins", ("a", "c"), "b", "c",
                 hours=SIZE_GB * 8 / 40 / 3600, cny=SIZE_GB * 0.1),
    TransferCase("two hops: slowest link, summed egress", ("a",), "c", "a",
                 hours=SIZE_GB * 8 / 10 / 3600, cny=SIZE_GB * 0.6),
    TransferCase("unreachable replica is skipped", ("d", "a"), "b", "a",
                 hours=SIZE_GB * 8 / 10 / 3600, cny=SIZE_GB * 0.5),
    TransferCase("no replica reaches the target", ("d",), "a", None),
    TransferCase("replica on an unknown site is ignored", ("x",), "a", None),
]


@pytest.mark.parametrize("case", TRANSFERS, ids=[c.name for c in TRANSFERS])
def test_dataset_transfer_from_best_replica(case: TransferCase) -> None:
    g = graph("a b c d", *TRANSFER_LINKS)
    data = Dataset(DatasetId("ds"), SIZE_GB, frozenset(SiteId(r) for r in case.replicas))
    transfer = g.transfer(data, SiteId(case.target))
    if case.source is None:
        assert transfer is None
        return
    assert transfer is not None
    assert transfer.source == case.source
    assert transfer.hours == pytest.approx(case.hours)
    assert transfer.cny == pytest.approx(case.cny)


def test_unreachable_site_has_no_route_from_anywhere() -> None:
    g = graph("a b c d", *TRANSFER_LINKS)
    for source in "abc":
        assert g.route(SiteId(source), SiteId("d")) is None
    assert set(g.routes_from(SiteId("d"))) == {"d"}


# --------------------------------------------------------------------------- default topology


@pytest.mark.parametrize(
    ("query", "argument", "expected"),
    [
        ("in_region", "Guangdong", ["shaoguan"]),
        ("in_region", "Ningxia", ["zhongwei"]),
        ("in_region", "Inner Mongolia", ["horinger"]),
        ("in_region", "Beijing", []),
        ("in_hub", "Yangtze River Delta", ["qingpu", "wuhu"]),
        ("in_hub", "Chengdu-Chongqing", ["chongqing", "tianfu"]),
        ("in_hub", "Beijing-Tianjin-Hebei", ["zhangjiakou"]),
        ("in_hub", "Atlantis", []),
    ],
)
def test_region_and_hub_queries(china: Topology, query: str, argument: str,
                                 expected: list[str]) -> None:
    g = SiteGraph(china.sites, china.links)
    assert getattr(g, query)(argument) == expected


def test_regions_and_hubs_of_the_default_topology(china: Topology) -> None:
    g = SiteGraph(china.sites, china.links)
    assert len(g.regions()) == 10
    assert g.hubs() == sorted(["Beijing-Tianjin-Hebei", "Yangtze River Delta",
                               "Greater Bay Area", "Chengdu-Chongqing", "Inner Mongolia",
                               "Guizhou", "Gansu", "Ningxia"])


def test_beijing_to_zhongwei_latency(china: Topology) -> None:
    g = SiteGraph(china.sites, china.links)
    beijing = next(x for x in china.locations if x.id == "beijing")
    assert 10.0 <= g.user_latency_ms(beijing, SiteId("zhongwei")) <= 25.0


def test_default_mesh_routes_directly(china: Topology) -> None:
    """Latency from coordinates is nearly a metric (great-circle distance plus 1 ms per
    link), so in the generated mesh no detour beats the direct link by more than ~2 ms."""
    g = SiteGraph(china.sites, china.links)
    for a in china.sites:
        for b in china.sites:
            if a.id == b.id:
                continue
            route = g.route(a.id, b.id)
            assert route is not None
            assert route.latency_ms <= rtt_ms(a.lat, a.lon, b.lat, b.lon) + 1e-9
            assert route.latency_ms >= rtt_ms(a.lat, a.lon, b.lat, b.lon) - 2.0


def test_mesh_links() -> None:
    sites = (site("a", lat=30, lon=120), site("b", lat=31, lon=121), site("c", lat=40, lon=116))
    links = mesh_links(sites, 20.0, 0.5)
    assert {(x.a, x.b) for x in links} == {("a", "b"), ("a", "c"), ("b", "c")}
    assert all(x.bandwidth_gbps == 20.0 and x.egress_cny_per_gb == 0.5 for x in links)
    near = next(x for x in links if (x.a, x.b) == ("a", "b"))
    far = next(x for x in links if (x.a, x.b) == ("a", "c"))
    assert 1.0 < near.latency_ms < far.latency_ms


def test_user_latency_grows_with_distance() -> None:
    g = SiteGraph((site("near", lat=31.2, lon=121.4), site("far", lat=37.5, lon=105.2)), ())
    shanghai = Location(LocationId("shanghai"), 31.23, 121.47)
    assert g.user_latency_ms(shanghai, SiteId("near")) < 2.0
    assert g.user_latency_ms(shanghai, SiteId("far")) > 20.0
