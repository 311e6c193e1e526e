"""Hourly rollups as a query plus a write (no ``SELECT ... INTO``, which 2.x/3.x lack).

One hour of ``<m>_1h`` is recomputed by reading ``sum(...) GROUP BY time(1h), *`` from
the raw points and writing the answer back through ``/write`` with the same tags, the
same hour timestamp and the field types of the schema. This is exactly what 1.x's
``SELECT ... INTO ... GROUP BY time(1h), *`` stored (checked against it in
tests/store), and rewriting a whole hour is the same idempotent overwrite.
"""

from __future__ import annotations

from takt_store.client import InfluxClient, Series, qualified
from takt_store.errors import InfluxError
from takt_store.lineproto import point_line
from takt_store.schema import HOUR_NS, ROLLUP_SUFFIX, ROLLUPS, rollup_aggregate
from takt_store.settings import InfluxSettings


def hour_query(settings: InfluxSettings, measurement: str, start_ns: int, end_ns: int) -> str:
    """The read half: sums per raw tag set and UTC hour in [start_ns, end_ns)."""

    return (
        f"SELECT {rollup_aggregate(measurement)} FROM {qualified(settings, measurement)} "
        f"WHERE time >= {start_ns} AND time < {end_ns} GROUP BY time(1h), * fill(none)"
    )


def rollup_lines(measurement: str, series: list[Series]) -> list[str]:
    """The write half: one ``<m>_1h`` line per answered row (pure)."""
    types = ROLLUPS[measurement]
    target = measurement + ROLLUP_SUFFIX
    out = []
    for one in series:
        tags: dict[str, str] = one.get("tags") or {}
        columns: list[str] = one["columns"]
        for values in one.get("values") or []:
            row = dict(zip(columns, values, strict=True))
            fields = {name: row.get(name) for name in types}
            if all(value is None for value in fields.values()):
                continue
            out.append(point_line(target, tags, fields, types, int(row["time"])))
    return out


async def recompute(client: InfluxClient, start_ns: int, end_ns: int | None = None) -> int:
    """Recompute every rollup for the hours in [start_ns, end_ns) (default: one hour);
    returns the points written. Raises :class:`InfluxError` on any failure (the caller
    retries the hour; a rejected line is a failure too, never skipped silently)."""
    end = start_ns + HOUR_NS if end_ns is None else end_ns
    lines: list[str] = []
    statements = [hour_query(client.settings, m, start_ns, end) for m in ROLLUPS]
    answers = await client.query(";".join(statements))
    for measurement, series in zip(ROLLUPS, answers, strict=True):
        lines += rollup_lines(measurement, series)
    if not lines:
        return 0
    result = await client.write(lines, which="rollup", retry=False)
    if result.rejected:
        line, why = result.rejected[0]
        raise InfluxError(f"{len(result.rejected)} rollup points refused, e.g. {line!r}: {why}")
    return result.written
