"""Modbus TCP and RTU stations, configured by profile alone, against devices of our own.

Two counter units share one TCP gateway and two share one RS-485 line (a pty
pair from socat). Their 32-bit counters are in both word orders and wrap past
2**32. Units and defects by code per worker must equal the devices' ledgers.
On the same connections, a unit that never answers (timeout), a register map
the device does not have (exception 2) and, on the RTU line, answers with a
broken CRC are each that station's error, counted with its reason, while the
other stations are read on.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.config import load_config
from edge_agent.runtime import Agent
from takt_cli.localservices import Mosquitto
from tests.agent.helpers import (
    EventSubscriber,
    Ledger,
    Step,
    assert_matches,
    gateway_config,
    make_script,
)
from tests.agent.modbus_device import ModbusDevice, Unit
from tests.hrapi import HrApi

CODES = {"E07": 7, "E12": 12}
BADGES = {"": 0, "B1": 1, "B2": 2, "B3": 3, "B4": 4}
REGISTERS = 5  # per poll: GOOD, REJ, CODE, BADGE, STATE


def profile(model: str, word_order: str, good_address: int = 0) -> dict[str, Any]:
    u32 = {"type": "uint32", "word_order": word_order}
    return {
        "model": model,
        "protocol": "modbus",
        "time_source": "gateway",
        "signals": {
            "good": {"at": "GOOD", "bits": 32},
            "defects": {
                "mode": "total_and_last_code",
                "at": "REJ",
                "last_code": "CODE",
                "bits": 32,
            },
            "operator": {"at": "BADGE", "nobody": ["0"]},
            "state": {
                "at": "STATE",
                "map": {
                    "0": "idle",
                    "1": "running",
                    "2": "down:fault",
                    "3": "down:starved",
                    "4": "down:maintenance",
                    "5": "down:blocked",
                },
            },
        },
        "modbus": {
            "registers": {
                "GOOD": u32 | {"address": good_address},
                "REJ": u32 | {"address": 2},
                "CODE": {"address": 4},
                "BADGE": {"address": 5},
                "STATE": {"address": 6},
            }
        },
    }


def write(unit: Unit, step: Step, word_order: str, last: dict[str, int]) -> None:
    total = sum(step.rej.values())
    if total != last.get("total", 0):
        last["code"] = next(CODES[c] for c in step.rej if step.rej[c] > last.get(c, 0))
    last.update(step.rej, total=total)
    unit.set32(0, step.cnt, word_order)
    unit.set32(2, total, word_order)
    unit.holding[4:7] = [last.get("code", 0), BADGES[step.op], step.st]


def numeric_codes(ledger: Ledger) -> Ledger:
    out = Ledger()
    out.good.update(ledger.good)
    for (worker, code), n in ledger.defects.items():
        out.defects[(worker, str(CODES[code]))] += n
    return out


def roster(path: Path) -> None:
    path.write_text(yaml.safe_dump({"badges": {str(n): f"w{n}" for n in range(1, 5)}}))


async def drive(device: ModbusDevice, units: dict[str, tuple[int, str]], steps: list[Step]) -> None:
    last: dict[str, dict[str, int]] = {s: {} for s in units}
    by_t: dict[int, list[Step]] = {}
    for step in steps:
        by_t.setdefault(step.t, []).append(step)
    for t in sorted(by_t):
        for step in by_t[t]:
            unit_id, order = units[step.station]
            write(device.units[unit_id], step, order, last[step.station])
        await asyncio.gather(*(device.polled(units[s.station][0], 2 * REGISTERS) for s in by_t[t]))


@pytest.mark.integration
@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "transport",
    [
        "tcp",
        "rtu",
    ],
)
async def test_modbus_counters_add_up_and_bad_units_are_counted(
    mosquitto: Mosquitto, tmp_path: Path, transport: str, hr: HrApi
) -> None:
    units = {"M1": (1, "big"), "M2": (2, "little")}
    steps, ledger = make_script(list(units), 150, seed=9, start_cnt=2**32 - 10, bits=32)
    device = ModbusDevice({1: Unit(), 2: Unit(), 4: Unit()})
    for sid, (unit_id, order) in units.items():
        first = next(s for s in steps if s.station == sid)
        write(device.units[unit_id], first, order, {})
    cleanup: list[Any] = []
    if transport == "tcp":
        server = await device.serve_tcp()
        cleanup.append(server.close)
        where = {"host": "127.0.0.1", "port": server.sockets[0].getsockname()[1]}
    else:
        if shutil.which("socat") is None:
            pytest.fail("socat is needed for the RS-485 line (make setup installs it)")
        line, dev_end = tmp_path / "rs485-agent", tmp_path / "rs485-device"
        socat = await asyncio.create_subprocess_exec(
            "socat", f"pty,raw,echo=0,link={line}", f"pty,raw,echo=0,link={dev_end}"
        )
        cleanup.append(socat.terminate)
        for _ in range(100):
            if line.exists() and dev_end.exists():
                break
            await asyncio.sleep(0.05)
        fd = os.open(dev_end, os.O_RDWR | os.O_NOCTTY)
        server_task = asyncio.create_task(device.serve_rtu(fd))
        cleanup += [server_task.cancel, lambda: os.close(fd)]
        where = {"serial_port": str(line), "baudrate": 115200, "parity": "N"}
    profiles_dir = tmp_path / "profiles"
    profiles_dir.mkdir()
    for model, data in {
        "mb-be": profile("mb-be", "big"),
        "mb-le": profile("mb-le", "little"),
        "mb-short": profile("mb-short", "big", good_address=63),  # past the device's map
    }.items():
        (profiles_dir / f"{model}.yaml").write_text(yaml.safe_dump(data))

    def stn(sid: str, model: str, unit: int, poll: float = 0.01) -> dict[str, Any]:
        conn = {
            "type": "modbus",
            "transport": transport,
            "unit": unit,
            "timeout_s": 0.2,
            "poll_interval_s": poll,
        } | where
        return {"id": sid, "line": "LM", "profile": model, "connection": conn}

    path = gateway_config(
        tmp_path,
        mosquitto.port,
        [
            stn("M1", "mb-be", 1),
            stn("M2", "mb-le", 2),
            stn("M3", "mb-be", 9, poll=1.0),  # no unit 9 on the line: never answers
            stn("M4", "mb-short", 4, poll=1.0),
        ],
        agent_id=f"gw-modbus-{transport}",
        profiles_dir=str(profiles_dir),
    )
    roster(tmp_path / "roster.yaml")
    config, profiles = load_config(path)
    sub = EventSubscriber(mosquitto.port, client_id=f"sub-modbus-{transport}")
    agent = Agent(config, profiles)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        assert len(agent.sources) == 1  # one poller for the gateway / the line
        source: Any = agent.sources[0]
        await asyncio.wait_for(source.connected.wait(), 10)
        await asyncio.gather(device.polled(1, 2 * REGISTERS), device.polled(2, 2 * REGISTERS))
        if transport == "rtu":
            device.corrupt_next = 3
        await drive(device, units, steps)
        want = numeric_codes(ledger)
        got = await asyncio.to_thread(sub.wait_for, want, 30.0, 10**9)
        assert sum(want.good.values()) > 50 and sum(want.defects.values()) > 5
        assert_matches(
            Ledger(good=got.good, defects=got.defects), Ledger(good=want.good, defects=want.defects)
        )
        await hr.check(sub, want)  # and through the HR API
        m = agent.metrics
        for sid in units:
            counts = [s.cnt for s in steps if s.station == sid]
            wraps = sum(1 for a, b in itertools.pairwise(counts) if b < a)
            assert wraps == 1 and m.counter_events.labels(sid, "rollover")._value.get() == 1
        assert m.station_errors.labels("M3", "timeout")._value.get() >= 1
        assert m.station_errors.labels("M4", "exception")._value.get() >= 1
        if transport == "rtu":
            bad = sum(m.station_errors.labels(s, "crc")._value.get() for s in ("M1", "M2"))
            assert bad >= 1  # a broken CRC is no answer: skipped, counted (crc), read again
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        sub.close()
        for step in cleanup:
            step()
