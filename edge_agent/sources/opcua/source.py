"""OPC UA (asyncua): data-change subscriptions, not polling.

Monitored items have a server-side queue (> 1) so no change between two
publishes is lost; each publish's notifications are handed on sorted by
SourceTimestamp. A variable that cannot be monitored (unknown NodeId) is
reported and skipped, the others keep working. On any loss of the connection
the client is torn down and rebuilt, subscriptions included, after a capped,
jittered backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.crypto import security_policies

from edge_agent.backoff import Backoff
from edge_agent.config import GatewayConfig
from edge_agent.mapping import RawReading
from edge_agent.metrics import AgentMetrics
from edge_agent.sources.base import Binding, Sink
from edge_agent.sources.opcua.models import OpcuaBinding, OpcuaConnection

log = logging.getLogger(__name__)


class _Collector:
    """asyncua subscription handler: collects notifications in arrival order."""

    def __init__(self, names: dict[str, tuple[str, str]], lost: asyncio.Event) -> None:
        self.names = names
        self.items: list[RawReading] = []
        self.ready = asyncio.Event()
        self.lost = lost

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        where = self.names.get(node.nodeid.to_string())
        if where is None:
            return
        value = data.monitored_item.Value
        ts = value.SourceTimestamp or value.ServerTimestamp
        if ts is not None and ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        station, name = where
        self.items.append(RawReading(station=station, values={name: val}, source_ts=ts))
        self.ready.set()

    def status_change_notification(self, status: Any) -> None:
        log.warning("OPC UA subscription status changed: %s", status.Status)
        self.lost.set()


def _node_id(identifier: str, idx: int) -> ua.NodeId:
    return ua.NodeId.from_string(f"ns={idx};s={identifier}")


def _ts_key(raw: RawReading) -> datetime:
    return raw.source_ts or datetime.min.replace(tzinfo=UTC)


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

    async def run(self, sink: Sink) -> None:
        backoff = Backoff(base=0.5, cap=30.0)
        gauge = self.metrics.source_connected.labels(self.name)
        while True:
            started = asyncio.get_running_loop().time()
            try:
                await self._session(sink)
            except (OSError, TimeoutError, ConnectionError, ua.uaerrors.UaError) as err:
                log.warning("%s: %s: %s", self.name, type(err).__name__, err)
            finally:
                gauge.set(0)
                self.connected.clear()
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

    async def _discover_codes(self, client: Client, idx: int, binding: Binding) -> list[str]:
        """Variables matching the defect pattern under the station object."""
        opc = binding.profile.section(OpcuaBinding)
        defects = binding.profile.signals.defects
        if defects is None or defects.format != "pattern" or not opc.station_object:
            return []
        station = binding.station.id
        pattern = opc.node.format(station=station, name=defects.at.replace("{code}", "\0"))
        head, _, tail = pattern.partition("\0")
        regex = re.compile(re.escape(head) + r"(.+)" + re.escape(tail) + "$")
        root = client.get_node(_node_id(opc.station_object.format(station=station), idx))
        names: list[str] = []
        frontier = [root]
        for _depth in range(3):
            nxt = []
            for node in frontier:
                try:
                    children = await node.get_children()
                except ua.uaerrors.UaStatusCodeError as err:
                    log.warning("%s: cannot browse %s: %s", self.name, node.nodeid.to_string(), err)
                    continue
                for child in children:
                    ident = child.nodeid.Identifier
                    match = regex.match(ident) if isinstance(ident, str) else None
                    if match:
                        names.append(defects.at.replace("{code}", match.group(1)))
                    else:
                        nxt.append(child)
            frontier = nxt
        return names

    async def _session(self, sink: Sink) -> None:
        client = Client(self.conn.endpoint, timeout=self.conn.timeout_s, watchdog_intervall=1.0)
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

    async def _subscribe_and_forward(self, client: Client, sink: Sink, lost: asyncio.Event) -> None:
        names: dict[str, tuple[str, str]] = {}
        nodes: list[Node] = []
        queue_size = 1000
        interval = 100.0
        for binding in self.bindings:
            opc = binding.profile.section(OpcuaBinding)
            queue_size = max(queue_size, opc.queue_size)
            interval = min(interval, opc.publishing_interval_ms)
            idx = await client.get_namespace_index(opc.namespace_uri)
            sig = binding.profile.signals
            wanted = [s.at for s in (sig.good, sig.operator, sig.state, sig.cycle_time) if s]
            if sig.defects is not None:
                if sig.defects.format == "pattern":
                    wanted += await self._discover_codes(client, idx, binding)
                    for code in self.conn.defect_codes:
                        name = sig.defects.at.replace("{code}", code)
                        if name not in wanted:
                            wanted.append(name)
                else:
                    wanted.append(sig.defects.at)
                    if sig.defects.last_code:
                        wanted.append(sig.defects.last_code)
            wanted += opc.extra_nodes
            for name in wanted:
                node_id = _node_id(opc.node.format(station=binding.station.id, name=name), idx)
                names[node_id.to_string()] = (binding.station.id, name)
                nodes.append(client.get_node(node_id))
        collector = _Collector(names, lost)
        sub = await client.create_subscription(interval, collector)
        results = await sub.subscribe_data_change(
            nodes, queuesize=queue_size, sampling_interval=ua.Double(0.0)
        )
        good = 0
        for node, result in zip(nodes, results, strict=True):
            if isinstance(result, ua.StatusCode):
                self.metrics.bad_nodes.labels(self.name).inc()
                log.error(
                    "%s: cannot monitor %s (%s); skipped, the other variables keep working",
                    self.name,
                    node.nodeid.to_string(),
                    result.name,
                )
            else:
                good += 1
        log.info("%s: connected, monitoring %d of %d variables", self.name, good, len(nodes))
        self.metrics.source_connected.labels(self.name).set(1)
        self.connected.set()
        while not lost.is_set():
            waiters = [asyncio.ensure_future(e.wait()) for e in (collector.ready, lost)]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            await asyncio.sleep(0)  # let the dispatch tasks of this publish run
            items, collector.items = collector.items, []
            collector.ready.clear()
            if items:
                items.sort(key=_ts_key)
                await sink(items)
        raise ConnectionError("connection lost")
