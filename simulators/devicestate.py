"""What a station's device shows, event by event: cumulative counters with a bit width.

The same state machine feeds all three protocols, so an OPC UA PLC, an MQTT
counter and a serial box fed the same plan show the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulators.plan import Change, Event, Restart, Unit
from simulators.scenario import STATE_CODE, Station

COUNTERS = "counters"
IDENTITY = "identity"


@dataclass
class DeviceState:
    """The registers of one device; ``apply`` returns which group changed."""

    bits: int
    codes: tuple[str, ...]
    good: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    reject_total: int = 0
    last_code: str = ""
    badge: str = ""
    state: int = STATE_CODE["idle"]
    last_cycle_s: float = 0.0
    heartbeat: int = 0
    ts_ms: int = 0
    rollovers: int = 0

    @classmethod
    def initial(cls, station: Station, bits: int) -> DeviceState:
        return cls(
            bits=bits,
            codes=tuple(station.defect_codes),
            good=station.counter_start % (1 << bits),
            rejects=dict.fromkeys(station.defect_codes, 0),
        )

    def _inc(self, value: int) -> int:
        nxt = (value + 1) % (1 << self.bits)
        if nxt == 0:
            self.rollovers += 1
        return nxt

    def apply(self, event: Event) -> str:
        """Apply one planned event at its time; 'counters' or 'identity' says what moved."""
        self.ts_ms = max(self.ts_ms, event.t_ms)
        if isinstance(event, Unit):
            self.last_cycle_s = event.cycle_s
            if event.good:
                self.good = self._inc(self.good)
            else:
                self.rejects[event.code] = self._inc(self.rejects[event.code])
                self.reject_total = self._inc(self.reject_total)
                self.last_code = event.code
            return COUNTERS
        if isinstance(event, Restart):
            self.good = 0
            self.rejects = dict.fromkeys(self.codes, 0)
            self.reject_total = 0
            return COUNTERS
        assert isinstance(event, Change)
        self.badge = event.badge
        self.state = STATE_CODE[event.state]
        return IDENTITY

    def tick(self, ts_ms: int) -> None:
        """One simulated second has passed: the heartbeat moves on."""
        self.ts_ms = max(self.ts_ms, ts_ms)
        self.heartbeat = (self.heartbeat + 1) % (1 << 32)
