"""Routing transitions to their rule's channels, with retries and a recorded outcome.

Each delivery runs as its own task so a slow mail server never delays the MQTT
message or the webhook; tenacity retries with capped exponential backoff only what
may succeed later (see :class:`DeliveryError`); the last outcome goes to the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import Counter
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
)

from kpi_service.alerts.channels import Channel, DeliveryError
from kpi_service.alerts.model import Transition
from kpi_service.alerts.rules import RuleSet
from kpi_service.alerts.store import AlertStore, DeliveryStatus
from takt_common.backoff import retry_wait

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "takt_alert_deliveries_total", "Alert deliveries by channel and outcome", ["channel", "outcome"]
)


def route(rules: RuleSet, transition: Transition) -> tuple[str, ...]:
    """Channel names for a transition: escalations go to the escalation channels."""
    rule = rules.rule(transition.alert.rule_id)
    if rule is None:
        return ()
    if transition.kind == "escalated":
        return rule.escalation_channels or rule.channels
    if rule.notify_worker and transition.alert.worker:
        # The worker concerned hears of it too (escalations stay with supervisors).
        return (*rule.channels, *(c for c in rule.worker_channels if c not in rule.channels))
    return rule.channels


def _retryable(err: BaseException) -> bool:
    return isinstance(err, DeliveryError) and err.retryable


class Dispatcher:
    def __init__(
        self,
        store: AlertStore,
        *,
        attempts: int = 5,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.attempts, self.backoff_s, self.backoff_max_s = attempts, backoff_s, backoff_max_s
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, transition_id: int, transition: Transition, channels: list[Channel]) -> None:
        for channel in channels:
            self.store.record_delivery(
                transition_id, channel.name, "pending", 0, None, self.clock()
            )
            task = asyncio.create_task(
                self._deliver(transition_id, transition, channel),
                name=f"deliver-{channel.name}-{transition_id}",
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, transition_id: int, transition: Transition, channel: Channel) -> None:
        attempts = 0
        error: str | None = None
        status: DeliveryStatus
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.attempts),
                wait=retry_wait(self.backoff_s, self.backoff_max_s),
                retry=retry_if_exception(_retryable),
                reraise=False,
            ):
                with attempt:
                    attempts += 1
                    await channel.send(transition)
            status = "delivered"
        except RetryError as err:
            status, error = "failed", str(err.last_attempt.exception())
        except DeliveryError as err:
            status, error = "failed", str(err)
        except Exception as err:  # a channel bug must not kill the dispatcher; it is recorded
            log.exception("channel %s crashed delivering %s", channel.name, transition.alert.id)
            status, error = "failed", f"{type(err).__name__}: {err}"
        if error:
            log.warning(
                "alert %s: %s delivery failed: %s", transition.alert.id, channel.name, error
            )
        DELIVERIES.labels(channel.name, status).inc()
        self.store.record_delivery(
            transition_id, channel.name, status, attempts, error, self.clock()
        )

    async def drain(self, grace_s: float) -> None:
        """Wait for deliveries in flight (at shutdown), then cancel the rest."""
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
