"""``isthmus submit | jobs | job | logs | cancel | explain | sites``: talk to a running server.

    export ISTHMUS_URL=http://127.0.0.1:8000 ISTHMUS_TOKEN=local-acme-token-000000001
    isthmus submit -f job.yaml                        # the API's job body, as YAML
    isthmus submit --name embed --entrypoint "python embed.py" --type RTX4090-48G \\
        --gpus 1 --workers 4 --runtime-h 0.5 --wait
    isthmus jobs --state RUNNING --state PENDING      # the most recent 50, as a table
    isthmus job ID | isthmus logs ID -f | isthmus explain ID | isthmus cancel ID
    isthmus sites --json | jq '.[] | {name, utilisation}'

Every command takes ``--url`` and ``--token`` (or ISTHMUS_URL, ISTHMUS_TOKEN) and ``--json``,
which prints the API's JSON for scripts instead of tables for people.

Exit status: 0 done; 2 bad input — an unreadable or invalid job file (``FILE:LINE:COL: field:
message``) or a request the server refused (4xx, one line naming the field); 1 the server could
not be reached or failed, or ``submit --wait`` saw the job end other than SUCCEEDED. Errors are
one line on stderr, never a traceback. Every call goes through the SDK (``scheduler.sdk``).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from scheduler.api.models import JobSubmit
from scheduler.sdk import (
    ApiError,
    Client,
    Explanation,
    IsthmusError,
    Job,
    JobState,
    SiteInfo,
    Timeout,
    TransportError,
    Unauthorized,
)

EXIT_FAILED = 1  # the server could not be reached or failed; a waited-for job did not succeed
EXIT_INVALID = 2  # bad input: a bad job file, or a request the server refused
DEFAULT_URL = "http://127.0.0.1:8000"

Url = Annotated[str, typer.Option("--url", envvar="ISTHMUS_URL",
                                  help="Isthmus server.", rich_help_panel="Server")]
Token = Annotated[str | None, typer.Option(
    "--token", envvar="ISTHMUS_TOKEN", show_default=False, rich_help_panel="Server",
    help="Bearer token (a tenant's or the operator's).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]
JobIdArg = Annotated[str, typer.Argument(help="Job id.", show_default=False)]


def register(app: typer.Typer) -> None:
    for name, command in (("submit", submit), ("jobs", jobs), ("job", job), ("logs", logs),
                          ("cancel", cancel), ("explain", explain), ("sites", sites)):
        app.command(name)(command)


# ---------------------------------------------------------------------- errors


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@dataclass
class JobFile:
    """A job file's text composed into nodes (which keep line and column), and which body
    fields the command line's flags replaced."""

    path: Path
    root: yaml.Node | None
    overridden: set[str] = field(default_factory=set)


def _origin(field_path: str, source: JobFile | None) -> str:
    """A field and where its value came from: ``job.yaml:4:3: gang.workers`` for the job
    file, ``gang.workers (--workers)`` for a flag."""
    top = _top(field_path)
    if source is not None and top not in source.overridden:
        mark = _locate(source.root, field_path)
        if mark is not None:
            return f"{source.path}:{mark.line + 1}:{mark.column + 1}: {field_path}"
    flag = FLAGS.get(top)
    if flag is not None and (source is None or top in source.overridden):
        return f"{field_path} ({flag})"
    return field_path


@contextmanager
def _server(url: str, token: str | None, source: JobFile | None = None) -> Iterator[Client]:
    """A client of ``url``; an SDK error inside becomes one line on stderr and an exit."""
    try:
        with Client(url, token) as client:
            yield client
    except Unauthorized as err:
        hint = "" if token else " (give --token or set ISTHMUS_TOKEN)"
        _fail(f"{url}: {err.message}{hint}", EXIT_INVALID)
    except ApiError as err:
        if err.status >= 500:
            _fail(f"{url}: server error {err.status}: {err.message}", EXIT_FAILED)
        text = err.message
        if err.field:
            text = f"{_origin(err.field, source)}: {text.removeprefix(err.field + ': ')}"
        _fail(text, EXIT_INVALID)
    except (TransportError, Timeout) as err:
        _fail(str(err), EXIT_FAILED)
    except IsthmusError as err:
        _fail(f"{url}: {err}", EXIT_FAILED)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


