"""Shared parts of the agent benchmarks (``bench_agent``, ``bench_agentpath``, ``bench_agentmem``).

A stand-in collector that confirms batches, the gateway config of N simulated
stations, the counter messages a simulated MQTT device sends, and a process's
resident memory read from ``/proc``. One home, so the benches measure the same thing.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import yaml

from bench.common import load_average as load_average
from takt_wire.acks import encode_ack, seq_ranges
from takt_wire.topics import acks_topic, events_topic

_SEQ = re.compile(rb'"seq":(\d+)')
SITE = "plant1"
LINE = "L1"
BADGES = 7


class Confirmer:
    """Confirms every batch of one agent as a collector would, at minimal cost.

    It reads only the sequence numbers of each batch and publishes their ranges
    on the agent's acks topic: the agent deletes events only once confirmed, so a
    drained outbox means every event reached the broker and a consumer.
    """

    def __init__(self, port: int, agent: str = "bench") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.agent = agent
        self.confirmed = 0
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(events_topic(SITE, agent), qos=1)
        self.client.loop_start()

    def wait_subscribed(self, timeout: float = 10.0) -> None:
        if not self.subscribed.wait(timeout):
            raise RuntimeError("confirmer: no SUBACK from the broker")

    def _on_message(self, client: Any, _u: Any, msg: Any) -> None:
        seqs = [int(m) for m in _SEQ.findall(msg.payload)]
        self.confirmed += len(seqs)
        for payload in encode_ack(self.agent, seq_ranges(seqs), "bench-confirmer"):
            client.publish(acks_topic(SITE, self.agent), payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def station_id(i: int) -> str:
    return f"S{i:04d}"


def counter_topic(i: int) -> str:
    """The topic the ``takt-sim-counter`` profile reads for station ``i``."""
    return f"plant/{LINE}/{station_id(i)}/counter"


def counter_payload(i: int, n: int, t_ms: int) -> bytes:
    """Message ``n`` of station ``i``: one more good unit, a defect every 50th message."""
    doc = {
        "ts": t_ms,
        "cnt": n % 65536,
        "rej": {"E07": (n // 50) % 65536},
        "op": f"B{i % BADGES}",
        "st": 1,
        "ct": 30.0,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def mqtt_stations(count: int, port: int, client_id: str | None = None) -> list[dict[str, Any]]:
    """``count`` stations on one device broker, sharing one MQTT source."""
    connection: dict[str, Any] = {"type": "mqtt", "port": port}
    if client_id:
        connection["client_id"] = client_id
    return [
        {"id": station_id(i), "line": LINE, "profile": "takt-sim-counter", "connection": connection}
        for i in range(count)
    ]


def write_gateway(
    folder: Path, port: int, stations: list[dict[str, Any]], agent: str, **extra: Any
) -> Path:
    """A gateway config file for a real agent (outbox in ``folder``, no status port).

    The roster names the badges the simulated devices send, as a real site's would
    (an unknown badge is logged on every commit).
    """
    roster = folder / f"{agent}-roster.yaml"
    roster.write_text(yaml.safe_dump({"badges": {f"B{k}": f"w{k:04d}" for k in range(BADGES)}}))
    config = {
        "agent_id": agent,
        "site": SITE,
        "broker": {"port": port, "allow_anonymous": True},
        "outbox": {"path": str(folder / f"{agent}.db")},
        "http": {"port": 0},
        "roster": str(roster),
        "stations": stations,
        **extra,
    }
    path = folder / f"{agent}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def rss_mb(pid: int | None = None) -> dict[str, float]:
    """Resident (VmRSS) and peak resident (VmHWM) memory of a process, in MB."""
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    fields = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if "Vm" in line}
    return {
        "rss_mb": round(int(fields["VmRSS"]) / 1024, 1),
        "peak_rss_mb": round(int(fields["VmHWM"]) / 1024, 1),
    }


def verdict(value: float, target: float, *, at_most: bool = False) -> str:
    """``met`` or ``not met`` for a figure against its target."""
    ok = value <= target if at_most else value >= target
    return "met" if ok else "not met"
