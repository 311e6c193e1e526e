"""Review-loop cases (#16 part 2) on the simulated month: an approved case changes the
effective time, the units and the scores computed afterwards by exactly its span, shows
in the evidence and the exports, and moves a closed month only as a pending delta.

Expected figures come from the simulators' ledger and the event times written to
InfluxDB (``month.events``: one work interval per ledger row starting at 01:00 of its
day, units at 02:00), through ``test_scores.truth`` and ``expected_score``: never from the
code under test.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kpi_service.core.apikeys import KeyStore
from kpi_service.main import create_app
from kpi_service.scores.closing import PeriodBook
from kpi_service.testing import AnyEvent
from takt_cli.localservices import Influxd

from . import month
from .conftest import Keys, Maker, auth, load_events, make_settings
from .test_scores import expected_score, truth
from .test_selfservice import _prepare as prepare

pytestmark = pytest.mark.integration

MARCH = {"start": "2026-03-01", "end": "2026-03-31"}


@pytest.fixture(scope="module")
def ledger() -> dict[str, Any]:
    return month.ledger()


@pytest.fixture(scope="module")
def db(influxd: Influxd, ledger: dict[str, Any]) -> str:
    return load_events(influxd, month.events(ledger))  # cases never write to InfluxDB


class Loop:
    """The app with the month's schemes, and the keys of the people in the loop."""

    def __init__(self, client: TestClient, keys: Keys, hr_write: str, store: KeyStore) -> None:
        self.c, self.keys, self.hr_write, self.store = client, keys, hr_write, store
        self.sup_l1b = store.create("sup-l1-b", frozenset({"supervisor"}), frozenset({"L1"}))
        self.w01 = store.create("self-w01", frozenset({"self"}), None, worker="W01")
        self.w03 = store.create("self-w03", frozenset({"self"}), None, worker="W03")

    def post(self, path: str, body: dict[str, Any], key: str) -> Any:
        return self.c.post(f"/api/v1{path}", json=body, headers=auth(key))

    def get(self, path: str, key: str, **params: Any) -> Any:
        r = self.c.get(f"/api/v1{path}", params=params, headers=auth(key))
        assert r.status_code == 200, r.text
        return r.json()

    def approved(self, body: dict[str, Any], filer: str, decider: str) -> dict[str, Any]:
        r = self.post("/cases", body, filer)
        assert r.status_code == 201, r.text
        ok = {"decision": "approve", "reason": "checked with maintenance"}
        d = self.post(f"/cases/{r.json()['id']}/decision", ok, decider)
        assert d.status_code == 200, d.text
        assert d.json()["status"] == "approved"
        return dict(d.json())

    def kpi(self, worker: str, **params: Any) -> dict[str, Any]:
        page = self.get("/kpis", self.keys.hr, worker=worker, **{**MARCH, **params})
        (row,) = page["items"]
        return dict(row)

    def score(self, worker: str) -> dict[str, Any]:
        page = self.get("/scores", self.keys.hr, scheme="line-kpi", **MARCH, limit=500)
        return next(s for s in page["items"] if s["worker"] == worker)


