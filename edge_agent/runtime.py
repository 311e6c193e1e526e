"""The agent: sources → mapping → attribution → outbox → publisher, in one TaskGroup.

Readings are processed in small groups and committed in one transaction with
the station states they changed; device messages are acknowledged only after
that commit. Shutdown (SIGTERM) stops the sources, commits what was read,
waits for the broker to acknowledge everything pending, then says offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.attribution import (
    AnyEvent,
    StationInfo,
    StationState,
    StationTracker,
    WorkerResolver,
)
from edge_agent.clockage import DeviceClocks
from edge_agent.config import GatewayConfig
from edge_agent.mapping import RawReading, map_reading
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox
from edge_agent.profile import DeviceProfile
from edge_agent.publisher import Publisher
from edge_agent.roster import RosterError, load_roster
from edge_agent.sources import Source, build_sources
from edge_agent.sources.base import Ack
from takt_common.status import StatusServer

log = logging.getLogger(__name__)

FILL_WARNINGS = (0.5, 0.8, 0.95, 1.0)
Item = tuple[list[RawReading], Ack | None] | None


class Agent:
    def __init__(self, config: GatewayConfig, profiles: dict[str, DeviceProfile]) -> None:
        self.config = config
        self.boot = secrets.token_hex(8)
        self.metrics = AgentMetrics()
        cfg = config.outbox
        self.outbox = Outbox(
            cfg.path,
            agent=config.agent_id,
            boot=self.boot,
            max_events=cfg.max_events,
            on_full=cfg.on_full,
            synchronous=cfg.synchronous,
        )
        key = (
            config.pseudonym_key.get_secret_value().encode()
            if config.pseudonymise and config.pseudonym_key
            else None
        )
        self.resolver = WorkerResolver(load_roster(config.roster), key)
        saved = self.outbox.load_states()
        self.trackers: dict[str, StationTracker] = {}
        for station in config.stations:
            profile = profiles[station.profile]
            state = (
                StationState.model_validate_json(saved[station.id]) if station.id in saved else None
            )
            info = StationInfo(
                config.site,
                station.line,
                station.id,
                station.device or profile.model,
                agent=config.agent_id,
                boot=self.boot,
            )
            tracker = StationTracker(
                info,
                profile,
                self.resolver,
                config.work_interval_s,
                state,
                max_ahead_s=config.device_clock_max_ahead_s,
            )
            repaired = tracker.repair(datetime.now(UTC))
            if repaired:
                log.warning(
                    "station %s: saved state was ahead of the gateway clock, repaired: %s",
                    station.id,
                    ", ".join(repaired),
                )
            self.trackers[station.id] = tracker
        self.clocks = DeviceClocks()
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=10_000)
        self.publisher = Publisher(config, self.outbox, self.metrics, self.boot)
        self.sources: list[Source] = build_sources(config, profiles, self.metrics)
        self._fill_level = 0
        self.metrics.outbox_pending.set(self.outbox.pending)
        self.ready = asyncio.Event()

    async def sink(self, readings: list[RawReading], ack: Ack | None = None) -> None:
        await self.queue.put((readings, ack))

    def health(self) -> tuple[bool, dict[str, object]]:
        ok = not self.outbox.full
        return ok, {
            "status": "ok" if ok else "outbox_full",
            "agent": self.config.agent_id,
            "boot": self.boot,
            "broker_connected": self.publisher.connected,
            "outbox_pending": self.outbox.pending,
            "outbox_fill": round(self.outbox.fill_ratio, 4),
        }

    # -- pipeline ---------------------------------------------------------

    async def _pipeline(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while not self.queue.empty() and len(batch) < 500:
                nxt = self.queue.get_nowait()
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            await self._wait_for_room()
            self.process(batch)
            if stop:
                return

    async def _wait_for_room(self) -> None:
        """Policy 'block': stop reading while the outbox is full (counters catch up later)."""
        if self.config.outbox.on_full != "block" or not self.outbox.full:
            return
        log.error(
            "outbox full (%d events): ingestion paused until the broker takes events",
            self.outbox.max_events,
        )
        while self.outbox.full:
            self.publisher.progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.publisher.progress.wait(), timeout=1.0)
        log.warning("outbox has room again: ingestion resumed")

    def process(self, batch: list[tuple[list[RawReading], Ack | None]]) -> None:
        events: list[AnyEvent] = []
        dead: list[tuple[str, str]] = []
        dirty: set[str] = set()
        now = datetime.now(UTC)
        m = self.metrics
        read: dict[str, int] = {}  # readings per station, counted once per batch
        for readings, _ack in batch:
            for raw in readings:
                tracker = self.trackers.get(raw.station)
                if tracker is None:
                    log.warning("reading for unknown station %r skipped", raw.station)
                    continue
                if raw.unobserved is not None:
                    dirty.add(raw.station)
                    events += self._gap(tracker, raw.station, *raw.unobserved)
                    self._take_rejected(tracker, dead)
                    continue
                reading = map_reading(raw, tracker.profile)
                produced, notes = tracker.apply(reading, now)
                dirty.add(raw.station)
                if tracker.state.clock is not None:  # the clock as the tracker accepted it
                    self.clocks.observe(
                        raw.station, tracker.state.clock.timestamp(), now.timestamp()
                    )
                read[raw.station] = read.get(raw.station, 0) + 1
                if notes.problems:
                    m.bad_fields.labels(raw.station).inc(len(notes.problems))
                    log.warning("%s: %s", raw.station, "; ".join(notes.problems))
                if notes.stale_fields:
                    m.stale_fields.labels(raw.station).inc(len(notes.stale_fields))
                if notes.skewed:
                    m.skewed.labels(raw.station).inc()
                if notes.clock_outlier:
                    m.clock_outliers.labels(raw.station).inc()
                    log.warning("%s: %s", raw.station, notes.clock_outlier)
                for key, kind in notes.counter_kinds:
                    m.counter_events.labels(raw.station, kind).inc()
                    log.warning("%s: counter %s: %s", raw.station, key, kind)
                events += produced
                self._take_rejected(tracker, dead)
        for station, count in read.items():
            m.readings.labels(station).inc(count)
        self._commit(events, dirty, dead)
        for _readings, ack in batch:
            if ack is not None:
                ack()

    def _gap(
        self, tracker: StationTracker, station: str, start: datetime, end: datetime
    ) -> list[AnyEvent]:
        """A blind span on the gateway clock, moved onto the station's device clock."""
        offset = timedelta(seconds=self.clocks.offset(station))
        return tracker.unobserved(start + offset, end + offset, "no_history")

    def _take_rejected(self, tracker: StationTracker, dead: list[tuple[str, str]]) -> None:
        """Dead-letter the events the wire contract refused when the tracker built them."""
        for reason, fields in tracker.rejected:
            self.metrics.invalid_events.inc()
            log.error("event fails the wire contract, dead-lettered: %s", reason)
            dead.append((reason, json.dumps(fields, default=str)))
        tracker.rejected.clear()

    def _commit(self, events: list[AnyEvent], dirty: set[str], dead: list[tuple[str, str]]) -> None:
        states = {s: self.trackers[s].state.model_dump_json() for s in dirty}
        before = self.outbox.dropped
        happened = [self.clocks.happened_at(e.station, e.ts.timestamp()) for e in events]
        self.outbox.commit(events, states, dead, happened)
        m = self.metrics
        kinds: dict[str, int] = {}
        for event in events:
            kinds[event.kind] = kinds.get(event.kind, 0) + 1
        for kind, count in kinds.items():
            m.events.labels(kind).inc(count)
        if self.outbox.dropped > before:
            m.outbox_dropped.inc(self.outbox.dropped - before)
        if self.resolver.unknown:
            for badge in sorted(self.resolver.unknown):
                log.warning("badge %s is not in the roster; kept as worker badge-%s", badge, badge)
                m.unknown_badges.inc()
            self.resolver.unknown.clear()
        m.outbox_pending.set(self.outbox.pending)
        m.outbox_fill.set(self.outbox.fill_ratio)
        self._warn_fill()
        if events:
            self.publisher.notify()

    def _warn_fill(self) -> None:
        ratio = self.outbox.fill_ratio
        level = sum(1 for mark in FILL_WARNINGS if ratio >= mark)
        if level > self._fill_level:
            log.error(
                "outbox %.0f%% full (%d of %d events; policy on full: %s)",
                ratio * 100,
                self.outbox.pending,
                self.outbox.max_events,
                self.config.outbox.on_full,
            )
        self._fill_level = level

    async def _ticker(self) -> None:
        """Gateway-clock stations close work intervals on the gateway clock."""
        gateway = [t for t in self.trackers.values() if t.profile.time_source == "gateway"]
        while gateway:
            await asyncio.sleep(1.0)
            now = datetime.now(UTC)
            events: list[AnyEvent] = []
            dead: list[tuple[str, str]] = []
            for tracker in gateway:
                events += tracker.tick(now)
                self._take_rejected(tracker, dead)
            if events or dead:
                self._commit(events, {t.info.station for t in gateway}, dead)

    async def _roster_watcher(self) -> None:
        """Pick up roster changes (new hires, new badges) without a restart.

        A roster that cannot be read is reported and the previous one kept: a typo
        in the file must not turn every operator into an unknown badge.
        """
        path = self.config.roster
        if path is None:
            return
        seen = _mtime(path)
        while True:
            await asyncio.sleep(self.config.roster_reload_s)
            current = _mtime(path)
            if current == seen:
                continue
            seen = current
            try:
                roster = load_roster(path)
            except RosterError as err:
                log.error("roster %s not reloaded, keeping the previous one: %s", path, err)
                continue
            self.resolver.roster = roster
            log.info("roster %s reloaded: %d badges", path, len(roster))

    # -- life cycle -------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        server = None
        if self.config.http.port:
            server = StatusServer(
                self.config.http.host, self.config.http.port, self.metrics.registry, self.health
            )
            await server.start()
        log.info(
            "agent %s boot %s: %d stations, %d sources, %d events pending",
            self.config.agent_id,
            self.boot,
            len(self.trackers),
            len(self.sources),
            self.outbox.pending,
        )
        try:
            async with asyncio.TaskGroup() as tg:
                publisher = tg.create_task(self.publisher.run(), name="publisher")
                pipeline = tg.create_task(self._pipeline(), name="pipeline")
                readers = [
                    tg.create_task(s.run(self.sink), name=f"source {s.name}") for s in self.sources
                ]
                readers.append(tg.create_task(self._ticker(), name="ticker"))
                readers.append(tg.create_task(self._roster_watcher(), name="roster"))
                self.ready.set()
                await stop.wait()
                log.info("shutting down: stopping sources")
                for task in readers:
                    task.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
                await self.queue.put(None)
                await pipeline
                flushed = await self.publisher.flush(within_s=15.0)
                if not flushed:
                    log.warning(
                        "%d events still pending at shutdown; kept in the outbox",
                        self.outbox.pending,
                    )
                await self.publisher.announce_offline()
                publisher.cancel()
        finally:
            if server is not None:
                await server.close()
            self.outbox.close()
            log.info("agent stopped")


def _mtime(path: Path) -> tuple[int, int] | None:
    """(modification time in ns, size): changes whenever the file is rewritten."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)
