"""Three serial devices the agent has never seen, configured by profile alone.

Each device below is written from its own (fictional) manual, not from the
agent's code: its own checksum code, its own record writer. They run on real
ptys against the real agent and broker; the events must add up to each
device's ledger exactly (units and defects by code per worker, work seconds),
while bad records (unknown type, missing field, unparsable value, flipped
byte) are skipped, counted per station with their reason, and change nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from functools import reduce
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.runtime import Agent
from takt_cli.localservices import Mosquitto
from tests.agent.helpers import (
    EventSubscriber,
    Step,
    assert_matches,
    gateway_config,
    make_script,
)
from tests.agent.test_serial_flow import PtyDevice
from tests.hrapi import HrApi

PROFILES = Path(__file__).resolve().parent / "profiles"
STATES = {0: "IDLE", 1: "RUN", 2: "ERR", 3: "STARVE", 4: "MAINT", 5: "BLOCK"}


def ms(step: Step) -> str:
    return str(int(step.ts.timestamp() * 1000))


def pairs(rej: dict[str, int], sep: str = ",") -> str:
    return sep.join(f"{c}:{n}" for c, n in sorted(rej.items()))


# -- device 1: NMEA-style typed records, XOR ------------------------------------


def nmea(station: str, seq: int, kind: str, ts: str, *fields: str) -> bytes:
    body = ",".join([station, str(seq), kind, ts, *fields]).encode()
    xor = reduce(lambda a, b: a ^ b, body, 0)
    return b"$" + body + b"*" + f"{xor:02x}".encode() + b"\r\n"  # lower-case on purpose


def nmea_device(steps: list[Step], rng: random.Random, bad: dict[str, int]) -> list[bytes]:
    out: list[bytes] = []
    prev = Step(0, "", 0, {}, "", 0, 0.0, False)
    for i, s in enumerate(steps):
        ts = ms(s)
        recs: list[tuple[str, ...]] = []
        if i == 0 or s.cnt != prev.cnt or s.rej != prev.rej:
            recs.append(("C", str(s.cnt), pairs(s.rej, ";")))
        if s.op != prev.op:
            if prev.op:
                recs.append(("O", prev.op))
            if s.op:
                recs.append(("L", s.op))
        if s.st != prev.st:
            recs.append(("S", str(s.st)))
        if not recs:
            recs.append(("H",))
        out += [nmea(s.station, len(out), r[0], ts, *r[1:]) for r in recs]
        if not s.changed and rng.random() < 0.04:
            choice = rng.choice(["unknown_type", "field_count", "checksum"])
            if choice == "unknown_type":
                out.append(nmea(s.station, len(out), "X", ts, "1"))
            elif choice == "field_count":
                out.append(nmea(s.station, len(out), "C", ts, str(s.cnt)))
            else:
                flipped = bytearray(nmea(s.station, len(out), "C", ts, "7", ""))
                flipped[8] ^= 0x01
                out.append(bytes(flipped))
            bad[choice] += 1
        prev = s
    return out


# -- device 2: fixed-width ASCII snapshots, CRC-16/MODBUS ---------------------------


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS, table-driven as the device's firmware does it."""
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        table.append(c)
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def fixed(text: str) -> bytes:
    return text.encode() + f"{crc16(text.encode()):04X}".encode() + b"\n"


def fixed_width_device(steps: list[Step], rng: random.Random, bad: dict[str, int]) -> list[bytes]:
    out: list[bytes] = []
    last_code, before = "   ", dict[str, int]()
    for s in steps:
        # at most one reject per second: the total and the last code are exact
        total = sum(s.rej.values())
        last_code = next((c for c in s.rej if s.rej[c] > before.get(c, 0)), last_code)
        before = s.rej
        report = f"{s.cnt:06d}{total:06d}{last_code}{s.op:<8}{s.st}"
        out.append(fixed(f"R{ms(s)}{report}"))
        if rng.random() < 0.2:
            out.append(fixed(f"H{ms(s)}"))
        if not s.changed and rng.random() < 0.03:
            out.append(fixed(f"R{ms(s)}12x456{report[6:]}"))  # a value that does not parse
            bad["no_match"] += 1
    return out


# -- device 3: one frame per event, STX/ETX, sum mod 256 ----------------------------


def stx(**fields: str) -> bytes:
    body = "|".join(f"{k}={v}" for k, v in fields.items()).encode()
    return b"\x02" + body + b"\x03" + f"{sum(body) % 256:02X}".encode()


