"""The ``isthmus`` command line."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="isthmus",
    help="Isthmus: cross-region placement of AI jobs across heterogeneous sites.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Sub-commands live in their own modules; each exposes ``register(app)``.
    from scheduler.cli import (
        client_cmd,
        compare_cmd,
        demo_cmd,
        plan_cmd,
        policy_cmd,
        serve_cmd,
        simulate_cmd,
        testbed_cmd,
    )

    policy_cmd.register(app)
    plan_cmd.register(app)
    demo_cmd.register(app)
    compare_cmd.register(app)
    testbed_cmd.register(app)
    simulate_cmd.register(app)
    serve_cmd.register(app)
    client_cmd.register(app)


_register()

if __name__ == "__main__":
    app()
