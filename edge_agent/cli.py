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
    from edge_agent.runtime import Agent
    from takt_common import logs

    try:
        gateway, profiles = load_config(config)
    except ConfigError as err:
        typer.echo(err.report(), err=True)
        raise typer.Exit(2) from None
    logs.configure(gateway.log_level, quiet=("asyncua", "asyncio"))

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
        typer.echo(err.report(), err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"ok: agent {gateway.agent_id} at site {gateway.site}, {len(gateway.stations)} stations, "
        f"profiles: {', '.join(sorted({s.profile for s in gateway.stations}))}"
    )
    if gateway.broker.allow_anonymous and not gateway.broker.username:
        typer.echo("warning: broker connection is anonymous (test brokers only)", err=True)
    if not gateway.broker.tls:
        typer.echo("warning: broker connection is not encrypted (TLS off)", err=True)


@app.command("check-profile")
def check_profile(path: Annotated[Path, typer.Argument(help="Device profile (YAML).")]) -> None:
    """Validate one device profile on its own; exit 2 when wrong."""
    from edge_agent.profile import ProfileError, load_profile

    try:
        profile = load_profile(path)
    except ProfileError as err:
        typer.echo(f"profile error: {err}", err=True)
        raise typer.Exit(2) from None
    signals = [name for name, value in profile.signals if value is not None]
    typer.echo(
        f"ok: {profile.model} ({profile.protocol}, {profile.time_source} clock), "
        f"signals: {', '.join(signals)}"
    )


@app.command()
def probe(
    config: ConfigOption,
    station: Annotated[
        list[str] | None, typer.Option("--station", "-s", help="Only these stations.")
    ] = None,
    seconds: Annotated[float, typer.Option(help="How long to read.")] = 10.0,
) -> None:
    """Read the devices and print each raw reading with what the profile makes of it.

    Writes nothing (no outbox), publishes nothing: like ``telegraf --test``.
    """
    from edge_agent.probe import run_probe

    try:
        gateway, profiles = load_config(config)
    except ConfigError as err:
        typer.echo(err.report(), err=True)
        raise typer.Exit(2) from None
    known = {s.id for s in gateway.stations}
    unknown = sorted(set(station or []) - known)
    if unknown:
        typer.echo(f"unknown station(s) {unknown}; known: {sorted(known)}", err=True)
        raise typer.Exit(2)
    asyncio.run(run_probe(gateway, profiles, set(station or known), seconds, typer.echo))
