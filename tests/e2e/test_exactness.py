"""End to end: simulators → agent → MQTT → collector → InfluxDB → HR API, against the ledger.

Every component runs for real, as in production: the agent, collector and KPI
service as `takt` subprocesses, Mosquitto with passwords and the ACL of
deploy/mosquitto/acl, influxd with authentication. The simulated floor knows the
truth; the API's per-worker figures must equal it (counts exactly, seconds within
one sampling interval).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from simulators import load_scenario
from simulators.scenario import Scenario
from takt_cli.processes import ProcessGroup
from takt_cli.stack import REPO, LocalStack

pytestmark = pytest.mark.integration

SCENARIO = REPO / "simulators" / "scenarios" / "test_small.yaml"
MODBUS_LINE = {
    "id": "L3",
    "stations": [
        {
            "id": "S4",
            "protocol": "modbus",
            "standard_cycle_s": 5,
            "defect_codes": ["E01", "E04"],
            "counter_start": 65480,
            "downtime": [{"start": "6m", "end": "7m", "reason": "fault"}],
        }
    ],
}
MODBUS_WORKERS = [
    {
        "id": "W5",
        "badge": "E5",
        "shift": "A",
        "defect_rate": 0.12,
        "defect_codes": {"E01": 1, "E04": 2},
        "assignments": [{"station": "S4", "start": "30s", "end": "12m"}],
    },
    {
        "id": "W6",
        "badge": "F6",
        "shift": "A",
        "defect_rate": 0.08,
        "defect_codes": {"E04": 1},
        "assignments": [{"station": "S4", "start": "12m", "end": "19m"}],
    },
]


def scenario_with_modbus(folder: Path) -> Scenario:
    """``test_small.yaml`` plus a Modbus TCP station (rollover, fault, operator change)."""
    raw = yaml.safe_load(SCENARIO.read_text())
    raw["lines"].append(MODBUS_LINE)
    raw["workers"] += MODBUS_WORKERS
    path = folder / "test_small_modbus.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_scenario(path)


SAMPLING_SLACK_S = 2.0
"""Work seconds may differ from the truth by the device clock's sampling step (1 s tick)."""


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    with ProcessGroup(tmp_path) as processes:
        yield processes


def influx_units(stack: LocalStack) -> int:
    """Good and defective units in InfluxDB (sum of count over every outcome)."""
    assert stack.database is not None
    series = stack.database.query('SELECT sum("count") FROM "raw"."units"', "takt")
    return int(series[0]["values"][0][1]) if series else 0  # type: ignore[index]


def ledger_by_worker(ledger: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in ledger["rows"]:
        agg = out.setdefault(
            row["worker"], {"good": 0, "defects": {}, "work_s": 0.0, "effective_s": 0.0}
        )
        agg["good"] += row["good"]
        for code, n in row["defects"].items():
            agg["defects"][code] = agg["defects"].get(code, 0) + n
        agg["work_s"] += row["work_s"]
        agg["effective_s"] += row["effective_s"]
    return out


def ledger_units(ledger: dict[str, Any]) -> int:
    rows = ledger["rows"] + ledger["unattributed"]
    return sum(r["good"] + sum(r["defects"].values()) for r in rows)


async def test_hr_api_figures_equal_the_simulators_ledger(
    tmp_path: Path, group: ProcessGroup
) -> None:
    scenario = scenario_with_modbus(tmp_path)
    assert any(st.protocol == "modbus" for _, st in scenario.stations())
    stack = LocalStack(tmp_path, group, site=scenario.site)
    await asyncio.to_thread(stack.start_services)
    await asyncio.to_thread(stack.start_collector)

    floor = stack.shop_floor(scenario)
    async with floor:
        await asyncio.to_thread(stack.start_agent_for, floor)
        await asyncio.sleep(2)  # let every source subscribe before the first unit
        floor.start_clock()
        await asyncio.wait_for(floor.wait_done(), timeout=120)
        ledger = json.loads((floor.workdir / "ledger.json").read_text())

        # Everything the floor made reaches InfluxDB (the pipeline drains within
        # seconds). The devices stay up meanwhile, as a real line's do: the last
        # readings are still in an OPC UA publish cycle or a pty buffer.
        want_units = ledger_units(ledger)
        assert want_units > 100 and len(ledger["rows"]) >= 4, "the scenario should make work"
        deadline = time.monotonic() + 60
        got_units = 0
        while time.monotonic() < deadline:
            got_units = await asyncio.to_thread(influx_units, stack)
            if got_units >= want_units:
                break
            await asyncio.sleep(0.5)
        assert got_units == want_units, "units in InfluxDB differ from the ledger"
        # The HR API reads whole hours from the hourly rollups: wait until the collector
        # says none is pending (its /healthz), as a user would watch its metric.
        health = f"http://127.0.0.1:{stack.ports.collector_http}/healthz"
        pending: object = None
        async with httpx.AsyncClient(timeout=5) as probe:
            while time.monotonic() < deadline + 60:
                pending = (await probe.get(health)).json().get("rollup_pending_hours")
                if pending == 0:
                    break
                await asyncio.sleep(0.5)
        assert pending == 0, f"rollups still pending: {pending}"

    env = stack.kpi_env(scenario=scenario)
    key = await asyncio.to_thread(stack.create_api_key, env, "hr-e2e", "hr:read")
    await asyncio.to_thread(stack.start_kpi, env)

    day = scenario.start.date().isoformat()
    async with httpx.AsyncClient(base_url=stack.kpi_url, timeout=30) as client:
        response = await client.get(
            "/api/v1/kpis",
            params={"start": day, "end": day, "entity": "worker", "limit": 1000},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200, response.text
        rows = {r["worker"]: r for r in response.json()["items"]}
        refused = await client.get("/api/v1/kpis", params={"start": day, "end": day})
        assert refused.status_code == 401

    truth = ledger_by_worker(ledger)
    assert set(truth) <= set(rows), f"workers missing from the API: {set(truth) - set(rows)}"
    for worker, want in truth.items():
        got = rows[worker]
        assert got["units_good"] == want["good"], worker
        assert {c: int(n) for c, n in got["defects_by_code"].items() if n} == {
            c: n for c, n in want["defects"].items() if n
        }, worker
        assert abs(got["work_s"] - want["work_s"]) <= SAMPLING_SLACK_S, worker
        assert abs(got["effective_s"] - want["effective_s"]) <= SAMPLING_SLACK_S, worker
    for kpi in ledger["kpis"]:
        got = rows[kpi["worker"]]
        if kpi.get("pct_of_standard") is not None and got["pct_of_standard"] is not None:
            assert got["pct_of_standard"] == pytest.approx(kpi["pct_of_standard"], rel=0.01)
        if kpi.get("defect_rate") is not None:
            assert got["defect_rate"] == pytest.approx(
                kpi["defect_rate"], abs=1e-5
            )  # ledger rounds
