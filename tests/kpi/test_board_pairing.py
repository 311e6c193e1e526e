"""Pairing a tablet with the board: a supervisor's short code, redeemed once for a board key.

Through the real app (TestClient, SQLite store): who may issue, single use, expiry,
the throttle against guessing (per client and over all clients), the board key's reach
(the board's routes, not KPI reads; its lines only), listing and revoking.
"""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from kpi_service.board.pairing import ALPHABET, Throttle
from kpi_service.store.db import utcnow
from kpi_service.store.tables import board_pairings

from .conftest import Keys, auth

REDEEM = "/api/v1/board/pairings/redeem"


def issue(client: TestClient, key: str, **body: object) -> dict[str, object]:
    response = client.post("/api/v1/board/pairings", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_code_is_redeemed_once_for_a_board_key_of_the_supervisors_lines(
    client: TestClient, keys: Keys
) -> None:
    issued = issue(client, keys.sup_l1, label="L1 office")
    code = str(issued["code"])
    assert re.fullmatch(f"[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}", code)
    assert issued["lines"] == ["L1"] and issued["status"] == "waiting"
    assert str(issued["link"]).endswith(f"/api/v1/board/#pair={code.replace('-', '')}")
    assert str(issued["qr_svg"]).startswith("data:image/svg+xml")

    # Typed on a tablet: lower case, without the dash; no API key needed.
    redeemed = client.post(REDEEM, json={"code": code.lower().replace("-", "")})
    assert redeemed.status_code == 200, redeemed.text
    board = redeemed.json()
    assert board["lines"] == ["L1"] and board["name"].startswith("sup-l1/tablet-")
    assert client.post(REDEEM, json={"code": code}).status_code == 404  # single use

    key = board["key"]
    # The board's routes accept it (alerts are off in this app: 503, past the scope check);
    # KPI reads, issuing pairings and other lines' data do not.
    assert client.get("/api/v1/alerts/live", headers=auth(key)).status_code == 503
    assert client.get("/api/v1/kpis", headers=auth(key)).status_code == 403
    assert client.post("/api/v1/board/pairings", json={}, headers=auth(key)).status_code == 403
    listed = client.get("/api/v1/board/pairings", headers=auth(keys.sup_l1)).json()
    assert [(p["key_name"], p["status"]) for p in listed] == [(board["name"], "active")]


def test_who_may_issue_and_for_which_lines(client: TestClient, keys: Keys) -> None:
    denied = client.post(
        "/api/v1/board/pairings", json={"lines": ["L2"]}, headers=auth(keys.sup_l1)
    )
    assert denied.status_code == 403
    assert client.post("/api/v1/board/pairings", json={}, headers=auth(keys.hr)).status_code == 403
    assert (
        client.post("/api/v1/board/pairings", json={}, headers=auth(keys.admin)).status_code == 422
    )
    assert issue(client, keys.admin, lines=["L2", "L1"])["lines"] == ["L1", "L2"]
    too_long = client.post(
        "/api/v1/board/pairings", json={"minutes": 31}, headers=auth(keys.sup_l1)
    )
    assert too_long.status_code == 422
    # Anything else with a body still needs a key (the guard opens the redeem path only).
    assert client.post("/api/v1/board/pairings", json={}).status_code == 401
    assert client.post(REDEEM, content=b"x" * 10_000_000).status_code == 413
    # A caller that holds a key has nothing to pair (and gets no second key).
    code = issue(client, keys.sup_l1)["code"]
    assert client.post(REDEEM, json={"code": code}, headers=auth(keys.hr)).status_code == 403


def test_an_expired_code_is_refused(client: TestClient, keys: Keys) -> None:
    code = str(issue(client, keys.sup_l1, minutes=1)["code"])
    store = client.app.state.store  # type: ignore[attr-defined]
    with store.engine.begin() as conn:  # a minute later
        conn.execute(update(board_pairings).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.post(REDEEM, json={"code": code}).status_code == 404
    [listed] = client.get("/api/v1/board/pairings", headers=auth(keys.sup_l1)).json()
    assert listed["status"] == "expired"


def test_guessing_is_throttled_per_client_and_over_all_clients(
    client: TestClient, keys: Keys
) -> None:
    code = str(issue(client, keys.sup_l1)["code"])
    for _ in range(5):
        assert client.post(REDEEM, json={"code": "AAAAAAAA"}).status_code == 404
    # The sixth attempt is refused before the code is looked at, even the right code.
    refused = client.post(REDEEM, json={"code": code})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0

    # Over all clients: a ceiling that outlasts per-client counting; it lifts with time.
    now = [0.0]
    gate = Throttle(per_client=100, global_failures=3, window_s=60, clock=lambda: now[0])
    client.app.state.pairing_throttle = gate  # type: ignore[attr-defined]
    for host in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        gate.failed(host)
    assert client.post(REDEEM, json={"code": code}).status_code == 429
    now[0] = 61.0
    assert client.post(REDEEM, json={"code": code}).status_code == 200


def test_a_paired_board_is_listed_and_revoked_by_its_lines_supervisor(
    client: TestClient, keys: Keys
) -> None:
    issued = issue(client, keys.sup_l1)
    key = client.post(REDEEM, json={"code": issued["code"]}).json()["key"]
    pairing = issued["id"]
    assert client.get("/api/v1/board/pairings", headers=auth(keys.sup_l2)).json() == []
    other = client.post(f"/api/v1/board/pairings/{pairing}/revoke", headers=auth(keys.sup_l2))
    assert other.status_code == 404
    done = client.post(f"/api/v1/board/pairings/{pairing}/revoke", headers=auth(keys.sup_l1))
    assert done.status_code == 200 and done.json()["status"] == "revoked"
    assert client.get("/api/v1/alerts/live", headers=auth(key)).status_code == 401
    # A code not redeemed yet is voided by revoking it.
    waiting = issue(client, keys.sup_l1)
    client.post(f"/api/v1/board/pairings/{waiting['id']}/revoke", headers=auth(keys.sup_l1))
    assert client.post(REDEEM, json={"code": waiting["code"]}).status_code == 404


def test_malformed_requests_are_refused_not_crashed(client: TestClient, keys: Keys) -> None:
    # Found by the role fuzzer: an empty line list and an id beyond SQLite's integers.
    empty = client.post("/api/v1/board/pairings", json={"lines": []}, headers=auth(keys.admin))
    assert empty.status_code == 422
    huge = client.post(f"/api/v1/board/pairings/{2**70}/revoke", headers=auth(keys.admin))
    assert huge.status_code == 422
