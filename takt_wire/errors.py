"""The one error type consumers of the wire contract need to catch."""

from __future__ import annotations

from typing import Literal

Reason = Literal[
    "malformed_json",
    "schema_version",
    "invalid",
    "oversized",
    "bad_signature",
]


class ContractError(ValueError):
    """A payload that does not satisfy the wire contract.

    ``reason`` is a short, stable code (used as a metric label and dead-letter
    reason); ``detail`` is the human explanation naming the offending field.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail
