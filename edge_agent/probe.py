"""``takt agent probe``: the devices' raw readings next to what the profile makes of them.

It builds the same sources as the agent and maps and attributes each reading
with a fresh, in-memory station state, printing the raw values, the mapped
signals, any problems and the events the agent would emit. Nothing is written
to the outbox and nothing is published; the command stops after ``seconds``.
MQTT device messages are read under a client id of the probe's own and never
acknowledged, so the running agent's session is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime

from edge_agent.attribution import StationInfo, StationTracker
from edge_agent.config import GatewayConfig
from edge_agent.mapping import RawReading, map_reading
from edge_agent.metrics import AgentMetrics
from edge_agent.profile import DeviceProfile
from edge_agent.sources.base import Ack, build_sources
from edge_agent.sources.mqtt.models import MqttConnection


async def run_probe(
    config: GatewayConfig,
    profiles: dict[str, DeviceProfile],
    stations: set[str],
    seconds: float,
    echo: Callable[[str], None],
) -> None:
    picked = []
    for st in config.stations:
        if st.id not in stations:
            continue
        if isinstance(st.connection, MqttConnection):
            # never take over the running agent's MQTT session (same client id)
            conn = st.connection.model_copy(update={"client_id": f"takt-probe-{os.getpid()}"})
            st = st.model_copy(update={"connection": conn})
        picked.append(st)
    chosen = config.model_copy(update={"stations": picked})
    trackers = {
        s.id: StationTracker(
            StationInfo(
                config.site,
                s.line,
                s.id,
                s.device or profiles[s.profile].model,
                agent=config.agent_id,
                boot="probe",
            ),
            profiles[s.profile],
            lambda badge: f"<badge {badge}>",
            config.work_interval_s,
            max_ahead_s=config.device_clock_max_ahead_s,
        )
        for s in chosen.stations
    }

    async def sink(readings: list[RawReading], ack: Ack | None = None) -> None:
        now = datetime.now(UTC)
        for raw in readings:
            tracker = trackers[raw.station]
            reading = map_reading(raw, tracker.profile)
            events, notes = tracker.apply(reading, now)
            mapped = {
                k: v
                for k, v in asdict(reading).items()
                if v not in (None, [], 0, False) and k not in ("station", "problems")
            }
            echo(f"{raw.station} raw    {json.dumps(raw.values, default=str)}")
            echo(f"{raw.station} mapped {json.dumps(mapped, default=str)}")
            for problem in notes.problems:
                echo(f"{raw.station} PROBLEM {problem}")
            # why a reading produced fewer events than expected (the agent counts these)
            if notes.clock_outlier:
                echo(f"{raw.station} NOTE   clock_outlier: {notes.clock_outlier}")
            if notes.stale_fields:
                echo(
                    f"{raw.station} NOTE   stale (older than the last value): "
                    f"{', '.join(notes.stale_fields)}"
                )
            if notes.skewed:
                echo(f"{raw.station} NOTE   skewed: device time behind the station clock")
            for event in events:
                shown = event.model_dump(mode="json", exclude_none=True)
                echo(f"{raw.station} event  {json.dumps(shown)}")
            # e.g. the probe's "<badge …>" stand-in for a worker id is not a valid worker id
            for reason, fields in tracker.rejected:
                echo(f"{raw.station} REFUSED {json.dumps(fields, default=str)}: {reason}")
            tracker.rejected.clear()
        # no ack: a device message the probe saw stays the agent's to commit

    metrics = AgentMetrics()
    sources = build_sources(chosen, profiles, metrics)
    tasks = [asyncio.create_task(s.run(sink)) for s in sources]
    try:
        await asyncio.sleep(seconds)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    for sample in metrics.registry.collect():
        for s in sample.samples:
            if s.value and s.name.endswith("_total") and "station" in s.labels:
                echo(f"{s.labels['station']} counted {s.name} {dict(s.labels)} = {s.value:g}")
