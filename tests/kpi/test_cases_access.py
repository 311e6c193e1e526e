"""Who may file, read and decide a case, and what hostile input gets (#16 part 2): the
app and the simulated month of ``test_cases``; every refusal checked by status and text."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kpi_service.core.audit import AuditLog
from takt_cli.localservices import Influxd

from .conftest import auth
from .test_cases import (
    MARCH,
    Loop,
    db,
    excuse_body,
    ledger,
    loop,
    row_of,
    serve,
    work_interval,
)
from .test_scores import truth

__all__ = ["db", "ledger", "loop"]  # fixtures of test_cases, used here too

pytestmark = pytest.mark.integration


def test_who_may_file_see_and_decide(loop: Loop) -> None:
    at = datetime.fromisoformat("2026-03-20T03:00:00+00:00")
    mine = excuse_body(None, "L1", "A1", at, at + timedelta(hours=1))
    # A worker's own key: for themselves only.
    r = loop.post("/cases", {**mine, "worker": "W02"}, loop.w01)
    assert r.status_code == 403 and "that worker only" in r.text
    own = loop.post("/cases", mine, loop.w01)
    assert own.status_code == 201 and own.json()["worker"] == "W01"
    case_id = own.json()["id"]
    # ... sees their own cases, not others'.
    other = loop.post("/cases", excuse_body("W03", "L1", "A2", at, at + timedelta(hours=1)),
                      loop.keys.sup_l1)  # fmt: skip
    assert other.status_code == 201
    assert [c["id"] for c in loop.get("/cases", loop.w01)] == [case_id]
    assert loop.c.get(f"/api/v1/cases/{other.json()['id']}",
                      headers=auth(loop.w01)).status_code == 404  # fmt: skip
    assert loop.post(f"/cases/{case_id}/decision", {"decision": "approve", "reason": "mine"},
                     loop.w01).status_code == 403  # fmt: skip
    # A supervisor of another line can neither file, see nor decide.
    assert loop.post("/cases", {**mine, "worker": "W01"}, loop.keys.sup_l2).status_code == 403
    assert loop.get("/cases", loop.keys.sup_l2) == []
    r = loop.post(f"/cases/{case_id}/decision", {"decision": "approve", "reason": "why not"},
                  loop.keys.sup_l2)  # fmt: skip
    assert r.status_code == 404
    # The filer cannot decide their own case; another supervisor of the line can.
    r = loop.post(f"/cases/{other.json()['id']}/decision",
                  {"decision": "approve", "reason": "my own"}, loop.keys.sup_l1)  # fmt: skip
    assert r.status_code == 403 and "filer" in r.text
    # HR reads everything; a supervisor its line's.
    assert {c["id"] for c in loop.get("/cases", loop.keys.hr)} == {case_id, other.json()["id"]}
    assert {c["id"] for c in loop.get("/cases", loop.keys.sup_l1)} == {case_id, other.json()["id"]}
    # A rejection keeps its reason; a decided case is not decided again.
    reason = "the line log shows the station running normally"
    r = loop.post(f"/cases/{case_id}/decision", {"decision": "reject", "reason": reason},
                  loop.keys.sup_l1)  # fmt: skip
    assert r.status_code == 200 and (r.json()["status"], r.json()["decision_reason"]) == (
        "rejected",
        reason,
    )
    assert loop.get(f"/cases/{case_id}", loop.w01)["decision_reason"] == reason
    again = loop.post(f"/cases/{case_id}/decision", {"decision": "approve", "reason": "oops"},
                      loop.sup_l1b)  # fmt: skip
    assert again.status_code == 409
    # A rejected case changes nothing.
    assert "cases" not in loop.kpi("W01") or not loop.kpi("W01")["cases"]
    # Overlapping approvals would count a span twice: refused.
    first = loop.approved(excuse_body("W03", "L1", "A2", at, at + timedelta(hours=2)),
                          loop.keys.sup_l1, loop.sup_l1b)  # fmt: skip
    assert first["status"] == "approved"
    r = loop.post(f"/cases/{other.json()['id']}/decision",
                  {"decision": "approve", "reason": "same span"}, loop.sup_l1b)  # fmt: skip
    assert r.status_code == 409 and "overlaps" in r.text

    # Every step is in the audit log with what was filed or decided.
    log = AuditLog(loop.c.app.state.store).entries(limit=10_000)  # type: ignore[attr-defined]
    steps = [(e.principal, e.path) for e in log if e.method == "CASE"]
    assert ("self-w01", f"/cases/{case_id}/filed") in steps
    assert ("sup-l1", f"/cases/{case_id}/rejected") in steps
    assert ("sup-l1-b", f"/cases/{first['id']}/approved") in steps
    rejected = next(e for e in log if e.path == f"/cases/{case_id}/rejected")
    assert rejected.query["reason"] == [reason] and rejected.query["station"] == ["A1"]
    requests = {(e.principal, e.method, e.path, e.status) for e in log}
    assert ("sup-l2", "POST", f"/api/v1/cases/{case_id}/decision", 404) in requests


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"end": "2026-03-20T02:00:00+00:00"}, "not after its start"),
        ({"start": "1960-01-01T00:00:00+00:00"}, "within 1970-01-02"),
        ({"end": "2300-01-01T00:00:00+00:00"}, "within 1970-01-02"),
        ({"start": "2099-01-01T00:00:00+00:00", "end": "2099-01-02T00:00:00+00:00"},
         "has not ended"),
        ({"end": "2026-05-20T00:00:00+00:00"}, "at most 31 days"),
        ({"text": "x" * 4001}, "at most 4000 characters"),
        ({"evidence": "y" * 2001}, "at most 2000 characters"),
        ({"station": "NOPE"}, "no station 'NOPE' on line 'L1'"),
        ({"start": "2026-03-20T03:00:00"}, "timezone"),
        ({"kind": "bonus_please"}, "equipment_not_signalled"),
        ({"to_worker": "W02"}, "only for it"),
        ({"extra": 1}, "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_hostile_cases_get_a_clear_422(loop: Loop, change: dict[str, Any], message: str) -> None:
    at = datetime.fromisoformat("2026-03-20T03:00:00+00:00")
    body = {**excuse_body("W01", "L1", "A1", at, at + timedelta(hours=1)), **change}
    r = loop.post("/cases", body, loop.keys.sup_l1)
    assert r.status_code == 422, r.text
    assert message in r.text
    assert loop.get("/cases", loop.keys.hr) == []  # nothing stored


def test_a_body_without_keys_and_a_supervisor_naming_nobody_are_422(loop: Loop) -> None:
    r = loop.post("/cases", {}, loop.keys.sup_l1)
    assert r.status_code == 422
    missing = {e["loc"][-1] for e in r.json()["detail"]}
    assert {"kind", "line", "station", "start", "end", "text"} <= missing
    body = excuse_body(None, "L1", "A1", datetime.fromisoformat("2026-03-20T03:00:00+00:00"),
                       datetime.fromisoformat("2026-03-20T04:00:00+00:00"))  # fmt: skip
    r = loop.post("/cases", body, loop.keys.sup_l1)
    assert r.status_code == 422 and "names the worker" in r.text
    assert loop.c.post("/api/v1/cases/1/decision", json={},
                       headers=auth(loop.keys.sup_l1)).status_code == 422  # fmt: skip


def test_with_pseudonyms_a_supervisor_files_by_the_pseudonym_it_sees(
    tmp_path: Path, influxd: Influxd, db: str, ledger: dict[str, Any]
) -> None:
    for lp in serve(tmp_path, influxd, db, pseudonymise=True, pseudonym_key="k-test"):
        rows = lp.get("/kpis", lp.keys.sup_l1, **MARCH, station="A1")["items"]
        shown = {r["worker"] for r in rows}
        assert len(shown) == 2 and not shown & {"W01", "W02"}  # pseudonyms only
        expected = truth(ledger)[("W01", "2026-03")]["effective_s"]
        alias = next(r["worker"] for r in rows if r["effective_s"] == pytest.approx(expected))
        row = row_of(ledger, "W01", "2026-03-25")
        b, e = work_interval(row)
        case = lp.approved(excuse_body(alias, "L1", "A1", b, e), lp.keys.sup_l1, lp.sup_l1b)
        assert case["worker"] == alias  # shown as the supervisor knows the worker
        after = lp.get("/kpis", lp.keys.sup_l1, **MARCH, worker=alias)["items"][0]
        assert after["effective_s"] == pytest.approx(expected - row["effective_s"], abs=1e-6)
        # The worker's own key (the real id) sees the case about them.
        assert [c["id"] for c in lp.get("/cases", lp.w01)] == [case["id"]]
        nobody = lp.post("/cases", excuse_body("nobody-x", "L1", "A1", b, e), lp.keys.sup_l1)
        assert nobody.status_code == 422 and "no worker 'nobody-x' on line L1" in nobody.text
