"""The shift calendar as the service resolves it (so 'night of 14 March' can be checked)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter

from kpi_service.api.deps import KpiReader, SettingsDep
from kpi_service.api.models import ShiftOut
from kpi_service.api.queries import period_buckets

router = APIRouter(tags=["calendar"])


@router.get("/calendar/shifts", summary="Shift instances dated within a period, in UTC")
async def shifts(_: KpiReader, settings: SettingsDep, start: date, end: date) -> list[ShiftOut]:
    return [
        ShiftOut(label=b.label, shift=b.shift, start=b.start, end=b.end, planned_s=b.planned_s)
        for b in period_buckets(settings, "shift", start, end)
    ]
