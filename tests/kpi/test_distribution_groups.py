"""Distribution: minimum n and hours from the settings, comparable groups (same standard),
rounded values and a histogram; the scenario's events in a real influxd.

Scenario (tests/kpi/scenario.py): W1 works at L1/ST1 (standard 30 s), W2 at a station
without a standard; the figures below are worked out from its counts and seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from takt_cli.localservices import Influxd

from .conftest import Keys, auth
from .test_kpi_api import DAY, _client, db  # noqa: F401 (db: the scenario's database fixture)


def test_groups_warnings_histogram_and_minimum_n(
    tmp_path: Path,
    influxd: Influxd,
    db: str,  # noqa: F811
) -> None:
    with _client(tmp_path, influxd, db) as client:
        keys = Keys(client.app.state.settings)  # type: ignore[attr-defined]
        params = {**DAY, "metric": "good_per_effective_hour", "min_effective_hours": 0}
        dist = client.get("/api/v1/distribution", params=params, headers=auth(keys.hr)).json()
        w1, w2 = 12 / (6480 / 3600), 5 / (1380 / 3600)  # good units per effective hour
        assert dist["workers"] == 2 and dist["min_workers"] == 5
        assert any("fewer than 5" in w for w in dist["warnings"])
        assert any("2 different standards" in w for w in dist["warnings"])
        by_cycle = {g["standard_cycle_s"]: g for g in dist["groups"]}
        assert set(by_cycle) == {30.0, None}
        assert by_cycle[30.0]["stations"] == ["L1/ST1"] and by_cycle[30.0]["workers"] == 1
        assert by_cycle[30.0]["percentiles"] == {}  # 1 < minimum n: no percentiles for a group
        # Histogram: ceil(sqrt(2)) = 2 bins from min to max, one worker in each.
        assert [b["count"] for b in dist["histogram"]] == [1, 1]
        assert dist["histogram"][0]["lo"] == pytest.approx(min(w1, w2), rel=1e-6)
        assert dist["histogram"][-1]["hi"] == pytest.approx(max(w1, w2), rel=1e-6)
        # Values are rounded at the edge (7 significant digits), not 15 decimals.
        assert all(v == float(f"{v:.7g}") for v in dist["percentiles"].values())

        # % of standard is relative to each standard: one group; the minimum hours come
        # from the settings when the request does not give them (default 1 h: W1 only).
        pct = client.get("/api/v1/distribution", params=DAY, headers=auth(keys.hr)).json()
        assert pct["min_effective_hours"] == 1.0 and pct["workers"] == 1
        assert len(pct["groups"]) == 1 and pct["groups"][0]["standard_cycle_s"] is None
        assert not any("different standards" in w for w in pct["warnings"])


def test_minimum_n_and_hours_are_settings(tmp_path: Path, influxd: Influxd, db: str) -> None:  # noqa: F811
    with _client(tmp_path, influxd, db, distribution_min_workers=1,
                 distribution_min_effective_hours=0) as client:  # fmt: skip
        keys = Keys(client.app.state.settings)  # type: ignore[attr-defined]
        params = {**DAY, "metric": "good_per_effective_hour"}
        dist = client.get("/api/v1/distribution", params=params, headers=auth(keys.hr)).json()
        assert dist["workers"] == 2 and dist["min_effective_hours"] == 0
        assert not any("fewer than" in w for w in dist["warnings"])
        assert all(g["percentiles"] for g in dist["groups"])  # n >= 1 in every group
