"""Device-native encodings of a DeviceState (docs/devices.md), kept apart from any I/O."""

from __future__ import annotations

import json
import random
from datetime import datetime

from simulators.devicestate import DeviceState

STX, ETX = 0x02, 0x03


def epoch_ms(start: datetime, offset_ms: int) -> int:
    return round(start.timestamp() * 1000) + offset_ms


def counter_payload(state: DeviceState, ts_ms: int) -> bytes:
    """The MQTT counter gateway's ``.../counter`` message."""
    body = {
        "ts": ts_ms,
        "cnt": state.good,
        "rej": dict(sorted(state.rejects.items())),
        "code": state.last_code,
        "op": state.badge,
        "st": state.state,
        "ct": state.last_cycle_s,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def state_payload(state: DeviceState, ts_ms: int) -> bytes:
    """The retained ``.../state`` message."""
    return json.dumps(
        {"ts": ts_ms, "st": state.state, "op": state.badge}, separators=(",", ":")
    ).encode()


def checksum(body: bytes) -> int:
    cs = 0
    for byte in body:
        cs ^= byte
    return cs


def serial_frame(state: DeviceState, ts_ms: int) -> bytes:
    """STX T=..|G=..|R=..|B=..|S=..|C=.. ETX CS CS CR LF."""
    rejects = ",".join(f"{code}:{n}" for code, n in sorted(state.rejects.items()))
    body = (
        f"T={ts_ms}|G={state.good}|R={rejects}|B={state.badge}|S={state.state}"
        f"|C={state.last_cycle_s:g}"
    ).encode()
    return bytes([STX]) + body + bytes([ETX]) + f"{checksum(body):02X}".encode() + b"\r\n"


def corrupt(frame: bytes, rng: random.Random) -> bytes:
    """A flipped byte in the body (checksum fails) or a frame cut short."""
    if rng.random() < 0.5:
        cut = rng.randrange(2, len(frame) - 4)
        return frame[:cut]
    body_end = frame.index(bytes([ETX]))
    pos = rng.randrange(1, body_end)
    flipped = frame[pos] ^ rng.choice((1, 2, 4, 8))  # printable stays printable: no false STX
    return frame[:pos] + bytes([flipped]) + frame[pos + 1 :]


def parse_serial_frame(frame: bytes) -> dict[str, str]:
    """Inverse of ``serial_frame`` for tests and tools; ValueError on a bad frame."""
    if not frame.startswith(bytes([STX])) or not frame.endswith(b"\r\n"):
        raise ValueError("frame not delimited by STX ... CR LF")
    try:
        body_end = frame.index(bytes([ETX]))
    except ValueError:
        raise ValueError("frame has no ETX") from None
    body = frame[1:body_end]
    cs_text = frame[body_end + 1 : -2]
    if len(cs_text) != 2 or int(cs_text, 16) != checksum(body):
        raise ValueError("checksum mismatch")
    fields = {}
    for part in body.decode("ascii").split("|"):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"field {part!r} has no '='")
        fields[key] = value
    return fields
