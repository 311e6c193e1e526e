"""Period close (#16): a closed month is frozen with a content hash, late data is a pending
delta and never changes it, re-opening needs an admin and a reason, all of it audited.

The figures before and after the late data are checked against the ledger (independent
calculation in ``test_scores.truth``), not against the code under test.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kpi_service.main import create_app
from kpi_service.scores.closing import PeriodBook, content_hash, deltas, encode_snapshot
from kpi_service.scores.scoring import MetricResult, ScoreResult
from kpi_service.scores.service import WorkerScore
from kpi_service.store.db import Database
from kpi_service.testing import lines_of, point_time, roll_up
from takt_cli.localservices import Influxd

from . import month
from .conftest import Keys, Maker, auth, load_events, make_settings
from .test_scores import truth
from .test_selfservice import _prepare as prepare

CLOSES = "/api/v1/schemes/line-kpi/closes"
MARCH = {"scheme": "line-kpi", "start": "2026-03-01", "end": "2026-03-31"}


@pytest.fixture
def ledger() -> dict[str, Any]:
    return month.ledger()


@pytest.fixture
def db(influxd: Influxd, ledger: dict[str, Any]) -> str:
    return load_events(influxd, month.events(ledger))  # a database of this test's own


class Caller:
    def __init__(self, client: TestClient, keys: Keys, hr_write: str) -> None:
        self.c, self.keys, self.hr_write = client, keys, hr_write

    def scores(self, **params: Any) -> dict[tuple[str, str], dict[str, Any]]:
        r = self.c.get(
            "/api/v1/scores", params={**params, "limit": 500}, headers=auth(self.keys.hr)
        )
        assert r.status_code == 200, r.text
        return {(s["worker"], s["period"]): s for s in r.json()["items"]}


@pytest.fixture
def api(tmp_path: Path, influxd: Influxd, db: str) -> Iterator[Caller]:
    settings = make_settings(
        tmp_path, influx_url=influxd.url, influx_db=db, timezone="UTC", standards=month.STANDARDS
    )
    with TestClient(create_app(settings)) as client:
        keys, hr_write = prepare(client, settings)  # the two schemes, externals, an HR writer
        yield Caller(client, keys, hr_write)


def late_units(influxd: Influxd, db: str, worker: str, n: int) -> None:
    """A gateway back from a week offline: good units on 30 March reach InfluxDB in December."""
    event = Maker(agent="late-gateway").unit("L1", "ST1", worker, "2026-03-30T10:15:00+00:00", n=n)
    influxd.write(db, lines_of([event]))
    hour = point_time(event) // (3600 * 10**9) * 3600 * 10**9
    roll_up(influxd.url, db, hour, hour + 3600 * 10**9)  # its hour, then its day


def test_a_closed_month_is_frozen_and_late_data_is_a_pending_delta(
    api: Caller, influxd: Influxd, db: str, ledger: dict[str, Any]
) -> None:
    expected = truth(ledger)
    before = api.scores(**MARCH)
    worker = next(w for (w, p) in sorted(expected) if p == "2026-03" and w != "W06")
    units_then = expected[(worker, "2026-03")]["good"] + expected[(worker, "2026-03")]["defects"]
    assert before[(worker, "2026-03")]["units"] == units_then  # the ledger, before anything

    body = {"period_start": "2026-03-01"}
    assert api.c.post(CLOSES, json=body, headers=auth(api.keys.hr)).status_code == 403
    r = api.c.post(CLOSES, json=body, headers=auth(api.hr_write))
    assert r.status_code == 201, r.text
    closed = r.json()
    assert (closed["period"], closed["version"], closed["workers"]) == ("2026-03", 1, len(before))
    assert closed["closed_by"] == "hr-payroll" and len(closed["content_hash"]) == 64
    again = api.c.post(CLOSES, json=body, headers=auth(api.hr_write))
    assert again.status_code == 409 and "already closed" in again.text

    # Frozen scores equal the live ones at close time, marked with the close's hash.
    frozen = api.scores(**MARCH)
    assert {k: {**v, "closed": None} for k, v in frozen.items()} == before
    assert {v["closed"] for v in frozen.values()} == {closed["content_hash"]}

    late_units(influxd, db, worker, 40)
    assert api.scores(**MARCH)[(worker, "2026-03")]["units"] == units_then  # not silently
    detail = api.c.get(f"{CLOSES}/2026-03-01", headers=auth(api.keys.hr)).json()
    assert detail["content_hash"] == closed["content_hash"]
    assert [d["worker"] for d in detail["pending"]] == [worker]
    assert detail["pending"][0]["changes"]["units"] == {
        "closed": units_then,
        "live": units_then + 40,
    }
    # April is open: computed live.
    april = api.scores(scheme="line-kpi", start="2026-04-01", end="2026-04-30")
    assert all(v["closed"] is None for v in april.values())

    # The payroll export is the snapshot, with its hash.
    export = api.c.get(f"{CLOSES}/2026-03-01/export", headers=auth(api.keys.hr))
    assert export.headers["X-Takt-Content-Hash"] == closed["content_hash"]
    rows = {r["worker"]: r for r in csv.DictReader(io.StringIO(export.text))}
    assert int(rows[worker]["units"]) == units_then
    assert {r["band"] or None for r in rows.values()} == {v["band"] for v in before.values()}

    # Re-open: admin only, with a reason; the close stays in the history.
    reopen = f"{CLOSES}/2026-03-01/reopen"
    reason = {"reason": "ST1 gateway was offline for a week; late units to include"}
    assert api.c.post(reopen, json=reason, headers=auth(api.hr_write)).status_code == 403
    short = api.c.post(reopen, json={"reason": "x"}, headers=auth(api.keys.admin))
    assert short.status_code == 422
    r = api.c.post(reopen, json=reason, headers=auth(api.keys.admin))
    assert r.status_code == 200, r.text
    assert (r.json()["reopened_by"], r.json()["reopen_reason"]) == ("admin-bob", reason["reason"])
    live = api.scores(**MARCH)
    assert live[(worker, "2026-03")]["units"] == units_then + 40
    assert live[(worker, "2026-03")]["closed"] is None

    second = api.c.post(CLOSES, json=body, headers=auth(api.hr_write)).json()
    assert second["content_hash"] != closed["content_hash"]
    history = api.c.get(CLOSES, headers=auth(api.keys.hr)).json()
    assert [(h["content_hash"], h["reopened_by"]) for h in history] == [
        (closed["content_hash"], "admin-bob"),
        (second["content_hash"], None),
    ]
    audit = api.c.get("/api/v1/audit", headers=auth(api.keys.admin)).json()
    writes = [(e["principal"], e["path"], e["status"]) for e in audit if e["method"] == "POST"]
    assert ("hr-payroll", CLOSES, 201) in writes and ("hr-payroll", CLOSES, 409) in writes
    assert ("admin-bob", reopen, 200) in writes and ("hr-payroll", reopen, 403) in writes


def test_only_whole_ended_periods_can_be_closed(api: Caller) -> None:
    def close(day: str) -> Any:
        return api.c.post(CLOSES, json={"period_start": day}, headers=auth(api.hr_write))

    assert close("2026-03-02").status_code == 422  # not the first day of a month
    this_month = date.today().replace(day=1).isoformat()
    r = close(this_month)
    assert r.status_code == 409 and "has not ended" in r.text
    assert close("2026-02-01").status_code == 422  # no version in force yet
    assert close("2999-01-01").status_code == 422  # far future: outside the calendar
    assert close("1900-01-01").status_code == 422  # before the epoch
    missing = api.c.post(
        "/api/v1/schemes/nope/closes", json={"period_start": "2026-03-01"},
        headers=auth(api.hr_write),
    )  # fmt: skip
    assert missing.status_code == 404
    assert api.c.get(f"{CLOSES}/2026-04-01", headers=auth(api.keys.hr)).status_code == 404


def _score(worker: str, units: int, score: float | None) -> WorkerScore:
    metric = MetricResult("efficiency", "measured", 101.5, 110, 70, 100, 78.75, 78.75, "f", [])
    return WorkerScore(
        worker=worker, period="2026-03", start=datetime.fromisoformat("2026-03-01T00:00:00+00:00"),
        end=datetime.fromisoformat("2026-04-01T00:00:00+00:00"), first_day=date(2026, 3, 1),
        last_day=date(2026, 3, 31), scheme="s", version=1,
        result=ScoreResult("scored", score, "qualified", [metric], []),
        effective_hours=42.5, units=units, measured={"units_good": units},
    )  # fmt: skip


def test_snapshot_round_trip_hash_and_one_close_in_force_on_each_store(store_url: str) -> None:
    book = PeriodBook(Database(store_url))
    scores = [_score("W2", 10, 70.0), _score("W1", 12, 80.0)]
    text = encode_snapshot("s", "2026-03", 1, scores)
    assert content_hash(text) == hashlib.sha256(text.encode()).hexdigest()
    assert encode_snapshot("s", "2026-03", 1, list(reversed(scores))) == text  # canonical
    c = book.close("s", "2026-03", date(2026, 3, 1), date(2026, 3, 31), 1, scores, "hr")
    assert c.content_hash == content_hash(text) and c.snapshot == text
    assert [s.worker for s in c.scores()] == ["W1", "W2"]
    assert c.scores()[0].result == scores[1].result and c.scores()[0].closed == c.content_hash
    with pytest.raises(ValueError, match="already closed"):
        book.close("s", "2026-03", date(2026, 3, 1), date(2026, 3, 31), 1, scores, "hr")
    book.reopen("s", "2026-03", "admin", "late data from a gateway")
    assert book.get("s", "2026-03") is None
    with pytest.raises(ValueError, match="not closed"):
        book.reopen("s", "2026-03", "admin", "twice")
    book.close("s", "2026-03", date(2026, 3, 1), date(2026, 3, 31), 1, scores[:1], "hr")
    assert [h.workers for h in book.history("s")] == [2, 1]
    live = [_score("W2", 11, 72.0), _score("W3", 5, None)]
    changes = {d["worker"]: d["changes"] for d in deltas(book.get("s", "2026-03").scores(), live)}  # type: ignore[union-attr]
    assert set(changes) == {"W2", "W3"}
    assert changes["W2"]["units"] == {"closed": 10, "live": 11}
    assert changes["W3"]["status"] == {"closed": None, "live": "scored"}
