"""The one error type consumers of the wire contract need to catch."""

from __future__ import annotations

from typing import Literal

from pydantic import ValidationError

from takt_common.errors import TaktError

Reason = Literal[
    "malformed_json",
    "schema_version",
    "invalid",
    "oversized",
    "bad_signature",
    "topic_mismatch",
    "agent_mismatch",
    "boot_mismatch",
]


class ContractError(TaktError, ValueError):
    """A payload that does not satisfy the wire contract.

    ``reason`` is a short, stable code (used as a metric label and dead-letter
    reason); ``detail`` is the human explanation naming the offending field.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail


def describe_validation_error(err: ValidationError, limit: int = 5) -> str:
    """'field.path: message; ...' for the first ``limit`` problems: what people read.

    Every component reports bad config and bad payloads in this one form, so an
    operator learns it once.
    """
    parts = []
    for item in err.errors(include_url=False)[:limit]:
        loc = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{loc}: {item['msg']}")
    more = err.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
