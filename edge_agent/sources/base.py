"""The Source interface, and building sources from the protocol registry.

A source moves raw readings from devices into the agent and nothing else: it
connects, survives disconnects on its own (capped, jittered backoff), and hands
readings to the sink. What the values mean is the mapping's job. Source
modules are imported only when a station uses them (see ``registry``).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from edge_agent.config import GatewayConfig, StationConfig
from edge_agent.mapping import RawReading
from edge_agent.metrics import AgentMetrics
from edge_agent.profile import DeviceProfile
from edge_agent.sources.registry import protocols

Ack = Callable[[], None]


class Sink(Protocol):
    """Takes readings (in device order); ``ack`` is called once they are committed."""

    def __call__(self, readings: list[RawReading], ack: Ack | None = None) -> Awaitable[None]: ...


class Source(Protocol):
    name: str

    async def run(self, sink: Sink) -> None:
        """Read until cancelled, reconnecting as needed; never returns on device errors."""
        ...


@dataclass(frozen=True)
class Binding:
    station: StationConfig
    profile: DeviceProfile


SourceFactory = Callable[[list[Binding], GatewayConfig, AgentMetrics], Source]


def _factory(kind: str) -> SourceFactory:
    module_name, _, attr = protocols()[kind].source.partition(":")
    factory: SourceFactory = getattr(importlib.import_module(module_name), attr)
    return factory


def build_sources(
    config: GatewayConfig, profiles: dict[str, DeviceProfile], metrics: AgentMetrics
) -> list[Source]:
    """One source per device connection (stations sharing a PLC or broker share it)."""
    groups: dict[str, list[Binding]] = {}
    for station in config.stations:
        key = station.connection.source_key(station.id)
        groups.setdefault(key, []).append(Binding(station, profiles[station.profile]))
    return [
        _factory(bindings[0].station.connection.type)(bindings, config, metrics)
        for bindings in groups.values()
    ]
