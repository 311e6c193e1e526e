"""Scheme versions in the store: add (never edit), list, and the version in force on a day.

Versions are append-only by design: a change is a new version taking effect later than
every existing one, so a period already scored keeps the version that scored it.
"""

from __future__ import annotations

import json
from datetime import date

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from kpi_service.scores.model import SchemeSpec, SchemeVersion
from kpi_service.store.db import Database, as_utc, utcnow
from kpi_service.store.tables import scheme_versions as t
from takt_common.errors import TaktError


class SchemeConflict(TaktError, ValueError):
    """The new version would rewrite history (or lost a race with another writer)."""


class SchemeRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, spec: SchemeSpec, by: str) -> SchemeVersion:
        with self.db.engine.begin() as conn:
            last = conn.execute(
                select(t.c.version, t.c.effective_from, t.c.spec)
                .where(t.c.scheme == spec.scheme)
                .order_by(t.c.version.desc())
                .limit(1)
            ).first()
            if last is not None and spec.effective_from <= last.effective_from:
                raise SchemeConflict(
                    f"scheme {spec.scheme!r}: a new version must take effect after version "
                    f"{last.version} (in force from {last.effective_from.isoformat()}); "
                    "earlier periods keep the version that scored them"
                )
            if last is not None:
                period = SchemeSpec.model_validate(json.loads(last.spec)).period
                if period != spec.period:
                    raise SchemeConflict(
                        f"scheme {spec.scheme!r} is scored per {period}; a scheme keeps its "
                        "period (create a scheme under a new name for another period)"
                    )
            version = 1 if last is None else last.version + 1
            now = utcnow()
            try:
                conn.execute(
                    insert(t).values(
                        scheme=spec.scheme,
                        version=version,
                        effective_from=spec.effective_from,
                        spec=spec.model_dump_json(),
                        created_at=now,
                        created_by=by,
                    )
                )
            except IntegrityError as err:
                raise SchemeConflict(f"scheme {spec.scheme!r} changed meanwhile; retry") from err
        return SchemeVersion(version=version, spec=spec, created_at=now, created_by=by)

    def names(self) -> list[str]:
        with self.db.engine.connect() as conn:
            return list(conn.scalars(select(t.c.scheme).distinct().order_by(t.c.scheme)))

    def versions(self, scheme: str) -> list[SchemeVersion]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.scheme == scheme).order_by(t.c.version)).all()
        return [
            SchemeVersion(
                version=r.version,
                spec=SchemeSpec.model_validate(json.loads(r.spec)),
                created_at=as_utc(r.created_at) or utcnow(),
                created_by=r.created_by,
            )
            for r in rows
        ]

    def in_force(self, versions: list[SchemeVersion], day: date) -> SchemeVersion | None:
        """The version in force on ``day`` among ``versions`` (sorted by version)."""
        found = None
        for v in versions:
            if v.spec.effective_from <= day:
                found = v
        return found

    def declared_externals(self) -> dict[str, set[str]]:
        """External metric name → schemes declaring it (any version)."""
        out: dict[str, set[str]] = {}
        with self.db.engine.connect() as conn:
            for row in conn.execute(select(t.c.scheme, t.c.spec)):
                for name in SchemeSpec.model_validate(json.loads(row.spec)).externals():
                    out.setdefault(name, set()).add(str(row.scheme))
        return out

    def count(self) -> int:
        with self.db.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(t)) or 0)
