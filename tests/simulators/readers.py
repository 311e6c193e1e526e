"""Test-side readers: rebuild per-worker truth from what the devices *showed*.

Written from docs/devices.md, not from the simulator's code, so a simulator that
drifts from the documented formats fails these tests.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import serial

EXCUSED_STATES = {2, 3, 4, 5}


def counter_delta(old: int, new: int, bits: int = 16) -> tuple[int, str]:
    """Units between two readings of a cumulative counter, and what happened to it."""
    if new >= old:
        return new - old, "up"
    if old - new > (1 << bits) // 2:
        return new + (1 << bits) - old, "rollover"
    return new, "reset"


@dataclass
class Totals:
    good: int = 0
    defects: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    work_ms: int = 0
    effective_ms: int = 0


class Replayer:
    """Feed readings in device-time order; counters move before badge/state of the same reading."""

    def __init__(self, start_ms: int) -> None:
        self.t = start_ms
        self.badge = ""
        self.state = 0
        self.good: int | None = None
        self.rejects: dict[str, int] = {}
        self.by_badge: dict[str, Totals] = defaultdict(Totals)
        self.events: list[str] = []

    def _advance(self, ts: int) -> None:
        if ts > self.t and self.badge:
            tot = self.by_badge[self.badge]
            tot.work_ms += ts - self.t
            if self.state not in EXCUSED_STATES:
                tot.effective_ms += ts - self.t
        self.t = max(self.t, ts)

    def feed(
        self,
        ts: int,
        good: int | None = None,
        rejects: dict[str, int] | None = None,
        badge: str | None = None,
        state: int | None = None,
    ) -> None:
        self._advance(ts)
        tot = self.by_badge[self.badge]  # "" collects the unattributed units
        if good is not None:
            if self.good is not None:
                n, what = counter_delta(self.good, good)
                tot.good += n
                if what != "up":
                    self.events.append(what)
            self.good = good
        for code, value in (rejects or {}).items():
            if code in self.rejects:
                n, what = counter_delta(self.rejects[code], value)
                tot.defects[code] += n
                if what != "up":
                    self.events.append(f"{what}:{code}")
            self.rejects[code] = value
        if badge is not None:
            self.badge = badge
        if state is not None:
            self.state = state


def ledger_by_worker_station(ledger: dict[str, Any]) -> dict[tuple[str, str], Totals]:
    out: dict[tuple[str, str], Totals] = defaultdict(Totals)
    for row in ledger["rows"]:
        tot = out[(row["worker"], row["station"])]
        tot.good += row["good"]
        for code, n in row["defects"].items():
            tot.defects[code] += n
        tot.work_ms += round(row["work_s"] * 1000)
        tot.effective_ms += round(row["effective_s"] * 1000)
    for row in ledger["unattributed"]:
        tot = out[("", row["station"])]
        tot.good += row["good"]
        for code, n in row["defects"].items():
            tot.defects[code] += n
    return out


def parse_frame(frame: bytes) -> dict[str, str] | None:
    """STX body ETX hex-hex CR LF with an XOR checksum over the body, or None if bad."""
    if len(frame) < 6 or frame[0] != 0x02 or not frame.endswith(b"\r\n") or frame[-5] != 0x03:
        return None
    body = frame[1:-5]
    xor = 0
    for b in body:
        xor ^= b
    if frame[-4:-2] != f"{xor:02X}".encode():
        return None
    try:
        return dict(part.split("=", 1) for part in body.decode("ascii").split("|"))
    except ValueError:
        return None


class SerialReader(threading.Thread):
    """pyserial on the box's stable path; survives the cable being pulled."""

    def __init__(self, path: Path, last_ts: int) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.last_ts = last_ts
        self.frames: list[dict[str, str]] = []
        self.bad = 0
        self.disconnects = 0
        self.done = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        buf = b""
        while not self.stop.is_set() and not self.done.is_set():
            try:
                port = serial.Serial(str(self.path), 115200, timeout=0.05)
            except (serial.SerialException, OSError):
                time.sleep(0.01)  # the box is unplugged: retry like a reader would
                continue
            try:
                while not self.stop.is_set() and not self.done.is_set():
                    buf += port.read(4096)
                    buf = self._frames(buf)
            except (serial.SerialException, OSError):
                self.disconnects += 1
                buf = b""
            finally:
                port.close()

    def _frames(self, buf: bytes) -> bytes:
        while True:
            start = buf.find(b"\x02")
            if start < 0:
                return b""
            end = buf.find(b"\r\n", start)
            if end < 0:
                return buf[start:]
            candidate = buf[start : end + 2]
            restart = candidate.find(b"\x02", 1)
            if restart > 0:  # a truncated frame: resynchronise on the next STX
                self.bad += 1
                buf = buf[start + restart :]
                continue
            fields = parse_frame(candidate)
            if fields is None:
                self.bad += 1
            else:
                self.frames.append(fields)
                if int(fields["T"]) >= self.last_ts:
                    self.done.set()
            buf = buf[end + 2 :]
