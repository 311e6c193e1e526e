"""One unit convention at the edge of the HR API: rates are fractions, each with a ``*_pct``
companion in percent; floats leave rounded (no float noise, no 15 decimals).

The rows come from the real computation (``tests/kpi/test_metrics._rows``: known sums);
the expected percentages are worked out here from the counts.
"""

from __future__ import annotations

import csv
import io
import json

import pandas as pd

from kpi_service.api.models import KpiRow
from kpi_service.api.routes.kpis import to_csv
from kpi_service.kpi.places import worker_places

from .test_metrics import _rows


def test_rates_are_fractions_with_percent_companions() -> None:
    (row,) = _rows()
    out = json.loads(KpiRow(**row).model_dump_json())
    # 10 defects of 140 units (S1: 90 + 6, S2: 40 + 4).
    assert out["defect_rate"] == float(f"{10 / 140:.7g}")  # a fraction, as always
    assert out["defect_rate_pct"] == 7.14  # 100 * 10 / 140 = 7.142857... -> 2 decimals
    assert out["quality_rate_pct"] == 92.86
    assert out["first_pass_yield_pct"] == round(100 * out["first_pass_yield"], 2)
    # Figures that are percentages by definition say so in their name, and stay percent.
    assert 0 < out["pct_of_standard"] < 1000


def test_floats_leave_without_noise() -> None:
    (row,) = _rows()
    noisy = {
        **row,
        "effective_s": 25499.999000000003,
        "down_by_reason": {"maintenance": 0.0010000000000000009, "fault": 0.1 + 0.2},
        "pct_of_standard": 100 * 360 / 6480,
    }
    out = json.loads(KpiRow(**noisy).model_dump_json())
    assert out["effective_s"] == 25500.0  # 7 significant digits
    assert out["down_by_reason"] == {"maintenance": 0.001, "fault": 0.3}
    assert out["pct_of_standard"] == 5.555556
    # The CSV export carries the same rounded values and the companions.
    [line] = list(csv.DictReader(io.StringIO(to_csv([noisy]).decode())))
    assert line["effective_s"] == "25500.0" and line["defect_rate_pct"] == "7.14"
    assert json.loads(line["down_by_reason"]) == {"fault": 0.3, "maintenance": 0.001}


def test_the_api_schema_still_describes_every_field() -> None:
    props = KpiRow.model_json_schema(mode="serialization")["properties"]
    assert {"defect_rate", "defect_rate_pct", "effective_s", "pct_of_standard"} <= set(props)
    assert "percent" in props["defect_rate_pct"]["description"]


def test_worker_rows_say_where_the_worker_worked() -> None:
    # W1 was logged in 3600 s at S1 and 1800 s at S2 (test_metrics._rows): S1 is the main.
    (row,) = _rows()
    out = json.loads(KpiRow(**row).model_dump_json())
    assert (out["line"], out["station"], out["stations"]) == ("L1", "S1", ["L1/S1", "L1/S2"])
    [line] = list(csv.DictReader(io.StringIO(to_csv([row]).decode())))
    assert (line["station"], json.loads(line["stations"])) == ("S1", ["L1/S1", "L1/S2"])


def test_without_work_intervals_the_station_with_most_units_is_the_main() -> None:
    units = pd.DataFrame(
        [("W1", 0, "L2", "S1", 3), ("W1", 0, "L1", "S9", 5), ("W1", 1, "L2", "S1", 1)],
        columns=["worker", "b", "line", "station", "count"],
    )
    work = pd.DataFrame(columns=["worker", "b", "line", "station", "work_s"])
    places = worker_places(units, work)
    assert places[("W1", 0)] == {"line": "L1", "station": "S9", "stations": ["L1/S9", "L2/S1"]}
    assert places[("W1", 1)]["stations"] == ["L2/S1"]
