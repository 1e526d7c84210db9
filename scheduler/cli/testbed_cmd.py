"""``isthmus testbed up|down|status``: local Kubernetes sites for trying the scheduler out.

    isthmus testbed up --sites 2        # site-a and site-b, each with the default GPU inventory
    isthmus testbed status
    isthmus testbed down

Each site is its own etcd + kube-apiserver + controller-manager + scheduler + kwok on free
loopback ports (see scheduler/testbed/site.py). ``up`` leaves them running in the background
and writes ``<dir>/<site>/kubeconfig`` and ``<dir>/state.json``; ``down`` stops every process
recorded there. The binaries come from ``make testbed`` (tools/testbed/build.py).
Exit status 1 when a site fails to start or is not running, 2 on bad input.
"""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path
from typing import Annotated, Any

import typer

from scheduler.testbed import site as testbed
from scheduler.testbed import versions

EXIT_FAILED = 1
EXIT_INVALID = 2
DEFAULT_DIR = versions.cache_root() / "sites"

DirOption = Annotated[
    Path, typer.Option("--dir", help="Where the sites' data, kubeconfigs and state.json live.")
]


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Local Kubernetes sites (etcd, apiserver, kwok GPU nodes).", no_args_is_help=True
    )
    group.command("up")(up)
    group.command("down")(down)
    group.command("status")(status)
    app.add_typer(group, name="testbed")


def _state_path(directory: Path) -> Path:
    return directory / "state.json"


def _load(directory: Path) -> list[dict[str, Any]]:
    path = _state_path(directory)
    if not path.exists():
        return []
    sites: list[dict[str, Any]] = json.loads(path.read_text())["sites"]
    return sites


def _save(directory: Path, sites: list[dict[str, Any]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _state_path(directory).write_text(json.dumps({"sites": sites}, indent=2) + "\n")


def _site_names(count: int) -> list[str]:
    letters = string.ascii_lowercase
    return [f"site-{letters[i % 26]}{i // 26 or ''}" for i in range(count)]


def up(
    sites: Annotated[int, typer.Option("--sites", "-n", min=1, help="Number of sites.")] = 1,
    directory: DirOption = DEFAULT_DIR,
) -> None:
    """Start N sites in the background and write their kubeconfigs and state file."""
    running = [s for s in _load(directory) if any(testbed.Site.from_state(s).alive().values())]
    if running:
        typer.echo(f"sites already running in {directory}; `isthmus testbed down` first", err=True)
        raise typer.Exit(EXIT_INVALID)
    missing = versions.missing_binaries()
    if missing:
        typer.echo(f"testbed binaries missing ({', '.join(missing)}): run `make testbed`", err=True)
        raise typer.Exit(EXIT_FAILED)
    started: list[testbed.Site] = []
    for name in _site_names(sites):
        workdir = directory / name
        if workdir.exists():
            shutil.rmtree(workdir)
        try:
            started.append(testbed.start_site(name, workdir=workdir))
        except testbed.TestbedError as err:
            for site in started:
                site.stop()
            _save(directory, [])
            typer.echo(f"{name}: {err}", err=True)
            raise typer.Exit(EXIT_FAILED) from None
        _save(directory, [s.to_state() for s in started])
        typer.echo(f"{name}: {started[-1].server}  kubeconfig {started[-1].kubeconfig}")


def down(directory: DirOption = DEFAULT_DIR) -> None:
    """Stop every process of every site recorded in the state file."""
    states = _load(directory)
    for state in states:
        testbed.Site.from_state(state).stop()
        typer.echo(f"{state['name']}: stopped")
    _save(directory, [])
    if not states:
        typer.echo("no sites")


def status(directory: DirOption = DEFAULT_DIR) -> None:
    """Show each site, its apiserver and whether each of its processes is alive."""
    states = _load(directory)
    if not states:
        typer.echo("no sites")
        raise typer.Exit(EXIT_FAILED)
    healthy = True
    for state in states:
        site = testbed.Site.from_state(state)
        alive = site.alive()
        healthy &= all(alive.values())
        procs = " ".join(f"{n}={'up' if ok else 'DOWN'}" for n, ok in alive.items())
        typer.echo(f"{site.name}: {site.server}  kubeconfig {site.kubeconfig}\n  {procs}")
    if not healthy:
        raise typer.Exit(EXIT_FAILED)


__all__ = ["register"]
