"""Takt's wire contract: the canonical events, the batch envelope, topics and signing.

Everything that crosses a process boundary between agent, broker, collector and
KPI service is defined here, once.
"""

from takt_wire.batch import (
    MAX_BATCH_EVENTS,
    MAX_PAYLOAD_BYTES,
    Batch,
    decode_batch,
    decode_event,
    encode_batch,
)
from takt_wire.encoding import encode_envelope, encode_event, flag_historical
from takt_wire.errors import ContractError
from takt_wire.events import (
    SCHEMA_VERSION,
    UNATTRIBUTED,
    Event,
    EventBase,
    GapEvent,
    SessionEvent,
    StateEvent,
    UnitEvent,
    WorkEvent,
)

__all__ = [
    "MAX_BATCH_EVENTS",
    "MAX_PAYLOAD_BYTES",
    "SCHEMA_VERSION",
    "UNATTRIBUTED",
    "Batch",
    "ContractError",
    "Event",
    "EventBase",
    "GapEvent",
    "SessionEvent",
    "StateEvent",
    "UnitEvent",
    "WorkEvent",
    "decode_batch",
    "decode_event",
    "encode_batch",
    "encode_envelope",
    "encode_event",
    "flag_historical",
]
