"""The service configuration file: topology, policy, database, sites' adapters, tokens.

Example (paths are relative to the file)::

    topology: ../policies/topology/china-hubs.yaml
    policy: ../policies/default.yaml
    database: sqlite:////var/lib/isthmus/isthmus.db   # default: the user's data dir
    cycle_s: 2.0              # the loop's period; a submission or a site change wakes it early
    down_after: 3             # failed health checks in a row before a site is down
    simulated_speedup: 60     # simulated sites run an hour of work in a minute
    tokens_file: tokens.yaml  # or tokens: [{token: T, tenant: acme}, {token: T, role: operator}]
    datasets:
      - {id: scans, size_gb: 800, replicas: [guiyang], residency: {regions: [Guizhou]}}
    tenants: [{id: acme, home_region: Shanghai}]
    leader_election:          # optional: replicas share a Lease; only its holder runs the loop
      lease: isthmus-leader   # also namespace, kubeconfig (default in-cluster), lease_duration_s
    sites:                    # a site not listed here is `simulated` with its topology pools
      zhangjiakou: {adapter: ray, address: "http://127.0.0.1:8265"}

Every error names the file and the key path; nothing here is read lazily, so a bad file fails
``isthmus serve`` at start, never mid-run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from scheduler.core.ids import TenantId
from scheduler.core.model import Dataset, Tenant
from scheduler.core.snapshot_file import DatasetDoc, TenantDoc, dataset_from_doc, format_path
from scheduler.service.leader import LeaseSettings, default_identity, default_namespace

OPERATOR = "operator"


class ConfigError(ValueError):
    """The configuration (or a file it names) is invalid; the message names file and key."""


def default_database_url() -> str:
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{base / 'isthmus' / 'isthmus.db'}"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenDoc(_Doc):
    token: str = Field(min_length=16, description="bearer token (at least 16 characters)")
    tenant: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    role: Literal["tenant", "operator"] = "tenant"

    @model_validator(mode="after")
    def _tenant_or_operator(self) -> TokenDoc:
        if self.role == "tenant" and not self.tenant:
            raise ValueError("a tenant token needs `tenant` (or set role: operator)")
        return self


class TokensFileDoc(_Doc):
    tokens: list[TokenDoc]


class SiteAdapterDoc(BaseModel):
    model_config = ConfigDict(extra="allow")
    adapter: str = Field(min_length=1)


class LeaderElectionDoc(_Doc):
    lease: str = Field(default="isthmus-leader", min_length=1, max_length=253)
    namespace: str | None = Field(default=None, description="default: $ISTHMUS_NAMESPACE")
    kubeconfig: str | None = Field(default=None, description="default: in-cluster account")
    lease_duration_s: float = Field(default=10.0, ge=2, le=300)
    renew_every_s: float = Field(default=2.0, gt=0, le=60)

    @model_validator(mode="after")
    def _renew_within_lease(self) -> LeaderElectionDoc:
        if self.renew_every_s >= self.lease_duration_s / 2:
            raise ValueError("renew_every_s must be under half of lease_duration_s")
        return self


class ConfigDoc(_Doc):
    topology: str
    policy: str | None = None
    database: str | None = None
    planner: str | None = Field(default=None, description="overrides the policy's planner")
    cycle_s: float = Field(default=2.0, gt=0, le=3600)
    down_after: int = Field(default=3, ge=1, le=1000)
    simulated_speedup: float = Field(default=1.0, gt=0)
    refused_backoff_s: float = Field(default=30.0, ge=0)
    tokens_file: str | None = None
    tokens: list[TokenDoc] = []
    datasets: list[DatasetDoc] = []
    tenants: list[TenantDoc] = []
    sites: dict[str, SiteAdapterDoc] = {}
    leader_election: LeaderElectionDoc | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a token speaks for: a tenant, or the operator role (sees and does everything)."""

    tenant: str | None
    operator: bool = False

    def can_see(self, tenant: str) -> bool:
        return self.operator or self.tenant == tenant


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    topology_path: Path
    policy_path: Path | None
    database_url: str
    planner: str | None = None
    cycle_s: float = 2.0
    down_after: int = 3
    simulated_speedup: float = 1.0
    refused_backoff_s: float = 30.0
    tokens: Mapping[str, Principal] = field(default_factory=dict)
    datasets: tuple[Dataset, ...] = ()
    tenants: tuple[Tenant, ...] = ()
    sites: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    leader_election: LeaseSettings | None = None


def _problems(source: str, err: ValidationError) -> str:
    lines = [f"{source}: {format_path(tuple(e['loc'])) or '(top level)'}: {e['msg']}"
             for e in err.errors()]
    return "\n".join(lines)


def _load_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(err, 'problem', err)}") from None


def _tokens(docs: Sequence[TokenDoc], source: str) -> dict[str, Principal]:
    out: dict[str, Principal] = {}
    for i, doc in enumerate(docs):
        if doc.token in out:
            raise ConfigError(f"{source}: tokens[{i}].token: duplicate token")
        out[doc.token] = Principal(
            tenant=doc.tenant, operator=doc.role == OPERATOR
        )
    return out


def load_tokens(path: Path) -> dict[str, Principal]:
    try:
        doc = TokensFileDoc.model_validate(_load_yaml(path))
    except ValidationError as err:
        raise ConfigError(_problems(str(path), err)) from None
    return _tokens(doc.tokens, str(path))


def load_config(path: Path, *, database: str | None = None) -> ServiceConfig:
    """Read and validate the configuration file at ``path``."""
    data = _load_yaml(path)
    try:
        doc = ConfigDoc.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_problems(str(path), err)) from None
    base = path.parent
    tokens = _tokens(doc.tokens, str(path))
    if doc.tokens_file:
        tokens.update(load_tokens(base / doc.tokens_file))
    env_tokens = os.environ.get("ISTHMUS_TOKENS_FILE")
    if env_tokens:
        tokens.update(load_tokens(Path(env_tokens)))
    return ServiceConfig(
        topology_path=(base / doc.topology).resolve(),
        policy_path=(base / doc.policy).resolve() if doc.policy else None,
        database_url=database or os.environ.get("ISTHMUS_DATABASE_URL") or doc.database
        or default_database_url(),
        planner=doc.planner,
        cycle_s=doc.cycle_s,
        down_after=doc.down_after,
        simulated_speedup=doc.simulated_speedup,
        refused_backoff_s=doc.refused_backoff_s,
        tokens=tokens,
        datasets=tuple(dataset_from_doc(d) for d in doc.datasets),
        tenants=tuple(Tenant(TenantId(t.id), t.home_region) for t in doc.tenants),
        sites={name: s.model_dump() for name, s in doc.sites.items()},
        leader_election=None if doc.leader_election is None else LeaseSettings(
            lease=doc.leader_election.lease,
            namespace=doc.leader_election.namespace or default_namespace(),
            identity=default_identity(),
            lease_duration_s=doc.leader_election.lease_duration_s,
            renew_every_s=doc.leader_election.renew_every_s,
            kubeconfig=str(base / doc.leader_election.kubeconfig)
            if doc.leader_election.kubeconfig else None,
        ),
    )


__all__ = [
    "OPERATOR",
    "ConfigError",
    "Principal",
    "ServiceConfig",
    "default_database_url",
    "load_config",
    "load_tokens",
]