def serve(
    tmp_path: Path, influxd: Influxd, db: str, *, schemes: bool = True, **overrides: Any
) -> Iterator[Loop]:
    """The app on ``db``; with ``schemes``, the month's two schemes and external values."""
    settings = make_settings(
        tmp_path, influx_url=influxd.url, influx_db=db, timezone="UTC",
        standards=month.STANDARDS, **overrides,
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        store = KeyStore(settings.keys_db, settings.secret_key.get_secret_value())
        if schemes:
            keys, hr_write = prepare(client, settings)
        else:
            keys = Keys(settings)
            hr_write = store.create("hr-payroll", frozenset({"hr:read", "hr:write"}), None)
        yield Loop(client, keys, hr_write, store)


@pytest.fixture
def loop(tmp_path: Path, influxd: Influxd, db: str) -> Iterator[Loop]:
    yield from serve(tmp_path, influxd, db)


def row_of(ledger: dict[str, Any], worker: str, day: str) -> dict[str, Any]:
    (row,) = [r for r in ledger["rows"] if r["worker"] == worker and r["start"].startswith(day)]
    return dict(row)


def work_interval(row: dict[str, Any]) -> tuple[datetime, datetime]:
    """Where ``month.events`` put the row's work interval (01:00 of its day, work_s long)."""
    begin = datetime.fromisoformat(row["start"]) + timedelta(hours=1)
    return begin, begin + timedelta(seconds=row["work_s"])


def excuse_body(worker: str | None, line: str, station: str, start: datetime, end: datetime,
                kind: str = "equipment_not_signalled") -> dict[str, Any]:  # fmt: skip
    body = {"kind": kind, "line": line, "station": station, "start": start.isoformat(),
            "end": end.isoformat(), "text": "feeder jammed, the PLC showed running",
            "evidence": "maintenance ticket MT-4411"}  # fmt: skip
    if worker is not None:
        body["worker"] = worker
    return body


def test_an_approved_case_excuses_exactly_its_span_in_kpis_scores_evidence_and_exports(
    loop: Loop, ledger: dict[str, Any]
) -> None:
    expected = truth(ledger)[("W01", "2026-03")]
    before = loop.kpi("W01")
    assert before["effective_s"] == pytest.approx(expected["effective_s"], abs=1e-6)
    score_before = loop.score("W01")
    assert (score_before["score"], score_before["band"]) == expected_score(
        expected, "W01", "2026-03"
    )

    # Mid-month: the whole work interval of the 25th, and the second half of the 26th's.
    day25, day26 = row_of(ledger, "W01", "2026-03-25"), row_of(ledger, "W01", "2026-03-26")
    b25, e25 = work_interval(day25)
    b26, e26 = work_interval(day26)
    half = b26 + (e26 - b26) / 2
    whole = loop.approved(excuse_body(None, "L1", "A1", b25 - timedelta(minutes=5), e25),
                          loop.w01, loop.keys.sup_l1)  # fmt: skip
    part = loop.approved(excuse_body("W01", "L1", "A1", half, e26 + timedelta(hours=3),
                                     kind="material_shortage"),
                         loop.keys.sup_l1, loop.sup_l1b)  # fmt: skip
    assert whole["filed_by"] == "self-w01" and whole["effect"] == "excuse"
    # Independent: the whole interval's effective seconds, and the cut one pro rata.
    share = (e26 - half) / (e26 - b26)
    excused = day25["effective_s"] + day26["effective_s"] * share

    after = loop.kpi("W01")
    assert after["work_s"] == before["work_s"]  # logged in all along
    assert after["effective_s"] == pytest.approx(expected["effective_s"] - excused, abs=1e-6)
    assert after["down_s"] == pytest.approx(before["down_s"] + excused, abs=1e-6)
    assert after["down_by_reason"]["case"] == pytest.approx(excused, abs=1e-6)
    assert after["units_good"] == before["units_good"]
    shown = {c["case"]: c for c in after["cases"]}
    assert set(shown) == {whole["id"], part["id"]}
    assert shown[whole["id"]]["change"]["excused_s"] == pytest.approx(day25["effective_s"])
    assert shown[part["id"]]["kind"] == "material_shortage"

    # The score moves by exactly that: the ledger's month with the excused seconds out.
    adjusted = {**expected, "effective_s": expected["effective_s"] - excused}
    s = loop.score("W01")
    assert (s["score"], s["band"]) == expected_score(adjusted, "W01", "2026-03")
    assert s["score"] != score_before["score"]
    pct = {m["name"]: m for m in s["metrics"]}["efficiency"]["value"]
    assert pct == pytest.approx(100 * expected["standard_s"] / adjusted["effective_s"], rel=1e-12)
    # Nobody else moved.
    assert loop.kpi("W02")["effective_s"] == pytest.approx(
        truth(ledger)[("W02", "2026-03")]["effective_s"], abs=1e-6
    )

    # Same figure by day (raw and rollup paths alike): only the two days changed.
    days = loop.get("/workers/W01/kpis", loop.keys.hr, **MARCH, group="day")["items"]
    changed = {d["bucket"]: d for d in days if d.get("cases")}
    assert set(changed) == {"2026-03-25", "2026-03-26"}
    assert changed["2026-03-25"]["effective_s"] == pytest.approx(0.0, abs=1e-6)

    # The distribution ranks the adjusted figure (two workers at A1: the median is the mean).
    w02_s = truth(ledger)[("W02", "2026-03")]["effective_s"]
    dist = loop.get("/distribution", loop.keys.hr, **MARCH, metric="effective_hours",
                    line="L1", station="A1")  # fmt: skip
    assert dist["workers"] == 2
    assert dist["percentiles"]["p50"] == pytest.approx((adjusted["effective_s"] + w02_s) / 7200)
    # The score's evidence carries the measured inputs with the cases.
    ev = loop.get("/workers/W01/scores", loop.keys.hr, scheme="line-kpi", **MARCH)
    assert {c["case"] for c in ev["measured"][0]["cases"]} == {whole["id"], part["id"]}
    # Evidence of the changed figure names the cases.
    ev = loop.get("/workers/W01/evidence", loop.keys.hr, **MARCH)
    assert {c["case"] for c in ev["kpi"]["cases"]} == {whole["id"], part["id"]}
    # KPI export (CSV and XLSX) and score export carry a cases column.
    r = loop.c.get("/api/v1/kpis/export", params={**MARCH, "worker": "W01"},
                   headers=auth(loop.keys.hr))  # fmt: skip
    (exported,) = list(csv.DictReader(io.StringIO(r.text)))
    assert f'"case": {whole["id"]}' in exported["cases"]
    r = loop.c.get("/api/v1/kpis/export", params={**MARCH, "worker": "W01", "format": "xlsx"},
                   headers=auth(loop.keys.hr))  # fmt: skip
    assert r.status_code == 200 and _xlsx_cell(r.content, "cases").startswith(f"#{whole['id']} ")
    r = loop.c.get("/api/v1/scores/export", params={"scheme": "line-kpi", **MARCH},
                   headers=auth(loop.keys.hr))  # fmt: skip
    rows = {x["worker"]: x for x in csv.DictReader(io.StringIO(r.text))}
    assert rows["W01"]["cases"].startswith(f"#{whole['id']} equipment_not_signalled")
    assert rows["W02"]["cases"] == ""

    # The worker's own page computes through the same path.
    me = loop.get("/me/summary", loop.w01, at="2026-03-31T23:00:00+00:00")
    assert me["month"]["effective_hours"] == round(adjusted["effective_s"] / 3600, 2)


def _xlsx_cell(content: bytes, header: str) -> str:
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    head = next(i for i, r in enumerate(rows) if header in r)
    col = rows[head].index(header)
    return str(rows[head + 1][col])


def test_reattribution_moves_exactly_the_spans_units(loop: Loop, ledger: dict[str, Any]) -> None:
    t = truth(ledger)
    w01, w02 = t[("W01", "2026-03")], t[("W02", "2026-03")]
    row = row_of(ledger, "W01", "2026-03-24")
    moved_good, moved_defect = row["good"], sum(row["defects"].values())
    assert moved_good > 0 and moved_defect > 0
    day = datetime.fromisoformat(row["start"])
    body = {**excuse_body("W01", "L1", "A1", day, day + timedelta(days=1),
                          kind="wrong_attribution"), "to_worker": "W02"}  # fmt: skip
    line_before = loop.get("/kpis", loop.keys.hr, **MARCH, entity="line", line="L1")["items"]
    case = loop.approved(body, loop.keys.sup_l1, loop.sup_l1b)
    assert (case["effect"], case["to_worker"]) == ("reattribute", "W02")

    a, b = loop.kpi("W01"), loop.kpi("W02")
    assert (a["units_good"], a["units_defect"]) == (w01["good"] - moved_good,
                                                    w01["defects"] - moved_defect)  # fmt: skip
    assert (b["units_good"], b["units_defect"]) == (w02["good"] + moved_good,
                                                    w02["defects"] + moved_defect)  # fmt: skip
    assert a["effective_s"] == pytest.approx(w01["effective_s"], abs=1e-6)  # time stays
    assert a["cases"][0]["change"] == {"units_good": -moved_good, "units_defect": -moved_defect}
    assert b["cases"][0]["change"] == {"units_good": moved_good, "units_defect": moved_defect}
    # Filtering on the right worker alone still brings the moved units.
    only = loop.get("/kpis", loop.keys.hr, **MARCH, worker="W02")["items"][0]
    assert only["units_good"] == w02["good"] + moved_good
    # The line's totals do not change (units moved inside it).
    line_after = loop.get("/kpis", loop.keys.hr, **MARCH, entity="line", line="L1")["items"]
    assert [x["units_total"] for x in line_after] == [x["units_total"] for x in line_before]


def test_a_case_approved_after_the_close_is_a_pending_delta_and_the_snapshot_stays(
    loop: Loop, ledger: dict[str, Any]
) -> None:
    closes = "/schemes/line-kpi/closes"
    r = loop.post(closes, {"period_start": "2026-03-01"}, loop.hr_write)
    assert r.status_code == 201, r.text
    book = PeriodBook(loop.c.app.state.store)  # type: ignore[attr-defined]
    (closure,) = book.history("line-kpi")
    frozen = loop.score("W03")

    row = row_of(ledger, "W03", "2026-03-27")
    b, e = work_interval(row)
    case = loop.approved(excuse_body("W03", "L1", "A2", b, e), loop.keys.sup_l1, loop.sup_l1b)

    (after,) = book.history("line-kpi")
    assert after.snapshot == closure.snapshot and after.content_hash == closure.content_hash
    assert loop.score("W03") == frozen  # the closed month is read from its snapshot
    detail = loop.get(f"{closes}/2026-03-01", loop.keys.hr)
    (pending,) = detail["pending"]
    assert pending["worker"] == "W03" and pending["cases"] == [case["id"]]
    hours = pending["changes"]["effective_hours"]
    expected = truth(ledger)[("W03", "2026-03")]["effective_s"]
    assert hours["closed"] == round(expected / 3600, 4)
    assert hours["live"] == round((expected - row["effective_s"]) / 3600, 4)
    # The live KPIs (not closed) show it at once.
    assert loop.kpi("W03")["effective_s"] == pytest.approx(expected - row["effective_s"], abs=1e-6)


def test_cases_on_postgresql_too(
    tmp_path: Path, influxd: Influxd, db: str, store_url: str, ledger: dict[str, Any]
) -> None:
    for lp in serve(tmp_path, influxd, db, database_url=store_url):
        row = row_of(ledger, "W05", "2026-03-25")
        b, e = work_interval(row)
        sup_l2b = lp.store.create("sup-l2-b", frozenset({"supervisor"}), frozenset({"L2"}))
        case = lp.approved(excuse_body("W05", "L2", "B1", b, e), lp.keys.sup_l2, sup_l2b)
        expected = truth(ledger)[("W05", "2026-03")]["effective_s"] - row["effective_s"]
        assert lp.kpi("W05")["effective_s"] == pytest.approx(expected, abs=1e-6)
        assert [c["id"] for c in lp.get("/cases", lp.keys.hr)] == [case["id"]]


def test_a_span_across_midnight_sums_the_same_by_day_as_over_the_period(
    tmp_path: Path, influxd: Influxd
) -> None:
    """Intervals not aligned to the minute (a device clock), a span starting exactly at
    midnight: the first day's query still excuses the part of its last interval that runs
    into the span, so the days add up to the two-day figure."""
    make = Maker()
    events: list[AnyEvent] = [
        make.work("L1", "A1", "W01", "2026-03-10T23:58:40+00:00", "2026-03-10T23:59:40+00:00"),
        make.work("L1", "A1", "W01", "2026-03-10T23:59:40+00:00", "2026-03-11T00:00:40+00:00",
                  down={"fault": 6.0}),  # 54 s effective
        make.work("L1", "A1", "W01", "2026-03-11T00:00:40+00:00", "2026-03-11T00:01:40+00:00"),
        make.unit("L1", "A1", "W01", "2026-03-11T00:00:50+00:00", n=3),
    ]  # fmt: skip
    db = load_events(influxd, events)
    for lp in serve(tmp_path, influxd, db, schemes=False):
        start = datetime.fromisoformat("2026-03-11T00:00:00+00:00")
        lp.approved(excuse_body("W01", "L1", "A1", start, start + timedelta(minutes=1)),
                    lp.keys.sup_l1, lp.sup_l1b)  # fmt: skip
        # By hand: 54 s x 40/60 of the interval across midnight, 20 s of the next one.
        first, second = 54.0 * 40 / 60, 20.0
        days = {r["bucket"]: r for r in lp.get("/kpis", lp.keys.hr, start="2026-03-10",
                                               end="2026-03-11", group="day")["items"]}  # fmt: skip
        assert days["2026-03-10"]["down_by_reason"]["case"] == pytest.approx(first)
        assert days["2026-03-11"]["down_by_reason"]["case"] == pytest.approx(second)
        (alone,) = lp.get("/kpis", lp.keys.hr, start="2026-03-10", end="2026-03-10")["items"]
        assert alone["effective_s"] == pytest.approx(60 + 54 - first)
        (both,) = lp.get("/kpis", lp.keys.hr, start="2026-03-10", end="2026-03-11")["items"]
        assert both["effective_s"] == pytest.approx(60 + 54 + 60 - first - second)
        assert both["effective_s"] == pytest.approx(sum(d["effective_s"] for d in days.values()))
