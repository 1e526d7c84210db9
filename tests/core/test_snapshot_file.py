"""Snapshot and topology files: round trips, the shipped files, and broken input."""

from __future__ import annotations

import copy
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scheduler.core.snapshot_file import (
    SnapshotDoc,
    SnapshotError,
    json_schema,
    parse_snapshot,
    parse_topology,
    snapshot_to_json,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "snapshot-china.json"
TOPOLOGY = ROOT / "policies" / "topology" / "china-hubs.yaml"
NOW_ISO = "2025-07-15T10:00:00+08:00"
NOW = 1752544800.0


def small() -> dict[str, Any]:
    """A small valid snapshot, built to be broken one field at a time."""
    tariff = {"base_cny_per_kwh": 0.5,
              "periods": [{"start_h": 0, "end_h": 8, "multiplier": 0.38},
                          {"start_h": 10, "end_h": 12, "multiplier": 1.7}]}
    return {
        "now": NOW_ISO,
        "sites": [
            {"id": "east-1", "region": "Shanghai", "hub": "Yangtze River Delta", "lat": 31.15,
             "lon": 121.12, "pue": 1.25, "labels": {"side": "east"}, "tariff": tariff,
             "pools": [{"type": "RTX4090-48G", "count": 16, "available": 8,
                        "price_cny_per_hour": 2.8}]},
            {"id": "west-1", "region": "Ningxia", "hub": "Ningxia", "lat": 37.51, "lon": 105.19,
             "pue": 1.2, "labels": {"side": "west"}, "tariff": tariff,
             "pools": [{"type": "A100-80G", "count": 64, "price_cny_per_hour": 10.0}],
             "subsidy_tenants": ["t-west"], "subsidy_discount": 0.2},
        ],
        "links": [{"a": "east-1", "b": "west-1", "bandwidth_gbps": 20,
                   "egress_cny_per_gb": 0.5}],
        "datasets": [{"id": "corpus", "size_gb": 100, "replicas": ["west-1"],
                      "residency": {"regions": ["Ningxia"]}}],
        "locations": [{"id": "shanghai", "lat": 31.23, "lon": 121.47}],
        "tenants": [{"id": "t-east", "home_region": "Shanghai"},
                    {"id": "t-west", "home_region": "Ningxia"}],
        "accelerators": [{"name": "NPU-X", "memory_gb": 32, "bf16_tflops": 100, "tdp_w": 300}],
        "pending": [
            {"id": "train", "tenant": "t-east", "priority": 1,
             "gang": {"workers": 2, "accelerators_per_worker": 8, "allowed_types": ["A100-80G"]},
             "runtime_h": {"A100-80G": 6}, "submitted_at": "2025-07-15T09:00:00+08:00",
             "deadline": 1752717600, "datasets": ["corpus"], "checkpointable": True},
            {"id": "infer", "tenant": "t-east",
             "gang": {"workers": 1, "accelerators_per_worker": 1,
                      "allowed_types": ["RTX4090-48G"], "min_memory_gb": 40},
             "runtime_h": {"RTX4090-48G": 2.5}, "submitted_at": NOW - 600,
             "user_location": "shanghai", "max_latency_ms": 10, "preemptible": True},
        ],
        "running": [
            {"job": {"id": "old", "tenant": "t-east",
                     "gang": {"workers": 1, "accelerators_per_worker": 8,
                              "allowed_types": ["RTX4090-48G"]},
                     "runtime_h": {"RTX4090-48G": 4}, "submitted_at": NOW - 7200},
             "site": "east-1", "accelerator": "RTX4090-48G", "started_at": NOW - 3600},
        ],
    }


def problems_of(data: object) -> list[str]:
    with pytest.raises(SnapshotError) as caught:
        parse_snapshot(json.dumps(data, indent=2), "s.json")
    return [str(p) for p in caught.value.problems]


# --------------------------------------------------------------------------- valid files


def test_small_snapshot_parses_with_units_and_defaults() -> None:
    snapshot, now = parse_snapshot(json.dumps(small()), "s.json")
    assert now == NOW
    west = snapshot.site(snapshot.sites[1].id)
    assert west.pools[0].available == 64  # default: count
    assert west.subsidy_discount == 0.2
    assert len(west.tariff.periods) == 2 and west.tariff.utc_offset_h == 8.0
    link = snapshot.links[0]
    assert 10 < link.latency_ms < 30  # estimated from coordinates when not given
    train, infer = snapshot.pending
    assert train.submitted_at == NOW - 3600 and train.deadline == 1752717600.0
    assert train.gang.accelerators == 16
    assert infer.max_latency_ms == 10 and infer.preemptible
    assert "NPU-X" in snapshot.accelerators
    assert snapshot.running[0].site == "east-1"


@pytest.mark.parametrize("data", [small(), json.loads(EXAMPLE.read_text(encoding="utf-8"))],
                         ids=["small", "example"])
@pytest.mark.parametrize("offset", [0.0, 8.0, -5.5])
def test_round_trip(data: dict[str, Any], offset: float) -> None:
    snapshot, now = parse_snapshot(json.dumps(data), "a.json")
    text = json.dumps(snapshot_to_json(snapshot, now, utc_offset_h=offset))
    again, now_again = parse_snapshot(text, "b.json")
    assert again == snapshot
    assert now_again == now


def test_round_trip_keeps_sub_microsecond_times() -> None:
    snapshot, _ = parse_snapshot(json.dumps(small()), "s.json")
    now = NOW + 0.123456789
    _, back = parse_snapshot(json.dumps(snapshot_to_json(snapshot, now)), "t.json")
    assert back == now


@pytest.mark.parametrize("now", [NOW_ISO, "2025-07-15T02:00:00Z", "2025-07-15T02:00:00+00:00",
                                 NOW, int(NOW)])
def test_now_as_iso_or_posix(now: object) -> None:
    data = small()
    data["now"] = now
    assert parse_snapshot(json.dumps(data), "s.json")[1] == NOW


def test_example_file_is_what_snapshot_to_json_writes() -> None:
    data = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    snapshot, now = parse_snapshot(json.dumps(data), str(EXAMPLE))
    assert snapshot_to_json(snapshot, now, utc_offset_h=8.0) == data


def test_example_file_is_up_to_date_with_its_generator() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_example_snapshot", ROOT / "tools" / "make_example_snapshot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render(module.build(TOPOLOGY.read_text(encoding="utf-8")))
    assert EXAMPLE.read_text(encoding="utf-8") == expected, (
        "run: .venv/bin/python tools/make_example_snapshot.py")


def test_example_queue_has_the_documented_shape() -> None:
    snapshot, _ = parse_snapshot(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))
    assert 35 <= len(snapshot.pending) <= 50
    kinds = {job.id.split("-")[0] for job in snapshot.pending}
    assert {"train", "finetune", "infer", "batch"} <= kinds
    assert any(job.max_latency_ms for job in snapshot.pending)
    residency = {d.id for d in snapshot.datasets if d.residency is not None}
    assert any(set(job.datasets) & residency for job in snapshot.pending)
    east = {t.id for t in snapshot.tenants if t.home_region not in {"Ningxia", "Gansu",
                                                                     "Guizhou", "Inner Mongolia"}}
    assert sum(job.tenant in east for job in snapshot.pending) > 0.8 * len(snapshot.pending)


