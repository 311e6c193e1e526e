"""The short chaos campaign: kill -9 of agent, collector and broker, a broker outage,
influxd paused and killed, on a simulated floor; nothing lost, nothing stored twice.

The full campaign (``make chaos SEED=N``) runs the same code with more faults and a
longer production; see docs/decisions.md for the at-least-once argument it checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from takt_cli.chaos import SHORT, campaign

pytestmark = pytest.mark.integration

SEED = 20261203


@pytest.mark.timeout(900)
async def test_short_chaos_campaign_loses_nothing(tmp_path: Path) -> None:
    report = await campaign(tmp_path, SEED, SHORT)
    summary = "\n".join(report.lines())
    print(summary)
    assert len(report.faults) >= 8, summary
    assert report.drained, summary
    assert report.last_seq > 1000, summary
    assert not report.missing_seqs, summary
    assert not report.duplicate_seqs, summary
    assert not report.rollup_diffs, summary
    assert report.units_influx == report.units_ledger, summary
    assert report.defects_influx == report.defects_ledger, summary
