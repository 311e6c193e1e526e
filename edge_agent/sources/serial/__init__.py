"""Serial lines (pyserial): framed, checksummed records decoded as the profile says."""

from edge_agent.sources.registry import ProtocolSpec
from edge_agent.sources.serial.models import SerialBinding, SerialConnection

PROTOCOL = ProtocolSpec(
    name="serial",
    connection=SerialConnection,
    section=SerialBinding,
    source="edge_agent.sources.serial.source:SerialSource",
)
