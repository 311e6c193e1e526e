"""Optional HMAC-SHA256 signature over a batch payload.

The signature covers the exact payload bytes, so a producer in any language can
sign without reproducing a canonical JSON form. It travels beside the payload,
as the MQTT v5 user property :data:`SIGNATURE_PROPERTY`, formatted
``<key id>:<hex digest>`` so keys can be rotated.

A key is bound to one agent by its id: ``<agent>`` or ``<agent>@<label>`` (the
label tells rotated keys apart). A consumer admits a batch only when the key that
signed it belongs to the batch's agent, so one gateway's key cannot sign for
another gateway.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from takt_wire.errors import ContractError

SIGNATURE_PROPERTY = "takt-sig"


KEY_LABEL_SEPARATOR = "@"


def key_agent(key_id: str) -> str:
    """The agent a key id is bound to: ``gw-1`` for ``gw-1`` and for ``gw-1@2026-12``."""
    return key_id.partition(KEY_LABEL_SEPARATOR)[0]


def sign(payload: bytes, key_id: str, key: bytes) -> str:
    """Signature value for ``payload`` under the named key."""
    if not key_id or ":" in key_id:
        raise ValueError("key id must be non-empty and contain no ':'")
    digest = hmac.new(key, payload, hashlib.sha256).hexdigest()
    return f"{key_id}:{digest}"


def verify(payload: bytes | bytearray, signature: str | None, keys: Mapping[str, bytes]) -> str:
    """Check ``signature`` against the known keys; return the key id or raise ContractError."""
    if not signature:
        raise ContractError("bad_signature", "batch is not signed but signatures are required")
    key_id, _, digest = signature.partition(":")
    key = keys.get(key_id)
    if key is None:
        raise ContractError("bad_signature", f"unknown signing key id {key_id!r}")
    expected = hmac.new(key, payload, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, digest):
        raise ContractError("bad_signature", f"signature does not match (key {key_id!r})")
    return key_id


def message_properties(message: object) -> dict[str, object]:
    """An MQTT v5 message's user properties (where the signature travels) and content type,
    as one dict; every consumer reads a message's properties through this one function."""
    props = getattr(message, "properties", None)
    if props is None:
        return {}
    out: dict[str, object] = dict(getattr(props, "UserProperty", None) or [])
    if getattr(props, "ContentType", None):
        out["content_type"] = props.ContentType
    return out
