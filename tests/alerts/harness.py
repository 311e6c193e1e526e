"""End-to-end harness: the real KPI app under uvicorn, a real broker, a webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import uvicorn
from fastapi import FastAPI
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kpi_service.alerts.config import AlertSettings
from kpi_service.alerts.service import AlertService
from kpi_service.core.apikeys import KeyStore
from kpi_service.core.config import Settings
from kpi_service.main import create_app
from takt_cli.localservices import free_port
from takt_store.settings import InfluxSettings
from takt_wire import Batch, encode_batch
from takt_wire.topics import events_topic

RULES = """
channels:
  bus: {{type: mqtt}}
  hook: {{type: webhook, url: "{hook}", secret_env: TAKT_TEST_HOOK_SECRET}}
  pager: {{type: webhook, url: "{hook}/escalation"}}
rules:
  - id: defects
    metric: defect_rate
    scope: worker
    window: {{minutes: 10}}
    min_samples: 20
    warning: 10
    critical: 40
    clear: 5
    for_s: 5
    cooldown_s: 60
    escalate_after_s: 600
    channels: [bus, hook]
    escalation_channels: [pager]
"""


@dataclass
class Keys:
    sup_l1: str
    sup_l2: str
    admin: str


def make_app(
    tmp_path: Path,
    broker_port: int,
    hook: str,
    influx_url: str,
    db: str,
    *,
    create_keys: bool = True,
    **alert: Any,
) -> tuple[FastAPI, Keys | None]:
    settings = Settings(
        environment="development",
        state_dir=tmp_path / "state",
        influx=InfluxSettings(url=influx_url, database=db),
    )
    rules = tmp_path / "rules.yaml"
    if not rules.exists():
        rules.write_text(RULES.format(hook=hook))
    app = create_app(settings)
    values: dict[str, Any] = {
        "enabled": True,
        "rules_file": rules,
        "state_db": tmp_path / "state" / "alerts.sqlite",
        "mqtt_port": broker_port,
        "mqtt_client_id": f"alerts-{tmp_path.name}",
        "mqtt_group": f"g{uuid.uuid4().hex[:8]}",
        "tick_s": 0.2,
        "delivery_backoff_s": 0.05,
    }
    values.update(alert)
    app.state.alert_settings = AlertSettings(**values)
    store = KeyStore(settings.keys_db, settings.secret_key.get_secret_value())
    if not create_keys:  # a restart in the same folder keeps the keys it had
        return app, None
    return app, Keys(
        sup_l1=store.create("sup-l1", frozenset({"supervisor"}), frozenset({"L1"})),
        sup_l2=store.create("sup-l2", frozenset({"supervisor"}), frozenset({"L2"})),
        admin=store.create("admin", frozenset({"admin"}), None),
    )


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run the app under uvicorn on a free port (lifespan included); yield its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=3,  # open SSE streams would hold the shutdown
        )
    )
    task = asyncio.create_task(server.serve(), name="uvicorn")
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def service(app: FastAPI) -> AlertService:
    svc = app.state.alerts
    assert isinstance(svc, AlertService)
    return svc


class Bus:
    """A plain MQTT client for the test: publishes batches, collects alert messages."""

    def __init__(self, port: int, subscribe: str | None = None) -> None:
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        subscribed = queue.Queue[bool]()

        def on_connect(client: mqtt.Client, *_: object) -> None:
            if subscribe:
                client.subscribe(subscribe, qos=1)
            else:
                subscribed.put(True)

        def on_subscribe(*_: object) -> None:
            subscribed.put(True)

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = lambda _c, _u, m: self.received.put((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        subscribed.get(timeout=10)

    def publish(self, batch: Batch, site: str = "s1") -> None:
        self.raw(events_topic(site, batch.agent), encode_batch(batch))

    def raw(
        self, topic: str, payload: bytes, user_properties: dict[str, str] | None = None
    ) -> None:
        properties = None
        if user_properties:
            properties = Properties(PacketTypes.PUBLISH)
            properties.UserProperty = list(user_properties.items())
        self.client.publish(topic, payload, qos=1, properties=properties).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def now_aligned() -> datetime:
    """Event time origin near wall time (so an InfluxDB rebuild of the last hour sees it)."""
    return datetime.now(UTC).replace(microsecond=0)


async def until(predicate: Any, limit_s: float = 15.0, what: str = "condition") -> None:
    """Await a condition that the service's own tasks make true (counters, stored rows).

    Those have no event to await, so this polls, on the loop (never blocking it), and
    fails with ``what`` when ``limit_s`` passes.
    """
    try:
        async with asyncio.timeout(limit_s):
            while not predicate():  # noqa: ASYNC110 (no event exists for these conditions)
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {limit_s} s waiting for {what}") from None
