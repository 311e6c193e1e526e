"""One station's OPC UA notifications → readings the profile's order rule holds for (pure).

A server sends every variable change as its own notification, and packs them
into publishes as it likes. A PLC that writes the reject reason into one
variable and then increments the reject counter (or the other way round)
produces two notifications; mapped one by one, the counter change would never
see its code. So, for ``defects: total_and_last_code``:

- a change of the last-code variable is remembered;
- a change of the total takes the code written since the previous change of
  the total at once; if none was written yet, it waits up to the profile's
  ``code_window_ms`` for one (readings of the station queue behind it, so
  their order is kept), then takes the code in force (a repeated code causes
  no data change at all);
- a total that changes while no code is known is counted as uncoded.

Badge and state changes need no joining: each is its own reading, in source
timestamp order, which is the order the device wrote them.
"""

from __future__ import annotations

from dataclasses import replace

from edge_agent.mapping import RawReading


class Assembler:
    def __init__(self, total: str | None, code: str | None, window_s: float) -> None:
        self.total = total
        self.code = code
        self.window_s = window_s
        self.code_value: object = None
        self.code_fresh = False
        self.last_total: object = None
        self.held: list[RawReading] = []
        self.deadline: float | None = None
        self.uncoded = 0
        """Changes of the total released without any code (for the metric)."""

    def add(self, raw: RawReading, now: float) -> list[RawReading]:
        """Readings ready to map, in order; ``now`` is a monotonic clock in seconds."""
        if self.total is None or self.code is None:
            return [raw]
        if self.code in raw.values:
            self.code_value = raw.values[self.code]
            self.code_fresh = True
            if self.held:
                return self._release([raw])
            return [raw]
        if self.total in raw.values:
            out = self._release([]) if self.held else []
            if self.code_fresh or self.window_s <= 0:
                return out + self._joined(raw)
            self.held = [raw]
            self.deadline = now + self.window_s
            return out
        if self.held:
            self.held.append(raw)
            return []
        return [raw]

    def due(self, now: float) -> list[RawReading]:
        """Readings whose wait for a code is over."""
        if self.held and self.deadline is not None and now >= self.deadline:
            return self._release([])
        return []

    def _release(self, after: list[RawReading]) -> list[RawReading]:
        held, self.held, self.deadline = self.held, [], None
        return self._joined(held[0]) + held[1:] + after

    def _joined(self, raw: RawReading) -> list[RawReading]:
        assert self.total is not None and self.code is not None
        value = raw.values[self.total]
        changed = self.last_total is not None and value != self.last_total
        self.last_total = value
        self.code_fresh = False
        if self.code_value in (None, ""):
            self.uncoded += int(changed)
            return [raw]
        return [replace(raw, values=raw.values | {self.code: self.code_value})]
