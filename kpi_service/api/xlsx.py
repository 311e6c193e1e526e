"""Workbooks as an HR analyst expects them: typed cells with number formats, hours not
seconds, percentages as Excel percentages, one column per defect code and down reason,
local times of the site, frozen header, filters, widths, a Definitions sheet with every
formula, and a chart sheet.

CSV and JSON stay as the API defines them (seconds, fractions, nested maps) for programs;
the workbook is for people, so it converts at the edge and says how in Definitions.
Written in openpyxl's write-only mode, so a big export streams row by row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from kpi_service.kpi.metrics import METRICS, Metric

Kind = Literal["text", "int", "number", "fraction", "hours", "datetime", "score"]
FORMATS: dict[str, str] = {
    "int": "#,##0",
    "number": "#,##0.0",
    "fraction": "0.00%",
    "hours": "#,##0.00",
    "datetime": "yyyy-mm-dd hh:mm",
    "score": "0.0",
}
WIDTHS: dict[str, int] = {"text": 14, "datetime": 17, "int": 10}
CHART_MAX_ROWS = 200
"""A chart over more bars than this is unreadable; the chart sheet then says so."""


@dataclass(frozen=True)
class Column:
    header: str
    kind: Kind
    definition: str
    get: Any  # Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Chart:
    title: str
    value: str  # header of the plotted column
    category: str  # header of the label column


def _cell(sheet: WriteOnlyWorksheet, value: Any, kind: Kind, tz: ZoneInfo) -> WriteOnlyCell:
    if kind == "datetime" and isinstance(value, datetime):
        value = value.astimezone(tz).replace(tzinfo=None)  # Excel has no zones: site time
    cell = WriteOnlyCell(sheet, value=value)
    if kind in FORMATS and value is not None:
        cell.number_format = FORMATS[kind]
    return cell


def write_book(
    target: IO[bytes],
    sheet_name: str,
    columns: Sequence[Column],
    rows: Iterable[dict[str, Any]],
    tz: ZoneInfo,
    *,
    notes: Sequence[tuple[str, str]] = (),
    chart: Chart | None = None,
) -> int:
    """Write the workbook; returns the number of data rows."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(sheet_name)
    sheet.freeze_panes = "A2"
    for i, col in enumerate(columns, 1):
        sheet.column_dimensions[get_column_letter(i)].width = max(
            WIDTHS.get(col.kind, 12), min(40, len(col.header) + 2)
        )
    bold = Font(bold=True)
    header = []
    for col in columns:
        cell = WriteOnlyCell(sheet, value=col.header)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    n = 0
    for row in rows:
        sheet.append([_cell(sheet, col.get(row), col.kind, tz) for col in columns])
        n += 1
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{n + 1}"

    defs = book.create_sheet("Definitions")
    defs.column_dimensions["A"].width = 28
    defs.column_dimensions["B"].width = 14
    defs.column_dimensions["C"].width = 100
    defs.append([WriteOnlyCell(defs, value=v) for v in ("Column", "Unit", "Definition")])
    units = {"int": "count", "number": "per hour", "fraction": "%", "hours": "hours",
             "datetime": f"local time ({tz.key})", "score": "points 0-100", "text": ""}  # fmt: skip
    for col in columns:
        defs.append([col.header, units[col.kind], col.definition])
    for label, text in notes:
        defs.append([label, "", text])

    charts = book.create_chartsheet("Chart")
    headers = [c.header for c in columns]
    if chart is not None and 0 < n <= CHART_MAX_ROWS:
        bar = BarChart()
        bar.title = chart.title
        bar.y_axis.title = chart.value
        value_col = headers.index(chart.value) + 1
        cat_col = headers.index(chart.category) + 1
        bar.add_data(
            Reference(sheet, min_col=value_col, min_row=1, max_row=n + 1), titles_from_data=True
        )
        bar.set_categories(Reference(sheet, min_col=cat_col, min_row=2, max_row=n + 1))
        charts.add_chart(bar)
    book.save(target)
    return n