def test_example_sites_are_the_default_topology() -> None:
    topology = parse_topology(TOPOLOGY.read_text(encoding="utf-8"), str(TOPOLOGY))
    snapshot, _ = parse_snapshot(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))
    assert snapshot.locations == topology.locations
    assert snapshot.links == topology.links
    for site, base in zip(snapshot.sites, topology.sites, strict=True):
        assert (site.id, site.region, site.hub, site.lat, site.lon, site.pue, site.tariff) == (
            base.id, base.region, base.hub, base.lat, base.lon, base.pue, base.tariff)
        assert [(p.type, p.count, p.price_cny_per_hour) for p in site.pools] == [
            (p.type, p.count, p.price_cny_per_hour) for p in base.pools]


# --------------------------------------------------------------------------- topology


def test_default_topology() -> None:
    topology = parse_topology(TOPOLOGY.read_text(encoding="utf-8"), str(TOPOLOGY))
    ids = [s.id for s in topology.sites]
    assert ids == ["zhangjiakou", "qingpu", "wuhu", "shaoguan", "tianfu", "chongqing",
                   "horinger", "guian", "qingyang", "zhongwei"]
    regions = {s.id: s.region for s in topology.sites}
    assert regions["horinger"] == "Inner Mongolia" and regions["guian"] == "Guizhou"
    for site in topology.sites:
        side = site.labels["side"]
        assert site.pue == {"east": 1.25, "west": 1.20}[side]
        assert [(p.start_h, p.end_h, p.multiplier) for p in site.tariff.periods] == [
            (0, 8, 0.38), (10, 12, 1.7), (14, 19, 1.7)]
        assert site.pools and all(p.available == p.count for p in site.pools)
    base = {s.id: s.tariff.base_cny_per_kwh for s in topology.sites}
    assert base["zhongwei"] == 0.36 and base["horinger"] == 0.38  # the two sourced prices
    assert len(topology.links) == 45  # full mesh of 10 sites
    assert {x.id for x in topology.locations} == {
        "beijing", "shanghai", "shenzhen", "hangzhou", "guangzhou", "chengdu"}


