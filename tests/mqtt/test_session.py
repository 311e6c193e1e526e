"""The shared MQTT session against a real Mosquitto: reconnect, manual ack, clean close.

The other end is a plain paho client (a device, or a subscriber that counts), which
shares no code with the session.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from takt_cli.localservices import Mosquitto
from takt_common.mqtt import Hooks, Message, MqttSession, MqttSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class Device:
    """A plain paho client: publishes QoS 1, and can count what it receives."""

    def __init__(self, port: int, subscribe: str | None = None) -> None:
        self.received: queue.Queue[bytes] = queue.Queue()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

        def on_connect(c: mqtt.Client, *_: Any) -> None:
            if subscribe:
                c.subscribe(subscribe, qos=1)
            else:
                ready.set()

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = lambda _c, _u, m: self.received.put(bytes(m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(10), "test client did not connect"

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def receiver() -> tuple[asyncio.Queue[Message], Hooks]:
    got: asyncio.Queue[Message] = asyncio.Queue()
    return got, Hooks(on_message=got.put_nowait)


async def next_message(got: asyncio.Queue[Message], within_s: float = 15) -> Message:
    async with asyncio.timeout(within_s):
        return await got.get()


async def test_reconnects_and_subscribes_again_after_a_broker_restart(
    mosquitto_factory: Callable[..., Mosquitto],
) -> None:
    broker = mosquitto_factory()
    settings = MqttSettings(port=broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5)
    got, hooks = receiver()
    downs: list[str] = []
    hooks.on_disconnect = lambda _g, reason: downs.append(reason)
    # A clean session: after the restart the broker knows no subscription of ours, so
    # the message below arrives only if the session subscribed again by itself.
    async with MqttSession(
        settings, client_id="restart", subscriptions=["t/#"], hooks=hooks
    ) as session:
        await session.wait_connected(15)
        first = session.generation
        await asyncio.to_thread(broker.kill)
        async with asyncio.timeout(15):
            while session.connected.is_set():  # noqa: ASYNC110 (the event only sets)
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # a few failed attempts against the dead port
        await asyncio.to_thread(broker.start)
        await session.wait_connected(30)
        async with asyncio.timeout(15):
            await session.subscribed.wait()
        assert session.generation > first and len(downs) == 1
        device = await asyncio.to_thread(Device, broker.port)
        try:
            await asyncio.to_thread(device.publish, "t/after", b"after restart")
            message = await next_message(got)
        finally:
            device.close()
        assert (message.topic, message.payload) == ("t/after", b"after restart")
        assert message.generation == session.generation


async def test_a_message_not_acked_is_redelivered_after_reconnect(
    mosquitto_factory: Callable[..., Mosquitto],
) -> None:
    broker = mosquitto_factory()
    settings = MqttSettings(port=broker.port)

    def session(hooks: Hooks) -> MqttSession:
        return MqttSession(
            settings,
            client_id="manual-ack",
            subscriptions=["dev/#"],
            hooks=hooks,
            manual_ack=True,
            clean_start=False,
            session_expiry_s=300,
        )

    got, hooks = receiver()
    async with session(hooks) as first:
        await first.wait_connected(15)
        await asyncio.wait_for(first.subscribed.wait(), 15)
        device = await asyncio.to_thread(Device, broker.port)
        await asyncio.to_thread(device.publish, "dev/1", b"m1")
        unacked = await next_message(got)
        assert unacked.payload == b"m1" and unacked.qos == 1
    # Closed without acking m1: the broker keeps it for the persistent session.
    assert not first.ack(unacked), "an ack on a closed connection must not be sent"

    got, hooks = receiver()
    async with session(hooks) as second:
        await second.wait_connected(15)
        again = await next_message(got)
        assert again.payload == b"m1", "the unacknowledged message comes again"
        assert second.ack(again)
        await asyncio.to_thread(device.publish, "dev/2", b"m2")
        fresh = await next_message(got)
        assert fresh.payload == b"m2" and second.ack(fresh)

    got, hooks = receiver()
    async with session(hooks) as third:
        await third.wait_connected(15)
        await asyncio.to_thread(device.publish, "dev/3", b"m3")
        # Acked messages are not redelivered: the first one to arrive is the new one.
        assert (await next_message(got)).payload == b"m3"
    device.close()


async def test_close_waits_for_the_pubacks_of_what_was_published(
    mosquitto_factory: Callable[..., Mosquitto],
) -> None:
    broker = mosquitto_factory()
    subscriber = await asyncio.to_thread(Device, broker.port, "out/#")
    pubacks: list[bool] = []
    hooks = Hooks(on_puback=lambda _g, _mid, ok, _r: pubacks.append(ok))
    session = MqttSession(MqttSettings(port=broker.port), client_id="closer", hooks=hooks)
    session.start()
    await session.wait_connected(15)
    count = 200
    # The broker hangs (SIGSTOP) while we publish: no PUBACK can come before close().
    await asyncio.to_thread(broker.pause)
    try:
        for i in range(count):
            session.publish("out/x", f"{i}".encode())
        resume = asyncio.get_running_loop().call_later(1.0, broker.resume)
        await session.close(timeout_s=30)
    finally:
        resume.cancel()
        broker.resume()
    assert len(pubacks) == count and all(pubacks), "close() returned before the PUBACKs"
    received = set()
    for _ in range(count):
        received.add(await asyncio.to_thread(subscriber.received.get, True, 15))
    assert received == {f"{i}".encode() for i in range(count)}
    subscriber.close()


async def test_a_refused_publish_is_an_error_with_the_reason(
    mosquitto_factory: Callable[..., Mosquitto],
) -> None:
    """PUBACK 'no matching subscribers' (or 'not authorized') is not success."""
    from takt_common.mqtt import MqttCodeError

    broker = mosquitto_factory()
    async with MqttSession(MqttSettings(port=broker.port), client_id="refused") as session:
        await session.wait_connected(15)
        with pytest.raises(MqttCodeError, match="No matching subscribers"):
            await session.publish_confirmed("nobody/listens", b"x")


async def test_an_ack_from_before_a_reconnect_is_not_sent_and_the_message_comes_again(
    mosquitto_factory: Callable[..., Mosquitto],
) -> None:
    """After a reconnect packet ids restart: acking the old id could confirm another message."""
    broker = mosquitto_factory()
    got, hooks = receiver()
    settings = MqttSettings(port=broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5)
    async with MqttSession(
        settings,
        client_id="stale-ack",
        subscriptions=["dev/#"],
        hooks=hooks,
        manual_ack=True,
        clean_start=False,
        session_expiry_s=300,
    ) as session:
        await session.wait_connected(15)
        await asyncio.wait_for(session.subscribed.wait(), 15)
        device = await asyncio.to_thread(Device, broker.port)
        await asyncio.to_thread(device.publish, "dev/1", b"m1")
        device.close()
        old = await next_message(got)
        await asyncio.to_thread(broker.stop)  # a clean stop: the broker saves the session
        await asyncio.to_thread(broker.start)
        again = await next_message(got, 30)
        assert again.payload == b"m1" and again.generation > old.generation
        assert not session.ack(old), "a stale ack must not be sent"
        assert session.ack(again)