# ---------------------------------------------------------------------- the job file

# Body field -> the flag that sets it (the flags override the file).
FLAGS = {
    "name": "--name",
    "entrypoint": "--entrypoint",
    "gang.workers": "--workers",
    "gang.accelerators_per_worker": "--gpus",
    "gang.allowed_types": "--type",
    "gang.min_memory_gb": "--min-memory-gb",
    "runtime_h": "--runtime-h",
    "priority": "--priority",
    "deadline": "--deadline",
    "datasets": "--dataset",
    "user_location": "--user-location",
    "max_latency_ms": "--max-latency-ms",
    "preemptible": "--preemptible",
    "checkpointable": "--checkpointable",
    "home_region": "--home-region",
    "max_runtime_h": "--max-runtime-h",
    "labels": "--label",
}
GANG_FIELDS = {"workers", "accelerators_per_worker", "allowed_types", "min_memory_gb"}
_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _parts(field_path: str) -> list[str | int]:
    return [int(i) if i else name for i, name in _PART.findall(field_path)]


def _top(field_path: str) -> str:
    """The body field a path is in, as FLAGS names it: "gang.allowed_types[1]" ->
    "gang.allowed_types", "runtime_h.H20-96G" -> "runtime_h"."""
    parts = _parts(field_path)
    if parts[:1] == ["gang"] and len(parts) > 1:
        return f"gang.{parts[1]}"
    return str(parts[0]) if parts else ""


