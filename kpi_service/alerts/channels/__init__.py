"""Delivery channels, one module per kind behind one interface, built by config ``type``.

Importing the package loads every implementation, and each registers itself
(:mod:`.registry`); add a channel by adding its module to the imports below.
"""

from kpi_service.alerts.channels import email, mqtt, web  # noqa: F401  (they register)
from kpi_service.alerts.channels.base import Channel, ChannelContext, DeliveryError, Publisher
from kpi_service.alerts.channels.registry import build_channels, register, registered

__all__ = [
    "Channel",
    "ChannelContext",
    "DeliveryError",
    "Publisher",
    "build_channels",
    "register",
    "registered",
]
