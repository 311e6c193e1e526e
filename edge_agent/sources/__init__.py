"""Device sources: one module per protocol behind one interface, chosen by config ``type``."""

from edge_agent.sources.base import REGISTRY, Binding, Sink, Source, build_sources

__all__ = ["REGISTRY", "Binding", "Sink", "Source", "build_sources"]
