"""Worker ids as the API shows them: as the site knows them, or a keyed HMAC pseudonym.

The pseudonym is stable (same key → same id, so trends and disputes still line up) and
cannot be reversed without the key, which only the service holds (from the environment).
"""

from __future__ import annotations

import hashlib
import hmac


class Pseudonymiser:
    def __init__(self, key: str | None) -> None:
        self._key = key.encode() if key else None

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def __call__(self, worker: str) -> str:
        if self._key is None or worker == "unattributed":
            return worker
        return "p_" + hmac.new(self._key, worker.encode(), hashlib.sha256).hexdigest()[:20]

    def resolve(self, shown: str, known: list[str]) -> str | None:
        """The real id behind a shown id (None if no known worker maps to it)."""
        if self._key is None:
            return shown
        return next((w for w in known if self(w) == shown), None)
