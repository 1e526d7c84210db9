"""``isthmus serve``: the scheduler service (REST API + control loop) from a config file.

    isthmus serve --config policies/service/local.yaml --port 8000

OpenAPI at http://HOST:PORT/docs. The control loop runs in a process of its own by default
(``--loop thread`` keeps it in the API's process; see scheduler/service/process.py). Ctrl-C
(SIGINT) or SIGTERM stops the loop and the server cleanly. Exit status 2 for a bad
configuration, with the file and key in the message.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from scheduler.core.policy.load import PolicyError
from scheduler.core.snapshot_file import SnapshotError
from scheduler.service.config import ConfigError, load_config

EXIT_INVALID = 2


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="Service configuration YAML.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    db: Annotated[str | None, typer.Option("--db", help="Database URL (overrides the config): "
                                           "sqlite:///PATH or postgresql+psycopg://...")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
    loop: Annotated[str, typer.Option(
        help="Where the control loop runs: `process` (its own process, so the API and the "
             "loop each get a core) or `thread` (inside the API's process).")] = "process",
) -> None:
    """Run the scheduler service: REST API and control loop."""
    import uvicorn

    from scheduler.api import create_app
    from scheduler.service.service import Service

    err = Console(stderr=True)
    if loop not in {"process", "thread"}:
        err.print(f"error: --loop: must be `process` or `thread`, got {loop!r}", markup=False)
        raise typer.Exit(EXIT_INVALID)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        service = Service.from_config(load_config(config, database=db))
    except (ConfigError, PolicyError, SnapshotError, ValueError, OSError) as e:
        err.print(f"[red]error:[/red] {e}", markup=True, highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    loop_process = None
    if loop == "process":
        from scheduler.service.process import LoopProcess

        loop_process = LoopProcess(config.resolve(), db, log_level)
        loop_process.start()
        service.wake_hook = loop_process.wake
    else:
        service.start()
    try:
        uvicorn.run(create_app(service), host=host, port=port, log_level=log_level.lower(),
                    access_log=False)
    finally:
        if loop_process is not None:
            loop_process.stop()
        service.stop()
