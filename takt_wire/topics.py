"""MQTT topic scheme under ``takt/v1/``; see docs/wire-contract.md.

Every level is a :data:`takt_wire.events.Name`, so no level contains '/', '+' or '#'.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "takt/v1"


def events_topic(site: str, agent: str) -> str:
    """Where an agent publishes its event batches (QoS 1)."""
    return f"{ROOT}/{site}/events/{agent}"


def events_filter(site: str = "+") -> str:
    """Subscription filter for all event batches of a site (or of every site)."""
    return f"{ROOT}/{site}/events/+"


def shared(group: str, topic_filter: str) -> str:
    """MQTT v5 shared subscription: members of ``group`` split the messages."""
    return f"$share/{group}/{topic_filter}"


def agent_status_topic(site: str, agent: str) -> str:
    """Retained online/offline status of an agent (its last will says offline)."""
    return f"{ROOT}/{site}/agents/{agent}/status"


def acks_topic(site: str, agent: str) -> str:
    """Where collectors confirm to one agent which of its events are stored (QoS 1)."""
    return f"{ROOT}/{site}/acks/{agent}"


def alerts_topic(site: str, line: str, station: str) -> str:
    """Where the KPI service publishes threshold alerts for supervisors."""
    return f"{ROOT}/{site}/alerts/{line}/{station}"


@dataclass(frozen=True)
class EventsTopic:
    site: str
    agent: str


def parse_events_topic(topic: str) -> EventsTopic | None:
    """Inverse of :func:`events_topic`; None when the topic is not an events topic."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != ROOT or parts[3] != "events":
        return None
    return EventsTopic(site=parts[2], agent=parts[4])
