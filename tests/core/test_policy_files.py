"""Policy files: shipped files parse, broken files report every problem at the right line,
conversion to the solver's dataclasses is exact, and the JSON Schema is usable."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler.core.ids import AcceleratorType, DatasetId, LocationId, SiteId, TenantId
from scheduler.core.model import SiteSelector
from scheduler.core.policy.load import PolicyError, Problem, format_path, parse_policy
from scheduler.core.policy.model import (
    AcceleratorRules,
    LatencyBound,
    ObjectiveWeights,
    Policy,
    PreemptionRules,
    ResidencyRule,
    SolverOptions,
    SpilloverRule,
    TenantPolicy,
)
from scheduler.core.policy.schema import (
    KNOWN_ACCELERATORS,
    PolicyFile,
    policy_json_schema,
    policy_to_data,
    to_policy,
)

ROOT = Path(__file__).resolve().parents[2]
# Policy files only: policies/ also holds other shipped YAML (e.g. topologies).
SHIPPED = [
    ROOT / "policies" / "default.yaml",
    *sorted((ROOT / "policies" / "examples").glob("*.yaml")),
]


def _problems(text: str) -> tuple[Problem, ...]:
    with pytest.raises(PolicyError) as info:
        parse_policy(textwrap.dedent(text), "p.yaml")
    return info.value.problems


# --- shipped files ------------------------------------------------------------------------


def test_the_shipped_policies_are_there() -> None:
    names = {p.relative_to(ROOT / "policies").as_posix() for p in SHIPPED}
    assert {
        "default.yaml",
        "examples/cost-first.yaml",
        "examples/strict-residency.yaml",
        "examples/latency-first-inference.yaml",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_policy_parses(path: Path) -> None:
    policy = parse_policy(path.read_text(encoding="utf-8"), str(path))
    assert policy.name


def test_default_yaml_is_exactly_the_dataclass_defaults() -> None:
    text = (ROOT / "policies" / "default.yaml").read_text(encoding="utf-8")
    assert parse_policy(text, "default.yaml") == Policy()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_show_output_round_trips(path: Path) -> None:
    policy = parse_policy(path.read_text(encoding="utf-8"), str(path))
    dumped = yaml.safe_dump(policy_to_data(policy), sort_keys=False)
    assert parse_policy(dumped, "dumped.yaml") == policy


def test_examples_say_what_they_mean() -> None:
    examples = ROOT / "policies" / "examples"
    cost = parse_policy((examples / "cost-first.yaml").read_text(), "cost-first.yaml")
    assert cost.objective.latency == 0.0
    assert frozenset({AcceleratorType("H100-80G"), AcceleratorType("H800-80G")}) in (
        cost.accelerators.equivalences
    )
    strict = parse_policy((examples / "strict-residency.yaml").read_text(), "strict.yaml")
    (spill,) = strict.spillover
    assert (spill.source.labels, spill.target.labels, spill.above) == (
        {"side": "east"}, {"side": "west"}, 0.8,
    )
    assert len(strict.residency) >= 3


# --- empty and trivial files --------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "{}\n", "~\n"])
def test_empty_file_is_the_default_policy(text: str) -> None:
    assert parse_policy(text, "empty.yaml") == Policy()


# --- broken files -------------------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    name: str
    text: str
    want: tuple[tuple[str, int, str], ...]  # (key path, line, part of the message), in order


BROKEN = [
    Broken(
        "unknown top-level key",
        """\
        name: x
        planer: optimizer
        """,
        (("planer", 2, "unknown key 'planer' (did you mean 'planner'?); allowed keys: name"),),
    ),
    Broken(
        "unknown nested key",
        """\
        residency:
          - name: r
            tenants: [t]
            allow:
              regionz: [Shanghai]
        """,
        (("residency[0].allow.regionz", 5, "allowed keys: sites, regions, hubs, labels"),),
    ),
    Broken(
        "wrong type",
        """\
        objective:
          rental: lots
        """,
        (("objective.rental", 2, "expected a number, got the string 'lots'"),),
    ),
    Broken(
        "quoted number is not a number",
        """\
        solver: {seed: "3"}
        """,
        (("solver.seed", 1, "expected a whole number"),),
    ),
    Broken(
        "negative weight",
        """\
        # costs
        objective:
          energy: -1
        """,
        (("objective.energy", 3, "must be >= 0, got -1"),),
    ),
    Broken(
        "unknown accelerator in speed",
        """\
        accelerators:
          speed:
            A100-80G: 1.0
            H200-141G: 1.4
        """,
        (("accelerators.speed.H200-141G", 4,
          "unknown accelerator type 'H200-141G'; known types: " + ", ".join(KNOWN_ACCELERATORS)),),
    ),
    Broken(
        "unknown accelerator in an equivalence group",
        """\
        accelerators:
          equivalences:
            - [H100-80G, H800-80G]
            - [A100-80G,
               B200]
        """,
        (("accelerators.equivalences[1][1]", 5, "unknown accelerator type 'B200'"),),
    ),
    Broken(
        "utilisation above 1",
        """\
        spillover:
          - name: east-to-west
            from: {labels: {side: east}}
            to: {labels: {side: west}}
            above_utilisation: 1.5
        """,
        (("spillover[0].above_utilisation", 5, "must be <= 1, got 1.5"),),
    ),
    Broken(
        "YAML syntax error",
        """\
        objective:
          energy: 1
           rental: 2
        """,
        (("", 3, "YAML syntax error: mapping values are not allowed here"),),
    ),
    Broken(
        "rule with neither dataset nor tenant",
        """\
        residency:
          - name: ok
            tenants: [t]
            allow: {sites: [qingpu]}
          - name: about-nothing
            allow: {hubs: [Gansu]}
        """,
        (("residency[1]", 5, "must name at least one dataset or tenant"),),
    ),
    Broken(
        "rule that allows nowhere",
        """\
        residency:
          - name: r
            datasets: [d]
        """,
        (("residency[0]", 2, "set 'allow' or 'within'"),),
    ),
    Broken(
        "empty selector",
        """\
        spillover:
          - name: s
            from: {}
            to: {hubs: [Gansu]}
            above_utilisation: 0.5
        """,
        (("spillover[0].from", 3, "selects no sites"),),
    ),
    Broken(
        "missing required key",
        """\
        spillover:
          - name: s
            from: {hubs: [Ningxia]}
            above_utilisation: 0.5
        """,
        (("spillover[0].to", 2, "required key is missing"),),
    ),
    Broken(
        "unknown planner",
        """\
        planner: fastest
        """,
        (("planner", 1, "unknown planner 'fastest'; known planners: optimizer, local-only"),),
    ),
    Broken(
        "boolean where a string is meant",
        """\
        residency:
          - name: r
            tenants: [t]
            allow: {labels: {side: yes}}
        """,
        (("residency[0].allow.labels.side", 4, "YAML reads yes/no/on/off/true/false"),),
    ),
    Broken(
        "empty section",
        """\
        name: x
        solver:
        """,
        (("solver", 2, "got nothing (an empty value); remove the key"),),
    ),
    Broken(
        "duplicate key",
        """\
        objective:
          energy: 1
        objective:
          energy: 2
        """,
        (("objective", 3, "duplicate key 'objective' (first at line 1)"),),
    ),
    Broken(
        "duplicate rule name",
        """\
        residency:
          - {name: r, tenants: [a], allow: {sites: [qingpu]}}
          - {name: r, tenants: [b], allow: {sites: [wuhu]}}
        """,
        (("residency[1].name", 3, "residency rule name 'r' is already used by rule 0"),),
    ),
    Broken(
        "type in two equivalence groups",
        """\
        accelerators:
          equivalences:
            - [H100-80G, H800-80G]
            - [A100-80G, H800-80G]
        """,
        (("accelerators.equivalences[1][1]", 4, "already in equivalences[0]"),),
    ),
    Broken(
        "group of one",
        """\
        accelerators:
          equivalences: [[H100-80G]]
        """,
        (("accelerators.equivalences[0]", 2, "needs at least 2 items, got 1"),),
    ),
    Broken(
        "not finite",
        """\
        power_caps_kw: {qingpu: .inf}
        """,
        (("power_caps_kw.qingpu", 1, "expected a finite number"),),
    ),
    Broken(
        "document is not a mapping",
        """\
        - name: x
        """,
        (("", 1, "expected a mapping of keys, got a list"),),
    ),
    Broken(
        "several errors in one file",
        """\
        name: several
        objective:
          energy: -0.5
          queue_cny_per_accelerator_hour: 0
        tenants:
          acme: {quota_accelerators: 1.5, priority_weight: 0}
        preemption:
          enabled: maybe
          min_priority_gap: 0
        accelerators:
          speed: {TPUv5: 2}
        colour: blue
        """,
        (
            ("objective.energy", 3, "must be >= 0, got -0.5"),
            ("objective.queue_cny_per_accelerator_hour", 4, "must be > 0, got 0"),
            ("tenants.acme.quota_accelerators", 6, "expected a whole number, got 1.5"),
            ("tenants.acme.priority_weight", 6, "must be > 0, got 0"),
            ("preemption.enabled", 8, "expected true or false, got the string 'maybe'"),
            ("preemption.min_priority_gap", 9, "must be >= 1, got 0"),
            ("accelerators.speed.TPUv5", 11, "unknown accelerator type 'TPUv5'"),
            ("colour", 12, "unknown key 'colour'"),
        ),
    ),
]


@pytest.mark.parametrize("case", BROKEN, ids=lambda c: c.name)
def test_broken_policy_reports_every_problem_at_its_line(case: Broken) -> None:
    problems = _problems(case.text)
    got = [(p.path, p.line) for p in problems]
    assert got == [(path, line) for path, line, _ in case.want]
    for problem, (_, _, message) in zip(problems, case.want, strict=True):
        assert message in problem.message
        assert problem.source == "p.yaml"
        assert problem.column >= 1


def test_columns_point_at_the_value_or_the_key() -> None:
    problems = _problems("""\
        objective:
          energy: -1
          enrgy: 2
        """)
    assert [(p.line, p.column) for p in problems] == [(2, 11), (3, 3)]


def test_problem_prints_as_file_line_col_path_message() -> None:
    (problem,) = _problems("objective: {energy: -1}\n")
    assert str(problem) == "p.yaml:1:21: objective.energy: must be >= 0, got -1"
    (syntax,) = _problems("a: [1\n")
    assert str(syntax).startswith("p.yaml:2:1: YAML syntax error: ")


def test_policy_error_message_lists_all_problems() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy("objective: {energy: -1, rental: -1}\n", "p.yaml")
    assert str(info.value).count("p.yaml:1:") == 2


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        ((), ""),
        (("objective", "energy"), "objective.energy"),
        (("residency", 1, "allow", "regions"), "residency[1].allow.regions"),
        (("accelerators", "equivalences", 0, 1), "accelerators.equivalences[0][1]"),
        (("tenants", "a.b", "priority_weight"), 'tenants["a.b"].priority_weight'),
    ],
)
def test_format_path(loc: tuple[int | str, ...], path: str) -> None:
    assert format_path(loc) == path


# --- conversion ---------------------------------------------------------------------------

FULL = """\
name: full
planner: greedy-cheapest
objective:
  energy: 2
  rental: 0.5
  transfer: 0
  queue: 3
  latency: 1.5
  queue_cny_per_accelerator_hour: 40
  wait_horizon_h: 0.5
  latency_cny_per_ms_hour: 0.2
