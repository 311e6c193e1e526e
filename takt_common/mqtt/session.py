"""One MQTT session over paho-mqtt v2: TLS, auth, capped reconnect, manual ack, clean close.

Every Takt MQTT client (agent publisher and device source, collector, replay, alert
engine) runs on this class, so they share one reconnect policy and one TLS setup.

- paho runs the network loop in its own thread; everything a caller sees (messages,
  PUBACKs, connect and disconnect) is handed to the asyncio loop with
  ``call_soon_threadsafe``. Call the methods from that loop's thread.
- Each connection is a fresh paho client, numbered by ``generation``. A caller that
  keeps per-connection state (the agent's in-flight table) resets it on
  ``on_connect``; a late callback of an old client is dropped. The reconnect delay
  doubles from ``reconnect_min_s`` up to ``reconnect_max_s`` (jittered) and resets
  after a connection that got a CONNACK.
- Subscriptions are made on every connection, in the network thread before anything
  else: Mosquitto restores a persistent session after a restart, but not its
  ``$share`` subscriptions.
- With ``manual_ack`` a message is acknowledged only when the caller says so, and
  only on the connection it arrived on: after a reconnect the broker redelivers what
  was not acknowledged, possibly reusing packet ids, so a stale ack could confirm a
  different, unprocessed message.
- ``close()`` waits (bounded) for the PUBACKs of what was published, then sends the
  acks queued so far and DISCONNECT (no will), and stops the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import ssl
import threading
from collections.abc import Sequence
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from takt_common.backoff import Backoff
from takt_common.mqtt.bridge import ClientOptions, make_client
from takt_common.mqtt.errors import (
    MqttCodeError,
    MqttConnectionLostError,
    MqttNotConnectedError,
)
from takt_common.mqtt.settings import MqttSettings
from takt_common.mqtt.tls import tls_context
from takt_common.mqtt.types import Hooks, Message, Will

log = logging.getLogger(__name__)


class MqttSession:
    """One logical MQTT session; ``async with`` starts it and closes it cleanly."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        client_id: str,
        subscriptions: Sequence[str] = (),
        hooks: Hooks | None = None,
        manual_ack: bool = False,
        clean_start: bool = True,
        session_expiry_s: int | None = None,
        receive_maximum: int | None = None,
        max_inflight: int = 20,
        max_pending: int | None = None,
        will: Will | None = None,
        protocol: Literal[5, 311] = 5,
        name: str = "mqtt",
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.subscriptions = list(subscriptions)
        self.hooks = hooks or Hooks()
        self.name = name
        self._clean_start = clean_start
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        self._pending_slots = threading.BoundedSemaphore(max_pending) if max_pending else None
        self._protocol = protocol
        self._options = ClientOptions(
            client_id=client_id,
            protocol=protocol,
            clean_start=clean_start,
            manual_ack=manual_ack,
            max_inflight=max_inflight,
            tls=tls_context(settings) if settings.tls else None,
            will=will,
            subscriptions=self.subscriptions,
            pending_slots=self._pending_slots,
        )
        self.generation = 0
        """Number of the newest client; a callback from an older one is ignored."""
        self.connected = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.last_error: str | None = None
        self._client: paho.Client | None = None
        self._unacked: dict[int, asyncio.Future[None] | None] = {}
        """QoS 1 publishes of this connection awaiting their PUBACK, by message id."""
        self._drained = asyncio.Event()
        self._drained.set()
        self._lost = asyncio.Event()
        self._closing = False
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    # -- life cycle -----------------------------------------------------------------------

    async def __aenter__(self) -> MqttSession:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start connecting (and reconnecting) in the background."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-session")

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Wait for a connection; MqttNotConnectedError (with the last failure) on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.connected.wait()
        except TimeoutError:
            raise MqttNotConnectedError(
                f"{self.name}: no connection to {self.settings.host}:{self.settings.port} "
                f"within {timeout_s} s ({self.last_error or 'no answer'})"
            ) from None

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every QoS 1 publish of this connection has its PUBACK (or timeout)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._drained.wait()
        return self._drained.is_set()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Clean shutdown: wait for pending PUBACKs, send queued acks, disconnect."""
        if self._task is None:
            return
        if self.connected.is_set() and not await self.drain(timeout_s):
            log.warning(
                "%s: closing with %d publishes not acknowledged by the broker",
                self.name,
                len(self._unacked),
            )
        self._closing = True
        self._stop.set()
        client = self._client
        if client is not None:
            client.disconnect()  # after the acks queued so far; no will
        self._lost.set()  # also ends a connection still being made
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    # -- the caller's operations ----------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int | None = None,
        retain: bool = False,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> int:
        """Queue a publish on this connection; return its message id.

        Its PUBACK comes to ``on_puback``. MqttNotConnectedError when there is no
        connection: nothing was queued (the next connection starts empty).
        """
        return self._publish(topic, payload, qos, retain, user_properties, None)

    async def publish_confirmed(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int | None = None,
        retain: bool = False,
        user_properties: Sequence[tuple[str, str]] = (),
        timeout_s: float = 10.0,
    ) -> None:
        """Publish and wait for the broker's PUBACK; any reason but success is an error."""
        assert self._loop is not None, "start the session first"
        future: asyncio.Future[None] = self._loop.create_future()
        self._publish(topic, payload, qos, retain, user_properties, future)
        if (self.settings.qos if qos is None else qos) == 0:
            return
        async with asyncio.timeout(timeout_s):
            await future

    def _publish(
        self,
        topic: str,
        payload: bytes,
        qos: int | None,
        retain: bool,
        props: Sequence[tuple[str, str]],
        future: asyncio.Future[None] | None,
    ) -> int:
        client = self._client
        if client is None or not self.connected.is_set():
            raise MqttNotConnectedError(f"{self.name}: not connected")
        qos = self.settings.qos if qos is None else qos
        properties = None
        if props and self._protocol == 5:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.UserProperty = list(props)
        info = client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise MqttCodeError(f"{self.name}: publish on {topic}", paho.error_string(info.rc))
        if qos > 0:
            # Registered before the PUBACK can be seen: it reaches us through the loop.
            self._unacked[info.mid] = future
            self._drained.clear()
        elif future is not None:
            future.set_result(None)
        return info.mid

    def ack(self, message: Message) -> bool:
        """Acknowledge a message of the current connection; False when not sent (stale)."""
        client = self._client
        if message.qos == 0 or client is None or message.generation != self.generation:
            return False
        client.ack(message.mid, message.qos)
        return True

    # -- connections ----------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = Backoff(base=self.settings.reconnect_min_s, cap=self.settings.reconnect_max_s)
        while not self._closing:
            if await self._connection():
                backoff.reset()
            if self._closing:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), backoff.next_delay())

    def _connect_properties(self) -> Properties | None:
        if self._protocol != 5:
            return None
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if self._session_expiry_s is not None:
            props.SessionExpiryInterval = self._session_expiry_s
        if self._receive_maximum is not None:
            props.ReceiveMaximum = self._receive_maximum
        return props

    async def _connection(self) -> bool:
        """One client's life; True when it got a CONNACK accepting it."""
        self.generation += 1
        generation = self.generation
        assert self._loop is not None
        client = make_client(self.settings, self._options, generation, self, self._loop)
        self._lost = asyncio.Event()
        s = self.settings
        clean: bool | Literal[3] = self._clean_start
        if self._protocol != 5:
            clean = paho.MQTT_CLEAN_START_FIRST_ONLY  # v3.1.1: clean_session says it
        try:
            await asyncio.to_thread(
                client.connect,
                s.host,
                s.port,
                s.keepalive_s,
                clean_start=clean,
                properties=self._connect_properties(),
            )
        except (OSError, ssl.SSLError, ValueError) as err:
            self.last_error = f"cannot reach {s.host}:{s.port}: {err}"
            log.warning("%s: %s", self.name, self.last_error)
            return False
        self._client = client
        client.loop_start()
        waiters = [asyncio.ensure_future(e.wait()) for e in (self.connected, self._lost)]
        try:
            await asyncio.wait(
                waiters, timeout=s.connect_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()
            if not self.connected.is_set():
                self.last_error = self.last_error or "no CONNACK in time"
                return False
            await self._lost.wait()
            return True
        finally:
            self.generation += 1  # late callbacks of this client are ignored from now on
            self._connection_down(generation, self.last_error or "closed")
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
            self._client = None

    # -- what the paho bridge hands over, on the asyncio loop (not for callers) -----------

    @property
    def closing(self) -> bool:
        return self._closing

    def handle_refused(self, generation: int, reason: str) -> None:
        if generation != self.generation:
            return
        self.last_error = f"broker refused the connection: {reason}"
        log.error("%s: %s", self.name, self.last_error)
        self._lost.set()

    def handle_up(self, generation: int, session_present: bool) -> None:
        if generation != self.generation:
            return
        self.last_error = None
        self._unacked.clear()
        self._drained.set()
        self.connected.set()
        log.info(
            "%s: connected to %s:%d (session present: %s)",
            self.name,
            self.settings.host,
            self.settings.port,
            session_present,
        )
        if self.hooks.on_connect is not None:
            self.hooks.on_connect(generation, session_present)

    def handle_lost(self, generation: int, reason: str) -> None:
        if generation != self.generation:
            return
        if not self._closing:
            self.last_error = f"connection lost: {reason}"
        self._lost.set()

    def _connection_down(self, generation: int, reason: str) -> None:
        """This client is finished: fail what waits on it and tell the caller."""
        was_up = self.connected.is_set()
        self.connected.clear()
        self.subscribed.clear()
        unacked, self._unacked = self._unacked, {}
        for future in unacked.values():
            if future is not None and not future.done():
                future.set_exception(MqttConnectionLostError(f"{self.name}: {reason}"))
        self._drained.set()
        if was_up:
            if not self._closing:
                log.warning("%s: %s", self.name, reason)
            if self.hooks.on_disconnect is not None:
                self.hooks.on_disconnect(generation, reason)

    def handle_subscribed(self, generation: int, ok: bool, reasons: str) -> None:
        if generation != self.generation:
            return
        if ok:
            self.subscribed.set()
        else:
            log.error("%s: subscription refused: %s", self.name, reasons)
        if self.hooks.on_subscribe is not None:
            self.hooks.on_subscribe(ok, reasons)

    def handle_puback(self, generation: int, mid: int, reason: ReasonCode) -> None:
        if generation != self.generation or mid not in self._unacked:
            return
        future = self._unacked.pop(mid)
        if not self._unacked:
            self._drained.set()
        ok = not reason.is_failure and reason.value == 0
        if future is not None and not future.done():
            if ok:
                future.set_result(None)
            else:
                refused = MqttCodeError("broker refused the publish", str(reason), reason.value)
                future.set_exception(refused)
        if self.hooks.on_puback is not None:
            self.hooks.on_puback(generation, mid, ok, str(reason))

    def handle_message(self, message: Message) -> None:
        slots = self._pending_slots
        handler = self.hooks.on_message
        try:
            result = handler(message) if handler is not None else None
        except BaseException:
            if slots is not None:
                slots.release()
            raise
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if slots is not None:
                task.add_done_callback(lambda _t: slots.release())
        elif slots is not None:
            slots.release()
