"""Prometheus metrics of one agent, in its own registry (agents can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class AgentMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.readings = Counter(
            "takt_agent_readings", "Readings processed", ["station"], registry=r
        )
        self.bad_fields = Counter(
            "takt_agent_bad_fields",
            "Reading fields that could not be understood",
            ["station"],
            registry=r,
        )
        self.stale_fields = Counter(
            "takt_agent_stale_fields",
            "Fields older than a value already applied (skipped)",
            ["station"],
            registry=r,
        )
        self.skewed = Counter(
            "takt_agent_skewed_readings",
            "Readings whose device time went backwards",
            ["station"],
            registry=r,
        )
        self.clock_outliers = Counter(
            "takt_agent_clock_outliers",
            "Readings refused because the device time was too far ahead of the gateway's",
            ["station"],
            registry=r,
        )
        self.counter_events = Counter(
            "takt_agent_counter_anomalies",
            "Counter rollovers, device restarts and jumps",
            ["station", "kind"],
            registry=r,
        )
        self.corrupt_frames = Counter(
            "takt_agent_corrupt_frames", "Serial frames skipped", ["station", "reason"], registry=r
        )
        self.bad_nodes = Counter(
            "takt_agent_opcua_bad_nodes",
            "OPC UA variables that could not be monitored",
            ["source"],
            registry=r,
        )
        self.station_errors = Counter(
            "takt_agent_station_errors",
            "A station's device layout could not be used (namespace, browse, node); retried",
            ["station", "reason"],
            registry=r,
        )
        self.uncoded_defects = Counter(
            "takt_agent_uncoded_defects",
            "Reject counter changes with no defect code known (stored as 'unknown')",
            ["station"],
            registry=r,
        )
        self.blind_windows = Counter(
            "takt_agent_opcua_blind_windows",
            "Reconnects after which the server had no history of the missed changes",
            ["station"],
            registry=r,
        )
        self.unknown_badges = Counter(
            "takt_agent_unknown_badges", "Badges not in the roster", registry=r
        )
        self.events = Counter("takt_agent_events", "Events committed", ["kind"], registry=r)
        self.invalid_events = Counter(
            "takt_agent_invalid_events",
            "Events that failed the wire contract (dead-lettered)",
            registry=r,
        )
        self.outbox_pending = Gauge(
            "takt_agent_outbox_pending",
            "Events in the outbox (not yet confirmed stored by a collector)",
            registry=r,
        )
        self.outbox_fill = Gauge(
            "takt_agent_outbox_fill_ratio", "Outbox fill (1 = full)", registry=r
        )
        self.outbox_dropped = Counter(
            "takt_agent_outbox_dropped", "Events dropped because the outbox was full", registry=r
        )
        self.published_events = Counter(
            "takt_agent_published_events", "Events acknowledged by the broker", registry=r
        )
        self.published_batches = Counter(
            "takt_agent_published_batches", "Batches acknowledged by the broker", registry=r
        )
        self.historical_events = Counter(
            "takt_agent_historical_events", "Events sent late, flagged historical", registry=r
        )
        self.confirmed_events = Counter(
            "takt_agent_confirmed_events",
            "Events a collector confirmed stored (then deleted from the outbox)",
            registry=r,
        )
        self.unconfirmed_events = Gauge(
            "takt_agent_unconfirmed_events",
            "Events sent and not yet confirmed stored",
            registry=r,
        )
        self.resent_events = Counter(
            "takt_agent_resent_events",
            "Events sent again: unconfirmed after the timeout, or refused by the broker",
            ["cause"],
            registry=r,
        )
        self.inflight = Gauge("takt_agent_inflight_batches", "Batches awaiting PUBACK", registry=r)
        self.broker_connected = Gauge(
            "takt_agent_broker_connected", "1 while connected to the broker", registry=r
        )
        self.source_connected = Gauge(
            "takt_agent_source_connected", "1 while a source is connected", ["source"], registry=r
        )
        self.reconnects = Counter(
            "takt_agent_reconnects", "Reconnect attempts", ["target"], registry=r
        )