def test_default_topology_west_is_larger_and_training_heavy() -> None:
    topology = parse_topology(TOPOLOGY.read_text(encoding="utf-8"), str(TOPOLOGY))
    east = [s for s in topology.sites if s.labels["side"] == "east"]
    west = [s for s in topology.sites if s.labels["side"] == "west"]
    mean = lambda sites: sum(p.count for s in sites for p in s.pools) / len(sites)  # noqa: E731
    assert mean(west) > 2 * mean(east)
    consumer = {"RTX4090-24G", "RTX4090-48G", "RTX5090-32G", "L40S-48G"}
    assert all(any(p.type in consumer for p in s.pools) for s in east)
    assert all(any(p.type == "Ascend910B-64G" for p in s.pools) for s in west)


def test_topology_with_explicit_links_and_estimated_latency() -> None:
    text = """
sites:
  - {id: a, region: R1, hub: H, lat: 30, lon: 120, pue: 1.2, tariff: {base_cny_per_kwh: 0.5}}
  - {id: b, region: R2, hub: H, lat: 31, lon: 121, pue: 1.2, tariff: {base_cny_per_kwh: 0.5}}
links:
  - {a: a, b: b, bandwidth_gbps: 10, egress_cny_per_gb: 0.1}
  - {a: b, b: a, latency_ms: 3, bandwidth_gbps: 10, egress_cny_per_gb: 0.1}
"""
    with pytest.raises(SnapshotError) as caught:
        parse_topology(text, "t.yaml")
    assert [p.path for p in caught.value.problems] == ["links[1]"]
    one_link = text.rsplit("\n", 2)[0] + "\n"
    topology = parse_topology(one_link, "t.yaml")
    assert len(topology.links) == 1 and 1 < topology.links[0].latency_ms < 5


@pytest.mark.parametrize(
    ("text", "path", "line", "message"),
    [
        ("sites: [\n", "", 2, "invalid YAML"),
        ("sites: []\n", "sites", 1, "at least 1"),
        ("sites:\n  - id: a\n    region: R\n", "sites[0].hub", 2, "required"),
        ("sites:\n  - {id: a, region: R, hub: H, lat: 0, lon: 0, pue: 1.2,\n"
         "     tariff: {base_cny_per_kwh: 1}, pools: [{type: TPU, count: 1,\n"
         "     price_cny_per_hour: 1}]}\n"
         "links: {mesh: {bandwidth_gbps: 1, egress_cny_per_gb: 0}}\n",
         "sites[0].pools[0].type", 3, "unknown accelerator type 'TPU'"),
        ("sites:\n  - {id: a, region: R, hub: H, lat: 0, lon: 0, pue: 1.2,\n"
         "     tariff: {base_cny_per_kwh: 1}}\nlinks: {mesh: {bandwidth_gbps: 0, "
         "egress_cny_per_gb: 0}}\n",
         "links.mesh.bandwidth_gbps", 4, "greater than 0"),
    ],
    ids=["syntax", "no-sites", "missing-hub", "unknown-type", "mesh-bandwidth"],
)
def test_broken_topology(text: str, path: str, line: int, message: str) -> None:
    with pytest.raises(SnapshotError) as caught:
        parse_topology(text, "t.yaml")
    problem = caught.value.problems[0]
    assert (problem.path, problem.line) == (path, line)
    assert message in problem.message
    assert str(caught.value).startswith(f"t.yaml:{line}:")


# --------------------------------------------------------------------------- broken snapshots

Mutation = Callable[[dict[str, Any]], object]


