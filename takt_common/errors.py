"""The one root of every error Takt raises on purpose.

A caller that wants "any Takt failure, not a bug" catches ``TaktError``; each
component derives its own errors from it (and from the matching builtin, so
existing ``except ValueError`` sites keep working).
"""

from __future__ import annotations


class TaktError(Exception):
    """Root of the project's deliberate errors."""
