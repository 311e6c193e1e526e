"""Modbus RTU and Modbus TCP (pymodbus): polled registers, one poller per line or endpoint."""

from edge_agent.sources.modbus.models import ModbusBinding, ModbusConnection
from edge_agent.sources.registry import ProtocolSpec

PROTOCOL = ProtocolSpec(
    name="modbus",
    connection=ModbusConnection,
    section=ModbusBinding,
    source="edge_agent.sources.modbus.source:ModbusSource",
)
