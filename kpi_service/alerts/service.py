"""The running alert engine: MQTT in, engine, store, channels and live stream out.

Start-up order matters for "neither forget nor raise twice": open alerts and cooldowns
come back from the store, windows are rebuilt from InfluxDB (remembering each event's
identity), and only then does the MQTT session resume and deliver what was queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client import Counter

from kpi_service.alerts.channels import Channel, ChannelContext, build_channels
from kpi_service.alerts.config import AlertSettings
from kpi_service.alerts.dispatch import Dispatcher, route
from kpi_service.alerts.engine import Engine
from kpi_service.alerts.hub import Hub
from kpi_service.alerts.model import Alert, Transition
from kpi_service.alerts.mqttio import Message, MqttLink
from kpi_service.alerts.rebuild import fetch, replay
from kpi_service.alerts.rules import RuleSet, dump_rules, load_rules
from kpi_service.alerts.store import AlertStore
from kpi_service.core.config import Standard
from takt_common.errors import TaktError
from takt_store.settings import InfluxSettings
from takt_wire import ContractError
from takt_wire.admission import admit
from takt_wire.topics import events_filter, shared

log = logging.getLogger(__name__)

BATCHES = Counter("takt_alert_batches_total", "Event batches seen by the alert engine", ["outcome"])
REFUSED_EVENTS = Counter(
    "takt_alert_refused_events_total",
    "Events the alert engine's admission refused alone (outside the time window)",
    ["reason"],
)
TRANSITIONS = Counter("takt_alert_transitions_total", "Alert transitions", ["kind"])


class AlertError(TaktError):
    """Root of the alert service's own errors."""


class NotFound(AlertError):
    pass


class Conflict(AlertError):
    pass


class AlertService:
    """The running engine: ``async with AlertService(...) as service`` starts it, leaving
    the block stops it (loops cancelled, deliveries drained, connections closed).

    Like the agent and the collector, the loops run as named tasks of one
    :class:`asyncio.TaskGroup` entered for the lifetime of the service: a loop that dies
    of an unexpected error stops the service loudly instead of alerting nobody quietly.
    """

    def __init__(
        self,
        settings: AlertSettings,
        *,
        influx: InfluxSettings | None = None,
        standards: list[Standard] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.influx = influx
        self.clock = clock
        self.standards = list(standards or [])
        self.rules = load_rules(settings.rules_file, has_standards=bool(self.standards))
        self.engine = Engine(
            self.rules,
            retention_s=settings.retention_s,
            max_future_s=settings.max_future_s,
            standards=self.standards,
        )
        self.store = AlertStore(settings.state_db)
        self.hub = Hub()
        self.dispatcher = Dispatcher(
            self.store,
            attempts=settings.delivery_attempts,
            backoff_s=settings.delivery_backoff_s,
            backoff_max_s=settings.delivery_backoff_max_s,
        )
        self.channels: dict[str, Channel] = {}
        self.rebuilt = 0
        self.invalid_batches = 0
        self.refused_events = 0
        self.policy = settings.policy
        self._http: httpx.AsyncClient | None = None
        self._link: MqttLink | None = None
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> AlertService:
        try:
            await self._start(self._stack)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()  # the loops run until cancelled; the group then ends
        await self._stack.aclose()

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        """Open everything in start-up order; ``stack`` closes it in reverse."""
        s = self.settings
        stack.callback(self.store.close)
        self.engine.restore(self.store.open_alerts(), self.store.cooldowns())
        self._http = await stack.enter_async_context(httpx.AsyncClient(timeout=s.http_timeout_s))
        if self.influx is not None:
            found = await fetch(self.influx, s.rebuild_minutes)
            self.rebuilt = replay(self.engine, found, self.clock())
            log.info("alert windows rebuilt from %d InfluxDB points", self.rebuilt)
        link = self._link = MqttLink(
            s.mqtt_host,
            s.mqtt_port,
            client_id=s.mqtt_client_id,
            subscription=shared(s.mqtt_group, events_filter(s.site)),
            username=s.mqtt_username,
            password=s.mqtt_password.get_secret_value() if s.mqtt_password else None,
        )
        self.channels = build_channels(self.rules.channels, self._context())
        await link.start()
        stack.push_async_callback(link.stop)
        stack.push_async_callback(self.dispatcher.drain, 10)
        tasks = await stack.enter_async_context(asyncio.TaskGroup())
        self._tasks = [
            tasks.create_task(self._consume(), name="alerts-consume"),
            tasks.create_task(self._ticker(), name="alerts-tick"),
        ]

    def _context(self) -> ChannelContext:
        assert self._http is not None
        return ChannelContext(http=self._http, publisher=self._link, smtp=self.settings.smtp)

    # -- loops -------------------------------------------------------------------------

    async def _consume(self) -> None:
        assert self._link is not None
        while True:
            message = await self._link.messages.get()
            try:
                self.handle_message(message)
            except Exception:  # e.g. the store is unwritable: keep the batch unacknowledged
                BATCHES.labels("failed").inc()
                log.exception("batch on %s not processed; left for redelivery", message.topic)
                continue
            self._link.ack(message)

    def handle_message(self, message: Message) -> list[Transition]:
        wall = self.clock()
        received = datetime.fromtimestamp(wall, UTC)
        try:
            admitted = admit(
                message.topic, message.payload, message.properties, self.policy, received
            )
        except ContractError as err:
            # The collector dead-letters refused batches; here they are only counted.
            self.invalid_batches += 1
            BATCHES.labels(err.reason).inc()
            log.warning("batch refused on %s: %s", message.topic, err)
            return []
        BATCHES.labels("ok").inc()
        for refused in admitted.refused:
            REFUSED_EVENTS.labels(refused.reason).inc()
        self.refused_events += len(admitted.refused)
        return self.handle(self.engine.feed(admitted.events, wall))

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_s)
            try:
                self.handle(self.engine.tick(self.clock()))
            except Exception:  # a bad tick must not stop alerting; logged with the trace
                log.exception("alert tick failed")

    # -- transitions -------------------------------------------------------------------

    def handle(self, transitions: list[Transition]) -> list[Transition]:
        """Store, stream and deliver; returns what was new (duplicate raises are dropped)."""
        done: list[Transition] = []
        for transition in transitions:
            transition_id = self.store.apply(transition)
            if transition_id is None:
                continue
            TRANSITIONS.labels(transition.kind).inc()
            done.append(transition)
            self.hub.publish(transition)
            names = route(self.rules, transition)
            self.dispatcher.submit(
                transition_id, transition, [self.channels[n] for n in names if n in self.channels]
            )
        return done

    def acknowledge(self, alert_id: str, by: str) -> Alert:
        transition = self.engine.acknowledge(alert_id, by, self.clock())
        if transition is None:
            stored = self.store.get(alert_id)
            if stored is None:
                raise NotFound(alert_id)
            raise Conflict(f"alert {alert_id} is {stored.status}")
        self.handle([transition])
        return transition.alert

    # -- rules -------------------------------------------------------------------------

    def set_rules(self, rules: RuleSet, *, write: bool = True) -> None:
        """Validate standards and channels first, then swap; the file is replaced atomically."""
        rules.check_standards(bool(self.standards))
        channels = build_channels(rules.channels, self._context())
        if write:
            _write_atomically(self.settings.rules_file, dump_rules(rules))
        self.rules = rules
        self.channels = channels
        self.handle(self.engine.set_rules(rules, self.clock()))

    def reload_rules(self) -> RuleSet:
        rules = load_rules(self.settings.rules_file, has_standards=bool(self.standards))
        self.set_rules(rules, write=False)
        return rules


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
