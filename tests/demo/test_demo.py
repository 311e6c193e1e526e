"""`takt demo`: the newcomer's command runs the stack, summarises, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from takt_cli.stack import REPO

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def leftovers(marker: str) -> list[str]:
    """Processes whose command line or environment mentions ``marker`` (our work folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue  # gone, or not ours to read
        if marker in cmdline or marker in environ:
            found.append(f"{proc.name}: {cmdline[:120]}")
    return found


def demo(workdir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "takt_cli.main", "demo", "--workdir", str(workdir), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
    )


def test_demo_with_duration_prints_a_summary_and_exits_0(tmp_path: Path) -> None:
    workdir = tmp_path / "demo-run"
    proc = demo(workdir, "--duration", "60")
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, output
    summary = output[output.index("Summary per worker") :]
    for worker in ("W001", "W002", "W003", "W004", "W005"):  # W005: the Modbus station
        row = next((line for line in summary.splitlines() if worker in line), "")
        cells = [c.strip() for c in row.split("│") if c.strip()]
        assert cells and int(cells[1]) > 0, f"{worker} has no units in the summary:\n{summary}"
    assert "✗" not in summary, summary  # measured units equal the simulator's ledger
    assert "worker-defect-rate: W003" in output, output  # the demo's defect spike
    assert "takt_" in output  # an example API key is printed
    scores = output[output.index("Scores (scheme demo-line") :]
    assert "band shares" in scores, scores  # the line's scores and band shares at the end
    assert any(w in scores for w in ("W001", "W002", "W003", "W004")), scores
    assert not leftovers(str(workdir))


def test_ctrl_c_stops_everything(tmp_path: Path) -> None:
    workdir = tmp_path / "demo-interrupted"
    proc = demo(workdir)
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        seen.append(line)
        if "Takt demo" in line or time.monotonic() > deadline:
            break
    assert any("Takt demo" in line for line in seen), "".join(seen)
    assert leftovers(str(workdir)), "the stack should be running now"
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, "".join(seen) + output
    assert not leftovers(str(workdir)), leftovers(str(workdir))
