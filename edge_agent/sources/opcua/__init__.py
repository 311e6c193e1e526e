"""OPC UA (asyncua): data-change subscriptions; see ``source`` for the session logic."""

from edge_agent.sources.opcua.models import OpcuaBinding, OpcuaConnection
from edge_agent.sources.registry import ProtocolSpec

PROTOCOL = ProtocolSpec(
    name="opcua",
    connection=OpcuaConnection,
    section=OpcuaBinding,
    source="edge_agent.sources.opcua.source:OpcuaSource",
    defect_formats=frozenset({"map", "pairs", "pattern"}),
)
