"""Schemes by role (#15): roles recorded with the day they take effect; a scheme applying
to a role scores exactly the workers holding it on each period's first day, with the same
figures as an unrestricted scheme (the filter removes rows, never changes them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kpi_service.core.apikeys import KeyStore
from kpi_service.main import create_app
from takt_cli.localservices import Influxd

from . import month
from .conftest import Keys, auth, load_events, make_settings
from .test_scores import SCHEME_V1, truth

RANGE = {"start": "2026-03-01", "end": "2026-04-30"}
METRICS = [m for m in SCHEME_V1["metrics"] if m["source"] == "measured"]
METRICS = [{**METRICS[0], "weight": 60}, {**METRICS[1], "weight": 40}]
EVERYONE = {**SCHEME_V1, "scheme": "everyone", "metrics": METRICS}
OPERATORS = {**EVERYONE, "scheme": "operators", "applies_to": {"roles": ["operator"]}}
ROLES = [  # worker, role, effective from
    ("W01", "operator", "2026-03-01"), ("W02", "operator", "2026-03-01"),
    ("W03", "operator", "2026-03-01"), ("W03", "team_lead", "2026-04-01"),
    ("W04", "team_lead", "2026-03-01"), ("W05", "operator", "2026-03-15"),
]  # fmt: skip


@pytest.fixture(scope="module")
def db(influxd: Influxd) -> str:
    return load_events(influxd, month.events(month.ledger()))


@pytest.fixture
def api(tmp_path: Path, influxd: Influxd, db: str) -> Iterator[tuple[TestClient, Keys, str]]:
    settings = make_settings(
        tmp_path, influx_url=influxd.url, influx_db=db, timezone="UTC", standards=month.STANDARDS
    )
    with TestClient(create_app(settings)) as client:
        keys = Keys(settings)
        hr_write = KeyStore(settings.keys_db, settings.secret_key.get_secret_value()).create(
            "hr-roles", frozenset({"hr:read", "hr:write"}), None
        )
        for spec in (EVERYONE, OPERATORS):
            r = client.post("/api/v1/schemes", json=spec, headers=auth(keys.admin))
            assert r.status_code == 201, r.text
        yield client, keys, hr_write


def scores(client: TestClient, key: str, scheme: str) -> dict[tuple[str, str], Any]:
    r = client.get("/api/v1/scores", params={"scheme": scheme, **RANGE, "limit": 500},
                   headers=auth(key))  # fmt: skip
    assert r.status_code == 200, r.text
    return {(s["worker"], s["period"]): s for s in r.json()["items"]}


def test_a_scheme_by_role_scores_the_role_holders_of_each_period(
    api: tuple[TestClient, Keys, str],
) -> None:
    client, keys, hr_write = api
    for worker, role, day in ROLES:
        body = {"role": role, "effective_from": day}
        denied = client.post(f"/api/v1/workers/{worker}/roles", json=body, headers=auth(keys.hr))
        assert denied.status_code == 403
        r = client.post(f"/api/v1/workers/{worker}/roles", json=body, headers=auth(hr_write))
        assert r.status_code == 201, r.text
    for day in ("1969-12-31", "2999-01-01"):  # pre-epoch and far-future days are refused
        body = {"role": "operator", "effective_from": day}
        r = client.post("/api/v1/workers/W09/roles", json=body, headers=auth(hr_write))
        assert r.status_code == 422, (day, r.text)
    r = client.post("/api/v1/workers/W09/roles", json={"effective_from": "2026-03-01"},
                    headers=auth(hr_write))  # fmt: skip
    assert r.status_code == 422  # a body without its key
    history = client.get("/api/v1/workers/W03/roles", headers=auth(keys.hr)).json()
    assert [(h["role"], h["effective_from"]) for h in history] == [
        ("operator", "2026-03-01"),
        ("team_lead", "2026-04-01"),
    ]
    on = client.get("/api/v1/roles", params={"at": "2026-04-01"}, headers=auth(keys.hr)).json()
    assert on == {"W01": "operator", "W02": "operator", "W03": "team_lead",
                  "W04": "team_lead", "W05": "operator"}  # fmt: skip

    everyone = scores(client, keys.hr, "everyone")
    operators = scores(client, keys.hr, "operators")
    # Independently: who worked (the ledger) and held "operator" on the period's first day.
    worked = {k for k in truth(month.ledger())}
    holders = {"2026-03": {"W01", "W02", "W03"}, "2026-04": {"W01", "W02", "W05"}}
    expected = {(w, p) for (w, p) in worked if w in holders[p]}
    assert set(operators) == expected and expected < set(everyone)
    assert ("W05", "2026-03") not in operators  # an operator only from 15 March
    for key, s in operators.items():
        e = everyone[key]
        assert (s["score"], s["band"], s["units"]) == (e["score"], e["band"], e["units"])
