"""The protocol registry: adding a protocol is one package and one line here.

Each package in ``PACKAGES`` exposes ``PROTOCOL``, a :class:`ProtocolSpec` with
its connection model (a station's ``connection:``), its profile section (the
profile's ``<protocol>:``) and where its source class lives. The config's
connection union and the profile's sections are built from this registry.
The source module itself is imported only when a station uses the protocol,
so an MQTT-only gateway never loads asyncua, pyserial or pymodbus.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache

from pydantic import BaseModel

from edge_agent.sources.connection import ConnectionModel

PACKAGES = (
    "edge_agent.sources.opcua",
    "edge_agent.sources.mqtt",
    "edge_agent.sources.serial",
    "edge_agent.sources.modbus",
)


@dataclass(frozen=True)
class ProtocolSpec:
    name: str
    connection: type[ConnectionModel]
    section: type[BaseModel]
    source: str
    """``module:Class`` of the source; the class takes (bindings, config, metrics)."""
    defect_formats: frozenset[str] = frozenset({"map", "pairs"})
    """The ``signals.defects.format`` values this protocol's readings can carry."""


@cache
def protocols() -> dict[str, ProtocolSpec]:
    specs: dict[str, ProtocolSpec] = {}
    for package in PACKAGES:
        spec = importlib.import_module(package).PROTOCOL
        if not isinstance(spec, ProtocolSpec):
            raise TypeError(f"{package}.PROTOCOL is not a ProtocolSpec")
        specs[spec.name] = spec
    return specs
