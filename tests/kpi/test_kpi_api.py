"""Events written to a real influxd per the schema → API figures equal the hand-computed truth."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from kpi_service.main import create_app
from takt_cli.localservices import Influxd

from . import scenario
from .conftest import Keys, Maker, auth, load_events, make_settings

DAY = {"start": "2026-03-10", "end": "2026-03-10"}


@pytest.fixture(scope="module")
def db(influxd: Influxd) -> str:
    return load_events(influxd, scenario.events())


def _client(tmp_path: Path, influxd: Influxd, db: str, **overrides: object) -> TestClient:
    settings = make_settings(
        tmp_path, influx_url=influxd.url, influx_db=db, timezone="Europe/Berlin",
        standards=scenario.STANDARDS, **overrides,
    )  # fmt: skip
    return TestClient(create_app(settings))


@pytest.fixture(params=[True, False], ids=["rollup", "raw"])
def api(
    request: pytest.FixtureRequest, tmp_path: Path, influxd: Influxd, db: str
) -> Iterator[tuple[TestClient, Keys]]:
    with _client(tmp_path, influxd, db, use_rollups=request.param) as c:
        yield c, Keys(c.app.state.settings)  # type: ignore[attr-defined]


def rows_by(items: list[dict[str, object]], key: str) -> dict[object, dict[str, object]]:
    return {r[key]: r for r in items}


def test_worker_day_figures_are_exact(api: tuple[TestClient, Keys]) -> None:
    client, keys = api
    response = client.get("/api/v1/kpis", params={**DAY, "fpy": True}, headers=auth(keys.hr))
    assert response.status_code == 200, response.text
    page = response.json()
    rows = rows_by(page["items"], "worker")
    assert set(rows) == {"W1", "W2"}  # 'unattributed' is not a worker
    w1 = rows["W1"]
    assert (w1["units_good"], w1["units_defect"], w1["units_total"]) == (12, 3, 15)
    assert w1["defects_by_code"] == {"scratch": 2, "dent": 1}
    assert w1["defect_rate"] == pytest.approx(3 / 15)
    assert (w1["work_s"], w1["effective_s"], w1["down_s"]) == (7080.0, 6480.0, 600.0)
    assert w1["down_by_reason"] == {"fault": 600}
    assert w1["pct_of_standard"] == pytest.approx(100 * 12 * 30 / 6480)
    assert w1["pct_of_standard_gross"] == pytest.approx(100 * 12 * 30 / 7080)
    assert w1["good_per_effective_hour"] == pytest.approx(12 / (6480 / 3600))
    assert w1["good_per_work_hour"] == pytest.approx(12 / (7080 / 3600))
    assert (w1["serials"], w1["first_pass_yield"]) == (2, 0.5)  # X1 reworked, X2 first pass
    w2 = rows["W2"]
    assert (w2["units_good"], w2["units_defect"], w2["pct_of_standard"]) == (5, 0, None)
    assert w2["down_by_reason"] == {"starved": 300, "fault": 120}
    assert (w2["work_s"], w2["effective_s"]) == (1800.0, 1380.0)


def test_station_line_site_include_unattributed_units(api: tuple[TestClient, Keys]) -> None:
    client, keys = api
    get = lambda entity: client.get(  # noqa: E731
        "/api/v1/kpis", params={**DAY, "entity": entity}, headers=auth(keys.hr)
    ).json()["items"]
    stations = {(r["line"], r["station"]): r["units_good"] for r in get("station")}
    assert stations == {("L1", "ST1"): 13, ("L2", "ST9"): 5}
    assert {r["line"]: r["units_total"] for r in get("line")} == {"L1": 16, "L2": 5}
    assert [(r["site"], r["units_good"]) for r in get("site")] == [("S1", 18)]


def test_shifts_follow_the_wall_clock_across_dst(api: tuple[TestClient, Keys]) -> None:
    client, keys = api
    spring = client.get(
        "/api/v1/kpis", params={"start": "2026-03-28", "end": "2026-03-28", "group": "shift"},
        headers=auth(keys.hr),
    ).json()["items"]  # fmt: skip
    by_shift = rows_by(spring, "shift")
    assert set(by_shift) == {"late", "night"}
    night = by_shift["night"]
    assert night["bucket"] == "2026-03-28 night"
    assert (night["start"], night["end"]) == ("2026-03-28T21:00:00Z", "2026-03-29T04:00:00Z")
    assert night["units_good"] == 5 and by_shift["late"]["units_good"] == 1
    assert night["planned_s"] == 7 * 3600 - 1800
    autumn = client.get(
        "/api/v1/kpis", params={"start": "2026-10-24", "end": "2026-10-24", "group": "shift"},
        headers=auth(keys.hr),
    ).json()["items"]  # fmt: skip
    night = rows_by(autumn, "shift")["night"]
    assert night["units_good"] == 7 and night["planned_s"] == 9 * 3600 - 1800
    days = client.get(
        "/api/v1/kpis", params={"start": "2026-03-28", "end": "2026-03-29", "group": "day"},
        headers=auth(keys.hr),
    ).json()["items"]  # fmt: skip
    assert {r["bucket"]: r["units_good"] for r in days} == {"2026-03-28": 2, "2026-03-29": 11}


def test_worker_trend_evidence_and_formula(api: tuple[TestClient, Keys]) -> None:
    client, keys = api
    trend = client.get(
        "/api/v1/workers/W3/kpis", params={"start": "2026-03-27", "end": "2026-03-30"},
        headers=auth(keys.hr),
    ).json()["items"]  # fmt: skip
    assert [(r["bucket"], r["units_good"]) for r in trend] == [
        ("2026-03-28", 2),
        ("2026-03-29", 11),
    ]
    ev = client.get("/api/v1/workers/W1/evidence", params=DAY, headers=auth(keys.hr)).json()
    assert ev["total"] == 15 and len(ev["events"]) == 15
    assert sum(e["count"] for e in ev["events"]) == ev["kpi"]["units_total"]
    first = ev["events"][0]
    assert {"device", "agent", "boot", "seq", "time", "count", "outcome", "station"} <= set(first)
    assert ev["explained"]["pct_of_standard"].startswith("100 * 360 / 6480 = 5.5555")
    work = client.get(
        "/api/v1/workers/W1/evidence",
        params={**DAY, "measurement": "work", "limit": 1, "offset": 1},
        headers=auth(keys.hr),
    ).json()  # fmt: skip
    assert work["total"] == 2 and len(work["events"]) == 1 and work["events"][0]["work_s"] == 3540
    # The span nobody could observe (scenario: 05:30:00 .. 05:32:30) is stated beside them.
    quality = ev["data_quality"]
    assert (quality["unobserved_s"], quality["unobserved_spans"]) == (150.0, 1)
    assert quality["note"].startswith("150 s not observed in 1 span(s)")
    gaps = client.get(
        "/api/v1/workers/W1/evidence", params={**DAY, "measurement": "gaps"}, headers=auth(keys.hr)
    ).json()  # fmt: skip
    assert [(g["station"], g["reason"], g["seconds"]) for g in gaps["events"]] == [
        ("ST1", "no_history", 150.0)
    ]
    w2 = client.get("/api/v1/workers/W2/evidence", params=DAY, headers=auth(keys.hr)).json()
    assert w2["data_quality"] == {"unobserved_s": 0.0, "unobserved_spans": 0, "note": None}


def test_distribution_ranks_comparable_workers(api: tuple[TestClient, Keys]) -> None:
    client, keys = api
    dist = client.get(
        "/api/v1/distribution",
        params={**DAY, "metric": "good_per_effective_hour", "min_effective_hours": 0},
        headers=auth(keys.hr),
    ).json()
    w1, w2 = 12 / (6480 / 3600), 5 / (1380 / 3600)
    assert dist["workers"] == 2
    assert dist["percentiles"]["p50"] == pytest.approx((w1 + w2) / 2)
    members = [w for band in dist["bands"] for w in band["workers"]]
    assert members == ["W2", "W1"]  # best first
    assert "not an automatic decision" in dist["note"]
    strict = client.get(
        "/api/v1/distribution", params={**DAY, "min_effective_hours": 1}, headers=auth(keys.hr)
    ).json()
    assert strict["workers"] == 1  # only W1 has a standard and >= 1 h effective


def test_exports_match_the_list(api: tuple[TestClient, Keys]) -> None:
    client, keys = api
    text = client.get("/api/v1/kpis/export", params=DAY, headers=auth(keys.hr)).text
    rows = {r["worker"]: r for r in csv.DictReader(io.StringIO(text))}
    assert rows["W1"]["units_good"] == "12" and rows["W2"]["units_good"] == "5"
    xlsx = client.get(
        "/api/v1/kpis/export", params={**DAY, "format": "xlsx"}, headers=auth(keys.hr)
    )
    book = load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames == ["KPIs", "Definitions", "Chart"]
    sheet = book["KPIs"]
    table = list(sheet.iter_rows(values_only=True))
    header = list(table[0])
    by_worker = {r[header.index("worker")]: dict(zip(header, r, strict=True)) for r in table[1:]}
    assert {w: r["good units"] for w, r in by_worker.items()} == {"W1": 12, "W2": 5}
    # For people: hours, not seconds; an Excel percentage; site time without a zone.
    assert by_worker["W1"]["effective h"] == pytest.approx(6480 / 3600)
    assert by_worker["W2"]["effective h"] == pytest.approx(1380 / 3600)
    csv_w1 = rows["W1"]
    assert by_worker["W1"]["defect rate"] == pytest.approx(float(csv_w1["defect_rate"]))
    assert by_worker["W1"]["start"].tzinfo is None
    col = {h: sheet.cell(row=2, column=i + 1) for i, h in enumerate(header)}
    assert col["defect rate"].number_format == "0.00%"
    assert col["effective h"].number_format == "#,##0.00"
    assert col["start"].number_format == "yyyy-mm-dd hh:mm"
    assert (
        sheet.freeze_panes == "A2"
        and sheet.auto_filter.ref == f"A1:{sheet.cell(1, len(header)).column_letter}3"
    )
    definitions = {r[0]: r[2] for r in book["Definitions"].iter_rows(min_row=2, values_only=True)}
    assert set(header) <= set(definitions)
    assert "units_defect / (units_good + units_defect)" in definitions["defect rate"]
    assert book["Chart"]._charts, "the chart sheet holds a chart"
    from kpi_service.kpi.metrics import METRICS  # every registry metric has its column

    assert len([h for h in header if h in definitions]) >= len(METRICS) + 10
    assert by_worker["W1"]["quality rate"] == pytest.approx(1 - 3 / 15)
    for worker, r in rows.items():  # one column per defect code, as in the CSV's map
        for code, n in json.loads(r["defects_by_code"]).items():
            assert by_worker[worker][f"defects {code}"] == n


def test_supervisor_sees_only_its_lines(api: tuple[TestClient, Keys]) -> None:
    client, keys = api
    page = client.get("/api/v1/kpis", params=DAY, headers=auth(keys.sup_l2)).json()
    assert [(r["worker"], r["units_good"]) for r in page["items"]] == [("W2", 5)]
    denied = client.get("/api/v1/kpis", params={**DAY, "line": "L1"}, headers=auth(keys.sup_l2))
    assert denied.status_code == 403
    w1 = client.get("/api/v1/workers/W1/kpis", params=DAY, headers=auth(keys.sup_l2)).json()
    assert w1["items"] == []
    ev = client.get("/api/v1/workers/W1/evidence", params=DAY, headers=auth(keys.sup_l2)).json()
    assert ev["total"] == 0 and ev["events"] == []


def test_pagination_is_stable(api: tuple[TestClient, Keys]) -> None:
    client, keys = api
    get = lambda offset: client.get(  # noqa: E731
        "/api/v1/kpis", params={**DAY, "limit": 1, "offset": offset}, headers=auth(keys.hr)
    ).json()
    first, second = get(0), get(1)
    assert first["total"] == second["total"] == 2
    assert [first["items"][0]["worker"], second["items"][0]["worker"]] == ["W1", "W2"]


def test_pseudonymised_ids(tmp_path: Path, influxd: Influxd, db: str) -> None:
    with _client(tmp_path, influxd, db, pseudonymise=True, pseudonym_key="k-test") as client:
        keys = Keys(client.app.state.settings)  # type: ignore[attr-defined]
        page = client.get("/api/v1/kpis", params=DAY, headers=auth(keys.hr))
        assert "W1" not in page.text and "W2" not in page.text
        shown = {r["units_good"]: r["worker"] for r in page.json()["items"]}
        w1 = client.get(f"/api/v1/workers/{shown[12]}/kpis", params=DAY, headers=auth(keys.hr))
        assert [r["units_good"] for r in w1.json()["items"]] == [12]
        unknown = client.get("/api/v1/workers/W1/kpis", params=DAY, headers=auth(keys.hr))
        assert unknown.json()["items"] == []  # real ids are not accepted in place of pseudonyms


@pytest.mark.parametrize("rollups", [True, False], ids=["rollup", "raw"])
def test_work_ending_on_a_shift_boundary_belongs_to_that_shift(
    tmp_path: Path, influxd: Influxd, rollups: bool
) -> None:
    """The agent closes intervals on whole minutes; one ending at 14:00 is the early shift's."""
    make = Maker()
    events = [
        make.work("L9", "S9", "W9", "2026-05-04T11:59:00+00:00", "2026-05-04T12:00:00+00:00"),
        make.work("L9", "S9", "W9", "2026-05-04T12:00:00+00:00", "2026-05-04T12:00:30+00:00"),
    ]
    db = load_events(influxd, list(events))
    with _client(tmp_path, influxd, db, use_rollups=rollups) as client:
        keys = Keys(client.app.state.settings)  # type: ignore[attr-defined]
        items = client.get(
            "/api/v1/kpis",
            params={"start": "2026-05-04", "end": "2026-05-04", "group": "shift"},
            headers=auth(keys.hr),
        ).json()["items"]
    assert {r["shift"]: r["work_s"] for r in items} == {"early": 60.0, "late": 30.0}