residency:
  - name: yrd
    datasets: [ledger, ledger, trades]
    tenants: [bank]
    allow:
      sites: [qingpu]
      regions: [Anhui]
      hubs: [Yangtze River Delta]
      labels: {side: east}
    within: {location: shanghai, max_ms: 10}
  - name: near-chengdu
    tenants: [sichuan-gov]
    within: {location: chengdu, max_ms: 8}
tenants:
  bank: {quota_accelerators: 64, priority_weight: 2}
  lab: {}
  2024: {priority_weight: 0.5}
power_caps_kw: {qingpu: 800, shaoguan: 650.5}
spillover:
  - name: east-to-west
    from: {labels: {side: east}}
    to: {labels: {side: west}}
    above_utilisation: 0.8
accelerators:
  equivalences: [[H100-80G, H800-80G], [RTX4090-48G, L40S-48G]]
  speed: {H20-96G: 0.6, A100-80G: 1}
preemption: {enabled: true, min_priority_gap: 2, only_checkpointable: false}
solver: {time_limit_s: 3, seed: 42, initial_columns: 12}
"""


def test_conversion_yields_the_expected_dataclasses() -> None:
    east, west = SiteSelector(labels={"side": "east"}), SiteSelector(labels={"side": "west"})
    want = Policy(
        name="full",
        planner="greedy-cheapest",
        objective=ObjectiveWeights(2.0, 0.5, 0.0, 3.0, 1.5, 40.0, 0.5, 0.2),
        residency=(
            ResidencyRule(
                name="yrd",
                datasets=frozenset({DatasetId("ledger"), DatasetId("trades")}),
                tenants=frozenset({TenantId("bank")}),
                allow=SiteSelector(
                    sites=frozenset({SiteId("qingpu")}),
                    regions=frozenset({"Anhui"}),
                    hubs=frozenset({"Yangtze River Delta"}),
                    labels={"side": "east"},
                ),
                within=LatencyBound(LocationId("shanghai"), 10.0),
            ),
            ResidencyRule(
                name="near-chengdu",
                tenants=frozenset({TenantId("sichuan-gov")}),
                within=LatencyBound(LocationId("chengdu"), 8.0),
            ),
        ),
        tenants={
            TenantId("bank"): TenantPolicy(64, 2.0),
            TenantId("lab"): TenantPolicy(),
            TenantId("2024"): TenantPolicy(None, 0.5),
        },
        power_caps_kw={SiteId("qingpu"): 800.0, SiteId("shaoguan"): 650.5},
        spillover=(SpilloverRule("east-to-west", east, west, 0.8),),
        accelerators=AcceleratorRules(
            equivalences=(
                frozenset({AcceleratorType("H100-80G"), AcceleratorType("H800-80G")}),
                frozenset({AcceleratorType("RTX4090-48G"), AcceleratorType("L40S-48G")}),
            ),
            speed={AcceleratorType("H20-96G"): 0.6, AcceleratorType("A100-80G"): 1.0},
        ),
        preemption=PreemptionRules(True, 2, False),
        solver=SolverOptions(3.0, 42, 12),
    )
    got = parse_policy(FULL, "full.yaml")
    assert got == want
    assert isinstance(got.objective.energy, float)
    assert isinstance(got.solver.time_limit_s, float)
    assert isinstance(got.residency[0].datasets, frozenset)


def test_converted_mappings_are_read_only() -> None:
    policy = parse_policy(FULL, "full.yaml")
    mappings: list[Any] = [
        policy.tenants, policy.power_caps_kw, policy.accelerators.speed,
        policy.spillover[0].source.labels,
    ]
    for mapping in mappings:
        with pytest.raises(TypeError):
            mapping["x"] = 1


def test_defaults_come_from_the_dataclasses() -> None:
    assert to_policy(PolicyFile()) == Policy()
    partial = parse_policy("objective: {energy: 3}\n", "p.yaml")
    assert partial.objective == ObjectiveWeights(energy=3.0)
    assert partial.solver == SolverOptions()


# --- JSON Schema --------------------------------------------------------------------------


def _objects(node: Any) -> list[dict[str, Any]]:
    """Every schema object that declares properties."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append(node)
        for value in node.values():
            found.extend(_objects(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_objects(value))
    return found


def test_json_schema_is_json_and_closed() -> None:
    schema = json.loads(json.dumps(policy_json_schema()))
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["properties"]) == {
        "name", "planner", "objective", "residency", "tenants", "power_caps_kw", "spillover",
        "accelerators", "preemption", "solver",
    }
    objects = _objects(schema)
    assert len(objects) >= 10
    assert all(obj.get("additionalProperties") is False for obj in objects)
    spill = schema["$defs"]["SpilloverSection"]
    assert {"from", "to"} <= set(spill["required"])


def test_json_schema_accepts_shipped_policies_and_rejects_unknown_keys() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = policy_json_schema()
    for path in SHIPPED:
        jsonschema.validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"objective": {"enrgy": 1}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"accelerators": {"speed": {"B200": 1}}}, schema)
