"""The demo's closing scores: a two-indicator weekly scheme for the simulated line, scored
through the KPI service's own API, printed with the band shares of the day."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
from rich.console import Group
from rich.table import Table


def demo_scheme(day: date) -> dict[str, Any]:
    monday = day - timedelta(days=day.weekday())
    return {
        "scheme": "demo-line",
        "effective_from": monday.isoformat(),
        "period": "week",
        "description": "demo: efficiency against the standard and quality rate",
        "metrics": [
            {"name": "efficiency", "source": "measured", "measure": "pct_of_standard",
             "floor": 60, "target": 100, "weight": 70},
            {"name": "quality", "source": "measured", "measure": "quality_rate",
             "floor": 0.85, "target": 1.0, "weight": 30},
        ],
        "min_evidence": {"effective_hours": 0.05},
    }  # fmt: skip


async def line_scores(url: str, admin_key: str, day: date) -> Group | str:
    """Define the demo scheme (once) and render the day's scores and band shares."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    params = {"scheme": "demo-line", "start": day.isoformat(), "end": day.isoformat()}
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            made = await client.post("/api/v1/schemes", json=demo_scheme(day), headers=headers)
            if made.status_code not in (201, 409):  # 409: defined by an earlier run
                return f"[red]scores: scheme refused: HTTP {made.status_code} {made.text}[/]"
            scores = await client.get("/api/v1/scores", params={**params, "limit": 500},
                                      headers=headers)  # fmt: skip
            dist = await client.get("/api/v1/scores/distribution", params=params, headers=headers)
        scores.raise_for_status()
        dist.raise_for_status()
    except httpx.HTTPError as err:
        return f"[red]scores: {err}[/]"
    table = Table(title="Scores (scheme demo-line: efficiency 70 + quality 30)")
    for column in ("worker", "score", "band", "efficiency pts", "quality pts"):
        table.add_column(column, justify="left" if column in ("worker", "band") else "right")
    for item in scores.json()["items"]:
        points = {m["name"]: m["points"] for m in item["metrics"]}
        table.add_row(
            item["worker"],
            "-" if item["score"] is None else f"{item['score']:.1f}",
            item["band"] or item["status"],
            *(
                "-" if points.get(n) is None else f"{points[n]:.1f}"
                for n in ("efficiency", "quality")
            ),
        )
    shares = []
    for period in dist.json()["periods"]:
        parts = [
            f"{b['name']} {100 * b['share']:.0f} %" if b["share"] is not None else f"{b['name']} -"
            for b in period["bands"]
        ]
        flag = " (inflated: top band above threshold)" if period["inflated"] else ""
        shares.append(f"band shares {period['period']}: {', '.join(parts)}{flag}")
    return Group(table, *shares)
