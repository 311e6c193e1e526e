"""``takt agent probe`` on a real pty device: prints raw and mapped readings, writes nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from typer.testing import CliRunner

from edge_agent.cli import app
from tests.agent.helpers import gateway_config
from tests.agent.test_serial_flow import PtyDevice
from tests.agent.test_serial_records import PROFILES, nmea


def test_probe_prints_what_the_profile_makes_of_each_record(tmp_path: Path) -> None:
    device = PtyDevice(tmp_path / "tty-N1")
    station = {
        "id": "N1",
        "line": "LP",
        "profile": "test-nmea-counter",
        "connection": {"type": "serial", "port": str(device.link)},
    }
    path = gateway_config(
        tmp_path, 1, [station], profiles_dir=str(PROFILES), device_clock_max_ahead_s=5
    )
    ahead = str(int((time.time() + 60) * 1000))  # within the default tolerance, not this one
    records = [
        nmea("N1", 1, "C", "1763884800000", "10", ""),
        nmea("N1", 2, "L", "1763884801000", "B2"),
        nmea("N1", 3, "C", "1763884802000", "13", "E07:1"),
        nmea("N1", 4, "X", "1763884803000", "1"),
        nmea("N1", 5, "C", ahead, "14", ""),
    ]

    # the device talks once the probe has the port open (opening flushes the input)
    def talk() -> None:
        for record in records:
            device.write(record)

    timer = threading.Timer(0.8, talk)
    timer.start()
    result = CliRunner().invoke(app, ["probe", "-c", str(path), "--seconds", "2.5"])
    timer.join()
    out = result.output
    assert result.exit_code == 0, out
    assert 'N1 raw    {"ID": "N1", "SEQ": "2", "TYPE": "L"' in out
    assert '"action": "login"' in out and '"worker": "<badge B2>"' in out
    assert '"outcome": "good", "count": 3' in out and '"defect_code": "E07"' in out
    assert "unknown_type" in out  # the unknown record type is counted
    # the probe's tracker takes the configured tolerance, and says why it emitted nothing
    assert "N1 NOTE   clock_outlier: device time" in out and "(tolerance 5 s)" in out
    assert not (tmp_path / "outbox.db").exists()  # nothing written
