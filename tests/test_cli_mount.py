"""`takt <component> ...` imports that component only (a gateway runs no KPI service)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
sys.argv = ["takt", {args}]
import takt_cli.main
loaded = sorted(m for m in ("kpi_service", "sqlalchemy", "simulators", "collector", "edge_agent")
                if m in sys.modules)
print(",".join(loaded))
"""


def loaded_by(*args: str) -> set[str]:
    code = PROBE.format(args=", ".join(repr(a) for a in args))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(filter(None, out.stdout.strip().split(",")))


def test_the_agent_command_loads_the_agent_alone() -> None:
    loaded = loaded_by("agent", "run", "--config", "gateway.yaml")
    assert "edge_agent" in loaded
    assert not loaded & {"kpi_service", "sqlalchemy", "simulators", "collector"}, loaded


def test_help_without_a_component_lists_them_all() -> None:
    assert {"edge_agent", "collector", "kpi_service"} <= loaded_by("--help")


def test_version_prints_the_installed_package_version() -> None:
    from importlib.metadata import version

    out = subprocess.run(
        [sys.executable, "-m", "takt_cli.main", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == f"takt {version('takt')}"
