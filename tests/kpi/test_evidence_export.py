"""Evidence in the site's local time, and as CSV: the scenario's events in a real influxd.

The local times are worked out by hand from each event's nanosecond epoch (Berlin is
UTC+1 on 2026-03-10), not with the code's time-zone conversion.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

from takt_cli.localservices import Influxd

from .conftest import Keys, auth
from .test_kpi_api import DAY, _client, db  # noqa: F401 (db: the scenario's database fixture)


def berlin_march(ns: int) -> str:
    moment = (
        datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000) + timedelta(hours=1)
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+01:00"


def test_evidence_has_local_iso_times_and_a_csv_form(
    tmp_path: Path,
    influxd: Influxd,
    db: str,  # noqa: F811
) -> None:
    with _client(tmp_path, influxd, db) as client:
        keys = Keys(client.app.state.settings)  # type: ignore[attr-defined]
        ev = client.get("/api/v1/workers/W1/evidence", params=DAY, headers=auth(keys.hr)).json()
        assert ev["events"] and all(
            e["time_local"] == berlin_march(e["time"]) for e in ev["events"]
        )
        work = client.get("/api/v1/workers/W1/evidence", params={**DAY, "measurement": "work"},
                          headers=auth(keys.hr)).json()  # fmt: skip
        assert all(e["start_local"] == berlin_march(e["start_ns"]) for e in work["events"])

        exported = client.get("/api/v1/workers/W1/evidence/export", params=DAY,
                              headers=auth(keys.hr))  # fmt: skip
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        assert exported.headers["x-total-count"] == "15"
        assert exported.headers["x-truncated"] == "false"
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert list(rows[0])[:4] == ["time_local", "site", "line", "station"]
        assert sorted(r["time_local"] for r in rows) == sorted(
            e["time_local"] for e in ev["events"]
        )
        assert sum(int(r["count"]) for r in rows) == ev["kpi"]["units_total"]
        # A supervisor of another line gets nothing of W1's line.
        other = client.get("/api/v1/workers/W1/evidence/export", params={**DAY, "line": "L1"},
                           headers=auth(keys.sup_l2))  # fmt: skip
        assert other.status_code == 403
