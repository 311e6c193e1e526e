"""Schemes scored on a simulated month (the simulators' ledger is the truth), checked to the
last digit against figures computed here from the ledger alone; a version change at the
month boundary and mid-month (weekly scheme); every refusal the issue lists."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from kpi_service.core.apikeys import KeyStore
from kpi_service.core.pseudonym import Pseudonymiser
from kpi_service.main import create_app
from takt_cli.localservices import Influxd

from . import month
from .conftest import Keys, auth, load_events, make_settings

SCHEME_V1: dict[str, Any] = {
    "scheme": "line-kpi",
    "effective_from": "2026-03-01",
    "period": "month",
    "description": "production efficiency + quality rate + customer satisfaction",
    "metrics": [
        {"name": "efficiency", "source": "measured", "measure": "pct_of_standard",
         "floor": 70, "target": 110, "weight": 50},
        {"name": "quality", "source": "measured", "measure": "quality_rate",
         "floor": 0.85, "target": 0.99, "weight": 30},
        {"name": "satisfaction", "source": "external", "external": "customer_satisfaction",
         "floor": 2, "target": 5, "weight": 20},
    ],
    "min_evidence": {"effective_hours": 40, "units": 100},
    "inflation_threshold": 0.3,
}  # fmt: skip
SCHEME_V2: dict[str, Any] = {
    **SCHEME_V1,
    "effective_from": "2026-04-01",
    "description": "after the new product: output 40 / new product 30 / quality 30",
    "metrics": [
        {"name": "output", "source": "measured", "measure": "pct_of_standard",
         "floor": 80, "target": 105, "weight": 40},
        {"name": "new_product", "source": "external", "external": "new_product_rating",
         "rule": "steps", "steps": [{"at": 3, "points": 50}, {"at": 4, "points": 80},
                                    {"at": 4.5, "points": 100}],
         "floor": 1, "target": 4.5, "weight": 30},
        {"name": "quality", "source": "measured", "measure": "quality_rate",
         "floor": 0.9, "target": 0.98, "weight": 30},
    ],
}  # fmt: skip
SATISFACTION = {"W01": [4.5, 4.1], "W02": [3.0], "W03": [5.0, 4.8, 4.9], "W04": [2.2],
                "W05": [4.0, 4.4], "W06": [4.9]}  # fmt: skip
NEW_PRODUCT = {"W01": 4.6, "W02": 3.9, "W03": 4.0, "W04": 2.5, "W05": 4.5, "W06": 3.1}
RANGE = {"start": "2026-03-01", "end": "2026-04-30"}


@pytest.fixture(scope="module")
def ledger() -> dict[str, Any]:
    return month.ledger()


@pytest.fixture(scope="module")
def db(influxd: Influxd, ledger: dict[str, Any]) -> str:
    return load_events(influxd, month.events(ledger))


class Api:
    def __init__(self, client: TestClient, keys: Keys, ingest: str) -> None:
        self.client, self.keys, self.ingest = client, keys, ingest

    def get(self, path: str, key: str | None = None, **params: Any) -> Any:
        response = self.client.get(path, params=params, headers=auth(key or self.keys.hr))
        assert response.status_code == 200, response.text
        return response.json()


def external_batch() -> list[dict[str, Any]]:
    values = []
    for worker, ratings in SATISFACTION.items():
        for i, v in enumerate(ratings):
            values.append({"worker": worker, "metric": "customer_satisfaction",
                           "period_start": "2026-03-01", "period_end": "2026-03-31", "value": v,
                           "source": "crm", "reference": f"survey-{worker}-{i}"})  # fmt: skip
    for worker, v in NEW_PRODUCT.items():
        values.append({"worker": worker, "metric": "new_product_rating",
                       "period_start": "2026-04-06", "period_end": "2026-04-10", "value": v,
                       "source": "reviews", "reference": f"NP-{worker}"})  # fmt: skip
    return values


@contextmanager
def _serve(tmp_path: Path, influxd: Influxd, db: str, **overrides: Any) -> Iterator[Api]:
    settings = make_settings(
        tmp_path, influx_url=influxd.url, influx_db=db, timezone="UTC",
        standards=month.STANDARDS, **overrides,
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        keys = Keys(settings)
        ingest = KeyStore(settings.keys_db, settings.secret_key.get_secret_value()).create(
            "crm-bridge", frozenset({"ingest"}), None
        )
        for spec in (SCHEME_V1, SCHEME_V2):
            r = client.post("/api/v1/schemes", json=spec, headers=auth(keys.admin))
            assert r.status_code == 201, r.text
        r = client.post(
            "/api/v1/external-metrics", json={"values": external_batch()}, headers=auth(ingest)
        )
        assert r.status_code == 200, r.text
        yield Api(client, keys, ingest)


@pytest.fixture
def api(tmp_path: Path, influxd: Influxd, db: str) -> Iterator[Api]:
    with _serve(tmp_path, influxd, db) as served:
        yield served


# --- the independent calculation, from the ledger only ----------------------------------


def truth(ledger: dict[str, Any]) -> dict[tuple[str, str], dict[str, float]]:
    """Per (worker, YYYY-MM): good, defects, effective seconds, standard seconds."""
    std = {s.station: s.cycle_s for s in month.STANDARDS}
    acc: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in ledger["rows"]:
        key = (row["worker"], row["start"][:7])
        a = acc[key]
        a["good"] += row["good"]
        a["defects"] += sum(row["defects"].values())
        a["effective_s"] += row["effective_s"]
        a["standard_s"] += row["good"] * std[row["station"]]
    return acc


def linear(value: float, floor: float, target: float) -> float:
    return 100 * min(1.0, max(0.0, (value - floor) / (target - floor)))


def expected_score(t: dict[str, float], worker: str, period: str) -> tuple[float, str] | None:
    if t["effective_s"] < 40 * 3600 or t["good"] + t["defects"] < 100:
        return None
    pct = 100 * t["standard_s"] / t["effective_s"]
    quality = 1 - t["defects"] / (t["good"] + t["defects"])
    if period == "2026-03":
        sat = sum(SATISFACTION[worker]) / len(SATISFACTION[worker])
        total = (linear(pct, 70, 110) * 50 + linear(quality, 0.85, 0.99) * 30
                 + linear(sat, 2, 5) * 20) / 100  # fmt: skip
    else:
        rating = NEW_PRODUCT[worker]
        steps = 100 if rating >= 4.5 else 80 if rating >= 4 else 50 if rating >= 3 else 0
        total = (linear(pct, 80, 105) * 40 + steps * 30 + linear(quality, 0.9, 0.98) * 30) / 100
    total = round(total, 4)
    band = "excellent" if total >= 90 else "qualified" if total >= 70 else "to_improve"
    return total, band


def test_month_scores_match_the_ledger_to_the_last_digit(api: Api, ledger: dict[str, Any]) -> None:
    page = api.get("/api/v1/scores", scheme="line-kpi", **RANGE, limit=500)
    got = {(s["worker"], s["period"]): s for s in page["items"]}
    expected = truth(ledger)
    # W06 has no line data in April, only an external value: listed, not scored.
    assert set(got) == set(expected) | {("W06", "2026-04")} and len(got) == 12
    only_external = got[("W06", "2026-04")]
    assert (only_external["status"], only_external["score"]) == ("insufficient_data", None)
    assert "output: no value for this period" in only_external["reasons"]
    scored = 0
    for (worker, period), t in sorted(expected.items()):
        s = got[(worker, period)]
        assert s["version"] == (1 if period == "2026-03" else 2)  # each month its own version
        want = expected_score(t, worker, period)
        if want is None:
            assert (s["status"], s["score"], s["band"]) == ("insufficient_data", None, None)
            assert any("effective hours" in r for r in s["reasons"])
            continue
        scored += 1
        assert s["status"] == "scored", s
        assert (s["score"], s["band"]) == want, (worker, period)
        metrics = {m["name"]: m for m in s["metrics"]}
        pct = 100 * t["standard_s"] / t["effective_s"]
        first = "efficiency" if period == "2026-03" else "output"
        assert metrics[first]["value"] == pytest.approx(pct, rel=1e-12)
        assert sum(m["weight"] for m in metrics.values()) == 100
        assert round(sum(m["contribution"] for m in metrics.values()), 2) == round(want[0], 2)
    assert scored == 10  # W06 worked too little in both months
    # The worker who works three days is below the minimum evidence, never a low score.
    assert got[("W06", "2026-03")]["effective_hours"] < 40


def test_one_worker_evidence_shows_values_formulas_and_sources(api: Api) -> None:
    body = api.get("/api/v1/workers/W03/scores", scheme="line-kpi", **RANGE)
    march, april = body["scores"]
    sat = {m["name"]: m for m in march["metrics"]}["satisfaction"]
    assert sat["value"] == pytest.approx((5.0 + 4.8 + 4.9) / 3)
    assert {p["reference"] for p in sat["provenance"]} == {
        "survey-W03-0",
        "survey-W03-1",
        "survey-W03-2",
    }
    assert all(p["source"] == "crm" and p["received_by"] == "crm-bridge" for p in sat["provenance"])
    assert sat["formula"].startswith("100 * clip((4.9 - 2) / (5 - 2), 0, 1)")
    np_metric = {m["name"]: m for m in april["metrics"]}["new_product"]
    assert (np_metric["value"], np_metric["points"]) == (4.0, 80.0)
    assert "steps" in np_metric["formula"]
    assert body["measured"][0]["period"] == "2026-03" and body["measured"][0]["units_good"] > 0
    assert "Decision aid" in body["note"]


def test_distribution_band_shares_histogram_and_inflation_flag(
    api: Api, ledger: dict[str, Any]
) -> None:
    dist = api.get("/api/v1/scores/distribution", scheme="line-kpi", **RANGE)
    expected = truth(ledger)
    for period in dist["periods"]:
        label = period["period"]
        wants = [expected_score(t, w, p) for (w, p), t in expected.items() if p == label]
        scores = [w for w in wants if w is not None]
        assert period["scored"] == len(scores) == 5
        assert period["insufficient_data"] == 1  # W06: too little work / no line data
        counts = {b: sum(1 for _, band in scores if band == b)
                  for b in ("excellent", "qualified", "to_improve")}  # fmt: skip
        assert {b["name"]: b["count"] for b in period["bands"]} == counts
        assert period["top_band_share"] == counts["excellent"] / len(scores)
        assert period["inflated"] == (counts["excellent"] / len(scores) > 0.3)
        bins = [0] * 10
        for value, _ in scores:
            bins[min(9, int(value // 10))] += 1
        assert period["histogram"] == bins
    assert "Decision aid" in dist["note"]


def test_exports_carry_the_same_scores(api: Api) -> None:
    page = api.get("/api/v1/scores", scheme="line-kpi", **RANGE, limit=500)
    params = {"scheme": "line-kpi", **RANGE}
    text = api.client.get("/api/v1/scores/export", params=params, headers=auth(api.keys.hr)).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == page["total"] == 12
    by_key = {(r["worker"], r["period"]): r for r in rows}
    for s in page["items"]:
        row = by_key[(s["worker"], s["period"])]
        assert row["score"] == ("" if s["score"] is None else str(s["score"]))
        assert row["version"] == str(s["version"]) and row["status"] == s["status"]
    xlsx = api.client.get(
        "/api/v1/scores/export", params={**params, "format": "xlsx"}, headers=auth(api.keys.hr)
    )
    book = load_workbook(io.BytesIO(xlsx.content))
    sheet = book["Scores"]
    values = list(sheet.values)
    assert values[0][:3] == ("worker", "period", "start") and len(values) == 13
    header = list(values[0])
    scored = next(i for i, r in enumerate(values[1:], 2) if r[header.index("score")] is not None)
    assert sheet.cell(scored, header.index("score") + 1).number_format == "0.0"
    assert sheet.cell(scored, header.index("start") + 1).number_format == "yyyy-mm-dd hh:mm"
    defs = {r[0]: r[2] for r in book["Definitions"].iter_rows(min_row=2, values_only=True)}
    assert defs["efficiency_points"] == "Points 0-100: 100 * clip((value - 70) / (110 - 70), 0, 1)."
    assert "weight 50" in defs["efficiency_contribution"] and book["Chart"]._charts


def test_weekly_scheme_changes_version_mid_month(api: Api, ledger: dict[str, Any]) -> None:
    weekly = {
        **SCHEME_V1, "scheme": "weekly-output", "period": "week", "effective_from": "2026-03-16",
        "metrics": [{"name": "output", "source": "measured", "measure": "pct_of_standard",
                     "floor": 70, "target": 110, "weight": 100}],
        "min_evidence": {"effective_hours": 8},
    }  # fmt: skip
    changed = {**weekly, "effective_from": "2026-03-30",
               "metrics": [{**weekly["metrics"][0], "floor": 90, "target": 100}]}  # fmt: skip
    for spec in (weekly, changed):
        r = api.client.post("/api/v1/schemes", json=spec, headers=auth(api.keys.admin))
        assert r.status_code == 201, r.text
    page = api.get(
        "/api/v1/scores", scheme="weekly-output", start="2026-03-16", end="2026-04-12",
        worker=["W01"],
    )  # fmt: skip
    assert [(s["period"], s["version"]) for s in page["items"]] == [
        ("2026-W12", 1), ("2026-W13", 1), ("2026-W14", 2), ("2026-W15", 2)
    ]  # fmt: skip
    std = {s.station: s.cycle_s for s in month.STANDARDS}
    for s in page["items"]:
        rows = [
            r for r in ledger["rows"]
            if r["worker"] == "W01"
            and date.fromisoformat(r["start"][:10]).isocalendar().week == int(s["period"][-2:])
        ]  # fmt: skip
        pct = (
            100
            * sum(r["good"] * std[r["station"]] for r in rows)
            / sum(r["effective_s"] for r in rows)
        )
        floor, target = (70, 110) if s["version"] == 1 else (90, 100)
        assert s["score"] == round(linear(pct, floor, target), 4)


# --- refusals -----------------------------------------------------------------------------


def test_scheme_refusals(api: Api) -> None:
    post = lambda spec: api.client.post(  # noqa: E731
        "/api/v1/schemes", json=spec, headers=auth(api.keys.admin)
    )
    first, second = SCHEME_V1["metrics"][:2]
    bad_weights = {**SCHEME_V1, "scheme": "x", "metrics": [{**first, "weight": 60}, second]}
    r = post(bad_weights)
    assert r.status_code == 422 and "weights must add up to 100, not 90" in r.text
    unknown = {
        **SCHEME_V1,
        "scheme": "x",
        "metrics": [{**first, "measure": "speed", "weight": 100}],
    }
    r = post(unknown)
    assert r.status_code == 422 and "unknown measured metric 'speed'" in r.text
    inverted = {**SCHEME_V1, "scheme": "x", "metrics": [{**first, "floor": 120, "weight": 100}]}
    assert "target > floor" in post(inverted).text
    mid_month = {**SCHEME_V1, "scheme": "x", "effective_from": "2026-03-15"}
    assert "first day of a month" in post(mid_month).text
    # History is not rewritten: a version must take effect after the last one.
    r = post({**SCHEME_V1, "effective_from": "2026-02-01"})
    assert r.status_code == 409 and "after version 2" in r.json()["detail"]
    r = post({**SCHEME_V1, "effective_from": "2026-06-01", "period": "week"})
    assert r.status_code == 409 and "keeps its period" in r.json()["detail"]
    r = post({**SCHEME_V1, "scheme": "y", "effective_from": "2026-06-02", "period": "week"})
    assert r.status_code == 422 and "takes effect on a Monday" in r.text
    r = api.client.post("/api/v1/schemes", json=SCHEME_V1, headers=auth(api.keys.hr))
    assert r.status_code == 403
    assert api.client.get("/api/v1/schemes/nope", headers=auth(api.keys.hr)).status_code == 404
    versions = api.get("/api/v1/schemes/line-kpi")
    assert [(v["version"], v["effective_from"]) for v in versions] == [
        (1, "2026-03-01"), (2, "2026-04-01")
    ]  # fmt: skip


def test_external_metric_refusals(api: Api) -> None:
    post = lambda values, key=None: api.client.post(  # noqa: E731
        "/api/v1/external-metrics", json={"values": values}, headers=auth(key or api.ingest)
    )
    good = external_batch()[0]
    resend = post([good])
    assert resend.status_code == 200 and resend.json()["outcomes"] == ["unchanged"]
    r = post([{**good, "value": 1.0}])
    assert r.status_code == 409 and "survey-W01-0" in r.json()["detail"]
    r = post([{**good, "worker": "W99", "reference": "new-1"}])
    assert r.status_code == 422 and "unknown worker 'W99'" in r.text
    r = post([{**good, "metric": "mood", "reference": "new-2"}])
    assert r.status_code == 422 and "no scheme declares external metric 'mood'" in r.text
    r = post([{**good, "reference": "new-3", "period_end": "2026-02-01"}])
    assert r.status_code == 422 and "period_end is before period_start" in r.text
    # All or nothing: one bad value in a batch stores none.
    r = post([{**good, "reference": "new-4"}, {**good, "worker": "W99", "reference": "new-5"}])
    assert r.status_code == 422
    stored = api.get("/api/v1/external-metrics", metric=["customer_satisfaction"],
                     start="2026-03-01", end="2026-03-31")  # fmt: skip
    assert "new-4" not in {v["reference"] for v in stored} and len(stored) == 10
    # The ingest key is for sending only; HR keys cannot send.
    assert post([good], api.keys.hr).status_code == 403
    r = api.client.get("/api/v1/scores", params={"scheme": "line-kpi", **RANGE},
                       headers=auth(api.ingest))  # fmt: skip
    assert r.status_code == 403


def test_external_metrics_show_and_take_pseudonyms(
    tmp_path: Path, influxd: Influxd, db: str
) -> None:
    pseudo = Pseudonymiser("k-test")
    with _serve(tmp_path, influxd, db, pseudonymise=True, pseudonym_key="k-test") as api:
        params: dict[str, Any] = {
            "metric": ["customer_satisfaction"],
            "start": "2026-03-01",
            "end": "2026-03-31",
        }
        stored = api.get("/api/v1/external-metrics", **params)
        assert {v["worker"] for v in stored} == {pseudo(w) for w in SATISFACTION}
        assert len(stored) == 10
        w03 = api.get("/api/v1/external-metrics", **params, worker=[pseudo("W03")])
        assert sorted(v["value"] for v in w03) == sorted(SATISFACTION["W03"])
        assert {v["worker"] for v in w03} == {pseudo("W03")}
        # Real ids are not accepted in place of pseudonyms.
        assert api.get("/api/v1/external-metrics", **params, worker=["W03"]) == []


def test_external_metrics_limit_keeps_the_first_stored(api: Api) -> None:
    params: dict[str, Any] = {
        "metric": ["customer_satisfaction"], "start": "2026-03-01", "end": "2026-03-31"
    }  # fmt: skip
    every = api.get("/api/v1/external-metrics", **params)
    first = api.get("/api/v1/external-metrics", **params, limit=3)
    assert len(every) == 10 and first == every[:3]


def test_supervisors_read_only_schemes_of_their_lines(api: Api) -> None:
    l1 = {**SCHEME_V1, "scheme": "l1-only", "applies_to": {"lines": ["L1"]}}
    r = api.client.post("/api/v1/schemes", json=l1, headers=auth(api.keys.admin))
    assert r.status_code == 201
    page = api.get("/api/v1/scores", api.keys.sup_l1, scheme="l1-only", **RANGE)
    assert {s["worker"] for s in page["items"]} == {"W01", "W02", "W03", "W04"}  # L1 only
    for scheme in ("l1-only", "line-kpi"):
        r = api.client.get("/api/v1/scores", params={"scheme": scheme, **RANGE},
                           headers=auth(api.keys.sup_l2))  # fmt: skip
        assert r.status_code == 403
    listed = api.get("/api/v1/schemes", api.keys.sup_l1)
    assert [s["scheme"] for s in listed] == ["l1-only"]
    assert [s["scheme"] for s in api.get("/api/v1/schemes")] == ["l1-only", "line-kpi"]
    unknown = api.client.get("/api/v1/scores", params={"scheme": "nope", **RANGE},
                             headers=auth(api.keys.hr))  # fmt: skip
    assert unknown.status_code == 404


def test_scheme_changes_are_audited(api: Api) -> None:
    entries = api.get("/api/v1/audit", api.keys.admin)
    posts = [(e["principal"], e["path"], e["status"]) for e in entries if e["method"] == "POST"]
    assert posts == [
        ("admin-bob", "/api/v1/schemes", 201),
        ("admin-bob", "/api/v1/schemes", 201),
        ("crm-bridge", "/api/v1/external-metrics", 200),
    ]
    assert isinstance(datetime.fromisoformat(entries[0]["at"]), datetime)
