"""Scores under a scheme: list, one worker with evidence, CSV/XLSX export, distribution.

Who may read: HR for every scheme, a supervisor for schemes confined to its lines. The
distribution compares only workers under the same scheme and period, and flags a period
whose top-band share passes the scheme's inflation threshold.
"""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import IO, Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from kpi_service.api.deps import KpiReader
from kpi_service.api.models import NameList
from kpi_service.api.routes.workers import WorkerPath
from kpi_service.api.score_models import (
    DECISION_AID,
    BandShare,
    MetricScoreOut,
    PeriodDistribution,
    ScoreDistribution,
    ScoreEvidence,
    ScoreOut,
    ScorePage,
)
from kpi_service.api.stores import ScoringDep
from kpi_service.api.xlsx import Chart, Column, Kind, cases_text, write_book
from kpi_service.scores.service import ScoreRun, WorkerScore

router = APIRouter(tags=["scores"], responses={404: {"description": "No such scheme."}})

SchemeQ = Annotated[
    str,
    Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$", max_length=64, description="Scheme name."),
]
StatusQ = Annotated[
    Literal["scored", "insufficient_data"] | None, Query(description="Only this status.")
]


def score_out(s: WorkerScore) -> ScoreOut:
    r = s.result
    return ScoreOut(
        worker=s.worker,
        period=s.period,
        start=s.start,
        end=s.end,
        scheme=s.scheme,
        version=s.version,
        status=r.status,
        score=r.score,
        band=r.band,
        effective_hours=round(s.effective_hours, 4),
        units=s.units,
        reasons=r.reasons,
        metrics=[MetricScoreOut(**vars(m)) for m in r.metrics],
        closed=s.closed,
    )


