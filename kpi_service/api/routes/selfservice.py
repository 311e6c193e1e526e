"""Worker self-service: a key bound to one worker, and that worker's own figures.

A supervisor (for a line it supervises) or HR issues a ``self`` key for a worker,
shown once as a link and a QR code for the worker's phone or a shared kiosk; the key
reads ``/api/v1/me/...`` and nothing else (every other route needs another scope). A
supervisor's key is confined to that line, so it shows the worker nothing the
supervisor could not see; HR's covers every line. Revocable at any time.

The figures are the same computations HR reads (``kpi.compute`` rows, scheme scores,
target progress); other workers appear only as band shares, and only when enough
workers are scored that no one can be singled out.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import anyio.to_thread
import segno
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from kpi_service.api.deps import Principal, audited
from kpi_service.api.queries import FIRST_DAY, LAST_DAY, compute_rows, invalid
from kpi_service.api.routes.targets import TargetsDep
from kpi_service.api.routes.workers import WorkerPath
from kpi_service.api.stores import Scoring, ScoringDep
from kpi_service.core.apikeys import KeyStore
from kpi_service.core.config import Settings
from kpi_service.influx import InfluxError, InfluxReader
from kpi_service.kpi.adjusted import fetch  # approved cases applied
from kpi_service.kpi.calendar import Bucket, local_instant
from kpi_service.kpi.repository import Filters
from kpi_service.scores.progress import contains, progress
from kpi_service.scores.service import ScoreRun

router = APIRouter(tags=["self-service"])

Issuer = Annotated[Principal, Depends(audited("supervisor", "hr:write"))]
Worker = Annotated[Principal, Depends(audited("self"))]
MIN_SHARE_N = 5
"""Band shares are shown only over at least this many scored workers (else one could be
singled out)."""


class SelfKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    line: str | None = Field(
        None, max_length=64, description="Supervisors: the line the key is confined to."
    )
    days: int = Field(90, ge=1, le=400, description="Days until the key expires.")


class SelfKeyOut(BaseModel):
    name: str
    worker: str
    lines: list[str] | None
    expires_at: datetime
    key: str = Field(description="Shown once. The link and QR code carry it in the fragment.")
    link: str = Field(description="The worker page with the key (scan or open once).")
    qr_svg: str = Field(description="The link as a QR code (SVG).")


def _keys(request: Request) -> KeyStore:
    return request.app.state.keys  # type: ignore[no-any-return]


@router.post(
    "/workers/{worker_id}/self-keys",
    summary="Issue a worker's own key (supervisor for its line, or HR): link and QR code",
    status_code=status.HTTP_201_CREATED,
)
def issue_self_key(
    worker_id: WorkerPath, body: SelfKeyIn, principal: Issuer, request: Request
) -> SelfKeyOut:
    lines: frozenset[str] | None = None
    if not principal.has("hr:write"):
        if body.line is None or not principal.may_see_line(body.line):
            raise HTTPException(403, "a supervisor issues keys for a line it supervises")
        lines = frozenset({body.line})
    elif body.line is not None:
        lines = frozenset({body.line})
    expires = datetime.now(UTC) + timedelta(days=body.days)
    name = f"self-{worker_id}-{secrets.token_hex(3)}"
    key = _keys(request).create(name, frozenset({"self"}), lines, expires_at=expires,
                                worker=worker_id)  # fmt: skip
    link = f"{request.base_url}api/v1/board/me.html#key={key}"
    qr = segno.make(link, error="m")
    return SelfKeyOut(
        name=name, worker=worker_id, lines=sorted(lines) if lines else None, expires_at=expires,
        key=key, link=link, qr_svg=qr.svg_inline(scale=4),
    )  # fmt: skip


@router.get("/workers/{worker_id}/self-keys", summary="A worker's own keys (never the secret)")
def list_self_keys(
    worker_id: WorkerPath, principal: Issuer, request: Request
) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {"name": k.name, "lines": k.lines, "created_at": k.created_at,
         "expires_at": k.expires_at, "last_used_at": k.last_used_at, "status": k.status(now)}
        for k in _keys(request).list()
        if k.worker == worker_id and _may_manage(principal, k.lines)
    ]  # fmt: skip


@router.post(
    "/workers/{worker_id}/self-keys/revoke",
    summary="Revoke every active own key of a worker (those the caller may manage)",
)
def revoke_self_keys(worker_id: WorkerPath, principal: Issuer, request: Request) -> dict[str, Any]:
    store, now = _keys(request), datetime.now(UTC)
    revoked = []
    for k in store.list():
        if k.worker == worker_id and k.status(now) == "active" and _may_manage(principal, k.lines):
            store.revoke(k.name)
            revoked.append(k.name)
    return {"worker": worker_id, "revoked": revoked}


def _may_manage(principal: Principal, lines: tuple[str, ...] | None) -> bool:
    if principal.has("hr:write"):
        return True
    return lines is not None and all(principal.may_see_line(x) for x in lines)


# --- the worker's own figures ------------------------------------------------------------

FIELDS = ("units_good", "units_defect", "defect_rate", "pct_of_standard", "effective_s", "down_s")


async def _figures(
    reader: InfluxReader, settings: Settings, me: Principal, first: date, now: datetime
) -> dict[str, Any] | None:
    tz = ZoneInfo(settings.timezone)
    begin = local_instant(first, time(0), tz)
    if now <= begin:
        return None
    bucket = Bucket(first.isoformat(), begin, now)
    filters = Filters(lines=me.lines, workers=frozenset({me.worker or ""}))
    data = await fetch(reader, [bucket], "period", filters, with_serials=False)
    rows = await anyio.to_thread.run_sync(
        compute_rows, data, settings, [bucket], "period", "worker"
    )
    row = next((r for r in rows if r["worker"] == me.worker), None)
    if row is None:
        return None
    out = {k: row.get(k) for k in FIELDS}
    out["effective_hours"] = round(float(row["effective_hours"]), 2)  # the metric registry's
    out["down_minutes_by_reason"] = {
        reason: round(s / 60, 1) for reason, s in sorted((row.get("down_by_reason") or {}).items())
    }
    out["from"] = first.isoformat()
    return out


@router.get("/me/summary", summary="The calling worker's own figures, score, targets")
async def my_summary(
    me: Worker,
    scoring: ScoringDep,
    targets: TargetsDep,
    at: Annotated[datetime | None, Query(description="As of (default: now).")] = None,
) -> dict[str, Any]:
    assert me.worker is not None  # the self scope guarantees it
    settings, reader = scoring.settings, scoring.reader
    now = at or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    tz = ZoneInfo(settings.timezone)
    today = now.astimezone(tz).date()
    if not FIRST_DAY <= today <= LAST_DAY:
        raise invalid("at", f"as of a day within {FIRST_DAY}..{LAST_DAY}", at)
    month = today.replace(day=1)
    try:
        body: dict[str, Any] = {
            "worker": me.worker,
            "as_of": now.isoformat(),
            "timezone": settings.timezone,
            "today": await _figures(reader, settings, me, today, now),
            "month": await _figures(reader, settings, me, month, now),
            "scores": [],
            "scores_note": None
            if me.lines is None
            else "this key is confined to line(s) " + ", ".join(sorted(me.lines)) + ": only "
            "schemes confined to them are shown (HR issues keys covering every line)",
            "progress": [],
        }
        for name in await anyio.to_thread.run_sync(scoring.registry.names):
            body["scores"] += await _my_scores(scoring, me, name, today)
        found = await anyio.to_thread.run_sync(
            lambda: targets.query(lines=me.lines, kind="worker", subject=me.worker)
        )
        for t in found:
            if contains(t, today):
                p = await progress(reader, settings, t, now)
                body["progress"].append(
                    {"metric": t.metric, "period": t.period, "period_start": t.period_start,
                     "period_end": p.period_end, "target": t.value, "value": p.value,
                     "elapsed": round(p.elapsed, 4), "projected": p.projected,
                     "on_track": p.on_track, "note": t.note}
                )  # fmt: skip
    except InfluxError as err:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(err)) from err
    return body


SHARED_RUN_S = 60.0
"""How long one scheme's run over all workers serves every worker page: each page polls,
and a line's worth of phones must not each score the whole scheme every minute."""
_runs: dict[tuple[int, str, date, date, frozenset[str] | None], tuple[float, ScoreRun]] = {}


