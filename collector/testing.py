"""Generators of valid event batches and a QoS 1 publisher (tests and the benchmark)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from takt_wire import Batch, Event, SessionEvent, StateEvent, UnitEvent, WorkEvent, encode_batch
from takt_wire.topics import events_topic


@dataclass
class Scenario:
    """Deterministic events of ``agents`` agents; totals are what InfluxDB must end up with."""

    agents: int = 2
    events_per_agent: int = 1_000
    batch_size: int = 100
    site: str = "s1"
    start: datetime | None = None
    boot: str = "b1"

    def events(self, agent_index: int) -> Iterator[Event]:
        start = self.start or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
        agent = f"agent{agent_index}"
        for seq in range(self.events_per_agent):
            ts = start + timedelta(milliseconds=37 * seq + agent_index)
            base = {
                "site": self.site,
                "line": f"L{agent_index}",
                "station": f"st{seq % 4}",
                "device": "plc1",
                "worker": f"w{seq % 7}",
                "ts": ts,
                "agent": agent,
                "boot": self.boot,
                "seq": seq,
            }
            kind = seq % 10
            if kind < 7:
                yield UnitEvent(**base, outcome="good", count=1 + seq % 3)
            elif kind == 7:
                yield UnitEvent(**base, outcome="defect", defect_code="scratch")
            elif kind == 8:
                yield WorkEvent(
                    **base,
                    start=ts - timedelta(seconds=60),
                    work_s=60.0,
                    effective_s=45.5,
                    down_s={"fault": 10.0, "starved": 4.5},
                )
            elif seq % 20 == 9:
                yield StateEvent(**base, state="down", reason="fault")
            else:
                yield SessionEvent(**base, action="login")

    def batches(self, agent_index: int) -> Iterator[tuple[str, bytes]]:
        """(topic, payload) of every batch of one agent, in sequence order."""
        topic = events_topic(self.site, f"agent{agent_index}")
        chunk: list[Event] = []
        for event in self.events(agent_index):
            chunk.append(event)
            if len(chunk) == self.batch_size:
                yield topic, self._encode(agent_index, chunk)
                chunk = []
        if chunk:
            yield topic, self._encode(agent_index, chunk)

    def _encode(self, agent_index: int, events: list[Event]) -> bytes:
        batch = Batch(
            agent=f"agent{agent_index}", boot=self.boot, sent_at=datetime.now(UTC), events=events
        )
        return encode_batch(batch)

    def all_batches(self) -> list[tuple[str, bytes]]:
        return [b for i in range(self.agents) for b in self.batches(i)]

    def totals(self) -> dict[str, int]:
        """Expected point counts and unit sums for the whole scenario."""
        out = {"units": 0, "count": 0, "work": 0, "downtime": 0, "sessions": 0, "states": 0}
        for i in range(self.agents):
            for event in self.events(i):
                if isinstance(event, UnitEvent):
                    out["units"] += 1
                    out["count"] += event.count
                elif isinstance(event, WorkEvent):
                    out["work"] += 1
                    out["downtime"] += len(event.down_s)
                elif isinstance(event, SessionEvent):
                    out["sessions"] += 1
                else:
                    out["states"] += 1
        return out


def publish(
    host: str,
    port: int,
    messages: list[tuple[str, bytes]] | list[tuple[str, bytes, dict[str, str]]],
    *,
    window: int = 50,
    client_id: str = "takt-test-publisher",
) -> None:
    """Publish with QoS 1, at most ``window`` unacknowledged, and wait for every PUBACK."""
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5,
    )
    slots = threading.Semaphore(window)
    client.on_publish = lambda *args: slots.release()
    client.connect(host, port)
    client.loop_start()
    try:
        infos = []
        for message in messages:
            topic, payload = message[0], message[1]
            props = None
            if len(message) > 2:
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.UserProperty = list(message[2].items())
            if not slots.acquire(timeout=60):
                raise TimeoutError("broker stopped acknowledging publishes")
            infos.append(client.publish(topic, payload, qos=1, properties=props))
        for info in infos:
            info.wait_for_publish(timeout=60)
            if not info.is_published():
                raise TimeoutError("a publish was not acknowledged")
    finally:
        client.disconnect()
        client.loop_stop()
