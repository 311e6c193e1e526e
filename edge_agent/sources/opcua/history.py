"""Reading what changed while the agent was not connected (OPC UA HistoryRead).

After a reconnect the subscription only delivers each variable's *current*
value: a logout and a new login, or a PLC restart of a counter, that happened
in between would be invisible, and units would go to the wrong worker or be
lost. Where the server historizes the variables, their raw history from the
newest timestamp the agent had seen is read and replayed in timestamp order
before the live notifications. Replaying a value that was already applied is
harmless: badges and states compare equal, cumulative counters give 0 units.

Where a server keeps no history, the blind window is logged with its length
and counted (``takt_agent_opcua_blind_windows``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.attribute_ids import AttributeIds

from edge_agent.mapping import RawReading

log = logging.getLogger(__name__)

MAX_VALUES = 100_000
"""Per variable and reconnect: more would mean a history far longer than any outage."""


async def catch_up(
    client: Client,
    source: str,
    stations: dict[str, dict[str, Node]],
    last_seen: dict[str, datetime],
) -> tuple[list[RawReading], list[str]]:
    """The historized changes since ``last_seen`` and the stations whose server had none."""
    missed: list[RawReading] = []
    blind: list[str] = []
    for station, nodes in stations.items():
        supported = False
        for name, node in nodes.items():
            since = last_seen.get(node.nodeid.to_string())
            if since is None:
                continue
            end = max(datetime.now(UTC), since) + timedelta(days=1)
            try:
                historizing = await node.read_attribute(AttributeIds.Historizing)
                if not historizing.Value or not historizing.Value.Value:
                    continue
                values = await node.read_raw_history(
                    since, end, numvalues=MAX_VALUES, return_bounds=False
                )
            except ua.uaerrors.UaStatusCodeError as err:
                log.debug("%s: no history for %s: %s", source, node.nodeid.to_string(), err)
                continue
            supported = True
            for dv in values:
                ts = dv.SourceTimestamp or dv.ServerTimestamp
                if ts is not None and ts.tzinfo is None:
                    ts = ts.replace(tzinfo=UTC)
                if ts is None or ts < since or dv.Value is None:
                    continue
                missed.append(RawReading(station, {name: dv.Value.Value}, source_ts=ts))
        if nodes and not supported:
            blind.append(station)
    if missed:
        log.info(
            "%s: %d changes read from the server's history after a reconnect", source, len(missed)
        )
    return missed, blind
