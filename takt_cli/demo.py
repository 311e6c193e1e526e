"""``takt demo``: the whole stack on the simulated demo line, with a live terminal view.

Starts Mosquitto (passwords + ACL) and InfluxDB (auth) as local processes under
``var/demo``, the collector, the simulated floor (OPC UA, MQTT, serial and Modbus
stations), an edge agent and the KPI service with its alert engine; shows live
per-worker KPIs and alerts; prints the URLs and an API key. Ctrl-C (or the end
of ``--duration``) stops everything, leaving no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from takt_cli.demo_scores import line_scores
from takt_cli.processes import ProcessGroup
from takt_cli.stack import REPO, LocalStack, StackError

app = typer.Typer(no_args_is_help=False)
console = Console()

DEMO_SCENARIO = REPO / "simulators" / "scenarios" / "demo.yaml"
DEMO_RULES = REPO / "deploy" / "alert-rules.yaml"
SHARE_OF_DURATION_FOR_THE_SHIFT = 0.7
"""With --duration, the simulated shift is squeezed into this share of it; the rest drains."""


@app.callback(invoke_without_command=True)
def demo(
    duration: Annotated[
        float | None,
        typer.Option(help="Run this many seconds, print a summary and exit 0."),
    ] = None,
    scenario: Annotated[Path, typer.Option(help="Scenario file.")] = DEMO_SCENARIO,
    workdir: Annotated[Path, typer.Option(help="Folder for data and logs.")] = Path("var/demo"),
    rules: Annotated[Path, typer.Option(help="Alert rules file.")] = DEMO_RULES,
) -> None:
    """Run the whole stack on a simulated line."""
    from simulators import load_scenario

    sc = load_scenario(scenario)
    logging.getLogger("asyncua").setLevel(logging.ERROR)  # warns about the demo's choices
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    try:
        code = asyncio.run(_run(sc, workdir.resolve(), rules.resolve(), duration))
    except StackError as err:
        console.print(f"[red]demo failed:[/] {err}")
        raise typer.Exit(1) from None
    raise typer.Exit(code)


async def _run(sc: Any, workdir: Path, rules: Path, duration: float | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    shift_s = float(sc.duration)
    acceleration = None
    if duration is not None:
        acceleration = shift_s / max(duration * SHARE_OF_DURATION_FOR_THE_SHIFT, 5.0)

    with ProcessGroup(workdir) as group:
        stack = LocalStack(workdir, group, site=sc.site)
        with console.status("starting Mosquitto and InfluxDB"):
            broker, database = await asyncio.to_thread(stack.start_services)
        console.print(f"[green]✓[/] Mosquitto on {broker.port}, InfluxDB on {database.port}")
        with console.status("starting the collector"):
            await asyncio.to_thread(stack.start_collector)
        console.print("[green]✓[/] collector")

        floor = stack.shop_floor(sc, acceleration)
        async with floor:
            for sid, ep in sorted(floor.endpoints.items()):
                where = ep.url or ep.topic_prefix or ep.serial_path
                if ep.modbus:
                    where = f"{ep.modbus} unit {ep.unit}"
                console.print(f"[green]✓[/] station {sid}: {ep.protocol} {where}")
            with console.status("starting the edge agent"):
                await asyncio.to_thread(stack.start_agent_for, floor)
            console.print("[green]✓[/] edge agent")
            env = stack.kpi_env(rules_file=rules, scenario=sc)
            with console.status("starting the KPI service"):
                hr_key = await asyncio.to_thread(stack.create_api_key, env, "demo-hr", "hr:read")
                admin_key = await asyncio.to_thread(stack.create_api_key, env, "demo", "admin")
                await asyncio.to_thread(stack.start_kpi, env)
            _print_access(stack, hr_key, admin_key, workdir)

            floor.start_clock()
            started = time.monotonic()
            view = LiveView(stack.kpi_url, admin_key, sc)
            with Live(console=console, refresh_per_second=2, transient=False) as live:
                while not stop.is_set():
                    await view.refresh(floor_done=_done(floor))
                    live.update(view.render())
                    if duration is not None and time.monotonic() - started >= duration:
                        break
                    if group.dead_children():
                        dead = group.dead_children()[0]
                        raise StackError(f"{dead.name} exited:\n{dead.log_tail()}")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=1.0)
            if duration is not None:
                await view.refresh(floor_done=_done(floor))
                truth = (
                    {k["worker"]: k["good"] for k in floor.ledger["kpis"]} if _done(floor) else None
                )
                console.print(view.summary(truth))
                console.print(await line_scores(stack.kpi_url, admin_key, sc.start.date()))
        with console.status("stopping everything"):
            await asyncio.to_thread(group.stop_all)
    console.print("[green]✓[/] stopped; nothing left running")
    return 0


def _done(floor: Any) -> bool:
    return bool(floor.done)


def _print_access(stack: LocalStack, hr_key: str, admin_key: str, workdir: Path) -> None:
    console.print(
        Panel.fit(
            f"Supervisor board: [bold]{stack.kpi_url}/api/v1/board/[/] (key: admin below)\n"
            f"HR API:           [bold]{stack.kpi_url}/api/v1/kpis[/]\n"
            f"HR key (hr:read): {hr_key}\n"
            f"admin key:        {admin_key}\n"
            f"example: curl -H 'Authorization: Bearer {hr_key}' "
            f"'{stack.kpi_url}/api/v1/kpis?start=DAY&end=DAY'\n"
            f"logs and data:    {workdir}",
            title="Takt demo",
        )
    )


class LiveView:
    """Polls the KPI API the way a supervisor's screen would, and renders it."""

    def __init__(self, url: str, key: str, sc: Any) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"}
        self.day = sc.start.date().isoformat()
        self.rows: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.error = ""

    async def refresh(self, floor_done: bool) -> None:
        params = {"start": self.day, "end": self.day, "entity": "worker", "limit": 1000}
        try:
            async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
                kpis = await client.get("/api/v1/kpis", params=params, headers=self.headers)
                alerts = await client.get(
                    "/api/v1/alerts", params={"limit": 100}, headers=self.headers
                )
            kpis.raise_for_status()
            self.rows = sorted(kpis.json()["items"], key=lambda r: str(r.get("worker")))
            self.alerts = alerts.json() if alerts.is_success else []
            self.error = "" if alerts.is_success else f"alerts: HTTP {alerts.status_code}"
        except httpx.HTTPError as err:
            self.error = f"KPI API: {err}"

    def table(self, title: str, truth: dict[str, int] | None = None) -> Table:
        table = Table(title=title, expand=False)
        columns = ["worker", "good", "defect", "defect rate", "good/eff. h", "% std", "alerts"]
        if truth is not None:
            columns.append("ledger good")
        for column in columns:
            table.add_column(column, justify="left" if column == "worker" else "right")
        per_worker: dict[str, int] = {}
        for alert in self.alerts:
            subject = str(alert.get("worker") or "")
            per_worker[subject] = per_worker.get(subject, 0) + 1
        for row in self.rows:
            worker = str(row.get("worker"))
            table.add_row(
                worker,
                str(row["units_good"]),
                str(row["units_defect"]),
                _pct(row.get("defect_rate")),
                _num(row.get("good_per_effective_hour")),
                _num(row.get("pct_of_standard")),
                str(per_worker.get(worker, 0)),
                *([_truth(row["units_good"], truth.get(worker))] if truth is not None else []),
            )
        return table

    def alert_lines(self) -> list[str]:
        lines = []
        for alert in self.alerts[:10]:
            colour = "red" if alert["severity"] == "critical" else "yellow"
            who = alert["worker"] or alert["station"] or alert["line"]
            raised = datetime.fromtimestamp(alert["raised_event_ts"], UTC).strftime("%H:%M")
            lines.append(
                f"[{colour}]{alert['severity']}[/] {alert['rule_id']}: {who} at "
                f"{alert['line']}/{alert['station'] or '-'}: {alert['metric']} alert raised at "
                f"{raised} line time, {alert['severity']} threshold "
                f"{alert['threshold']:g}{alert['unit']}; {alert['status']}"
            )
        return lines or ["no alerts"]

    def render(self) -> Group:
        parts: list[Any] = [self.table("Live KPIs per worker (demo day)")]
        parts.append(Panel("\n".join(self.alert_lines()), title="Alerts"))
        if self.error:
            parts.append(f"[red]{self.error}[/]")
        return Group(*parts)

    def summary(self, truth: dict[str, int] | None) -> Group:
        note = (
            "ledger good: the simulator's ground truth (✓ = measured exactly)"
            if truth is not None
            else "the simulated shift had not ended: no ledger to compare with yet"
        )
        return Group(self.table("Summary per worker", truth), note, *self.alert_lines())


def _truth(measured: int, truth: int | None) -> str:
    if truth is None:
        return "-"
    return f"{truth} ✓" if truth == measured else f"{truth} ✗"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f} %"


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}"