def hours(key: str) -> Any:
    return lambda r: None if r.get(key) is None else float(r[key]) / 3600.0


def fraction_of_percent(key: str) -> Any:
    return lambda r: None if r.get(key) is None else float(r[key]) / 100.0


HEADERS = {
    "units_good": "good units",
    "pct_of_standard": "% of standard",
    "pct_of_standard_gross": "% of standard (gross)",
    "effective_hours": "effective h",
}
KINDS: dict[str, Kind] = {"ratio": "fraction", "%": "fraction", "units/h": "number",
                          "units": "int", "h": "hours"}  # fmt: skip


def _metric_column(m: Metric) -> Column:
    """A registry metric as a workbook column (percent numbers become Excel fractions)."""
    header = HEADERS.get(m.name, m.name.replace("_", " "))
    kind = KINDS.get(m.unit, "number")
    definition = f"{m.formula}. {m.explanation}"
    if m.unit == "%":
        return Column(header, kind, definition + " (as a fraction)", fraction_of_percent(m.name))
    return Column(header, kind, definition, lambda r, k=m.name: r.get(k))


def kpi_columns(rows: list[dict[str, Any]]) -> list[Column]:
    """The KPI export's columns: identity, every registry metric (``kpi.metrics``), the
    sums behind them in hours, and one column per defect code and down reason."""
    codes = sorted({c for r in rows for c in (r.get("defects_by_code") or {})})
    reasons = sorted({c for r in rows for c in (r.get("down_by_reason") or {})})

    def text(key: str, definition: str) -> Column:
        return Column(key, "text", definition, lambda r, k=key: r.get(k))

    cols = [
        text("site", "Site."), text("line", "Line."), text("station", "Station."),
        text("worker", "Worker id (pseudonym when the service pseudonymises)."),
        text("bucket", "Calendar bucket label."), text("shift", "Shift (shift buckets)."),
        Column("start", "datetime", "Bucket start, site time.", lambda r: r.get("start")),
        Column("end", "datetime", "Bucket end (exclusive), site time.", lambda r: r.get("end")),
        Column("defect units", "int", "Defective units.", lambda r: r.get("units_defect")),
        Column("units", "int", "All units.", lambda r: r.get("units_total")),
        *(_metric_column(m) for m in METRICS.values()),
        Column("work h", "hours", "Hours logged in (work_s / 3600).", hours("work_s")),
        Column("excused down h", "hours", "Machine down time not held against the worker.",
               hours("down_s")),
        Column("planned h", "hours", "Shift length less breaks (shift buckets).",
               hours("planned_s")),
        Column("standard h", "hours", "Σ good units * standard cycle time / 3600.",
               hours("standard_s")),
    ]  # fmt: skip
    for code in codes:
        cols.append(
            Column(f"defects {code}", "int", f"Defective units with code {code}.",
                   lambda r, c=code: (r.get("defects_by_code") or {}).get(c, 0))
        )  # fmt: skip
    for reason in reasons:
        cols.append(
            Column(f"down h {reason}", "hours", f"Excused down hours with reason {reason}.",
                   lambda r, c=reason: (r.get("down_by_reason") or {}).get(c, 0.0) / 3600.0)
        )  # fmt: skip
    cols.append(
        Column("cases", "text", "Approved cases that changed the row: id, kind, span, change "
               "(see /api/v1/cases).", lambda r: cases_text(r.get("cases")))
    )  # fmt: skip
    return cols


def cases_text(cases: list[dict[str, Any]] | None) -> str:
    """``#id kind start..end change`` per case, ``; ``-separated (empty: none)."""
    return "; ".join(
        f"#{c['case']} {c['kind']} {c['start']}..{c['end']} "
        + " ".join(f"{k}={v}" for k, v in sorted(c.get("change", {}).items()))
        for c in cases or []
    )
