"""Prometheus metrics of one collector (own registry, so several can run in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter("takt_collector_messages", "MQTT messages received.", registry=r)
        self.events = Counter(
            "takt_collector_events", "Events received in valid batches.", registry=r
        )
        self.points = Counter(
            "takt_collector_points_written", "Points InfluxDB accepted.", registry=r
        )
        self.rejected = Counter(
            "takt_collector_rejected",
            "Messages, events or points dead-lettered, by reason.",
            ["kind", "reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "takt_collector_duplicates", "Duplicate events dropped.", registry=r
        )
        self.gaps = Counter("takt_collector_gaps", "Sequence gaps seen (one per jump).", registry=r)
        self.missing = Counter(
            "takt_collector_gap_events", "Sequence numbers skipped over by gaps.", registry=r
        )
        self.retries = Counter(
            "takt_collector_write_retries",
            "InfluxDB write retries, by cause.",
            ["cause"],
            registry=r,
        )
        self.batch_latency = Histogram(
            "takt_collector_batch_latency_seconds",
            "From the first message of a batch to its acknowledgement.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.lag = Gauge(
            "takt_collector_consumer_lag_seconds",
            "Age of the last batch read (now - its sent_at).",
            registry=r,
        )
        self.unacked = Gauge(
            "takt_collector_unacked_messages",
            "Messages received but not yet acknowledged.",
            registry=r,
        )
        self.mqtt_connected = Gauge(
            "takt_collector_mqtt_connected", "1 while connected to the broker.", registry=r
        )
        self.subscribed = Gauge(
            "takt_collector_subscribed",
            "1 while the shared subscription is in place (0: the group is missing on the broker).",
            registry=r,
        )
        self.confirms = Counter(
            "takt_collector_confirmed_events",
            "Events confirmed to their agents as stored (end-to-end acknowledgement).",
            registry=r,
        )
        self.rollup_pending = Gauge(
            "takt_collector_rollup_pending_hours",
            "Hours written to but not yet re-aggregated (durable queue).",
            registry=r,
        )
        self.rollup_oldest = Gauge(
            "takt_collector_rollup_oldest_pending_seconds",
            "Age of the oldest hour waiting for its rollup: stale rollups show here.",
            registry=r,
        )
        self.rollup_failures = Counter(
            "takt_collector_rollup_failures", "Failed hour or day recomputations.", registry=r
        )
        self.rollup_days = Counter(
            "takt_collector_rollup_days",
            "Local days re-aggregated into daily rollups.",
            registry=r,
        )
        self.rollups = Counter(
            "takt_collector_rollup_hours", "Hours re-aggregated into rollups.", registry=r
        )
