"""kill -9 of a real `takt agent run` at random points, then restart: nothing lost or doubled."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from takt_cli.localservices import Mosquitto
from tests.agent.helpers import (
    EventSubscriber,
    MqttDevice,
    assert_matches,
    gateway_config,
    make_script,
    mqtt_stations,
)

TAKT = str(Path(sys.executable).parent / "takt")


def spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [TAKT, "agent", "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.timeout(150)
def test_kill_9_at_random_points_loses_and_doubles_nothing(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    stations = ["S1", "S2", "S3"]
    steps, ledger = make_script(stations, 500, seed=3)
    config = gateway_config(
        tmp_path,
        mosquitto.port,
        mqtt_stations(stations, mosquitto.port, line="LK"),
        agent_id="gw-crash",
    )
    log = tmp_path / "agent.log"
    sub = EventSubscriber(mosquitto.port, client_id="sub-crash")
    agent = spawn(config, log)
    device = MqttDevice(mosquitto.port, line="LK")
    rng = random.Random(42)
    kills = 0
    try:
        # The first start creates the persistent device session: device messages sent
        # before it exists are nobody's (a fixed sleep here failed on a loaded machine).
        deadline = time.monotonic() + 60
        while "connected; subscribing" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            assert agent.poll() is None, log.read_text(errors="replace")
            time.sleep(0.1)
        time.sleep(1.0)  # the SUBACK follows the subscribe
        publisher = threading.Thread(target=device.publish, args=(steps, 0.004))
        publisher.start()
        while publisher.is_alive() and kills < 3:
            time.sleep(rng.uniform(0.8, 2.0))
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait(10)
            kills += 1
            time.sleep(rng.uniform(0.0, 0.5))
            agent = spawn(config, log)
        publisher.join(60)
        got = sub.wait_for(ledger, 40.0, slack_s=0.01)
        assert kills >= 2, "the run ended before the agent could be killed twice"
        assert_matches(got, ledger, slack_s=0.01)
        boots = {key[1] for key in sub.events}
        assert len(boots) >= 2
        seqs = sorted(key[2] for key in sub.events)
        assert len(set(seqs)) == len(seqs), "seq must be strictly increasing across restarts"
    finally:
        device.close()
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(agent.pid, signal.SIGKILL)
        sub.close()
    assert agent.returncode == 0, log.read_text()[-3000:]
