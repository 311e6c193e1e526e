"""Device sources: one package per protocol, each registering itself (see ``registry``).

Names are resolved lazily so that importing a protocol's models (which the
config and profile loaders do) never drags in the source machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_agent.sources.base import Binding, Sink, Source, build_sources

__all__ = ["Binding", "Sink", "Source", "build_sources"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from edge_agent.sources import base

        return getattr(base, name)
    raise AttributeError(name)
