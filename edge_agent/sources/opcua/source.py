"""OPC UA (asyncua): data-change subscriptions, not polling.

Monitored items have a server-side queue (> 1) so no change between two
publishes is lost; each publish's notifications are handed on sorted by
SourceTimestamp, joined per station where the profile needs it (``assemble``).

Failures stay as small as they are:

- a station whose namespace, station object or variables cannot be found is
  that station's error (metric, log with the server's namespace array); the
  other stations of the server keep running and the station is retried with
  backoff in the same session;
- a lost connection tears the session down and rebuilds it after a short,
  capped, jittered backoff (``reconnect_min_s`` .. ``reconnect_max_s``);
- after a reconnect, the changes the agent could not see meanwhile are read
  from the server's history (HistoryRead) where the server keeps one, so a
  logout or a PLC restart in the blind window is not lost (``history``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.common.subscription import Subscription
from asyncua.crypto import security_policies
from asyncua.ua.attribute_ids import AttributeIds

from edge_agent.config import GatewayConfig
from edge_agent.mapping import RawReading
from edge_agent.metrics import AgentMetrics
from edge_agent.sources.base import Binding, Sink
from edge_agent.sources.opcua.assemble import Assembler
from edge_agent.sources.opcua.browse import discover_codes, node_id, pulse_names, wanted_names
from edge_agent.sources.opcua.history import catch_up
from edge_agent.sources.opcua.models import OpcuaBinding, OpcuaConnection
from edge_agent.sources.opcua.namespace import NamespaceError, resolve_namespace
from takt_common.backoff import Backoff

log = logging.getLogger(__name__)

STATION_ERRORS = (NamespaceError, ua.uaerrors.UaStatusCodeError, ValueError)
"""What one station's layout can get wrong; anything else is the session's problem."""


class _Collector:
    """asyncua subscription handler: collects notifications in arrival order."""

    def __init__(self, lost: asyncio.Event, last_seen: dict[str, datetime]) -> None:
        self.names: dict[str, tuple[str, str]] = {}
        self.items: list[RawReading] = []
        self.skip_first: set[str] = set()
        """Pulse variables whose next notification is the value in force, not an event."""
        self.ready = asyncio.Event()
        self.lost = lost
        self.last_seen = last_seen

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        key = node.nodeid.to_string()
        where = self.names.get(key)
        if where is None:
            return
        value = data.monitored_item.Value
        ts = value.SourceTimestamp or value.ServerTimestamp
        if ts is not None and ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        if ts is not None:
            self.last_seen[key] = max(ts, self.last_seen.get(key, ts))
        if key in self.skip_first:
            self.skip_first.discard(key)
            return
        station, name = where
        self.items.append(RawReading(station=station, values={name: val}, source_ts=ts))
        self.ready.set()

    def status_change_notification(self, status: Any) -> None:
        log.warning("OPC UA subscription status changed: %s", status.Status)
        self.lost.set()


def _ts_key(raw: RawReading) -> datetime:
    return raw.source_ts or datetime.min.replace(tzinfo=UTC)


@dataclass
class _Station:
    binding: Binding
    opc: OpcuaBinding
    assembler: Assembler
    retry: Backoff
    nodes: dict[str, Node] = field(default_factory=dict)
    """Monitored variables by name."""
    missing: list[str] = field(default_factory=list)
    """Variables the server refused to monitor (retried)."""
    ready: bool = False
    retry_at: float = 0.0

    @property
    def id(self) -> str:
        return self.binding.station.id


class OpcuaSource:
    def __init__(
        self, bindings: list[Binding], config: GatewayConfig, metrics: AgentMetrics
    ) -> None:
        conn = bindings[0].station.connection
        assert isinstance(conn, OpcuaConnection)
        self.conn = conn
        self.bindings = bindings
        self.metrics = metrics
        self.name = f"opcua:{conn.endpoint}"
        self.connected = asyncio.Event()
        self.last_seen: dict[str, datetime] = {}
        """Newest SourceTimestamp seen per NodeId, across sessions (history starts there)."""
        self.sessions = 0
        self.lost_at: datetime | None = None
        self._reported: set[tuple[str, str]] = set()
        self._bad_nodes: set[tuple[str, str]] = set()

    async def run(self, sink: Sink) -> None:
        backoff = Backoff(base=self.conn.reconnect_min_s, cap=self.conn.reconnect_max_s)
        gauge = self.metrics.source_connected.labels(self.name)
        while True:
            started = asyncio.get_running_loop().time()
            try:
                await self._session(sink)
            except (OSError, TimeoutError, ConnectionError, ua.uaerrors.UaError) as err:
                log.warning("%s: %s: %s", self.name, type(err).__name__, err)
            except Exception:
                # no device may stop the agent: whatever a server does, retry it
                log.exception("%s: session failed unexpectedly; reconnecting", self.name)
            finally:
                gauge.set(0)
                self.connected.clear()
                self.lost_at = self.lost_at or datetime.now(UTC)
            if asyncio.get_running_loop().time() - started > 30:
                backoff.reset()
            self.metrics.reconnects.labels(self.name).inc()
            await asyncio.sleep(backoff.next_delay())

    async def _configure(self, client: Client) -> None:
        sec = self.conn.security
        if sec.policy != "None":
            policy = getattr(security_policies, f"SecurityPolicy{sec.policy}")
            await client.set_security(
                policy,
                certificate=str(sec.certificate),
                private_key=str(sec.private_key),
                server_certificate=str(sec.server_certificate),
                mode=getattr(ua.MessageSecurityMode, sec.mode),
            )
        if self.conn.username:
            client.set_user(self.conn.username)
            password = self.conn.password()
            if password:
                client.set_password(password)

    async def _session(self, sink: Sink) -> None:
        client = Client(self.conn.endpoint, timeout=self.conn.timeout_s, watchdog_intervall=1.0)
        client.session_timeout = round(self.conn.session_timeout_s * 1000)
        await self._configure(client)
        lost = asyncio.Event()

        async def on_lost(exc: Exception) -> None:
            log.warning("%s: connection lost: %s", self.name, exc)
            lost.set()

        client.connection_lost_callback = on_lost
        await client.connect()
        try:
            await self._subscribe_and_forward(client, sink, lost)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), timeout=2)

    def _station_error(self, st: _Station, reason: str, message: str) -> None:
        """Count every failed attempt; log each distinct problem once per station."""
        self.metrics.station_errors.labels(st.id, reason).inc()
        if (st.id, message) not in self._reported:
            self._reported.add((st.id, message))
            log.error(
                "%s: station %s: %s; retrying it, the others keep running",
                self.name,
                st.id,
                message,
            )

    async def _monitor(
        self, client: Client, sub: Subscription, collector: _Collector, st: _Station
    ) -> None:
        """Subscribe a station's variables (those not monitored yet)."""
        loop = asyncio.get_running_loop()
        try:
            array = await client.get_namespace_array()
            idx = resolve_namespace(st.opc, array)
            names = wanted_names(st.binding, self.conn.defect_codes)
            defects = st.binding.profile.signals.defects
            if defects is not None and defects.format == "pattern":
                for name in await discover_codes(client, idx, st.binding):
                    if name not in names:
                        names.append(name)
        except NamespaceError as err:
            self._station_error(st, "namespace", str(err))
            st.retry_at = loop.time() + st.retry.next_delay()
            return
        except STATION_ERRORS as err:
            self._station_error(st, "browse", f"{type(err).__name__}: {err}")
            st.retry_at = loop.time() + st.retry.next_delay()
            return
        todo = [n for n in names if n not in st.nodes]
        nodes = []
        for name in todo:
            nid = node_id(st.opc.node.format(station=st.id, name=name), idx)
            collector.names[nid.to_string()] = (st.id, name)
            nodes.append(client.get_node(nid))
        results = await self._subscribe(sub, todo, nodes, st)
        for name, node, result in zip(todo, nodes, results, strict=True):
            if name in pulse_names(st.binding) and not isinstance(result, ua.StatusCode):
                collector.skip_first.add(node.nodeid.to_string())
        st.missing = []
        for name, node, result in zip(todo, nodes, results, strict=True):
            if isinstance(result, ua.StatusCode):
                st.missing.append(name)
                if (st.id, name) not in self._bad_nodes:
                    self._bad_nodes.add((st.id, name))
                    self.metrics.bad_nodes.labels(self.name).inc()
                self._station_error(
                    st, "node", f"cannot monitor {node.nodeid.to_string()} ({result.name})"
                )
            else:
                st.nodes[name] = node
        st.ready = True
        if st.missing:
            st.retry_at = loop.time() + st.retry.next_delay()
        else:
            st.retry.reset()
        log.info(
            "%s: station %s: monitoring %d variables, %d missing",
            self.name,
            st.id,
            len(st.nodes),
            len(st.missing),
        )

    @staticmethod
    async def _subscribe(
        sub: Subscription, names: list[str], nodes: list[Node], st: _Station
    ) -> list[int | ua.StatusCode]:
        """Monitor ``nodes``; pulse variables notify every write, even of an equal value."""
        pulses = set(pulse_names(st.binding))
        results: dict[int, int | ua.StatusCode] = {}
        for is_pulse in (False, True):
            group = [i for i, name in enumerate(names) if (name in pulses) == is_pulse]
            if not group:
                continue
            mfilter = None
            if is_pulse:
                mfilter = ua.DataChangeFilter()
                mfilter.Trigger = ua.DataChangeTrigger.StatusValueTimestamp
            answers = await sub._subscribe(
                [nodes[i] for i in group],
                AttributeIds.Value,
                mfilter,
                queuesize=st.opc.queue_size,
                sampling_interval=ua.Double(0.0),
            )
            results.update(zip(group, answers, strict=True))
        return [results[i] for i in range(len(names))]

    async def _subscribe_and_forward(self, client: Client, sink: Sink, lost: asyncio.Event) -> None:
        self.sessions += 1
        loop = asyncio.get_running_loop()
        # history starts where the last session stopped, not at the new session's
        # first notifications (which update last_seen while history is being read)
        seen_before = dict(self.last_seen)
        collector = _Collector(lost, self.last_seen)
        stations: list[_Station] = []
        for binding in self.bindings:
            opc = binding.profile.section(OpcuaBinding)
            defects = binding.profile.signals.defects
            total, code = None, None
            if defects is not None and defects.mode == "total_and_last_code":
                total, code = defects.at, defects.last_code
            elif defects is not None and defects.kind == "pulse" and defects.at:
                total, code = defects.at, defects.code  # a count and its code, written apart
            assembler = Assembler(total, code, opc.code_window_ms / 1000)
            retry = Backoff(base=1.0, cap=self.conn.station_retry_max_s)
            stations.append(_Station(binding, opc, assembler, retry))
        interval = min(st.opc.publishing_interval_ms for st in stations)
        sub = await client.create_subscription(interval, collector)
        for st in stations:
            await self._monitor(client, sub, collector, st)
        self.metrics.source_connected.labels(self.name).set(1)
        self.connected.set()
        by_id = {st.id: st for st in stations}
        if self.sessions > 1 and self.lost_at is not None:
            resumed = datetime.now(UTC)
            if self.conn.history == "auto":
                nodes = {st.id: dict(st.nodes) for st in stations}
                missed, blind = await catch_up(client, self.name, nodes, seen_before)
            else:
                missed, blind = [], [st.id for st in stations]
            blind_s = (resumed - self.lost_at).total_seconds()
            for station in blind:
                self.metrics.blind_windows.labels(station).inc()
                log.warning(
                    "%s: station %s was not observed for %.1f s and the server keeps no "
                    "history: changes in that window are not seen (reported as a gap)",
                    self.name,
                    station,
                    blind_s,
                )
            if blind:  # before any live value, so the gap precedes what it may explain
                await sink([RawReading(s, {}, unobserved=(self.lost_at, resumed)) for s in blind])
            await self._forward(missed, by_id, sink, loop.time())
        self.lost_at = None
        while not lost.is_set():
            now = loop.time()
            wakeups = [st.retry_at for st in stations if not st.ready or st.missing]
            wakeups += [st.assembler.deadline for st in stations if st.assembler.deadline]
            timeout = max(0.0, min(wakeups) - now) if wakeups else None
            waiters = [asyncio.ensure_future(e.wait()) for e in (collector.ready, lost)]
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            await asyncio.sleep(0)  # let the dispatch tasks of this publish run
            items, collector.items = collector.items, []
            collector.ready.clear()
            await self._forward(items, by_id, sink, loop.time())
            for st in stations:
                if (not st.ready or st.missing) and loop.time() >= st.retry_at:
                    await self._monitor(client, sub, collector, st)
        self.lost_at = datetime.now(UTC)
        raise ConnectionError("connection lost")

    async def _forward(
        self, items: list[RawReading], stations: dict[str, _Station], sink: Sink, now: float
    ) -> None:
        items.sort(key=_ts_key)
        ready: list[RawReading] = []
        for st in stations.values():
            ready += st.assembler.due(now)
        for raw in items:
            ready += stations[raw.station].assembler.add(raw, now)
        for st in stations.values():
            if st.assembler.uncoded:
                self.metrics.uncoded_defects.labels(st.id).inc(st.assembler.uncoded)
                if (st.id, "uncoded") not in self._reported:
                    self._reported.add((st.id, "uncoded"))
                    log.warning(
                        "%s: station %s: reject total changed while no defect code was "
                        "known; stored as code 'unknown' (logged once)",
                        self.name,
                        st.id,
                    )
                st.assembler.uncoded = 0
        if ready:
            await sink(ready)
