"""Channel factories by config ``type``: each channel module registers itself on import.

Telegraf style: an implementation module calls :func:`register` at import time and the
package ``__init__`` imports every implementation once, so the interface (``base``) never
imports an implementation and a new channel is one module plus one import line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from kpi_service.alerts.channels.base import Channel, ChannelContext
from kpi_service.alerts.rules import ChannelDef

Factory = Callable[[str, ChannelDef, ChannelContext], Channel]
F = TypeVar("F", bound=Factory)

_FACTORIES: dict[str, Factory] = {}


def register(*types: str) -> Callable[[F], F]:
    """Class decorator: build channels of these config ``type`` values with the class."""

    def add(factory: F) -> F:
        for kind in types:
            if kind in _FACTORIES:
                raise ValueError(f"channel type {kind!r} is registered twice")
            _FACTORIES[kind] = factory
        return factory

    return add


def registered() -> dict[str, Factory]:
    """A copy of the registry (config type -> factory)."""
    return dict(_FACTORIES)


def build_channels(
    definitions: Mapping[str, ChannelDef], context: ChannelContext
) -> dict[str, Channel]:
    """Instantiate every configured channel; a missing secret fails here, at start-up."""
    out: dict[str, Channel] = {}
    for name, definition in definitions.items():
        factory = _FACTORIES.get(definition.type)
        if factory is None:
            raise ValueError(
                f"channel {name!r}: no implementation of type {definition.type!r} is loaded"
            )
        out[name] = factory(name, definition, context)
    return out
