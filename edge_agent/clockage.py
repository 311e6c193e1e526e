"""How old an event is, measured on the gateway's clock (pure).

Device clocks differ from the gateway's (drift, time zones set wrong, simulators
running faster than real time), so an event's device timestamp cannot be compared
with the gateway clock directly. Each accepted reading gives a sample of the
offset between the station's device clock and the gateway clock; the largest
sample of the last few minutes is the live offset (a reading can arrive late,
never early). An event's age is then how far its device time lies behind the
device clock's "now" — large for events made from a device backlog, an OPC UA
history read or a long outage, near zero for live ones.
"""

from __future__ import annotations

from collections import deque


class DeviceClocks:
    """Per-station offset of the device clock against the gateway clock (seconds)."""

    def __init__(self, window_s: float = 300.0) -> None:
        self.window_s = window_s
        self._samples: dict[str, deque[tuple[float, float]]] = {}

    def observe(self, station: str, device_ts: float, gateway_now: float) -> None:
        """One accepted reading: the device said ``device_ts`` at gateway time ``gateway_now``."""
        offset = device_ts - gateway_now
        samples = self._samples.setdefault(station, deque())
        # Sliding-window maximum: drop samples that can never be the maximum again.
        while samples and samples[-1][1] <= offset:
            samples.pop()
        samples.append((gateway_now, offset))
        horizon = gateway_now - self.window_s
        while len(samples) > 1 and samples[0][0] < horizon:
            samples.popleft()

    def offset(self, station: str) -> float:
        """Device clock minus gateway clock; 0 for a station not seen (gateway-clock devices)."""
        samples = self._samples.get(station)
        return samples[0][1] if samples else 0.0

    def happened_at(self, station: str, event_ts: float) -> float:
        """The gateway time at which an event with device time ``event_ts`` happened."""
        return event_ts - self.offset(station)