def _set(path: str, value: object) -> Mutation:
    """A mutation setting ``path`` (dots and [i]) to ``value``; ``...`` deletes it."""
    def mutate(data: dict[str, Any]) -> None:
        keys: list[str | int] = []
        for part in path.replace("[", ".").replace("]", "").split("."):
            keys.append(int(part) if part.isdigit() else part)
        node: Any = data
        for key in keys[:-1]:
            node = node[key]
        if value is ...:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return mutate


BROKEN: list[tuple[str, Mutation, str, str]] = [
    # name, mutation, path in the message, words in the message
    ("unknown dataset", _set("pending[0].datasets", ["corpus", "nope"]),
     "pending[0].datasets[1]", "unknown dataset 'nope'"),
    ("unknown tenant", _set("pending[1].tenant", "t-eats"),
     "pending[1].tenant", "unknown tenant 't-eats'; did you mean 't-east'?"),
    ("unknown location", _set("pending[1].user_location", "beijing"),
     "pending[1].user_location", "unknown location 'beijing'"),
    ("unknown accelerator type", _set("pending[0].gang.allowed_types", ["TPUv5"]),
     "pending[0].gang.allowed_types[0]", "unknown accelerator type 'TPUv5'"),
    ("unknown runtime type", _set("pending[0].runtime_h", {"A100": 3}),
     "pending[0].runtime_h.A100", "unknown accelerator type 'A100'"),
    ("unknown replica site", _set("datasets[0].replicas", ["east-2"]),
     "datasets[0].replicas[0]", "unknown site 'east-2'"),
    ("unknown residency region", _set("datasets[0].residency", {"regions": ["Ningxa"]}),
     "datasets[0].residency.regions[0]", "no site is in it"),
    ("empty residency", _set("datasets[0].residency", {}),
     "datasets[0].residency", "selects no site"),
    ("unknown link site", _set("links[0].b", "mars"), "links[0].b", "unknown site 'mars'"),
    ("self link", _set("links[0].b", "east-1"), "links[0].b", "two different sites"),
    ("unknown running site", _set("running[0].site", "nowhere"),
     "running[0].site", "unknown site 'nowhere'"),
    ("running type not at site", _set("running[0].accelerator", "A100-80G"),
     "running[0].accelerator", "no 'A100-80G' pool"),
    ("unknown subsidy tenant", _set("sites[1].subsidy_tenants", ["ghost"]),
     "sites[1].subsidy_tenants[0]", "unknown tenant 'ghost'"),
    ("no workers", _set("pending[0].gang.workers", 0),
     "pending[0].gang.workers", "greater than or equal to 1, got 0"),
    ("too many per worker", _set("pending[0].gang.accelerators_per_worker", 65),
     "pending[0].gang.accelerators_per_worker", "less than or equal to 64"),
    ("zero runtime", _set("pending[0].runtime_h", {"A100-80G": 0}),
     "pending[0].runtime_h.A100-80G", "greater than 0"),
    ("no runtime", _set("pending[0].runtime_h", {}), "pending[0].runtime_h", "at least 1"),
    ("negative count", _set("sites[0].pools[0].count", -1),
     "sites[0].pools[0].count", "greater than or equal to 0"),
    ("available above count", _set("sites[0].pools[0].available", 17),
     "sites[0].pools[0].available", "available (17) exceeds count (16)"),
    ("count as text", _set("sites[0].pools[0].count", "16"),
     "sites[0].pools[0].count", "valid integer"),
    ("pue below 1", _set("sites[0].pue", 0.9), "sites[0].pue", "greater than or equal to 1"),
    ("subsidy above 1", _set("sites[1].subsidy_discount", 1.5),
     "sites[1].subsidy_discount", "less than or equal to 1"),
    ("period backwards", _set("sites[0].tariff.periods[1]",
                              {"start_h": 22, "end_h": 6, "multiplier": 0.4}),
     "sites[0].tariff.periods[1]", "start_h must be before end_h"),
    ("periods overlap", _set("sites[0].tariff.periods[1].start_h", 7),
     "sites[0].tariff.periods[1]", "overlaps"),
    ("duplicate site", _set("sites[1].id", "east-1"), "sites[1].id", "duplicate site id"),
    ("duplicate job", _set("pending[1].id", "train"), "pending[1].id", "duplicate job id"),
    ("running job id reused", _set("running[0].job.id", "infer"),
     "running[0].job.id", "duplicate job id 'infer'"),
    ("duplicate pool", _set("sites[1].pools", [
        {"type": "A100-80G", "count": 1, "price_cny_per_hour": 1},
        {"type": "A100-80G", "count": 1, "price_cny_per_hour": 1}]),
     "sites[1].pools[1].type", "second pool"),
    ("unknown field", _set("pending[0].colour", "red"), "pending[0].colour", "unknown field"),
    ("missing field", _set("pending[1].gang", ...), "pending[1].gang", "required field"),
    ("naive time", _set("now", "2025-07-15T10:00:00"), "now", "no UTC offset"),
    ("not a time", _set("pending[0].submitted_at", "yesterday"),
     "pending[0].submitted_at", "not an ISO 8601 time"),
    ("deadline before submission", _set("pending[0].deadline", "2025-07-14T00:00:00Z"),
     "pending[0].deadline", "before submitted_at"),
    ("slo without location", _set("pending[1].user_location", ...),
     "pending[1].max_latency_ms", "needs a user_location"),
    ("links neither list nor mesh", _set("links", "all"), "links", "list of links or {mesh"),
    ("mesh without egress", _set("links", {"mesh": {"bandwidth_gbps": 10}}),
     "links.mesh.egress_cny_per_gb", "required"),
    ("no sites", _set("sites", []), "sites", "at least 1"),
    ("NaN price", lambda d: d["sites"][0]["pools"][0].update(price_cny_per_hour=float("nan")),
     "sites[0].pools[0].price_cny_per_hour", "finite"),
]