def _locate(root: yaml.Node | None, field_path: str) -> yaml.Mark | None:
    """Where in the file ``field_path`` is, or the nearest enclosing part that is there."""
    if root is None:
        return None
    node, mark = root, root.start_mark
    for part in _parts(field_path):
        if isinstance(node, yaml.MappingNode):
            entry = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if entry is None:
                break
            mark, node = entry[0].start_mark, entry[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            node = node.value[part]
            mark = node.start_mark
        else:
            break
    return mark


def read_job_file(path: Path) -> tuple[dict[str, Any], JobFile]:
    """The job body in ``path`` and its node tree. Exits (2) when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        _fail(f"{path}: cannot read: not UTF-8 text (byte {err.start})", EXIT_INVALID)
    except OSError as err:
        _fail(f"{path}: cannot read: {err.strerror or err}", EXIT_INVALID)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        _fail(f"{path}{where}: invalid YAML: {problem}", EXIT_INVALID)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        _fail(f"{path}:1:1: a job file is a mapping of job fields (name, entrypoint, gang, "
              f"runtime_h, ...), not a {type(data).__name__}", EXIT_INVALID)
    return data, JobFile(path, root)


def _loc_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        text = str(part)
        if isinstance(part, int):
            out += f"[{part}]"
        elif text in {"float", "int", "str", "bool"} or "[" in text:
            continue  # a union member's tag, e.g. runtime_h's "float" or "dict[...]"
        else:
            out += f".{text}" if out else text
    return out


def _problem(err: ValidationError, source: JobFile | None) -> str:
    """The first problem of a job body, phrased for whoever wrote it (file or flag)."""
    # An unknown key first: a misspelt field often also reports the real one as missing.
    first = min(err.errors(), key=lambda e: e.get("type") != "extra_forbidden")
    path = _loc_path(tuple(first.get("loc", ())))
    message = str(first.get("msg", "invalid"))
    kind = first.get("type")
    if kind == "extra_forbidden":
        known = GANG_FIELDS if path.startswith("gang.") else set(JobSubmit.model_fields)
        message = f"unknown field; known: {', '.join(sorted(known))}"
    elif kind == "missing":
        flag = FLAGS.get(path)
        message = "required" + (f"; give {flag} or set it in the job file" if flag else "")
    elif kind == "value_error":
        message = message.removeprefix("Value error, ")
    more = len(err.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    if not path:  # the body as a whole; the message names its fields
        where = f"{source.path}: " if source is not None else ""
        return f"{where}{message}{tail}"
    return f"{_origin(path, source)}: {message}{tail}"


def _set(body: dict[str, Any], path: str, value: Any, source: JobFile | None) -> None:
    if path.startswith("gang."):
        gang = body.get("gang")
        if not isinstance(gang, dict):
            gang = body["gang"] = {}
        gang[path.removeprefix("gang.")] = value
    else:
        body[path] = value
    if source is not None:
        source.overridden.add(path)


def _labels(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"--label: expected KEY=VALUE, got {pair!r}", EXIT_INVALID)
        out[key] = value
    return out


def _sdk_arguments(body: JobSubmit) -> dict[str, Any]:
    """Keyword arguments of ``Client.submit`` for a validated body."""
    deadline = body.deadline
    if deadline is not None and deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=UTC)  # the API's rule: a naive time is UTC
    return {
        "name": body.name,
        "entrypoint": body.entrypoint,
        "workers": body.gang.workers,
        "accelerators_per_worker": body.gang.accelerators_per_worker,
        "allowed_types": list(body.gang.allowed_types),
        "min_memory_gb": body.gang.min_memory_gb,
        "runtime_h": body.runtime_h,
        "priority": body.priority,
        "deadline": deadline,
        "datasets": list(body.datasets),
        "user_location": body.user_location,
        "max_latency_ms": body.max_latency_ms,
        "preemptible": body.preemptible,
        "checkpointable": body.checkpointable,
        "home_region": body.home_region,
        "max_runtime_h": body.max_runtime_h,
        "runtime_env": body.runtime_env,
        "labels": body.labels,
    }


# ---------------------------------------------------------------------- submit


def submit(
    file: Annotated[Path | None, typer.Option(
        "--file", "-f", show_default=False, dir_okay=False,
        help="Job file (YAML): the API's job body. Flags override its fields.")] = None,
    name: Annotated[str | None, typer.Option(help="Job name.", show_default=False)] = None,
    entrypoint: Annotated[str | None, typer.Option(
        "--entrypoint", "-e", help="Shell command the Ray job runs.", show_default=False)] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", "-w", help="Workers in the gang (default 1).", show_default=False)] = None,
    gpus: Annotated[int | None, typer.Option(
        "--gpus", "--accelerators-per-worker", help="Accelerators per worker.",
        show_default=False)] = None,
    types: Annotated[list[str] | None, typer.Option(
        "--type", "-t", help="Accelerator type the job can use (repeat for more).",
        show_default=False)] = None,
    runtime_h: Annotated[float | None, typer.Option(
        "--runtime-h", help="Estimated hours on the first type.", show_default=False)] = None,
    min_memory_gb: Annotated[float | None, typer.Option(
        help="Memory per accelerator, GB.", show_default=False)] = None,
    priority: Annotated[int | None, typer.Option(help="0 to 10.", show_default=False)] = None,
    deadline: Annotated[str | None, typer.Option(
        help="ISO 8601 time (no offset: UTC).", show_default=False)] = None,
    datasets: Annotated[list[str] | None, typer.Option(
        "--dataset", help="Dataset the job reads (repeat for more).", show_default=False)] = None,
    user_location: Annotated[str | None, typer.Option(
        help="Where the job's users are (a topology location).", show_default=False)] = None,
    max_latency_ms: Annotated[float | None, typer.Option(
        help="Round-trip latency the users may see, at most.", show_default=False)] = None,
    preemptible: Annotated[bool | None, typer.Option(
        "--preemptible/--no-preemptible", help="May be stopped for more urgent work.",
        show_default=False)] = None,
    checkpointable: Annotated[bool | None, typer.Option(
        "--checkpointable/--no-checkpointable", help="Resumes from a checkpoint.",
        show_default=False)] = None,
    home_region: Annotated[str | None, typer.Option(
        help="Region the job comes from (default: its tenant's).", show_default=False)] = None,
    max_runtime_h: Annotated[float | None, typer.Option(
        help="Hard limit: the site stops the job after this many hours.",
        show_default=False)] = None,
    labels: Annotated[list[str] | None, typer.Option(
        "--label", help="KEY=VALUE (repeat for more).", show_default=False)] = None,
    tenant: Annotated[str | None, typer.Option(
        help="Submit for this tenant (operators).", show_default=False)] = None,
    idempotency_key: Annotated[str | None, typer.Option(
        help="Repeats with one key create one job.", show_default=False)] = None,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Wait for the job to end; exit 1 unless it SUCCEEDED.")] = False,
    timeout: Annotated[float | None, typer.Option(
        help="With --wait: give up after this many seconds.", show_default=False)] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Submit a job, from flags or a job file (-f job.yaml), or both."""
    body: dict[str, Any] = {}
    source: JobFile | None = None
    if file is not None:
        body, source = read_job_file(file)
    flags: dict[str, Any] = {
        "name": name, "entrypoint": entrypoint, "gang.workers": workers,
        "gang.accelerators_per_worker": gpus, "gang.allowed_types": types or None,
        "gang.min_memory_gb": min_memory_gb, "runtime_h": runtime_h, "priority": priority,
        "deadline": deadline, "datasets": datasets or None, "user_location": user_location,
        "max_latency_ms": max_latency_ms, "preemptible": preemptible,
        "checkpointable": checkpointable, "home_region": home_region,
        "max_runtime_h": max_runtime_h, "labels": _labels(labels) if labels else None,
    }
    for path, value in flags.items():
        if value is not None:
            _set(body, path, value, source)
    if isinstance(body.get("gang"), dict):
        body["gang"].setdefault("workers", 1)  # as in the SDK
    try:
        valid = JobSubmit.model_validate(body)
    except ValidationError as err:
        _fail(_problem(err, source), EXIT_INVALID)
    with _server(url, token, source) as client:
        created = client.submit(**_sdk_arguments(valid), tenant=tenant,
                                idempotency_key=idempotency_key)
        if not as_json:
            spec = created.spec
            typer.echo(f"submitted {created.id} ({created.name}): {spec.workers} x "
                       f"{spec.accelerators_per_worker} of {' | '.join(spec.allowed_types)}, "
                       f"{created.state.value}")
        final = client.wait(created.id, timeout=timeout, progress=not as_json) if wait else None
    shown = final or created
    if as_json:
        _print_json(shown.to_json())
    elif final is not None:
        _show_job(final)
    if final is not None and final.state is not JobState.SUCCEEDED:
        raise typer.Exit(EXIT_FAILED)


# ---------------------------------------------------------------------- jobs, job


def _ago(t: datetime | None, now: datetime) -> str:
    if t is None:
        return "-"
    s = max(0.0, (now - t).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s / size:.0f}{unit} ago"
    return f"{s:.0f}s ago"


_STYLE = {
    JobState.SUCCEEDED: "green", JobState.FAILED: "red", JobState.CANCELLED: "yellow",
    JobState.RUNNING: "cyan", JobState.PENDING: "magenta",
}


def _state(state: JobState) -> str:
    style = _STYLE.get(state)
    return f"[{style}]{state.value}[/{style}]" if style else state.value


def _gang(job: Job) -> str:
    kind = job.accelerator or "|".join(job.spec.allowed_types)
    return f"{job.spec.workers}x{job.spec.accelerators_per_worker} {kind}"


def jobs(
    states: Annotated[list[str] | None, typer.Option(
        "--state", "-s", help="Only jobs in this state (repeat for more).",
        show_default=False)] = None,
    site: Annotated[str | None, typer.Option(help="Only jobs at this site.",
                                             show_default=False)] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's jobs (operators).",
                                               show_default=False)] = None,
    limit: Annotated[int, typer.Option(
        "--limit", "-n", min=1, help="Show the N most recently submitted.")] = 50,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List jobs, oldest first, the most recent --limit of them."""
    wanted: list[JobState] = []
    for s in states or ():
        try:
            wanted.append(JobState(s.upper()))
        except ValueError:
            _fail(f"--state: unknown state {s!r}; known: "
                  f"{', '.join(x.value for x in JobState)}", EXIT_INVALID)
    with _server(url, token) as client:
        # The API pages oldest first; keep the last `limit` of what matches.
        recent = deque(client.list(states=wanted or None, site=site, tenant=tenant,
                                   limit=1000), maxlen=limit)
    if as_json:
        _print_json([j.to_json() for j in recent])
        return
    console = _console()
    if not recent:
        console.print("no jobs")
        return
    now = datetime.now(UTC)
    table = Table(box=None, pad_edge=False)
    table.add_column("ID", no_wrap=True, min_width=len(recent[-1].id))
    table.add_column("NAME", overflow="fold")
    table.add_column("STATE", no_wrap=True)
    table.add_column("SITE", no_wrap=True)
    table.add_column("GANG", no_wrap=True)
    table.add_column("SUBMITTED", no_wrap=True)
    table.add_column("MESSAGE", overflow="fold")
    for j in recent:
        table.add_row(j.id, escape(j.name), _state(j.state), j.site or "-", escape(_gang(j)),
                      _ago(j.submitted_at, now), escape(j.message or j.reason))
    console.print(table)


def _show_job(j: Job, events: list[Any] | None = None) -> None:
    console = _console()
    spec = j.spec
    rows: list[tuple[str, str]] = [
        ("job", f"{j.id} ({escape(j.name)}), tenant {j.tenant}"),
        ("state", _state(j.state) + (" (cancel requested)" if j.cancel_requested
                                     and not j.state.is_terminal() else "")),
    ]
    if j.reason or j.message:
        rows.append(("why", escape(" - ".join(x for x in (j.reason, j.message) if x))))
    if j.site:
        rows.append(("where", f"{j.site} on {j.spec.accelerators} x {j.accelerator} "
                              f"(attempt {j.attempt}, dispatch {j.dispatch_name or '-'})"))
    rows.append(("gang", f"{spec.workers} worker(s) x {spec.accelerators_per_worker} of "
                         f"{' | '.join(spec.allowed_types)}"))
    rows.append(("runtime", ", ".join(f"{h:g} h on {t}" for t, h in spec.runtime_h.items())))
    rows.append(("entrypoint", escape(spec.entrypoint)))
    optional = {
        "deadline": spec.deadline.isoformat() if spec.deadline else None,
        "datasets": ", ".join(spec.datasets) or None,
        "user location": spec.user_location,
        "max latency": f"{spec.max_latency_ms:g} ms" if spec.max_latency_ms else None,
        "home region": spec.home_region,
        "labels": ", ".join(f"{k}={v}" for k, v in spec.labels.items()) or None,
        "estimated cost": (f"{j.estimated_cost_cny:,.2f} CNY"
                           if j.estimated_cost_cny is not None else None),
    }
    rows.extend((k, escape(v)) for k, v in optional.items() if v)
    rows.append(("submitted", j.submitted_at.isoformat(timespec="seconds")))
    if j.started_at:
        rows.append(("started", j.started_at.isoformat(timespec="seconds")))
    if j.finished_at:
        rows.append(("finished", j.finished_at.isoformat(timespec="seconds")))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(key, value)
    console.print(grid)
    if events:
        table = Table(title="events", title_justify="left", box=None, pad_edge=False)
        table.add_column("AT", no_wrap=True)
        table.add_column("EVENT", no_wrap=True)
        table.add_column("MESSAGE", overflow="fold")
        for e in events:
            table.add_row(e.at.isoformat(timespec="milliseconds"), e.kind, escape(e.message))
        console.print()
        console.print(table)


def job(
    job_id: JobIdArg,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Show one job: its state and why, where it runs, what it asked for, its history."""
    with _server(url, token) as client:
        got = client.get(job_id)
        if as_json:
            _print_json(got.to_json())
            return
        history = client.events(job_id)
    _show_job(got, history)