@router.get(
    "/scores", summary="Scores per worker and period under a scheme", response_model=ScorePage
)
async def list_scores(
    principal: KpiReader,
    scoring: ScoringDep,
    scheme: SchemeQ,
    start: date,
    end: date,
    worker: NameList = None,
    status: StatusQ = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> ScorePage:
    limit = min(limit, scoring.settings.max_page_size)
    run = await scoring.run(principal, scheme, start, end, worker)
    scores = [s for s in run.scores if status is None or s.result.status == status]
    return ScorePage(
        items=[score_out(s) for s in scores[offset : offset + limit]],
        total=len(scores),
        limit=limit,
        offset=offset,
        timezone=scoring.settings.timezone,
    )


@router.get(
    "/workers/{worker_id}/scores",
    summary="One worker's scores with the evidence: values, formulas, sources",
)
async def worker_scores(
    worker_id: WorkerPath,
    principal: KpiReader,
    scoring: ScoringDep,
    scheme: SchemeQ,
    start: date,
    end: date,
) -> ScoreEvidence:
    run = await scoring.run(principal, scheme, start, end, [worker_id])
    return ScoreEvidence(
        worker=worker_id,
        scores=[score_out(s) for s in run.scores],
        measured=[{"period": s.period, **s.measured} for s in run.scores],
    )


def _columns(run: ScoreRun) -> list[str]:
    names: list[str] = []
    for v in run.versions.values():
        for m in v.spec.metrics:
            if m.name not in names:
                names.append(m.name)
    base = ["worker", "period", "start", "end", "scheme", "version", "status", "score", "band",
            "effective_hours", "units", "reasons", "closed", "cases"]  # fmt: skip
    return base + [f"{n}_{part}" for n in names for part in ("value", "points", "contribution")]


def _flat(s: WorkerScore) -> dict[str, Any]:
    out = score_out(s)
    row: dict[str, Any] = {
        "worker": out.worker, "period": out.period, "start": out.start.isoformat(),
        "end": out.end.isoformat(), "scheme": out.scheme, "version": out.version,
        "status": out.status, "score": out.score, "band": out.band,
        "effective_hours": out.effective_hours, "units": out.units,
        "reasons": "; ".join(out.reasons), "closed": out.closed or "",
        "cases": cases_text(s.measured.get("cases")),
    }  # fmt: skip
    for m in out.metrics:
        row[f"{m.name}_value"] = m.value
        row[f"{m.name}_points"] = m.points
        row[f"{m.name}_contribution"] = m.contribution
    return row


MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _definitions(run: ScoreRun) -> dict[str, str]:
    """Per exported column, what it means, from the scheme versions that scored the rows."""
    out = {
        "worker": "Worker id (pseudonym when the service pseudonymises).",
        "period": "Calendar period.", "start": "Period start, site time.",
        "end": "Period end (exclusive), site time.", "scheme": "Scheme name.",
        "version": "Scheme version in force on the period's first day.",
        "status": "scored, or insufficient_data (below the scheme's minimum evidence).",
        "score": "Composite: sum of the metric contributions (0-100).",
        "band": "Score band.", "effective_hours": "Effective hours in the period.",
        "units": "Units in the period.", "reasons": "Why the data is insufficient.",
        "closed": "Content hash of the period close (empty while open).",
        "cases": "Approved cases that changed the measured figures: id, kind, span, change.",
    }  # fmt: skip
    for v in run.versions.values():
        bands = ", ".join(f"{b.name} >= {b.min_score:g}" for b in v.spec.bands)
        out["band"] = f"Score band (version {v.version}: {bands})."
        for m in v.spec.metrics:
            what = m.measure or m.external or m.name
            rule = "steps" if m.rule == "steps" else (
                f"100 * clip((value - {m.floor:g}) / ({m.target:g} - {m.floor:g}), 0, 1)"
            )  # fmt: skip
            out[f"{m.name}_value"] = f"{m.source} metric {what} (version {v.version})."
            out[f"{m.name}_points"] = f"Points 0-100: {rule}."
            out[f"{m.name}_contribution"] = f"points * weight {m.weight:g} / 100."
    return out


def _kind(column: str) -> Kind:
    if column in ("start", "end"):
        return "datetime"
    if column in ("version", "units"):
        return "int"
    if column == "effective_hours":
        return "hours"
    if column == "score" or column.endswith(("_points", "_contribution")):
        return "score"
    return "number" if column.endswith("_value") else "text"


def write_file(
    run: ScoreRun, format: Literal["csv", "xlsx"], tz: ZoneInfo, target: IO[bytes]
) -> None:
    """One row per worker and period, as CSV or XLSX (also a closed period's payroll file)."""
    columns = _columns(run)
    rows = (_flat(s) for s in run.scores)
    if format == "csv":
        text = io.TextIOWrapper(target, encoding="utf-8", newline="", write_through=True)
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        text.detach()  # leave ``target`` open for the caller
        return
    defs = _definitions(run)
    cols = [
        Column(c, _kind(c), defs.get(c, ""), lambda r, c=c: _typed(r.get(c), _kind(c)))
        for c in columns
    ]
    write_book(
        target, "Scores", cols, rows, tz,
        notes=[("Note", DECISION_AID)], chart=Chart("Score by worker", "score", "worker"),
    )  # fmt: skip


async def stream(
    run: ScoreRun, format: Literal["csv", "xlsx"], tz: ZoneInfo
) -> AsyncIterator[bytes]:
    """Written to a temporary file in a thread, then sent from it in chunks: a big export
    is neither held whole in memory nor formatted on the event loop."""
    with tempfile.TemporaryFile() as spool:
        await asyncio.to_thread(write_file, run, format, tz, spool)
        await asyncio.to_thread(spool.seek, 0)
        while chunk := await asyncio.to_thread(spool.read, 256 * 1024):
            yield chunk


def _typed(value: Any, kind: Kind) -> Any:
    if kind == "datetime" and isinstance(value, str):
        return datetime.fromisoformat(value)
    return None if value == "" and kind != "text" else value


@router.get(
    "/scores/export",
    summary="The same scores as a CSV or XLSX file (one row per worker and period)",
    responses={200: {"content": {m: {} for m in MEDIA.values()}}},
    response_class=StreamingResponse,
)
async def export_scores(
    principal: KpiReader,
    scoring: ScoringDep,
    scheme: SchemeQ,
    start: date,
    end: date,
    format: Annotated[Literal["csv", "xlsx"], Query()] = "csv",
    worker: NameList = None,
) -> StreamingResponse:
    run = await scoring.run(principal, scheme, start, end, worker)
    name = f"takt-scores-{scheme}-{start.isoformat()}-{end.isoformat()}.{format}"
    return StreamingResponse(
        stream(run, format, ZoneInfo(scoring.settings.timezone)),
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def histogram(scores: list[float]) -> list[int]:
    """Counts per 10-point bin; 100 falls in the last bin."""
    bins = [0] * 10
    for s in scores:
        bins[min(9, int(s // 10))] += 1
    return bins


@router.get(
    "/scores/distribution",
    summary="Band shares and a histogram per period, with the inflation flag",
)
async def score_distribution(
    principal: KpiReader,
    scoring: ScoringDep,
    scheme: SchemeQ,
    start: date,
    end: date,
) -> ScoreDistribution:
    run = await scoring.run(principal, scheme, start, end, None)
    periods: list[PeriodDistribution] = []
    for bucket, version in run.periods:
        mine = [s for s in run.scores if s.period == bucket.label]
        scored = [s for s in mine if s.result.score is not None]
        values = [s.result.score for s in scored if s.result.score is not None]
        bands: list[BandShare] = []
        top: float | None = None
        if version is not None:
            for band in version.spec.bands:
                count = sum(1 for s in scored if s.result.band == band.name)
                share = count / len(scored) if scored else None
                bands.append(BandShare(name=band.name, min_score=band.min_score, count=count,
                                       share=share))  # fmt: skip
            top = bands[0].share
        threshold = version.spec.inflation_threshold if version is not None else None
        periods.append(
            PeriodDistribution(
                period=bucket.label,
                start=bucket.start,
                end=bucket.end,
                version=version.version if version is not None else None,
                scored=len(scored),
                insufficient_data=len(mine) - len(scored),
                bands=bands,
                histogram=histogram(values),
                top_band_share=top,
                inflation_threshold=threshold,
                inflated=top is not None and threshold is not None and top > threshold,
            )
        )
    return ScoreDistribution(scheme=scheme, periods=periods)
