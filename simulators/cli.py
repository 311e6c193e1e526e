"""``takt sim``: validate a scenario, or run the whole simulated floor and write the ledger."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
import yaml

from simulators.floor import FloorError, ShopFloor
from simulators.loadgen import make_load
from simulators.mqtt_gateway import MqttGatewayError
from simulators.opcua_plc import Security
from simulators.scenario import ScenarioError, load_scenario

app = typer.Typer(no_args_is_help=True, add_completion=False)

PASSWORD_ENV = "TAKT_SIM_OPCUA_PASSWORD"
MQTT_PASSWORD_ENV = "TAKT_SIM_MQTT_PASSWORD"


@app.command()
def validate(scenario: Path) -> None:
    """Check a scenario file; errors name the file and the field."""
    try:
        sc = load_scenario(scenario)
    except ScenarioError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from None
    stations = sc.stations()
    typer.echo(
        f"{scenario}: ok — {len(stations)} stations, {len(sc.workers)} workers, "
        f"{sc.duration / 3600:g} h simulated in {sc.duration / sc.time_acceleration:.0f} s"
    )


@app.command("make-load")
def make_load_cmd(
    out: Path,
    stations: int = 200,
    hours: float = 1.0,
    acceleration: float = 20.0,
    protocols: Annotated[str, typer.Option(help="Comma-separated, cycled.")] = "mqtt,opcua",
) -> None:
    """Write a benchmark scenario with many stations (two operators each)."""
    protos = tuple(p.strip() for p in protocols.split(",") if p.strip())
    doc = make_load(stations, hours=hours, acceleration=acceleration, protocols=protos)
    header = f"# Generated: takt sim make-load {out.name} --stations {stations} --hours {hours:g}"
    header += f" --acceleration {acceleration:g} --protocols {','.join(protos)}\n"
    out.write_text(header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
    validate(out)


@app.command()
def run(
    scenario: Path,
    out: Annotated[Path, typer.Option(help="Run folder: ledger, roster, endpoints, ptys.")] = Path(
        "var/sim"
    ),
    mqtt_host: Annotated[str | None, typer.Option(help="Broker for MQTT stations.")] = None,
    mqtt_port: int = 1883,
    mqtt_username: Annotated[
        str | None, typer.Option(help=f"Broker user; password from ${MQTT_PASSWORD_ENV}.")
    ] = None,
    opcua_port: Annotated[int, typer.Option(help="0 picks a free port.")] = 4840,
    opcua_security: Annotated[
        str, typer.Option(help="none | Basic256Sha256 | Aes128_Sha256_RsaOaep")
    ] = "none",
    opcua_user: Annotated[
        str | None, typer.Option(help=f"Require this OPC UA user; password from ${PASSWORD_ENV}.")
    ] = None,
    acceleration: Annotated[float | None, typer.Option(help="Override the scenario's.")] = None,
    opcua_host: Annotated[
        str, typer.Option(help="Address the OPC UA server binds (0.0.0.0 in a container).")
    ] = "127.0.0.1",
    start: Annotated[
        str | None,
        typer.Option(help="Override the scenario's start: an ISO time with zone, or 'now'."),
    ] = None,
) -> None:
    """Start every device of the scenario, replay it, write ledger.json/.csv and roster.yaml."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncua").setLevel(logging.ERROR)  # warns about policies we chose
    try:
        sc = load_scenario(scenario)
    except ScenarioError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from None
    if start is not None:
        try:
            sc = sc.model_copy(update={"start": parse_start(start)})
        except ValueError as err:
            typer.echo(f"--start: {err}", err=True)
            raise typer.Exit(2) from None
    if opcua_security not in ("none", "Basic256Sha256", "Aes128_Sha256_RsaOaep"):
        typer.echo(f"--opcua-security: unknown policy {opcua_security!r}", err=True)
        raise typer.Exit(2)
    user: tuple[str, str] | None = None
    if opcua_user is not None:
        password = os.environ.get(PASSWORD_ENV, "")
        if not password:
            typer.echo(f"--opcua-user needs the password in ${PASSWORD_ENV}", err=True)
            raise typer.Exit(2)
        user = (opcua_user, password)
    try:
        floor = ShopFloor(
            sc,
            out,
            mqtt_host=mqtt_host,
            mqtt_port=mqtt_port,
            mqtt_username=mqtt_username,
            mqtt_password=os.environ.get(MQTT_PASSWORD_ENV) if mqtt_username else None,
            opcua_host=opcua_host,
            opcua_port=opcua_port,
            opcua_security=security_of(opcua_security),
            opcua_user=user,
            acceleration=acceleration,
        )
        asyncio.run(_run(floor))
    except (FloorError, MqttGatewayError, OSError) as err:
        typer.echo(f"takt sim: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(floor.stats()))
    typer.echo(f"ledger: {out / 'ledger.json'}")


def parse_start(value: str) -> datetime:
    """'now' (to the whole second, UTC) or an ISO 8601 time that carries a zone."""
    if value == "now":
        return datetime.now(UTC).replace(microsecond=0)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} needs a time zone, e.g. 2026-03-14T06:00:00Z")
    return parsed.astimezone(UTC)  # the same normal form as a scenario file's start


def security_of(name: str) -> Security:
    if name == "Basic256Sha256":
        return "Basic256Sha256"
    if name == "Aes128_Sha256_RsaOaep":
        return "Aes128_Sha256_RsaOaep"
    return "none"


async def _run(floor: ShopFloor) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with floor:
        for sid, ep in floor.endpoints.items():
            where = ep.url or ep.topic_prefix or ep.serial_path
            if ep.modbus:
                where = f"{ep.modbus} unit {ep.unit}"
            typer.echo(f"{sid}: {ep.protocol} {where}")
        done = asyncio.create_task(floor.wait_done())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({done, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not done.done():
            done.cancel()
            raise FloorError("interrupted before the simulated end; no ledger written")
        await done
