"""Simulated shop floor: OPC UA PLC, MQTT counters and serial boxes driven by a scenario,
plus the ground-truth ledger of what really happened."""

from simulators.floor import FloorError, ShopFloor, StationEndpoint
from simulators.scenario import Scenario, ScenarioError, load_scenario

__all__ = [
    "FloorError",
    "Scenario",
    "ScenarioError",
    "ShopFloor",
    "StationEndpoint",
    "load_scenario",
]