async def _shared_run(
    scoring: Scoring, me: Principal, scheme: str, first: date, today: date
) -> ScoreRun:
    """The scheme's scores for every worker (for the anonymous band shares), computed at most
    once per ``SHARED_RUN_S`` per scheme, period and line scope."""
    key = (id(scoring.registry), scheme, first, today, me.lines)
    now = monotonic()
    found = _runs.get(key)
    if found is not None and now - found[0] < SHARED_RUN_S:
        return found[1]
    run = await scoring.run(me, scheme, first, today, raw_ids=True)
    for k in [k for k, (t, _) in _runs.items() if now - t >= SHARED_RUN_S]:
        del _runs[k]
    _runs[key] = (now, run)
    return run


async def _my_scores(
    scoring: Scoring, me: Principal, scheme: str, today: date
) -> list[dict[str, Any]]:
    versions = await anyio.to_thread.run_sync(scoring.registry.versions, scheme)
    version = scoring.registry.in_force(versions, today)
    if version is None:
        return []
    spec = version.spec
    if spec.applies_to.workers and me.worker not in spec.applies_to.workers:
        return []
    if me.lines is not None and not (
        spec.applies_to.lines and set(spec.applies_to.lines) <= me.lines
    ):
        return []  # a line-confined key reads only schemes confined to its line
    first = (
        today.replace(day=1) if spec.period == "month" else today - timedelta(days=today.weekday())
    )
    if spec.period == "shift":
        first = today
    run = await _shared_run(scoring, me, scheme, first, today)
    mine = [s for s in run.scores if s.worker == me.worker]
    if not mine:
        return []
    s = mine[-1]
    scored = [x for x in run.scores if x.period == s.period and x.result.score is not None]
    shares = None
    if len(scored) >= MIN_SHARE_N:
        n = len(scored)
        shares = [
            {"band": b.name, "share": round(sum(x.result.band == b.name for x in scored) / n, 3)}
            for b in spec.bands
        ]
    r = s.result
    return [
        {
            "scheme": scheme, "period": s.period, "version": s.version, "so_far_to": today,
            "status": r.status, "score": r.score, "band": r.band, "reasons": r.reasons,
            "closed": s.closed,
            "metrics": [{"name": m.name, "value": m.value, "target": m.target,
                         "points": m.points, "weight": m.weight} for m in r.metrics],
            "band_shares": shares,
            "band_shares_note": None if shares else
            f"shown when at least {MIN_SHARE_N} workers are scored under this scheme",
        }
    ]  # fmt: skip
