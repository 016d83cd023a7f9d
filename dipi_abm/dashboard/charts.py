"""The page's interactive charts: Apache ECharts options built from a snapshot.

Solara's ``FigureEcharts`` draws them in the browser (hover for the values of
every series at an hour, drag or wheel to zoom, the slider below for the time
range); ECharts' script is served by the dashboard itself from the
``solara-assets`` package (``echarts@5.4.0``), so the page needs no internet.

Runs longer than :data:`~dipi_abm.results.collect.DAILY_AFTER_HOURS` are
drawn per day (daily totals of energy, daily means of rates, credit and
prices), as the command line's plots are. A pinned baseline is drawn dashed;
replications (:mod:`.compare`) add each arm's mean with the band holding the
middle 95 % of its replications.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..results.collect import DAILY_AFTER_HOURS
from ..results.plots import COLORS, _per_day
from .views import time_label

if TYPE_CHECKING:
    from .compare import Replications
    from .views import Baseline, Snapshot

#: title, unit, daily aggregation, scale, series (key, label, colour, dashed)
PANELS: tuple[tuple[str, str, str, float, tuple[tuple[str, str, str, bool], ...]], ...] = (
    ("Breach rate", "%", "mean", 100.0,
     (("breach_rate_dpgc", "DPGCs", COLORS["dpgc"], False),
      ("breach_rate_user", "users", COLORS["user"], False))),
    ("Mean credit", "credit", "mean", 1.0,
     (("mean_credit_dpgc", "DPGCs", COLORS["dpgc"], False),
      ("mean_credit_user", "users", COLORS["user"], False))),
    ("Energy: P2P vs grid", "MWh", "sum", 1e-3,
     (("p2p_volume_kwh", "P2P agreed", COLORS["p2p"], False),
      ("grid_purchase_kwh", "bought from grid", COLORS["grid"], False),
      ("grid_sale_kwh", "sold to grid", COLORS["sale"], False))),
    ("Prices", "yuan/kWh", "mean", 1.0,
     (("retail_price", "retail R", "#555555", True),
      ("feed_in_price", "feed-in F", "#999999", True),
      ("price_mean", "P2P mean", COLORS["p2p"], False))),
)
#: Time range choices: label -> hours shown at the end of the run (None: all).
RANGES = {"all": None, "last 48 h": 48, "last 7 days": 168}
_GRIDS = (("7%", "9%"), ("57%", "9%"), ("7%", "56%"), ("57%", "56%"))  # (left, top) per panel


def per_period(hourly: pd.DataFrame, daily: bool) -> pd.DataFrame:
    """The panels' columns per hour, or per day (totals of energy, means of the rest)
    with ``hour`` the day's last hour."""
    keys = [k for *_, series in PANELS for k, *_ in series if k in hourly]
    if not daily:
        return hourly[["hour", *keys]]
    sums = [k for _, _, how, _, series in PANELS if how == "sum"
            for k, *_ in series if k in hourly]
    d = _per_day(hourly, sums, [k for k in keys if k not in sums])
    return d.assign(hour=((d["day"] + 0.5) * 24).astype(int)).drop(columns="day")


def _values(frame: pd.DataFrame, x: np.ndarray, key: str, scale: float) -> list[Any]:
    """The column on the x positions (None where the frame has no value)."""
    if key not in frame or not len(frame):
        return [None] * len(x)
    s = pd.Series(frame[key].to_numpy(np.float64) * scale, index=frame["hour"].to_numpy())
    s = s[~s.index.duplicated()].reindex(x)
    return [None if not np.isfinite(v) else float(f"{v:.5g}") for v in s.to_numpy()]


