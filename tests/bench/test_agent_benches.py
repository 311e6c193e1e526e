"""The agent benchmarks' own parts: option parsing, the memory slope, the device
messages they send, and a small whole-path run (no timing asserted: benchmarks
report figures, tests check that what is counted is right)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.__main__ import parse
from bench.agentkit import counter_payload, counter_topic, verdict
from bench.bench_agentmem import _slope_mb_per_h
from edge_agent.mapping import RawReading, map_reading
from edge_agent.profile import load_profiles

PROFILES = Path(__file__).resolve().parents[2] / "device_profiles"


def test_options_are_name_value_pairs() -> None:
    names, options = parse(["agentmem", "--minutes=6", "--only=mqtt_100,opcua_100", "--quick"])
    assert names == ["agentmem"]
    assert options == {"minutes": "6", "only": "mqtt_100,opcua_100", "quick": "1"}


def test_slope_is_the_least_squares_line_in_mb_per_hour() -> None:
    # 60 MB growing 0.5 MB per minute = 30 MB/h, with noise that cancels in pairs
    samples = [(t * 60.0, 60.0 + 0.5 * t + (0.2 if t % 2 else -0.2)) for t in range(10)]
    xs = [x for x, _ in samples]
    ys = [y for _, y in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in samples) / sum((x - mx) ** 2 for x in xs)
    assert _slope_mb_per_h(samples) == pytest.approx(slope * 3600, abs=0.01)
    assert 29.0 < slope * 3600 < 31.0
    assert _slope_mb_per_h(samples[:2]) is None  # two points are not a trend
    assert _slope_mb_per_h(samples, min_span_s=600) is None  # 9 minutes of samples


def test_verdicts() -> None:
    assert verdict(20_000, 20_000) == "met"
    assert verdict(19_999, 20_000) == "not met"
    assert verdict(60.0, 60.0, at_most=True) == "met"
    assert verdict(60.1, 60.0, at_most=True) == "not met"


def test_the_bench_device_speaks_the_counter_profile() -> None:
    """Each bench message maps to one more good unit, a new reject code count every 50th."""
    profile = load_profiles(Path(__file__).resolve().parents[2] / "device_profiles")[
        "takt-sim-counter"
    ]
    readings = [
        map_reading(
            RawReading(
                station="S0003",
                values=json.loads(counter_payload(3, n, 1_763_884_800_000 + n)),
                topic=counter_topic(3),
            ),
            profile,
        )
        for n in (49, 50, 51)
    ]
    assert [r.good for r in readings] == [49, 50, 51]
    assert [r.defects for r in readings] == [{"E07": 0}, {"E07": 1}, {"E07": 1}]
    assert readings[0].ts == datetime.fromtimestamp(1_763_884_800.049, UTC)
    assert counter_topic(3) == "plant/L1/S0003/counter"


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_small_whole_path_run_processes_every_reading() -> None:
    from bench.bench_agentpath import run

    figures = run(stations=4, per_station=25)
    assert figures["readings"] == 100
    assert figures["stations"] == 4
    for key in ("whole_path_readings_per_cpu_s", "decode_only_readings_per_cpu_s"):
        value = figures[key]
        assert isinstance(value, int) and value > 0