# ---------------------------------------------------------------------- logs, cancel, explain


def logs(
    job_id: JobIdArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job "
                                                                "ends.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Print the driver log of the job's current attempt."""
    with _server(url, token) as client:
        for line in client.logs(job_id, follow=follow):
            if as_json:
                typer.echo(json.dumps({"job": job_id, "line": line}, ensure_ascii=False))
            else:
                typer.echo(line)  # click flushes each line: a followed log shows at once


def cancel(
    job_id: JobIdArg,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Cancel a job: at once if it waits; its site stops it first if it was placed."""
    with _server(url, token) as client:
        got = client.cancel(job_id)
    if as_json:
        _print_json(got.to_json())
    elif got.state.is_terminal():
        typer.echo(f"{got.id}: {got.state.value}")
    else:
        typer.echo(f"{got.id}: cancel requested ({got.state.value}"
                   f"{' at ' + got.site if got.site else ''}); `isthmus job {got.id}` "
                   f"shows when it has stopped")


def _show_explanation(why: Explanation) -> None:
    console = _console()
    console.print(f"{why.job}: {_state(why.state)}"
                  + (f" at {why.site} on {why.accelerator}" if why.site else ""))
    if why.summary:
        console.print(escape(why.summary))
    if why.reason or why.message:
        console.print(escape("why: " + " - ".join(x for x in (why.reason, why.message) if x)))
    if why.options_considered is not None:
        console.print(f"options considered: {why.options_considered}"
                      + (f" (planner {why.planner})" if why.planner else ""))
    if why.eliminated:
        table = Table(title="options ruled out", title_justify="left", box=None, pad_edge=False)
        table.add_column("REASON")
        table.add_column("OPTIONS", justify="right")
        for reason, n in sorted(why.eliminated.items(), key=lambda kv: -kv[1]):
            table.add_row(escape(reason), str(n))
        console.print(table)
    if why.runner_up:
        console.print(escape(f"runner-up: {why.runner_up}"))


def explain(
    job_id: JobIdArg,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Why the job is where it is, or why it waits."""
    with _server(url, token) as client:
        why = client.explain(job_id)
    if as_json:
        _print_json(why.to_json())
    else:
        _show_explanation(why)


# ---------------------------------------------------------------------- sites


def _pools(site: SiteInfo) -> str:
    return ", ".join(f"{p.type} {p.available}/{p.count}" for p in site.pools)


def sites(
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Every site: up or down and why, free/total accelerators, utilisation, jobs."""
    with _server(url, token) as client:
        found = client.sites()
    if as_json:
        _print_json([s.to_json() for s in found])
        return
    table = Table(box=None, pad_edge=False)
    for name, kw in (("SITE", {"no_wrap": True}), ("REGION", {"no_wrap": True}),
                     ("SIDE", {}), ("UP", {"no_wrap": True}),
                     ("FREE/TOTAL", {"justify": "right", "no_wrap": True}),
                     ("UTIL", {"justify": "right"}), ("JOBS", {"justify": "right"}),
                     ("POOLS (free/total)", {"overflow": "fold"})):
        table.add_column(name, **kw)
    for s in found:
        up = "[green]up[/green]" if s.up else f"[red]down[/red] {escape(s.reason)}"
        table.add_row(s.name, s.region, s.side or "-", up, f"{s.available}/{s.accelerators}",
                      f"{s.utilisation:.0%}", str(s.jobs), _pools(s))
    _console().print(table)


# ---------------------------------------------------------------------- policy dry-run


def policy_dry_run(file: Path, *, url: str, token: str | None, as_json: bool) -> None:
    """``isthmus policy dry-run FILE``: what would move if FILE were the policy now."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        _fail(f"{file}: cannot read: {reason}", EXIT_INVALID)
    with _server(url, token) as client:
        try:
            change = client.dry_run_policy(text)
        except ApiError as err:
            if err.status == 422 and err.problems:
                for problem in err.problems:
                    message = problem.get("message", "").replace("dry-run:", f"{file}:", 1)
                    typer.echo(message if message.startswith(str(file))
                               else f"{file}: {message}", err=True)
                raise typer.Exit(EXIT_INVALID) from None
            raise
    if as_json:
        _print_json(change)
        return
    _show_dry_run(change)


def _show_dry_run(change: Mapping[str, Any]) -> None:
    console = _console()
    now, then = change.get("current", {}), change.get("proposed", {})

    def objective(side: Mapping[str, Any]) -> str:
        value = side.get("objective")
        return "-" if value is None else f"{value:,.2f}"

    table = Table(box=None, pad_edge=False, title=f"queue of {change.get('queue', 0)} jobs",
                  title_justify="left")
    table.add_column("")
    table.add_column("PLACED", justify="right")
    table.add_column("WAITING", justify="right")
    table.add_column("OBJECTIVE", justify="right")
    for label, side in (("current policy", now), ("this policy", then)):
        table.add_row(label, str(side.get("placed", 0)), str(side.get("waiting", 0)),
                      objective(side))
    console.print(table)
    moved = list(change.get("moved", ()))
    console.print(f"{len(moved)} would move, {len(change.get('newly_placed', ()))} newly "
                  f"placed, {len(change.get('newly_waiting', ()))} newly waiting")
    for m in moved[:20]:
        console.print(escape(f"  {m.get('job')}: {m.get('from')} -> {m.get('to')}"))
    if len(moved) > 20:
        console.print(f"  ... and {len(moved) - 20} more (--json lists all)")


__all__ = ["EXIT_FAILED", "EXIT_INVALID", "policy_dry_run", "read_job_file", "register"]