def series_option(snap: Snapshot, baseline: Baseline | None = None,
                  reps: Replications | None = None, last: int | None = None) -> dict[str, Any]:
    """The hourly series as one ECharts option: four panels sharing the time axis."""
    daily = max(snap.hours, snap.hour) > DAILY_AFTER_HOURS
    now = per_period(snap.hourly, daily)
    base = per_period(baseline.hourly, daily) if baseline is not None else None
    hours = set(now["hour"].tolist())
    if base is not None:
        hours |= set(base["hour"].tolist())
    if reps is not None:
        hours |= set(range(1, reps.hour + 1)) if not daily else set()
    x = np.array(sorted(hours), dtype=np.int64)
    labels = [f"day {(h - 1) // 24 + 1}" if daily else time_label(int(h), snap.clock_offset)
              for h in x]
    option: dict[str, Any] = {
        "animation": False,
        "tooltip": {"trigger": "axis", "confine": True},  # the hovered panel's series
        "toolbox": {"right": 0, "bottom": 0, "feature": {
            "dataZoom": {"yAxisIndex": "none"}, "restore": {}, "saveAsImage": {}}},
        "title": [], "legend": [], "grid": [], "xAxis": [], "yAxis": [], "series": [],
    }
    for i, (title, unit, _, scale, panel) in enumerate(PANELS):
        left, top = _GRIDS[i]
        option["title"].append({"text": f"{title} ({unit}{', per day' if daily else ''})",
                                "left": left, "top": f"{int(top[:-1]) - 7}%",
                                "textStyle": {"fontSize": 12}})
        option["grid"].append({"left": left, "top": top, "width": "38%", "height": "30%",
                               "containLabel": True})
        option["xAxis"].append({"type": "category", "gridIndex": i, "data": labels,
                                "boundaryGap": False, "axisLabel": {"fontSize": 9}})
        option["yAxis"].append({"type": "value", "gridIndex": i, "scale": True,
                                "axisLabel": {"fontSize": 9}})
        names = []
        for key, label, color, dashed in panel:
            line = {"type": "dashed"} if dashed else {}
            names.append(label)
            option["series"].append(_line(label, i, color, _values(now, x, key, scale), line))
            if base is not None:
                option["series"].append(_line(f"{label} · baseline", i, color,
                                              _values(base, x, key, scale),
                                              {"type": "dotted", "opacity": 0.7}))
            if reps is not None and not daily and key in reps.hourly["A"]:
                for arm in ("A", "B"):
                    option["series"] += _band(f"{label} · {arm}", i, color, x,
                                              reps.band(arm, key), scale, arm == "A")
        option["legend"].append({"data": names, "left": f"{int(left[:-1]) + 22}%",
                                 "top": f"{int(top[:-1]) - 7}%", "textStyle": {"fontSize": 10},
                                 "itemHeight": 8})
    n = len(x)
    start = 0 if last is None or n == 0 else max(0, n - (last // 24 if daily else last))
    option["dataZoom"] = [
        {"type": "inside", "xAxisIndex": [0, 1, 2, 3], "startValue": start},
        {"type": "slider", "xAxisIndex": [0, 1, 2, 3], "startValue": start, "bottom": 4,
         "height": 18, "left": "8%", "right": 130},
    ]
    return option


def _line(name: str, grid: int, color: str, data: list[Any], style: dict[str, Any]
          ) -> dict[str, Any]:
    return {"name": name, "type": "line", "xAxisIndex": grid, "yAxisIndex": grid,
            "data": data, "showSymbol": False, "connectNulls": False, "color": color,
            "lineStyle": {"width": 1.5, **style}}


def _band(name: str, grid: int, color: str, x: np.ndarray, band: pd.DataFrame,
          scale: float, baseline: bool) -> list[dict[str, Any]]:
    """An arm's replication mean and its 95 % band (a stacked area on its lower edge)."""
    b = band.rename(columns={"mean": "m"})
    low = _values(b, x, "low", scale)
    high = _values(b, x, "high", scale)
    width = [None if lo is None or hi is None else float(f"{hi - lo:.5g}")
             for lo, hi in zip(low, high, strict=True)]
    stack = f"{name} band"
    dash = {"type": "dotted"} if baseline else {}
    return [
        {"name": f"{name} low", "type": "line", "xAxisIndex": grid, "yAxisIndex": grid,
         "data": low, "stack": stack, "showSymbol": False, "lineStyle": {"opacity": 0},
         "tooltip": {"show": False}, "silent": True},
        {"name": f"{name} 95 % band", "type": "line", "xAxisIndex": grid, "yAxisIndex": grid,
         "data": width, "stack": stack, "showSymbol": False, "lineStyle": {"opacity": 0},
         "areaStyle": {"color": color, "opacity": 0.12 if baseline else 0.22},
         "tooltip": {"show": False}, "silent": True},
        _line(f"{name} mean of reps", grid, color, _values(b, x, "m", scale),
              {**dash, "width": 1.0}),
    ]
