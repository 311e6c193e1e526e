"""The one keyed pseudonym function (HMAC-SHA256), used by the agent and the KPI service.

Two uses, one function, two prefixes that must never change (ids already stored or
handed out would stop matching):

- ``STORED`` (``"p-"``): the edge agent turns a badge's worker id into the id that is
  *stored* (events, InfluxDB), so the plant's data never holds the roster's names.
- ``SHOWN`` (``"p_"``): the KPI service turns a stored worker id into the id its API
  *shows* (HR exports, distribution), so readers without the key see no real ids.

The prefixes also tell the two apart: a shown id is never mistaken for a stored one.
"""

from __future__ import annotations

import hashlib
import hmac

STORED = "p-"
SHOWN = "p_"
DIGEST_CHARS = 20
"""80 bits of the digest: collisions stay out of reach for any workforce."""


def pseudonym(key: bytes, value: str, prefix: str) -> str:
    """``prefix`` + the first hex digits of HMAC-SHA256(key, value): stable, one-way
    without the key."""
    return prefix + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:DIGEST_CHARS]