def per_part_device(steps: list[Step], rng: random.Random, bad: dict[str, int]) -> list[bytes]:
    out: list[bytes] = []
    prev = Step(0, "", steps[0].cnt, {}, "", 0, 0.0, False)
    for i, s in enumerate(steps):
        ts = ms(s)
        n = (s.cnt - prev.cnt) % (1 << 16)
        out += [stx(K="P", T=ts)] * n
        if i == 0 or s.rej != prev.rej:
            out.append(stx(K="Q", T=ts, R=pairs(s.rej)))
        if s.op != prev.op:
            if prev.op:
                out.append(stx(K="OUT", T=ts, U=prev.op))
            if s.op:
                out.append(stx(K="IN", T=ts, U=s.op))
        if s.st != prev.st:
            out.append(stx(K="ST", T=ts, M=STATES[s.st]))
        out.append(stx(K="HB", T=ts))
        if not s.changed and rng.random() < 0.04:
            if rng.random() < 0.5:
                out.append(stx(K="ZZ", T=ts))
                bad["unknown_type"] += 1
            else:
                out.append(stx(K="Q", T=ts, R=pairs(s.rej) + ",E99:lots"))
                bad["bad_field"] += 1
        prev = s
    return out


DEVICES: dict[
    str, tuple[str, Callable[[list[Step], random.Random, dict[str, int]], list[bytes]]]
] = {
    "N1": ("test-nmea-counter", nmea_device),
    "F1": ("test-fixed-width-box", fixed_width_device),
    "P1": ("test-per-part-terminal", per_part_device),
}


async def feed(device: PtyDevice, chunks: list[bytes]) -> None:
    for i, chunk in enumerate(chunks):
        await asyncio.to_thread(device.write, chunk)
        if i % 20 == 0:
            await asyncio.sleep(0.005)


@pytest.mark.integration
@pytest.mark.timeout(180)
async def test_three_record_styles_add_up_and_bad_records_are_counted(
    mosquitto: Mosquitto, tmp_path: Path, hr: HrApi
) -> None:
    ids = list(DEVICES)
    steps, ledger = make_script(ids, 400, seed=21, start_cnt=65520)
    ptys = {sid: PtyDevice(tmp_path / f"tty-{sid}") for sid in ids}
    stations = [
        {
            "id": sid,
            "line": "LR",
            "profile": DEVICES[sid][0],
            "connection": {"type": "serial", "port": str(ptys[sid].link)},
        }
        for sid in ids
    ]
    path = gateway_config(
        tmp_path, mosquitto.port, stations, agent_id="gw-records", profiles_dir=str(PROFILES)
    )
    config, profiles = load_config(path)
    rng = random.Random(5)
    bad: dict[str, dict[str, int]] = {sid: {} for sid in ids}
    writes: dict[str, list[bytes]] = {}
    for sid in ids:
        counts: dict[str, int] = dict.fromkeys(
            ["unknown_type", "field_count", "checksum", "no_match", "bad_field"], 0
        )
        writes[sid] = DEVICES[sid][1]([s for s in steps if s.station == sid], rng, counts)
        bad[sid] = counts
    sub = EventSubscriber(mosquitto.port, client_id="sub-records")
    agent = Agent(config, profiles)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        for source in agent.sources:
            await asyncio.wait_for(source.connected.wait(), 10)  # type: ignore[attr-defined]
        await asyncio.gather(*(feed(ptys[sid], writes[sid]) for sid in ids))
        got = await asyncio.to_thread(sub.wait_for, ledger, 40.0, 0.01)
        assert sum(ledger.good.values()) > 100 and sum(ledger.defects.values()) > 10
        assert_matches(got, ledger, slack_s=0.01)
        await hr.check(sub, ledger)  # and through the HR API
        m = agent.metrics
        for sid in ids:
            for reason in ("unknown_type", "field_count", "checksum", "no_match"):
                seen = m.corrupt_frames.labels(sid, reason)._value.get()
                assert seen == bad[sid][reason], (sid, reason, seen, bad[sid])
            assert m.bad_fields.labels(sid)._value.get() == bad[sid]["bad_field"], sid
        assert sum(sum(c.values()) for c in bad.values()) >= 10
        f1 = [s.cnt for s in steps if s.station == "F1"]
        wraps = sum(1 for a, b in itertools.pairwise(f1) if b < a)
        assert wraps >= 1 and m.counter_events.labels("F1", "rollover")._value.get() == wraps
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        sub.close()
