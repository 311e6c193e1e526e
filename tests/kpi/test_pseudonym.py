"""One pseudonym function, and the ids it makes are those existing deployments hold.

The agent's stored ids (``p-``) and the KPI service's shown ids (``p_``) are checked
against HMAC-SHA256 computed here with the standard library, so moving the function
cannot silently change an id already in InfluxDB or in an HR export.
"""

from __future__ import annotations

import hashlib
import hmac

from edge_agent.attribution import WorkerResolver
from kpi_service.core.pseudonym import Pseudonymiser
from takt_wire import UNATTRIBUTED


def _hmac20(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:20]


def test_agent_stores_the_same_ids_as_before() -> None:
    resolve = WorkerResolver({"04A1B2": "W0042"}, pseudonym_key=b"site-key")
    assert resolve("04A1B2") == "p-" + _hmac20(b"site-key", "W0042")
    # An unknown badge is pseudonymised through its badge- placeholder, as before.
    assert resolve("FF 01") == "p-" + _hmac20(b"site-key", "badge-FF_01")


def test_kpi_service_shows_the_same_ids_as_before() -> None:
    shown = Pseudonymiser("api-key")
    assert shown("W0042") == "p_" + _hmac20(b"api-key", "W0042")
    assert shown(UNATTRIBUTED) == UNATTRIBUTED
    assert shown.resolve(shown("W0042"), ["W0001", "W0042"]) == "W0042"
    assert Pseudonymiser(None)("W0042") == "W0042"


def test_a_stored_pseudonym_is_pseudonymised_again_for_display() -> None:
    stored = WorkerResolver({"b": "W1"}, pseudonym_key=b"k")("b")
    shown = Pseudonymiser("k")(stored)
    assert shown.startswith("p_") and shown != stored
    assert shown == "p_" + _hmac20(b"k", stored)