@pytest.mark.parametrize(("name", "mutate", "path", "words"), BROKEN,
                         ids=[case[0] for case in BROKEN])
def test_broken_snapshot_names_the_path(
    name: str, mutate: Mutation, path: str, words: str
) -> None:
    data = copy.deepcopy(small())
    mutate(data)
    problems = problems_of(data)
    hits = [p for p in problems if f": {path}: " in p]
    assert hits, f"no problem at {path}: {problems}"
    assert any(words in p for p in hits), hits


def test_problem_lines_point_at_the_key() -> None:
    data = small()
    data["pending"][1]["user_location"] = "beijing"
    text = json.dumps(data, indent=2)
    with pytest.raises(SnapshotError) as caught:
        parse_snapshot(text, "s.json")
    (problem,) = caught.value.problems
    lines = text.splitlines()
    assert problem.line is not None and '"user_location": "beijing"' in lines[problem.line - 1]
    assert str(caught.value) == (
        f"s.json:{problem.line}:{problem.column}: pending[1].user_location: "
        "unknown location 'beijing'")


def test_every_problem_is_reported_at_once() -> None:
    data = small()
    data["pending"][0]["tenant"] = "x"
    data["pending"][1]["datasets"] = ["y"]
    data["links"][0]["a"] = "z"
    assert len(problems_of(data)) == 3


@pytest.mark.parametrize(
    ("text", "words", "line"),
    [
        ('{"now": 1, "sites": [\n', "invalid JSON", 2),
        ("", "invalid JSON", 1),
        ("[1, 2]", "one object", None),
        ('{"now": 1, "sites": [NaN]}', "valid dictionary", 1),
    ],
    ids=["truncated", "empty", "array", "nan-site"],
)
def test_not_a_snapshot(text: str, words: str, line: int | None) -> None:
    with pytest.raises(SnapshotError) as caught:
        parse_snapshot(text, "s.json")
    problem = caught.value.problems[0]
    assert words in problem.message
    assert problem.line == line
    assert "s.json" in str(caught.value)


def test_many_problems_are_capped_in_the_message() -> None:
    data = small()
    data["pending"] = [dict(data["pending"][1], id=f"j{i}", tenant="ghost") for i in range(80)]
    with pytest.raises(SnapshotError) as caught:
        parse_snapshot(json.dumps(data), "s.json")
    assert len(caught.value.problems) == 80
    assert str(caught.value).endswith("... and 30 more")


# --------------------------------------------------------------------------- schema


def test_json_schema_describes_the_file() -> None:
    schema = json_schema()
    json.dumps(schema)  # serialisable
    assert set(schema["properties"]) == set(SnapshotDoc.model_fields)
    assert schema["additionalProperties"] is False
    assert {"now", "sites"} <= set(schema["required"])
    now = schema["properties"]["now"]
    assert {"string", "number"} <= {alt["type"] for alt in now["anyOf"]}
