"""The running collector: consume -> validate/format -> write -> acknowledge.

One TaskGroup with named tasks. A message is acknowledged only after every event
in it is in InfluxDB or in the dead-letter store: messages are added whole to the
current batch and acknowledged when that batch is written; batches are written
strictly in order, so a duplicate's acknowledgement never overtakes the write of
the original. While InfluxDB is down the writer keeps retrying, the batch queue
fills, nothing is acknowledged and the broker stops sending at receive-maximum.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from collector.config import CollectorSettings
from collector.dedupe import SeqTracker
from collector.dlq import DeadLetter, DeadLetterMetrics, DeadLetterStore
from collector.influx import InfluxWriter, WriterStopped
from collector.metrics import Metrics
from collector.mqtt import Consumer, Delivery
from collector.pipeline import Outcome, Pipeline, Rules
from collector.rollupqueue import RollupQueue
from collector.rollups import Rollups
from takt_common.status import StatusServer

log = logging.getLogger(__name__)

UNHEALTHY_AFTER_S = 30.0


@dataclass
class _Batch:
    lines: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    hours: set[int] = field(default_factory=set)
    stored: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


def rules_from(settings: CollectorSettings) -> Rules:
    v = settings.validation
    keys = {k: s.get_secret_value().encode() for k, s in v.signing_keys.items()}
    return Rules(
        max_future_skew_s=v.max_future_skew_s,
        max_past_s=v.max_past_s,
        stations=frozenset(v.stations) if v.stations is not None else None,
        signing_keys=keys if v.require_signature else None,
        check_topic=v.check_topic,
    )


class Collector:
    """One collector instance; :meth:`run` until :meth:`stop` (or SIGTERM in the CLI)."""

    def __init__(self, settings: CollectorSettings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        v = settings.validation
        self.pipeline = Pipeline(rules_from(settings), SeqTracker(v.dedupe_streams, v.dedupe_holes))
        self.dlq = DeadLetterStore(settings.dlq_path)
        self.metrics.registry.register(DeadLetterMetrics(self.dlq))
        self._stopping = False
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.writer = InfluxWriter(settings.influx, self.metrics, lambda: self._hard_stop)
        self._hard_stop = False
        self.rollup_queue = RollupQueue(settings.dlq_path)  # the dead letters' file
        self.rollups = Rollups(self.writer, self.metrics, settings.rollup, self.rollup_queue)
        self.http_port = 0
        self.written = 0
        self._unacked = 0
        self._consumer: Consumer | None = None

    def stop(self) -> None:
        """Begin a clean shutdown: stop taking messages, flush the batch, ack, disconnect."""
        self._stopping = True
        self._stop.set()
        if not self.ready.is_set():
            self._hard_stop = True  # still waiting for InfluxDB at start-up: just leave

    def health(self) -> tuple[bool, dict[str, object]]:
        since = self.writer.failing_since
        failing_for = time.monotonic() - since if since is not None else 0.0
        mqtt_ok = self._consumer is not None and self._consumer.subscribed.is_set()
        detail: dict[str, object] = {
            "mqtt_subscribed": mqtt_ok,
            "influx_failing_s": round(failing_for, 1),
            "unacked": self._unacked,
        }
        rollups_ok = True
        if self.settings.rollup.enabled:
            rollups_ok, rollup_detail = self.rollups.health()
            detail.update(rollup_detail)
        return mqtt_ok and failing_for < UNHEALTHY_AFTER_S and rollups_ok, detail

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        deliveries: asyncio.Queue[Delivery] = asyncio.Queue()
        batches: asyncio.Queue[_Batch | None] = asyncio.Queue(self.settings.influx.pending_batches)
        status = StatusServer(
            self.settings.http.host, self.settings.http.port, self.metrics.registry, self.health
        )
        self.http_port = await status.start()
        try:
            # Creates what is missing when ``influx.create``; always checks what the server
            # supports (CapabilityError: the collector does not start).
            try:
                await self.writer.ensure_database()
            except WriterStopped:
                log.info("stopped while waiting for InfluxDB at start-up")
                return
            self._consumer = Consumer(self.settings.mqtt, self.metrics, loop, deliveries)
            self._consumer.start()
            self.ready.set()
            async with asyncio.TaskGroup() as tasks:
                writing = tasks.create_task(self._write(batches), name="write")
                rollups = None
                if self.settings.rollup.enabled:
                    rollups = tasks.create_task(self.rollups.run(), name="rollups")
                leftover = await self._consume(deliveries, batches)
                await self._drain(writing, batches, leftover)
                if rollups is not None:
                    rollups.cancel()
                    try:
                        await asyncio.wait_for(self.rollups.flush(), 10)
                    except TimeoutError:
                        log.warning("rollups not refreshed at shutdown; the next start does them")
        finally:
            if self._consumer is not None:
                await self._consumer.stop()
            await status.close()
            await self.writer.aclose()
            self.dlq.close()
            self.rollup_queue.close()
            log.info("collector stopped", extra={"written": self.written})

    async def _drain(
        self,
        writing: asyncio.Task[None],
        batches: asyncio.Queue[_Batch | None],
        leftover: _Batch,
    ) -> None:
        """Write the open batch within the shutdown timeout, then make the writer give up.

        Whatever is not written by then stays unacknowledged: the broker redelivers
        it to this or another collector of the group. Nothing is lost, only delayed.
        """

        async def finish() -> None:
            if leftover.deliveries:
                await batches.put(leftover)
            await batches.put(None)
            await writing

        finishing = asyncio.create_task(finish(), name="finish")
        done, _ = await asyncio.wait({finishing}, timeout=self.settings.shutdown_timeout_s)
        if done:
            return
        log.error("shutdown timeout: unwritten batches stay unacknowledged for redelivery")
        self._hard_stop = True
        done, _ = await asyncio.wait({writing}, timeout=self.settings.influx.timeout_s + 5)
        finishing.cancel()
        if not done:
            writing.cancel()

    async def _consume(
        self, deliveries: asyncio.Queue[Delivery], batches: asyncio.Queue[_Batch | None]
    ) -> _Batch:
        """Fill batches until stopped; return the open one (the writer may be stuck)."""
        settings = self.settings.influx
        batch = _Batch()
        stop_wait = asyncio.create_task(self._stop.wait())
        try:
            while not self._stopping:
                timeout = None
                if batch.deliveries:
                    timeout = max(0.0, batch.started + settings.flush_interval_s - time.monotonic())
                get = asyncio.create_task(deliveries.get())
                done, _ = await asyncio.wait(
                    {get, stop_wait}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if get not in done:
                    get.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await get
                    if get.done() and not get.cancelled():
                        deliveries.put_nowait(get.result())  # raced: keep it for later
                    if (
                        batch.deliveries
                        and not self._stopping
                        and await self._hand_over(batches, batch)
                    ):
                        batch = _Batch()
                    continue
                delivery = get.result()
                if not batch.deliveries:
                    batch.started = time.monotonic()
                self._take(delivery, batch)
                # Drain what is already queued without yielding per message.
                while len(batch.lines) < settings.batch_size and not deliveries.empty():
                    self._take(deliveries.get_nowait(), batch)
                if len(batch.lines) >= settings.batch_size and await self._hand_over(
                    batches, batch
                ):
                    batch = _Batch()
        finally:
            stop_wait.cancel()
        return batch

    async def _hand_over(self, batches: asyncio.Queue[_Batch | None], batch: _Batch) -> bool:
        """Queue a batch for the writer, unless a shutdown comes first (the writer may be stuck)."""
        put = asyncio.create_task(batches.put(batch))
        stop = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait({put, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if put in done:
            return True
        put.cancel()
        return False

    def _take(self, delivery: Delivery, batch: _Batch) -> None:
        self.metrics.messages.inc()
        self._unacked += 1
        self.metrics.unacked.set(self._unacked)
        outcome = self.pipeline.process(delivery.topic, delivery.payload, delivery.properties)
        self._account(outcome)
        if outcome.rejected:
            self.dlq.add(outcome.rejected)  # durable before the message can be acknowledged
        batch.lines.extend(outcome.lines)
        batch.deliveries.append(delivery)
        batch.hours |= outcome.hours
        if outcome.stored is not None:
            site, agent, seqs = outcome.stored
            batch.stored.setdefault((site, agent), []).extend(seqs)

    def _account(self, outcome: Outcome) -> None:
        m = self.metrics
        if outcome.events:
            m.events.inc(outcome.events)
        if outcome.duplicates:
            m.duplicates.inc(outcome.duplicates)
        if outcome.lag_s is not None:
            m.lag.set(outcome.lag_s)
        for letter in outcome.rejected:
            m.rejected.labels(kind=letter.kind, reason=letter.reason).inc()
            log.warning(
                "dead-lettered",
                extra={"kind": letter.kind, "reason": letter.reason, "detail": letter.detail[:300]},
            )
        for gap in outcome.gaps if self.settings.validation.report_gaps else ():
            m.gaps.inc()
            m.missing.inc(gap.missing)
            log.warning(
                "sequence gap",
                extra={
                    "agent": gap.agent,
                    "boot": gap.boot,
                    "after": gap.after,
                    "missing": gap.missing,
                },
            )

    async def _write(self, batches: asyncio.Queue[_Batch | None]) -> None:
        while (batch := await batches.get()) is not None:
            try:
                result = await self.writer.write(batch.lines)
            except WriterStopped as err:
                log.error(
                    "batch abandoned at shutdown, not acknowledged", extra={"error": str(err)}
                )
                return
            if result.rejected:
                letters = [
                    DeadLetter("point", "influx_rejected", detail, "", line.encode(), {})
                    for line, detail in result.rejected
                ]
                self.dlq.add(letters)
                for letter in letters:
                    self.metrics.rejected.labels(kind="point", reason=letter.reason).inc()
                    log.warning("point rejected by influx", extra={"detail": letter.detail[:300]})
            self.written += result.written
            self.metrics.points.inc(result.written)
            # Durable before the acknowledgements below: a kill -9 from here on leaves
            # the hours on disk for the next start (see collector/rollupqueue.py).
            if self.settings.rollup.enabled:
                self.rollups.touch(batch.hours)
            assert self._consumer is not None
            if self.settings.mqtt.confirm and batch.stored:
                self.metrics.confirms.inc(self._consumer.confirm(batch.stored))
            self._consumer.ack(batch.deliveries)
            self._unacked -= len(batch.deliveries)
            self.metrics.unacked.set(self._unacked)
            self.metrics.batch_latency.observe(time.monotonic() - batch.started)
