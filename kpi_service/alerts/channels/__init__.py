"""Delivery channels, one module per kind behind one interface, built by config ``type``."""

from kpi_service.alerts.channels.base import (
    Channel,
    ChannelContext,
    DeliveryError,
    Publisher,
    build_channels,
)

__all__ = ["Channel", "ChannelContext", "DeliveryError", "Publisher", "build_channels"]
