"""Which variables a station's profile needs, and finding per-code variables by browsing."""

from __future__ import annotations

import logging
import re

from asyncua import ua
from asyncua.client.client import Client

from edge_agent.sources.base import Binding
from edge_agent.sources.opcua.models import OpcuaBinding

log = logging.getLogger(__name__)


def node_id(identifier: str, idx: int) -> ua.NodeId:
    return ua.NodeId.from_string(f"ns={idx};s={identifier}")


def wanted_names(binding: Binding, extra_codes: list[str]) -> list[str]:
    """Variable names (after the station part) of every signal, known codes included."""
    sig = binding.profile.signals
    opc = binding.profile.section(OpcuaBinding)
    names = [s.at for s in (sig.good, sig.operator, sig.state, sig.cycle_time) if s]
    if sig.defects is not None:
        names += pulse_names(binding)
        if sig.defects.kind == "counter" and sig.defects.format == "pattern" and sig.defects.at:
            names += [sig.defects.at.replace("{code}", code) for code in extra_codes]
        elif sig.defects.kind == "counter" and sig.defects.at is not None:
            names.append(sig.defects.at)
            if sig.defects.last_code:
                names.append(sig.defects.last_code)
    names += opc.extra_nodes
    return list(dict.fromkeys(names))


def pulse_names(binding: Binding) -> list[str]:
    """``defects: kind: pulse``: the variables whose every write is a defect event.

    They are monitored with the trigger StatusValueTimestamp (a repeated code is a new
    write with a new source timestamp, hence a new defect), and the first notification
    after subscribing is the value in force, not an event, so it is not counted.
    """
    defects = binding.profile.signals.defects
    if defects is None or defects.kind != "pulse":
        return []
    return [n for n in (defects.at, defects.code) if n is not None]


async def discover_codes(client: Client, idx: int, binding: Binding) -> list[str]:
    """Variables matching the defect pattern under the station object (3 levels deep)."""
    opc = binding.profile.section(OpcuaBinding)
    defects = binding.profile.signals.defects
    if defects is None or defects.format != "pattern" or not opc.station_object:
        return []
    if defects.at is None:
        return []
    station = binding.station.id
    pattern = opc.node.format(station=station, name=defects.at.replace("{code}", "\0"))
    head, _, tail = pattern.partition("\0")
    regex = re.compile(re.escape(head) + r"(.+)" + re.escape(tail) + "$")
    root = client.get_node(node_id(opc.station_object.format(station=station), idx))
    names: list[str] = []
    frontier = [root]
    for _depth in range(3):
        nxt = []
        for node in frontier:
            try:
                children = await node.get_children()
            except ua.uaerrors.UaStatusCodeError as err:
                log.warning("cannot browse %s: %s", node.nodeid.to_string(), err)
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
