"""``/api/v1/me/alerts``: the threshold warnings about the calling worker, on their own page.

Only alerts of rules with ``notify_worker: true`` (worker scope) whose worker is the
key's worker, and only on the lines the key is confined to: a worker sees what was said
about them, never another worker's alert. The delivery to ``worker_channels`` is the
dispatcher's (``alerts.dispatch.route``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from kpi_service.api.deps import Principal, audited

router = APIRouter(tags=["self-service"])

Worker = Annotated[Principal, Depends(audited("self"))]
SHOWN = ("id", "rule_id", "metric", "line", "station", "severity", "status", "value",
         "threshold", "unit", "raised_event_ts", "raised_at", "cleared_at")  # fmt: skip


@router.get("/me/alerts", summary="Threshold warnings about the calling worker (rules that say so)")
async def my_alerts(
    me: Worker,
    request: Request,
    state: Annotated[Literal["open", "all"], Query(alias="status")] = "open",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    service = getattr(request.app.state, "alerts", None)
    if service is None:
        return {"enabled": False, "alerts": []}
    rules = frozenset(r.id for r in service.rules.rules if r.notify_worker)
    found = service.store.find(
        status="open" if state == "open" else None, lines=me.lines, rules=rules,
        worker=me.worker, limit=limit,
    )  # fmt: skip
    return {
        "enabled": True,
        "alerts": [{k: getattr(a, k) for k in SHOWN} for a in found if a.worker == me.worker],
    }
