"""The relational store on embedded SQLite and on a real PostgreSQL 15: migrations, API keys
(expiry, revocation, rotation, last use) and the append-only audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from kpi_service.core.apikeys import (
    LAST_USED_RESOLUTION,
    KeyStore,
    Principal,
    Refused,
    UnknownKey,
)
from kpi_service.core.audit import MAX_PAIRS, MAX_VALUE, AuditLog
from kpi_service.store.db import Database, alembic_config


def test_a_new_store_is_migrated_to_head_and_reopening_is_harmless(store_url: str) -> None:
    db = Database(store_url)
    assert db.revision() == "0007"
    tables = set(sa.inspect(db.engine).get_table_names())
    assert {"apikeys", "audit", "alembic_version", "scheme_versions", "external_metrics",
            "targets", "target_acks", "period_closes", "worker_roles"} <= tables  # fmt: skip
    again = Database(store_url)
    assert again.revision() == "0007"
    # Migrations run both ways: down to nothing, up again.
    command.downgrade(alembic_config(db.engine), "base")
    assert "apikeys" not in sa.inspect(db.engine).get_table_names()
    command.upgrade(alembic_config(db.engine), "head")
    assert db.revision() == "0007"
    db.dispose()


def test_keys_expire_revoke_rotate_and_record_last_use(store_url: str) -> None:
    keys = KeyStore(Database(store_url), "pepper")
    soon = datetime.now(UTC) + timedelta(days=3)
    hr = keys.create("hr", frozenset({"hr:read"}), None, expires_at=soon)
    sup = keys.create("sup", frozenset({"supervisor"}), frozenset({"L1", "L2"}))
    ingest = keys.create("qms", frozenset({"ingest"}), None)
    assert keys.lookup(hr) == Principal("hr", frozenset({"hr:read"}), None)
    assert keys.lookup(sup) == Principal("sup", frozenset({"supervisor"}), frozenset({"L1", "L2"}))
    assert keys.lookup(ingest) == Principal("qms", frozenset({"ingest"}), None)
    assert keys.lookup(hr + "x") is None

    listed = {k.name: k for k in keys.list()}
    assert sorted(listed) == ["hr", "qms", "sup"]
    assert listed["hr"].expires_at is not None
    assert abs(listed["hr"].expires_at - soon) < timedelta(seconds=1)
    assert listed["sup"].lines == ("L1", "L2") and listed["qms"].lines is None
    used = listed["hr"].last_used_at
    assert used is not None and datetime.now(UTC) - used < timedelta(seconds=30)
    assert all(k.status(datetime.now(UTC)) == "active" for k in listed.values())
    assert listed["hr"].status(soon + timedelta(seconds=1)) == "expired"

    keys.revoke("sup")
    assert keys.authenticate(sup) == Refused("sup", "revoked")
    keys.revoke("sup")  # revoking twice is harmless
    with pytest.raises(UnknownKey):
        keys.revoke("nobody")
    with pytest.raises(UnknownKey, match="revoked keys are not rotated"):
        keys.rotate("sup")

    new = keys.rotate("qms")
    assert keys.lookup(ingest) is None and keys.lookup(new) == Principal(
        "qms", frozenset({"ingest"}), None
    )
    assert {k.name: k for k in keys.list()}["qms"].rotated_at is not None

    with pytest.raises(ValueError, match="exists already"):
        keys.create("hr", frozenset({"hr:read"}), None)
    with pytest.raises(ValueError, match="past"):
        keys.create("old", frozenset({"hr:read"}), None, expires_at=datetime.now(UTC))
    with pytest.raises(ValueError, match="subset"):
        keys.create("x", frozenset({"god"}), None)
    with pytest.raises(ValueError, match="--lines"):
        keys.create("x", frozenset({"supervisor"}), None)


def test_an_expired_key_is_refused(store_url: str) -> None:
    db = Database(store_url)
    keys = KeyStore(db, "pepper")
    key = keys.create(
        "temp", frozenset({"hr:read"}), None, expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    assert keys.lookup(key) is not None
    # Time passes: move the expiry into the past in the database itself.
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE apikeys SET expires_at = :t WHERE name = 'temp'"),
            {"t": datetime.now(UTC) - timedelta(seconds=1)},
        )
    assert keys.authenticate(key) == Refused("temp", "expired")


def test_last_use_is_written_at_most_once_a_minute(store_url: str) -> None:
    db = Database(store_url)
    keys = KeyStore(db, "pepper")
    key = keys.create("busy", frozenset({"hr:read"}), None)
    assert keys.list()[0].last_used_at is None
    keys.lookup(key)
    first = keys.list()[0].last_used_at
    keys.lookup(key)
    assert keys.list()[0].last_used_at == first  # within the resolution: no write
    past = datetime.now(UTC) - LAST_USED_RESOLUTION - timedelta(seconds=1)
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE apikeys SET last_used_at = :t"), {"t": past})
    keys.lookup(key)
    latest = keys.list()[0].last_used_at
    assert latest is not None and latest > past + timedelta(seconds=1)


def test_audit_keeps_every_parameter_and_refuses_changes(store_url: str) -> None:
    db = Database(store_url)
    log = AuditLog(db)
    pairs = [("worker", "W1"), ("worker", "W2"), ("worker", "W3"), ("start", "2026-03-01")]
    first = log.record("hr", "GET", "/api/v1/kpis", pairs, 200)
    log.record("anonymous", "GET", "/api/v1/kpis", [], 401)
    huge = [("p", "v" * (MAX_VALUE + 50))] * (MAX_PAIRS + 10)
    log.record("x", "GET", "/api/v1/kpis", huge, 422)
    entries = log.entries()
    assert entries[0].id == first
    assert entries[0].query == {"worker": ["W1", "W2", "W3"], "start": ["2026-03-01"]}
    assert (entries[0].status, entries[1].status, entries[1].principal) == (200, 401, "anonymous")
    kept = entries[2].query
    assert len(kept["p"]) == MAX_PAIRS and kept["p"][0] == "v" * MAX_VALUE + "…"
    assert kept["…"] == ["more parameters not recorded"]
    assert [e.principal for e in log.entries(principal="hr")] == ["hr"]
    assert [e.id for e in log.entries(after_id=first, limit=1)] == [entries[1].id]

    for statement in ("UPDATE audit SET principal = 'y'", "DELETE FROM audit"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(sa.text(statement))
    if db.dialect == "postgresql":
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE audit"))
    assert len(log.entries()) == 3


def test_schemes_external_values_and_targets_on_each_store(store_url: str) -> None:
    from datetime import date

    from kpi_service.scores.external import DuplicateReference, ExternalStore, ExternalValue
    from kpi_service.scores.model import SchemeSpec
    from kpi_service.scores.registry import SchemeConflict, SchemeRegistry
    from kpi_service.scores.targets import TargetIn, TargetStore

    db = Database(store_url)
    registry = SchemeRegistry(db)
    spec = SchemeSpec.model_validate(
        {
            "scheme": "s",
            "effective_from": "2026-03-01",
            "metrics": [
                {
                    "name": "q",
                    "source": "measured",
                    "measure": "quality_rate",
                    "floor": 0.9,
                    "target": 1,
                    "weight": 60,
                },
                {
                    "name": "c",
                    "source": "external",
                    "external": "csat",
                    "floor": 1,
                    "target": 5,
                    "weight": 40,
                },
            ],
        }
    )
    assert registry.add(spec, "me").version == 1
    later = spec.model_copy(update={"effective_from": date(2026, 5, 1)})
    assert registry.add(later, "me").version == 2
    with pytest.raises(SchemeConflict):
        registry.add(spec, "me")
    versions = registry.versions("s")
    assert [v.spec for v in versions] == [spec, later]
    assert registry.in_force(versions, date(2026, 4, 30)) == versions[0]
    assert registry.in_force(versions, date(2026, 2, 28)) is None
    assert registry.declared_externals() == {"csat": {"s"}}

    externals = ExternalStore(db)
    value = ExternalValue(worker="W1", metric="csat", period_start=date(2026, 3, 1),
                          period_end=date(2026, 3, 31), value=4.25, source="crm",
                          reference="T-1")  # fmt: skip
    assert externals.add([value], "crm") == ["stored"]
    assert externals.add([value], "crm") == ["unchanged"]
    with pytest.raises(DuplicateReference, match="T-1"):
        externals.add([value.model_copy(update={"value": 1.0})], "crm")
    [stored] = externals.values({"csat"}, date(2026, 3, 1), date(2026, 3, 31))
    assert (stored.value, stored.period_end, stored.received_by) == (4.25, date(2026, 3, 31), "crm")
    assert externals.values({"csat"}, date(2026, 3, 2), date(2026, 3, 31)) == []

    targets = TargetStore(db)
    first = targets.set(TargetIn(kind="worker", subject="W1", line="L1", metric="units_good",
                                 period_start=date(2026, 3, 1), value=100), "sup")  # fmt: skip
    second = targets.set(TargetIn(kind="worker", subject="W1", line="L1", metric="units_good",
                                  period_start=date(2026, 3, 1), value=120), "hr")  # fmt: skip
    assert [t.value for t in targets.query()] == [120]
    assert [t.id for t in targets.query(history=True)] == [first.id, second.id]
    targets.acknowledge(second.id, "W1", "sup")
    with pytest.raises(ValueError, match="already acknowledged"):
        targets.acknowledge(second.id, "W1", "sup")
    assert targets.get(second.id).acknowledged_at is not None
    assert targets.query(lines=frozenset({"L2"})) == []
