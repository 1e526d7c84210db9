"""``isthmus policy``: check, show and describe operator policy files.

    isthmus policy validate policies/*.yaml   # FILE: ok, or FILE:LINE:COL: key.path: message
    isthmus policy show policies/prod.yaml    # the effective policy, defaults filled in
    isthmus policy schema > policy.schema.json

Exit status 2 when any file is missing, unreadable or invalid. Problems go to stderr, one per
line, in the ``file:line:col:`` form editors and CI annotate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from scheduler.core.policy.load import PolicyError, Problem, parse_policy
from scheduler.core.policy.model import Policy
from scheduler.core.policy.schema import policy_json_schema, policy_to_data

EXIT_INVALID = 2

policy_app = typer.Typer(
    name="policy",
    help="Check, show and describe operator policy files (YAML).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")


def _load(path: Path) -> Policy | None:
    """The file's policy, or None after printing why not (one line per problem, stderr)."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        typer.echo(f"{name}: cannot read: not UTF-8 text (byte {err.start})", err=True)
        return None
    except OSError as err:
        typer.echo(f"{name}: cannot read: {err.strerror or err}", err=True)
        return None
    try:
        return parse_policy(text, source=name)
    except PolicyError as err:
        _report(err.problems)
        return None


def _report(problems: tuple[Problem, ...]) -> None:
    for problem in problems:
        typer.echo(str(problem), err=True)


@policy_app.command()
def validate(
    files: Annotated[
        list[Path], typer.Argument(help="Policy files to check.", show_default=False)
    ],
) -> None:
    """Check policy files: print FILE: ok, or every problem as FILE:LINE:COL: key: message."""
    failed = 0
    for path in files:
        if _load(path) is None:
            failed += 1
        else:
            typer.echo(f"{path}: ok")
    if failed:
        raise typer.Exit(EXIT_INVALID)


@policy_app.command()
def show(
    file: Annotated[Path, typer.Argument(help="Policy file.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False,
) -> None:
    """Print the effective policy of FILE, every default filled in."""
    policy = _load(file)
    if policy is None:
        raise typer.Exit(EXIT_INVALID)
    data = policy_to_data(policy)
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        typer.echo(f"# effective policy of {file} (defaults filled in)")
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n"))


@policy_app.command()
def schema() -> None:
    """Print the JSON Schema of policy files (for editors, e.g. yaml-language-server)."""
    typer.echo(json.dumps(policy_json_schema(), indent=2, ensure_ascii=False))


@policy_app.command("dry-run")
def dry_run(
    file: Annotated[Path, typer.Argument(help="Policy file to try.", show_default=False)],
    url: Annotated[str, typer.Option("--url", envvar="ISTHMUS_URL",
                                     help="Isthmus server.")] = "http://127.0.0.1:8000",
    token: Annotated[str | None, typer.Option("--token", envvar="ISTHMUS_TOKEN",
                                              show_default=False,
                                              help="The operator's bearer token.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")] = False,
) -> None:
    """What would move if FILE were the policy of the running server now. Changes nothing."""
    from scheduler.cli.client_cmd import policy_dry_run

    if _load(file) is None:  # problems as FILE:LINE:COL before anything is sent
        raise typer.Exit(EXIT_INVALID)
    policy_dry_run(file, url=url, token=token, as_json=as_json)


__all__ = ["register"]
