"""Worker ids as the API shows them: as the site knows them, or a keyed HMAC pseudonym.

The pseudonym is stable (same key → same id, so trends and disputes still line up) and
cannot be reversed without the key, which only the service holds (from the environment).
The HMAC itself is the house's one pseudonym function (``takt_common.pseudonym``).
"""

from __future__ import annotations

from takt_common.pseudonym import SHOWN, pseudonym
from takt_wire import UNATTRIBUTED


class Pseudonymiser:
    def __init__(self, key: str | None) -> None:
        self._key = key.encode() if key else None

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def __call__(self, worker: str) -> str:
        if self._key is None or worker == UNATTRIBUTED:
            return worker
        return pseudonym(self._key, worker, SHOWN)

    def resolve(self, shown: str, known: list[str]) -> str | None:
        """The real id behind a shown id (None if no known worker maps to it)."""
        if self._key is None:
            return shown
        return next((w for w in known if self(w) == shown), None)
