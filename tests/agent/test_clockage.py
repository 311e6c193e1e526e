"""An event's age on the gateway clock, for the historical flag (pure; independent figures)."""

from __future__ import annotations

from edge_agent.clockage import DeviceClocks


def test_live_events_are_young_and_backlog_events_old_whatever_the_device_clock() -> None:
    clocks = DeviceClocks(window_s=300)
    gateway = 1_000_000.0
    device = gateway + 3_600.0  # the device clock is an hour ahead (time zone set wrong)
    for second in range(10):
        clocks.observe("S1", device + second, gateway + second)
    now = gateway + 10
    # A live event: device time of the latest reading -> happened 1 s ago on the gateway.
    assert now - clocks.happened_at("S1", device + 9) == 1.0
    # A reading replayed from the device's buffer, stamped 10 minutes earlier on its clock.
    assert now - clocks.happened_at("S1", device - 600) == 610.0
    # A late reading does not drag the offset down: the offset stays the live one.
    clocks.observe("S1", device - 600, now)
    assert clocks.offset("S1") == 3_600.0


def test_offset_follows_a_clock_corrected_backwards_after_the_window() -> None:
    clocks = DeviceClocks(window_s=60)
    clocks.observe("S1", 5_000.0, 1_000.0)  # offset +4000
    clocks.observe("S1", 1_061.0, 1_061.0)  # corrected: offset 0, first sample expired
    assert clocks.offset("S1") == 0.0
    assert clocks.offset("unknown") == 0.0  # gateway-clock devices: no offset
    assert clocks.happened_at("unknown", 123.0) == 123.0


def test_accelerated_device_clock_keeps_live_events_young() -> None:
    """A simulator at 48x: the device clock gains 47 s per gateway second."""
    clocks = DeviceClocks()
    for tick in range(100):
        clocks.observe("S1", 48.0 * tick, float(tick))
    assert 99.0 - clocks.happened_at("S1", 48.0 * 99) == 0.0
    assert 99.0 - clocks.happened_at("S1", 48.0 * 99 - 480) == 480.0
