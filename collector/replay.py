"""Replay dead letters after a fix: messages and events go back through the broker
(so they are validated again by whichever collector takes them), rejected points
are written to InfluxDB again. A letter is marked replayed only once the broker or
InfluxDB has accepted it (a PUBACK with any reason but success does not count)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

from collector.config import CollectorSettings
from collector.dlq import DeadLetter, DeadLetterStore
from takt_common.mqtt import MqttError, MqttSession
from takt_store.client import InfluxClient
from takt_store.errors import InfluxError
from takt_wire import Batch, decode_event, encode_batch
from takt_wire.signing import SIGNATURE_PROPERTY, key_agent, sign
from takt_wire.topics import events_topic

log = logging.getLogger(__name__)


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
    return asyncio.run(_publish_async(settings, letters))


async def _publish_async(settings: CollectorSettings, letters: list[DeadLetter]) -> list[int]:
    """Publish on the shared session (TLS and auth as the collector's); a letter counts
    as replayed only on a PUBACK of plain success (not "not authorized", not "no
    matching subscribers")."""
    m = settings.mqtt
    session = MqttSession(m, client_id=f"{m.client_id}-replay"[:64], name="dlq-replay")
    done: list[int] = []
    async with session:
        await session.wait_connected(m.connect_timeout_s)
        pending = []
        for letter in letters:
            topic, payload, signature = republication(letter, settings)
            props = [(SIGNATURE_PROPERTY, signature)] if signature else []
            sent = session.publish_confirmed(
                topic, payload, qos=1, user_properties=props, timeout_s=30
            )
            pending.append((letter.id, asyncio.ensure_future(sent)))
        for letter_id, answer in pending:
            try:
                await answer
            except (MqttError, TimeoutError) as err:
                log.warning("letter %d not replayed: %s", letter_id, err)
            else:
                done.append(letter_id)
    return done
