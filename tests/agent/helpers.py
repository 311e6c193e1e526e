"""Test devices, a ground-truth ledger and an event subscriber for the agent's tests.

The simulators package is built by someone else at the same time; these are
minimal devices of our own that follow docs/devices.md, driven by a seeded
script that also writes the ledger of what really happened.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from takt_wire import UNATTRIBUTED, decode_batch
from takt_wire.topics import acks_topic, events_filter

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
CODES = ["E07", "E12"]
ROSTER = {"B1": "w1", "B2": "w2", "B3": "w3", "B4": "w4"}


@dataclass
class Step:
    """Full device snapshot of one station at one simulated second."""

    t: int
    station: str
    cnt: int
    rej: dict[str, int]
    op: str
    st: int
    ct: float
    changed: bool  # badge or state changed at this step

    @property
    def ts(self) -> datetime:
        return T0 + timedelta(seconds=self.t)


@dataclass
class Ledger:
    good: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    defects: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    work: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    effective: dict[str, float] = field(default_factory=lambda: defaultdict(float))


def make_script(
    stations: list[str], seconds: int, seed: int = 7, start_cnt: int = 0, bits: int = 16
) -> tuple[list[Step], Ledger]:
    """A seeded shift: logins, units, rejects, faults; everybody logged out at the end."""
    rng = random.Random(seed)
    ledger = Ledger()
    steps: list[Step] = []
    state = {s: {"cnt": start_cnt, "rej": {}, "op": "", "st": 0} for s in stations}
    badges = list(ROSTER)
    for t in range(seconds + 1):
        for i, s in enumerate(stations):
            cur: dict[str, Any] = state[s]
            worker = ROSTER.get(cur["op"], UNATTRIBUTED) if cur["op"] else UNATTRIBUTED
            if t > 0:
                if cur["op"]:
                    ledger.work[worker] += 1
                    if cur["st"] not in (2, 3, 4, 5):
                        ledger.effective[worker] += 1
                if cur["st"] == 1 and rng.random() < 0.5:
                    if rng.random() < 0.15:
                        code = rng.choice(CODES)
                        cur["rej"][code] = cur["rej"].get(code, 0) + 1
                        ledger.defects[(worker, code)] += 1
                    else:
                        n = rng.choice([1, 1, 1, 2])
                        cur["cnt"] = (cur["cnt"] + n) % (1 << bits)
                        ledger.good[worker] += n
            changed = False
            if t == seconds:
                changed = cur["op"] != "" or cur["st"] != 0
                cur["op"], cur["st"] = "", 0
            elif rng.random() < 0.03:
                if cur["op"]:
                    cur["op"] = (
                        "" if rng.random() < 0.5 else badges[(badges.index(cur["op"]) + 1) % 4]
                    )
                else:
                    cur["op"] = badges[(i + t) % 4]
                changed = True
            elif rng.random() < 0.05:
                cur["st"] = rng.choice([0, 1, 1, 1, 2, 3, 4])
                changed = True
            steps.append(
                Step(
                    t,
                    s,
                    cur["cnt"],
                    dict(cur["rej"]),
                    cur["op"],
                    cur["st"],
                    round(rng.uniform(20, 40), 1),
                    changed,
                )
            )
    # units made while somebody was logged out belong to nobody; drop empty keys
    return steps, ledger


def mqtt_payload(step: Step) -> dict[str, Any]:
    return {
        "ts": int(step.ts.timestamp() * 1000),
        "cnt": step.cnt,
        "rej": step.rej,
        "code": next(iter(step.rej), ""),
        "op": step.op,
        "st": step.st,
        "ct": step.ct,
    }


class EventSubscriber:
    """Collects the agent's batches (persistent session, QoS 1), dedupes by identity.

    Like a collector, it confirms what it stored on the agent's acks topic (unless
    ``confirm=False``): the agent deletes events from its outbox only then.
    """

    def __init__(
        self, port: int, site: str = "plant1", client_id: str = "test-sub", confirm: bool = True
    ) -> None:
        self.site = site
        self.confirm = confirm
        self.events: dict[tuple[str, str, int], dict[str, Any]] = {}
        self.duplicates = 0
        self.batches = 0
        self.invalid = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(events_filter(site), qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        # an agent started before the subscription exists would publish to nobody
        if not subscribed.wait(10):
            raise TimeoutError("event subscriber could not subscribe")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            batch = decode_batch(msg.payload)
        except ValueError:
            self.invalid += 1
            return
        with self.lock:
            self.batches += 1
            for event in batch.events:
                key = event.identity
                if key in self.events:
                    self.duplicates += 1
                else:
                    self.events[key] = event.model_dump(mode="json")
        if self.confirm:
            # Written from docs/wire-contract.md, not with takt_wire.acks: one range per
            # run of consecutive sequence numbers.
            ranges: list[list[int]] = []
            for seq in sorted(e.seq for e in batch.events):
                if ranges and seq == ranges[-1][1] + 1:
                    ranges[-1][1] = seq
                else:
                    ranges.append([seq, seq])
            ack = {"v": 1, "agent": batch.agent, "ranges": ranges, "by": "test-sub"}
            self.client.publish(acks_topic(self.site, batch.agent), json.dumps(ack), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def totals(self) -> Ledger:
        out = Ledger()
        with self.lock:
            events = list(self.events.values())
        for e in events:
            if e["kind"] == "unit" and e["outcome"] == "good":
                out.good[e["worker"]] += e["count"]
            elif e["kind"] == "unit":
                out.defects[(e["worker"], e["defect_code"])] += e["count"]
            elif e["kind"] == "work":
                out.work[e["worker"]] += e["work_s"]
                out.effective[e["worker"]] += e["effective_s"]
        return out

    def wait_for(self, ledger: Ledger, timeout: float, slack_s: float = 1.0) -> Ledger:
        deadline = time.monotonic() + timeout
        while True:
            got = self.totals()
            if matches(got, ledger, slack_s) or time.monotonic() > deadline:
                return got
            time.sleep(0.2)


def _clean(d: dict[Any, Any]) -> dict[Any, Any]:
    return {k: v for k, v in d.items() if v}


def matches(got: Ledger, want: Ledger, slack_s: float = 1.0) -> bool:
    if _clean(got.good) != _clean(want.good) or _clean(got.defects) != _clean(want.defects):
        return False
    for have, need in ((got.work, want.work), (got.effective, want.effective)):
        keys = set(_clean(have)) | set(_clean(need))
        if any(abs(have.get(k, 0) - need.get(k, 0)) > slack_s for k in keys):
            return False
    return True


def assert_matches(got: Ledger, want: Ledger, slack_s: float = 1.0) -> None:
    assert _clean(got.good) == _clean(want.good), (dict(got.good), dict(want.good))
    assert _clean(got.defects) == _clean(want.defects), (dict(got.defects), dict(want.defects))
    for have, need in ((got.work, want.work), (got.effective, want.effective)):
        for k in set(_clean(have)) | set(_clean(need)):
            assert abs(have.get(k, 0) - need.get(k, 0)) <= slack_s, (k, have, need)


def gateway_config(
    tmp_path: Path, broker_port: int, stations: list[dict[str, Any]], **extra: Any
) -> Path:
    roster = tmp_path / "roster.yaml"
    roster.write_text(yaml.safe_dump({"badges": ROSTER}))
    data: dict[str, Any] = {
        "agent_id": "gw1",
        "site": "plant1",
        "broker": {
            "host": "127.0.0.1",
            "port": broker_port,
            "allow_anonymous": True,
            "reconnect_max_s": 1.0,
        },
        "outbox": {"path": str(tmp_path / "outbox.db"), "synchronous": "NORMAL"},
        "publish": {"historical_after_s": 3.0},
        "http": {"port": 0},
        "roster": str(roster),
        "work_interval_s": 30,
        "stations": stations,
    }
    data.update(extra)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def mqtt_stations(names: list[str], port: int, line: str = "L1") -> list[dict[str, Any]]:
    return [
        {
            "id": s,
            "line": line,
            "profile": "takt-sim-counter",
            "connection": {"type": "mqtt", "host": "127.0.0.1", "port": port},
        }
        for s in names
    ]


class MqttDevice:
    """The MQTT counter gateway of docs/devices.md, publishing a script at QoS 1."""

    def __init__(self, port: int, line: str = "L1") -> None:
        self.line = line
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, steps: list[Step], pace_s: float = 0.0, duplicate_every: int = 97) -> None:
        import json

        for i, step in enumerate(steps):
            payload = json.dumps(mqtt_payload(step))
            topic = f"plant/{self.line}/{step.station}/counter"
            info = self.client.publish(topic, payload, qos=1)
            if i % duplicate_every == 0:
                self.client.publish(topic, payload, qos=1)  # the QoS 1 duplicate of the docs
            if step.changed:
                state = json.dumps({"ts": mqtt_payload(step)["ts"], "st": step.st, "op": step.op})
                self.client.publish(
                    f"plant/{self.line}/{step.station}/state", state, qos=1, retain=True
                )
            if pace_s:
                time.sleep(pace_s)
        info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
