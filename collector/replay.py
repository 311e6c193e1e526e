"""Replay dead letters after a fix: messages and events go back through the broker
(so they are validated again by whichever collector takes them), rejected points
are written to InfluxDB again. A letter is marked replayed only once the broker or
InfluxDB has accepted it (a PUBACK with any reason but success does not count)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.config import CollectorSettings
from collector.dlq import DeadLetter, DeadLetterStore
from takt_store.client import InfluxClient
from takt_store.errors import InfluxError
from takt_wire import Batch, decode_event, encode_batch
from takt_wire.signing import SIGNATURE_PROPERTY, key_agent, sign
from takt_wire.topics import events_topic


def republication(letter: DeadLetter, settings: CollectorSettings) -> tuple[str, bytes, str | None]:
    """(topic, payload, signature) that puts a message or event letter back on the wire."""
    keys = settings.validation.signing_keys
    if letter.kind == "message":
        signature = letter.properties.get(SIGNATURE_PROPERTY)
        return letter.topic, letter.payload, signature if isinstance(signature, str) else None
    event = decode_event(json.loads(letter.payload))
    batch = Batch(agent=event.agent, boot=event.boot, sent_at=datetime.now(UTC), events=[event])
    payload = encode_batch(batch)
    signature = None
    # Keys are bound to agents: sign with one of the event's own agent (none: unsigned,
    # and a collector requiring signatures dead-letters it again).
    own = [(key_id, key) for key_id, key in keys.items() if key_agent(key_id) == event.agent]
    if own:
        key_id, key = own[0]
        signature = sign(payload, key_id, key.get_secret_value().encode())
    return events_topic(event.site, event.agent), payload, signature


def replay(store: DeadLetterStore, settings: CollectorSettings, letters: list[DeadLetter]) -> int:
    """Replay ``letters``; return how many were accepted downstream and marked.

    A letter whose payload was stored truncated cannot be replayed and is skipped.
    """
    whole = [letter for letter in letters if not letter.truncated]
    points = [letter for letter in whole if letter.kind == "point"]
    wire = [letter for letter in whole if letter.kind != "point"]
    done: list[int] = []
    if points:
        done += _write_points(settings, points)
    if wire:
        done += _publish(settings, wire)
    store.mark_replayed(done)
    return len(done)


def _write_points(settings: CollectorSettings, letters: list[DeadLetter]) -> list[int]:
    """Write each refused point again through the shared client, once (no waiting out an
    outage: a letter InfluxDB does not accept now stays for the next replay)."""
    return asyncio.run(_write_points_async(settings, letters))


async def _write_points_async(settings: CollectorSettings, letters: list[DeadLetter]) -> list[int]:
    client = InfluxClient(settings.influx)
    done = []
    try:
        for letter in letters:
            try:
                result = await client.write([letter.payload.decode()], retry=False)
            except InfluxError:
                continue
            if result.written == 1:
                done.append(letter.id)
    finally:
        await client.aclose()
    return done


def _publish(settings: CollectorSettings, letters: list[DeadLetter]) -> list[int]:
    m = settings.mqtt
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"{m.client_id}-replay",
        protocol=paho.MQTTv5,
    )
    if m.username:
        client.username_pw_set(m.username, m.password.get_secret_value() if m.password else None)
    # paho reports a publish as "published" whatever the broker answered; only a plain
    # success counts (not "not authorized", not "no matching subscribers").
    answers: dict[int, int] = {}

    def on_publish(_c: object, _u: object, mid: int, reason: object, _p: object) -> None:
        answers[mid] = int(getattr(reason, "value", 0))

    client.on_publish = on_publish
    client.connect(m.host, m.port, keepalive=m.keepalive_s)
    client.loop_start()
    done = []
    try:
        pending = []
        for letter in letters:
            topic, payload, signature = republication(letter, settings)
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if signature:
                props.UserProperty = [(SIGNATURE_PROPERTY, signature)]
            pending.append((letter.id, client.publish(topic, payload, qos=1, properties=props)))
        for letter_id, info in pending:
            info.wait_for_publish(timeout=30)
            if info.is_published() and answers.get(info.mid) == 0:
                done.append(letter_id)
    finally:
        client.disconnect()
        client.loop_stop()
    return done
