"""``takt agent``: run the edge agent, or check a gateway config without running it."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.config import ConfigError, load_config

app = typer.Typer(no_args_is_help=True)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Gateway config (YAML).")]


@app.command()
def run(config: ConfigOption) -> None:
    """Run the agent until SIGTERM/SIGINT; then flush and wait for pending acks."""
    from edge_agent import logs
    from edge_agent.runtime import Agent

    try:
        gateway, profiles = load_config(config)
    except ConfigError as err:
        typer.echo(f"config error: {err}", err=True)
        raise typer.Exit(2) from None
    logs.setup(gateway.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Agent(gateway, profiles).run(stop)

    asyncio.run(main())


@app.command("check-config")
def check_config(path: Annotated[Path, typer.Argument(help="Gateway config (YAML).")]) -> None:
    """Validate a gateway config and the device profiles it names; exit 2 when wrong."""
    try:
        gateway, _profiles = load_config(path)
    except ConfigError as err:
        typer.echo(f"config error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"ok: agent {gateway.agent_id} at site {gateway.site}, {len(gateway.stations)} stations, "
        f"profiles: {', '.join(sorted({s.profile for s in gateway.stations}))}"
    )
    if gateway.broker.allow_anonymous and not gateway.broker.username:
        typer.echo("warning: broker connection is anonymous (test brokers only)", err=True)
    if not gateway.broker.tls:
        typer.echo("warning: broker connection is not encrypted (TLS off)", err=True)
